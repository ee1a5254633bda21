"""Fixtures of the generator tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: the CI and dev machines have 2 shared cores, and OpenMP threads
    spinning against other processes cost far more than they gain for these small tensors."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
