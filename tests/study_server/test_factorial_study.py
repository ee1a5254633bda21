"""Issue 27, done when: the three-emotion face/voice study of a psychologist (3 visual x 3 audio emotions x 2
identities x 2 sentences, matched and mismatched, per-participant order, 2 repeats per batch) is built from
a spec written in the factor language, planned with `emostudy plan` (and its --preview), taken by simulated
participants through the real HTTP API, exported with `emostudy export` and analysed by the default
`emostudy analyze`. The visual-vs-audio dominance over the three emotions (chance 1/3) is checked against a
computation with plain loops over answers.csv, and nothing about a secondary label appears."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from studykit import import_study, serve_in_thread, write_tiny_mp4

E3 = ["anger", "happiness", "sadness"]

SPEC = """
quota_per_batch = 6

[study]
name = "face-voice-3"
title = "Face and voice, three emotions"
task = "factorial"

[participant]
title = "Emotions of talking faces"
instructions = "Watch each video with the sound on and tell us which emotion the person expresses."

[design]
batches = 3
clips_per_cell = 1
counterbalance = "latin-square"
counterbalance_factors = ["visual_emotion", "audio_emotion"]
repeats_per_batch = 2
min_repeat_gap = 2
order = "per-participant"

[design.factors]
visual_emotion = { levels = ["anger", "happiness", "sadness"] }
audio_emotion = { levels = ["anger", "happiness", "sadness"] }
identity = { levels = "all" }
sentence = { levels = "all" }
source = { levels = ["OURS"], crossed = false }

[examples]
per_emotion = 1
sources = ["GT"]

[[questions]]
id = "emotion"
type = "single"
prompt = "Which emotion does the person express?"
options = "design-emotions"
measures = "perceived_emotion"

[consistency]
max_inconsistent = 1
rules = [{ question = "emotion", kind = "equal" }]
"""


def _write_set(root: Path) -> Path:
    from stimuli.manifest import build_manifest, save_manifest

    (root / "media").mkdir(parents=True)
    rows = []
    cells = [(v, a, i, s) for v in E3 for a in E3 for i in ("1001", "1002") for s in ("DFA", "IEO")]
    cells += [(e, e, "2001", f"EX{k}") for e in E3 for k in range(2)]
    for n, (v, a, ident, sent) in enumerate(cells):
        rel = f"media/c{n:03d}.mp4"
        write_tiny_mp4(root / rel, seed=n)
        rows.append({"stimulus_id": f"c{n:03d}", "media": rel, "sha256": hashlib.sha256((root / rel).read_bytes()).hexdigest(),
                     "duration_s": 0.4, "fps": 25.0, "width": 64, "height": 64, "audio_rate": 44100,
                     "source": "GT" if sent.startswith("EX") else "OURS", "visual_emotion": v, "audio_emotion": a,
                     "identity": ident, "sentence": sent, "intensity": "XX", "size_variant": None,
                     "provenance": {"backend": "recording" if sent.startswith("EX") else "warp", "seed": n}})
    save_manifest(build_manifest(root, rows, name="face-voice-3", check_media=True))
    return root


def _ranks(values: list[float]) -> list[float]:
    """Average ranks (1-based), by plain loops."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@pytest.mark.slow
