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


def test_comparison_with_psiturk_needs_twice_the_sessions_and_a_lower_p99_at_every_level():
    sys.path.insert(0, str(REPO))
    try:
        from bench.server_load import compare
    finally:
        sys.path.remove(str(REPO))

    def ours(n, spm, p99):
        return {"phase": "saturation", "participants": n, "sessions_per_min": spm, "save_p99_ms": p99,
                "server_cpu_ms_per_session": 70.0}

    def theirs(n, spm, p99):
        return {**ours(n, spm, p99), "server": "psiturk-3.3.1"}

    good = compare([ours(10, 900, 80), ours(50, 1000, 200)], [theirs(10, 200, 300), theirs(50, 450, 900)])
    assert [row["ratio"] for row in good["levels"]] == [4.5, 2.22]
    assert good["twice_and_lower_p99_at_every_level"] is True
    slow = compare([ours(10, 900, 80), ours(50, 800, 200)], [theirs(10, 200, 300), theirs(50, 450, 900)])
    assert slow["twice_and_lower_p99_at_every_level"] is False  # 1.78x at 50
    tail = compare([ours(10, 900, 400)], [theirs(10, 200, 300)])
    assert tail["twice_and_lower_p99_at_every_level"] is False  # twice the sessions but a longer tail
    assert compare([ours(10, 900, 80)], [])["twice_and_lower_p99_at_every_level"] is False  # nothing compared
    # Several psiTurk configurations: the best sessions/min and the lowest p99 of them are the bar.
    two = compare([ours(10, 900, 80)], [{**theirs(10, 400, 300), "workers": 2}, {**theirs(10, 460, 70), "workers": 5}])
    row = two["levels"][0]
    assert (row["psiturk_sessions_per_min"], row["psiturk_workers"], row["psiturk_save_p99_ms"]) == (460, 5, 70)
    assert row["ratio"] == 1.96 and two["twice_and_lower_p99_at_every_level"] is False


def test_alternating_rounds_report_medians_with_their_spread():
    sys.path.insert(0, str(REPO))
    try:
        from bench.server_load import compare_rounds, round_order
    finally:
        sys.path.remove(str(REPO))

    sequence = [side for r in range(3) for side in round_order(r)]
    assert sequence == ["ours", "psiturk", "psiturk", "ours", "ours", "psiturk"]  # alternating: ABBAAB

    def ours(n, spm, p99, cpu=70.0):
        return {"phase": "saturation", "participants": n, "sessions_per_min": spm, "save_p99_ms": p99,
                "server_cpu_ms_per_session": cpu}

    def theirs(n, spm, p99, workers, cpu=170.0):
        return {**ours(n, spm, p99, cpu), "server": "psiturk-3.3.1", "workers": workers}

    # Three rounds at one level; psiTurk's best of its 2 configurations per round: 600, 700, 500.
    mine = [[ours(10, 1500, 40)], [ours(10, 1800, 30)], [ours(10, 1200, 50)]]
    other = [[theirs(10, 600, 200, 2), theirs(10, 550, 180, 5)],
             [theirs(10, 650, 210, 2), theirs(10, 700, 260, 5)],
             [theirs(10, 500, 190, 2), theirs(10, 480, 170, 5)]]
    out = compare_rounds(mine, other)
    row = out["levels"][0]
    assert row["rounds"] == 3
    assert row["sessions_per_min"] == {"median": 1500, "min": 1200, "max": 1800, "n": 3}
    assert row["psiturk_sessions_per_min"] == {"median": 600, "min": 500, "max": 700, "n": 3}
    assert row["ratio_of_medians"] == 2.5  # 1500 / 600
    # per-round ratios: 1500/600 = 2.5, 1800/700 = 2.57, 1200/500 = 2.4
    assert row["ratio_per_round"] == {"median": 2.5, "min": 2.4, "max": 2.57, "n": 3}
    assert row["save_p99_ms"]["median"] == 40
    assert row["psiturk_save_p99_ms"] == {"median": 180, "min": 170, "max": 210, "n": 3}  # lowest per round
    assert out["meets_target"] is True
    assert compare_rounds(mine, other, target=2.6)["meets_target"] is False
    slower_tail = [[ours(10, 1500, 400)], [ours(10, 1800, 300)], [ours(10, 1200, 500)]]
    assert compare_rounds(slower_tail, other)["meets_target"] is False
    assert compare_rounds([], [])["meets_target"] is False
