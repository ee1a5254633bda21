"""The simulator makes valid exports: manifest rows pass the manifest contract, plans have the paper's
shape, and its (loop-based) server verdicts agree with the recomputed ones."""

from __future__ import annotations

from analysis.cleaning import clean
from analysis.io import load_export
from analysis.simulate import Behaviour, make_plan, simulate_export
from stimuli.manifest import load_manifest


def test_task1_plan_shape_and_manifest(tmp_path):
    plan, stimuli = make_plan("emotion-realness")
    assert len(plan["batches"]) == 6
    assert all(len(b["items"]) == 18 for b in plan["batches"])  # 5 GT + 5 BL + 5 OURS + 3 repeats (paper)
    path = simulate_export(tmp_path / "e", "emotion-realness", n_batches=2, participants_per_batch=3)
    assert len(load_manifest(path, check_media=False)) == 2 * 15


def test_task2_plan_shape():
    plan, stimuli = make_plan("av-mismatch")
    assert len(stimuli) == 72  # 2 videos for each of the 36 (visual, audio) pairs
    assert all(len(b["items"]) == 14 for b in plan["batches"])  # 12 + 2 repeats (paper)


def test_server_verdicts_agree_with_recomputed(tmp_path):
    path = simulate_export(tmp_path / "e", "av-mismatch", n_batches=2, participants_per_batch=6,
                           behaviour=Behaviour(careless=0.3, dropout=0.1), random_state=3)
    c = clean(load_export(path))
    assert c.counts["n_verdict_disagreements"] == 0
    assert c.counts["n_inconsistency_count_disagreements"] == 0  # the simulator's loop counts the same
    assert (c.surveys["server_n_inconsistent"].notna()).any()
    assert c.counts["n_surveys_rejected"] > 0 and c.counts["n_surveys_incomplete"] > 0
    again = simulate_export(tmp_path / "f", "av-mismatch", n_batches=2, participants_per_batch=6,
                            behaviour=Behaviour(careless=0.3, dropout=0.1), random_state=3)
    assert (again / "answers.csv").read_bytes() == (path / "answers.csv").read_bytes()
