"""Fixtures of the analysis tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.simulate import write_export


@pytest.fixture
def export_writer(tmp_path: Path):
    """write(plan, stimuli, rows, participants) -> folder of an export."""
    counter = {"n": 0}

    def write(plan, stimuli, rows, participants):
        counter["n"] += 1
        return write_export(tmp_path / f"export{counter['n']}", plan, stimuli, rows, participants)

    return write