def test_three_emotion_face_voice_study_end_to_end(app, tmp_path):
    from emostudy.cli import main
    from study_server.participant.simulate import ResponseModel, simulate

    set_dir = _write_set(tmp_path / "set")
    spec = tmp_path / "face-voice-3.toml"
    spec.write_text(SPEC)
    run = CliRunner()
    r = run.invoke(main, ["plan", "--spec", str(spec), "--set", str(set_dir), "--seed", "11", "--preview"])
    assert r.exit_code == 0, r.output
    assert "36 cells over 3 batch(es)" in r.output and "audio_emotion: balanced" in r.output
    plan_path = tmp_path / "plan.json"
    r = run.invoke(main, ["plan", "--spec", str(spec), "--set", str(set_dir), "--seed", "11", "--out", str(plan_path)])
    assert r.exit_code == 0, r.output
    plan = json.loads(plan_path.read_text())
    assert plan["design"]["order"] == "per-participant" and [len(b["items"]) for b in plan["batches"]] == [14] * 3

    study = import_study(app, plan_path, set_dir)
    rows = json.loads((set_dir / "manifest.json").read_text())["stimuli"]
    with serve_in_thread(app) as base:
        rep = simulate(base, study, 15, manifest_rows=rows, secret_key=app.config["SECRET_KEY"],
                       task=plan["study"]["task"], plan_questions=plan["questions"],
                       model=ResponseModel(p_visual=0.75, p_audio=0.15, careless=0.1), seed=4, workers=3)
    assert rep.completed >= 12 and all("study_full" in x for x in rep.refused), rep

    export = tmp_path / "export"
    r = run.invoke(main, ["export", study, "--out", str(export), "--include-simulated",
                           "--db", app.config["DATABASE_URL"]])
    assert r.exit_code == 0, r.output
    report = tmp_path / "report"
    r = run.invoke(main, ["analyze", str(export), "--out", str(report)])
    assert r.exit_code == 0, r.output
    res = json.loads((report / "results.json").read_text())
    t2 = res["task2"]

    # Independent computation: plain loops over answers.csv (valid surveys, originals only).
    with open(export / "answers.csv", newline="") as fh:
        answers = [a for a in csv.DictReader(fh) if a["question"] == "emotion"]
    valid = {a["assignment"] for a in answers if a["verdict"] == "valid"}
    per: dict[str, list[int]] = {}
    n_all = match_v_all = 0
    for a in answers:
        if a["assignment"] not in valid or a["is_repeat"] == "1":
            continue
        n_all += 1
        match_v_all += a["answer"] == a["visual_emotion"]
        if a["visual_emotion"] == a["audio_emotion"]:
            continue
        c = per.setdefault(a["participant"], [0, 0, 0])
        c[0] += 1
        c[1] += a["answer"] == a["visual_emotion"]
        c[2] += a["answer"] == a["audio_emotion"]
    assert len(per) == res["cleaning"]["n_participants_valid"] >= 10
    # Per-participant order: participants of one batch saw its plan position 0 at different places.
    first = {(a["batch_id"], a["assignment"]): a["shown_position"] for a in answers if a["position"] == "0"}
    by_batch: dict[str, set[str]] = {}
    for (bid, _), shown in first.items():
        by_batch.setdefault(bid, set()).add(shown)
    assert any(len(v) > 1 for v in by_batch.values()), by_batch
    diffs = [(v - au) / n for n, v, au in per.values()]
    mean_v = sum(v / n for n, v, _ in per.values()) / len(per)
    mean_a = sum(au / n for n, _, au in per.values()) / len(per)
    ranks = _ranks([abs(d) for d in diffs])  # Pratt: zeros ranked, then dropped
    r_plus = sum(r for r, d in zip(ranks, diffs) if d > 0)

    dom = t2["dominance"]
    assert [d["counting"] for d in dom] == ["primary"]  # one question: no primary-or-secondary test
    assert dom[0]["mean_visual"] == pytest.approx(mean_v) and dom[0]["mean_audio"] == pytest.approx(mean_a)
    assert dom[0]["r_plus"] == pytest.approx(r_plus) and dom[0]["n"] == len(per)
    assert mean_v > mean_a and dom[0]["p"] < 0.05  # the model follows the face (p_visual 0.75 vs p_audio 0.15)
    assert t2["chance"] == pytest.approx(1 / 3) and t2["emotions_offered"] == E3
    row = next(x for x in t2["vs_chance"] if x["subset"] == "all" and x["modality"] == "visual")
    assert (row["n"], row["n_match"]) == (n_all, match_v_all) and row["chance"] == pytest.approx(1 / 3)
    assert {c["truth"] for c in t2["confusion"]} == set(E3) and {c["answer"] for c in t2["confusion"]} == set(E3)
    assert {f["counting"] for f in t2["match_fractions"]} == {"primary"}

    # Nothing about a secondary label: not in the results' tables, not in the report's tables.
    html = (report / "report.html").read_text()
    assert "What was analysed and why" in html and "one label per video" in html
    assert any("against chance 0.333 (1/3 of the emotions offered)" in x["text"] for x in res["sentences"])
    assert "primary_or_secondary" not in json.dumps(t2), [k for k in t2 if "primary_or_secondary" in json.dumps(t2[k])]
    assert "Primary or secondary" not in html
    assert "two distinct labels" not in html
    for f in (report / "tables").glob("task2_*.csv"):
        assert "secondary" not in f.read_text(), f.name
