"""The load benchmark itself runs end to end (a few seconds of it), so that it cannot rot unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_bench_runs_and_loses_nothing(postgres_url, tmp_path):
    pytest.importorskip("aiohttp")
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "server_load.py"), "--pg-url", postgres_url,
                    "--pacing-participants", "3", "--ramp", "0.5", "--pace", "0.01,0.02", "--warmup", "2", "--levels", "2", "--seconds", "2", "--inprocess", "2",
                    "--json", str(out)], check=True, cwd=REPO, timeout=240)
    results = json.loads(out.read_text())
    phases = {r["phase"]: r for r in results if "phase" in r}
    cpu = phases.pop("inprocess_cpu")
    assert cpu["sessions"] == 2 and cpu["ms_per_request"]["answer"]["n"] == 2 * 18
    assert cpu["server_ms_per_session"] > 0
    assert set(phases) == {"pacing", "saturation"}
    assert phases["pacing"]["sessions_completed"] == 3
    assert phases["pacing"]["answers_acknowledged"] == phases["pacing"]["answers_stored"] == 3 * 18
    for r in phases.values():
        assert r["lost"] == 0 and r["duplicates"] == 0 and r["errors"] == {}
        assert r["save_p99_ms"] is not None
    assert phases["saturation"]["sessions_completed"] >= 1
