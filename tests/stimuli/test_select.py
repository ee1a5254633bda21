"""`emostudy norms` and `emostudy select` on a simulated norming study of a demo-shaped set (2 faces x 6
emotions x 3 sentences, the shape of the demo's FULL clips), and the selected set's manifest (schema 3).

The answers are simulated offline (analysis.simulate with analysis.simulate_norming's raters) for the plan
that `emostudy plan --spec norming` compiles; the checks count from norms.json and the manifests directly."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from click.testing import CliRunner

from stimuli_factories import fake_row
from emostudy.cli import main
from stimuli.emotions import EMOTIONS
from stimuli.errors import ManifestError
from stimuli.manifest import load_manifest

FACES, SENTENCES = ("face1", "face2"), ("IEO", "TIE", "DFA")


def demo_rows():
    rows = []
    for face in FACES:
        for emo in EMOTIONS:
            for sen in SENTENCES:
                rows.append(fake_row(f"FULL-{face}-{emo}-{sen}", "FULL", emo, emo, identity=face, sentence=sen))
    return rows


@pytest.fixture
def normed(write_set, tmp_path):
    """(set folder, norms folder, export folder) of a simulated norming study."""
    from analysis.simulate import simulate_export

    root = write_set(demo_rows(), "demo-full")
    manifest = load_manifest(root)
    spec = tmp_path / "norming.toml"
    from stimuli.spec import resolve_spec

    spec.write_bytes(resolve_spec("norming")[1].replace(b"clips_per_batch = 24", b"clips_per_batch = 12"))
    plan_path = tmp_path / "plan.json"
    runner = CliRunner()
    res = runner.invoke(main, ["plan", "--spec", str(spec), "--set", str(root), "--seed", "5", "--out", str(plan_path)])
    assert res.exit_code == 0, res.output
    plan = json.loads(plan_path.read_text())
    assert len(plan["batches"]) == 3  # 36 clips, 3 per face x emotion, at most 1 per participant
    export = simulate_export(tmp_path / "export", plan=plan, stimuli=[s.to_dict() for s in manifest.stimuli],
                             participants_per_batch=12, random_state=2)
    norms_dir = tmp_path / "norms"
    res = runner.invoke(main, ["norms", str(export), "--out", str(norms_dir), "--splits", "20"])
    assert res.exit_code == 0, res.output
    return root, norms_dir, export


def test_select_keeps_passing_clips_balanced_and_records_norms_and_rule(normed, tmp_path):
    root, norms_dir, _ = normed
    norms = {r["stimulus_id"]: r for r in json.loads((norms_dir / "norms.json").read_text())["stimuli"]}
    assert len(norms) == 36 and all(r["n_ratings"] >= 8 for r in norms.values())
    before = (root / "manifest.json").read_bytes()
    out = tmp_path / "selected"
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0.5",
                                    "--per-cell", "1", "--balance", "identity,emotion", "--out", str(out)])
    assert res.exit_code == 0, res.output
    new = load_manifest(out)  # validates, media included
    assert len(new) == 12
    assert Counter((s.identity, s.visual_emotion) for s in new) == {(f, e): 1 for f in FACES for e in EMOTIONS}
    for s in new:
        assert s.norms["recognition"] >= 0.5 and s.norms["recognition"] == norms[s.stimulus_id]["recognition"]
        assert s.norms["n_ratings"] == norms[s.stimulus_id]["n_ratings"] and "intensity_mean" in s.norms
        # the best clip of its cell (independently: max over the three sentences' recognition)
        cell = [r for r in norms.values() if r["identity"] == s.identity and r["intended"] == s.visual_emotion]
        assert s.norms["recognition"] == max(r["recognition"] for r in cell)
        assert os.path.samefile(out / s.media, root / s.media)  # hard-linked, not moved
    data = json.loads((out / "manifest.json").read_text())
    assert data["schema_version"] == 3
    assert data["selection"]["rule"] == {"min_recognition": 0.5, "min_ratings": 1, "per_cell": 1,
                                         "balance": ["identity", "emotion"]}
    assert data["selection"]["from_manifest_sha256"] == load_manifest(root).sha256()
    assert (root / "manifest.json").read_bytes() == before and len(load_manifest(root)) == 36


def test_select_refuses_with_the_cells_that_fall_short(normed, tmp_path):
    root, norms_dir, _ = normed
    norms = json.loads((norms_dir / "norms.json").read_text())["stimuli"]
    # Independently: per face x emotion, how many clips reach 0.7.
    passing = Counter((r["identity"], r["intended"]) for r in norms if r["recognition"] >= 0.7)
    short = sorted((f, e) for f in FACES for e in EMOTIONS if passing[(f, e)] < 3)
    assert short, "the simulated raters should leave some cell without three recognisable clips"
    out = tmp_path / "never"
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0.7",
                                    "--per-cell", "3", "--balance", "identity,emotion", "--out", str(out)])
    assert res.exit_code != 0
    for face, emo in short:
        assert f"{face} x {emo}: {passing[(face, emo)]} pass, need 3" in res.output
    assert not out.exists()


def test_select_without_per_cell_takes_what_every_cell_can_give(normed, tmp_path):
    root, norms_dir, _ = normed
    norms = json.loads((norms_dir / "norms.json").read_text())["stimuli"]
    by_emotion = Counter(r["intended"] for r in norms if r["recognition"] >= 0.4)
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0.4",
                                    "--balance", "emotion", "--out", str(tmp_path / "s")])
    if min(by_emotion.get(e, 0) for e in EMOTIONS) == 0:
        assert res.exit_code != 0 and "0 pass" in res.output
        return
    assert res.exit_code == 0, res.output
    new = load_manifest(tmp_path / "s")
    assert set(Counter(s.visual_emotion for s in new).values()) == {min(by_emotion[e] for e in EMOTIONS)}


def test_a_clip_whose_media_changed_since_norming_never_passes(normed, tmp_path):
    root, norms_dir, _ = normed
    data = json.loads((norms_dir / "norms.json").read_text())
    best = max(data["stimuli"], key=lambda r: r["recognition"])
    best["media_sha256"] = "f" * 64
    (norms_dir / "norms.json").write_text(json.dumps(data))
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                                    "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    assert "1 changed since they were normed" in res.output
    assert best["stimulus_id"] not in load_manifest(tmp_path / "s")


def test_manifest_norms_are_validated(normed, tmp_path):
    root, norms_dir, _ = normed
    out = tmp_path / "s"
    CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0.3",
                              "--out", str(out)])
    data = json.loads((out / "manifest.json").read_text())
    data["stimuli"][0]["norms"]["recognition"] = 1.5
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=r"field 'norms': 'recognition' 1.5"):
        load_manifest(out)
    data["stimuli"][0]["norms"]["recognition"] = 0.5
    data["schema_version"] = 2
    (out / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="need 'schema_version' 3"):
        load_manifest(out)


def test_a_study_on_the_selected_set_carries_the_norms_as_covariates(normed, tmp_path):
    from analysis.io import load_export
    from analysis.norms import norms_covariates
    from analysis.simulate import simulate_export
    from stimuli.plan import compile_plan
    from stimuli.spec import parse_spec, resolve_spec

    root, norms_dir, _ = normed
    out = tmp_path / "s"
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                                    "--per-cell", "2", "--balance", "identity,emotion", "--out", str(out)])
    assert res.exit_code == 0, res.output
    new = load_manifest(out)
    where, raw = resolve_spec("norming")
    plan = compile_plan(parse_spec(raw.replace(b"clips_per_batch = 24", b"clips_per_batch = 12"), where=where), new, 1)
    export = load_export(simulate_export(tmp_path / "export2", plan=plan, stimuli=[s.to_dict() for s in new.stimuli],
                                         participants_per_batch=2))
    cov = norms_covariates(export).set_index("stimulus_id")
    assert set(cov.index) == {s.stimulus_id for s in new}
    for s in new:
        assert cov.loc[s.stimulus_id, "norm_recognition"] == pytest.approx(s.norms["recognition"])
        assert cov.loc[s.stimulus_id, "norm_intensity_mean"] == pytest.approx(s.norms["intensity_mean"])


def test_checking_a_selected_set_again_keeps_its_norms_and_selection(normed, tmp_path):
    from generator.check.run import _record_in_manifest

    root, norms_dir, _ = normed
    out = tmp_path / "s"
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    before = load_manifest(out)
    qc = {"records": [{"stimulus_id": s.stimulus_id, "flagged": False, "reasons": [], "sha256": s.sha256,
                       "error": "not measured in this test"} for s in before.stimuli]}
    _record_in_manifest(before, qc, out / "qc")
    after = load_manifest(out)
    assert after.selection == before.selection and all(s.check is not None for s in after.stimuli)
    assert [s.norms for s in after.stimuli] == [s.norms for s in before.stimuli]


def test_the_analysis_of_a_study_on_the_selected_set_uses_norm_recognition_as_a_covariate(normed, tmp_path):
    """The report's norm covariate model equals a logistic regression fitted here by Newton's method with a
    cluster-robust (by participant) sandwich, written with numpy alone."""
    import numpy as np

    from analysis.cleaning import clean
    from analysis.io import load_export
    from analysis.report import AnalysisOptions, compute
    from analysis.simulate import simulate_export
    from stimuli.plan import compile_plan
    from stimuli.spec import parse_spec, resolve_spec

    root, norms_dir, _ = normed
    out = tmp_path / "s"
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                                    "--out", str(out)])
    assert res.exit_code == 0, res.output
    new = load_manifest(out)
    where, raw = resolve_spec("norming")
    plan = compile_plan(parse_spec(raw.replace(b"clips_per_batch = 24", b"clips_per_batch = 12"), where=where), new, 2)
    export = load_export(simulate_export(tmp_path / "study", plan=plan, stimuli=[s.to_dict() for s in new.stimuli],
                                         participants_per_batch=10, random_state=4))
    analysis = compute(export, AnalysisOptions(n_boot=50, mixed_models=False))
    model = analysis.results["task1"]["norm_covariates"]
    assert model["fitted"] and model["formula"] == "correct ~ norm_recognition"
    # independent fit
    ans = clean(export).answers
    em = ans[ans["question"] == "emotion"]
    rec = {s.stimulus_id: s.norms["recognition"] for s in new.stimuli}
    x = np.array([[1.0, rec[s]] for s in em["stimulus_id"]])
    y = (em["answer"] == em["visual_emotion"]).to_numpy(float)
    beta = np.zeros(2)
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ beta))
        beta = beta + np.linalg.solve(x.T @ (x * (p * (1 - p))[:, None]), x.T @ (y - p))
    p = 1 / (1 + np.exp(-x @ beta))
    bread = np.linalg.inv(x.T @ (x * (p * (1 - p))[:, None]))
    people = em["participant"].to_numpy()
    meat = sum(np.outer(u, u) for u in ((x[people == g] * (y - p)[people == g, None]).sum(axis=0)
                                        for g in np.unique(people)))
    n, k, g = len(y), 2, len(np.unique(people))
    cov = bread @ meat @ bread * (g / (g - 1)) * ((n - 1) / (n - k))
    terms = {t["term"]: t for t in model["terms"]}
    assert terms["norm_recognition"]["estimate"] == pytest.approx(beta[1], rel=1e-6)
    assert terms["intercept"]["estimate"] == pytest.approx(beta[0], rel=1e-6)
    assert terms["norm_recognition"]["se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-6)
    assert model["n_answers"] == len(y) and model["n_participants"] == g
    # clips recognised better in the norming study are read correctly more often by these simulated raters too
    assert terms["norm_recognition"]["estimate"] > 0
    assert "task1_norm_covariates" in analysis.tables


def test_select_refuses_bad_rules_and_norms_of_another_set(normed, tmp_path, write_set):
    root, norms_dir, _ = normed
    runner = CliRunner()
    for args, message in ((["--min-recognition", "1.5"], "between 0 and 1"),
                          (["--min-recognition", "0.5", "--balance", "identity,colour"], "'colour' is not a field"),
                          (["--min-recognition", "0.99", "--min-ratings", "1000"], "no clip passes")):
        res = runner.invoke(main, ["select", str(root), "--norms", str(norms_dir), *args, "--out", str(tmp_path / "x")])
        assert res.exit_code != 0 and message in res.output, res.output
        assert not (tmp_path / "x").exists()
    other = write_set([fake_row("zz1", "GT", "anger", "anger")], "other-set")
    res = runner.invoke(main, ["select", str(other), "--norms", str(norms_dir), "--min-recognition", "0.5",
                               "--out", str(tmp_path / "y")])
    assert res.exit_code != 0 and "none of the 1 clips" in res.output
    res = runner.invoke(main, ["select", str(root), "--norms", str(tmp_path), "--min-recognition", "0.5",
                               "--out", str(tmp_path / "z")])
    assert res.exit_code != 0 and "no norms here" in res.output
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    res = runner.invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                               "--out", str(tmp_path / "taken")])
    assert res.exit_code != 0 and "not an empty folder" in res.output
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_dry_run_shows_the_cells_and_writes_nothing(normed, tmp_path):
    root, norms_dir, _ = normed
    res = CliRunner().invoke(main, ["select", str(root), "--norms", str(norms_dir), "--min-recognition", "0",
                                    "--balance", "identity", "--dry-run", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "face1: 18 pass, 18 kept" in res.output and "dry run: nothing written" in res.output
    assert not (tmp_path / "d").exists()
