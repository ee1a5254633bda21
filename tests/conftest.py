"""Shared fixtures and markers.

Services (PostgreSQL, Chromium, R) are optional on a developer's machine; in CI
(EMOSTUDY_REQUIRE_SERVICES=1) a missing service is an error, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REQUIRE_SERVICES = os.environ.get("EMOSTUDY_REQUIRE_SERVICES") == "1"


def need_service(available: bool, what: str) -> None:
    """Skip (locally) or fail (in CI) when a test-only service is missing."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required in CI (EMOSTUDY_REQUIRE_SERVICES=1) but is not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    need_service(os.path.exists(path), "Debian chromium")
    return path


@pytest.fixture(scope="session")
def rscript() -> str:
    """Rscript with lme4 and ordinal (Debian r-base-core, r-cran-lme4, r-cran-ordinal; .ci/run installs them)."""
    import subprocess

    path = shutil.which("Rscript")
    ok = bool(path) and subprocess.run(
        [path, "-e", "quit(status = !all(sapply(c('lme4', 'ordinal'), requireNamespace, quietly = TRUE)))"],
        capture_output=True, timeout=120, check=False).returncode == 0
    need_service(ok, "R (Rscript) with the packages lme4 and ordinal")
    return str(path)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get("EMOSTUDY_TEST_POSTGRES_URL", "")
    need_service(bool(url), "PostgreSQL (EMOSTUDY_TEST_POSTGRES_URL)")
    return url


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing in a server-only install
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
