"""Issue 27: the analysis chosen from what each question measures and the design's factors (analysis/measures.py,
analysis/scales.py), and the paper's specs giving the same numbers as before (tests/pinned)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.errors import AnalysisOptionError
from analysis.io import load_export
from analysis.report import AnalysisOptions, compute, results_json_bytes, write_outputs
from analysis.simulate import simulate_answers, simulate_export, write_export
from stimuli.manifest import build_manifest
from stimuli.plan import compile_plan
from stimuli.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "stimuli"))
from stimuli_factories import fake_row, task1_rows, task2_rows  # noqa: E402

PINNED = ROOT / "pinned"


@pytest.mark.parametrize("name", ["paper-task1", "paper-task2"])
def test_paper_specs_give_the_pinned_analysis_numbers(tmp_path, name):
    """tests/pinned/paper_pins.json holds the Task 1 / Task 2 results (mixed models aside: issue 33 changes
    those) that the code before issue 27 computed from the same simulated answers; the analysis is now chosen
    from the questions' `measures`, and gives every one of those numbers again."""
    rows = task1_rows() if name == "paper-task1" else task2_rows()
    m = build_manifest("/nonexistent/x", rows, name="t1" if name == "paper-task1" else "t2")
    plan = compile_plan(load_spec(name), m, 42)
    p = simulate_export(tmp_path / "x", plan=plan, stimuli=[s.to_dict() for s in m], participants_per_batch=6,
                        random_state=3)
    res = compute(load_export(p), AnalysisOptions(mixed_models=False, n_boot=200)).results
    pins = json.loads((PINNED / "paper_pins.json").read_text())["analysis"][name]
    got = json.loads(results_json_bytes({k: res[k] for k in pins}))
    if "task2" in got:  # new keys only: the emotions offered, chance 1/k and the tests against it
        assert set(got["task2"]) - set(pins["task2"]) == {"emotions_offered", "chance", "vs_chance", "has_secondary"}
        got["task2"] = {k: v for k, v in got["task2"].items() if k in pins["task2"]}
    assert got == pins
    assert res["analysed"][0].startswith("Design factors:")


BETWEEN_WITHIN = """
[study]
name = "real-2x2"
task = "factorial"
[participant]
title = "Talking faces"
[design]
batches = 4
clips_per_cell = 2
counterbalance = "complete"
repeats_per_batch = 1
[design.factors]
source = { levels = ["A", "B"], within = false }
emotion = { levels = ["anger", "happiness"] }
[examples]
per_emotion = 0
[[questions]]
id = "real"
type = "scale"
prompt = "How real does the video look?"
measures = "realness"
compare = [["anger", "happiness"], ["A", "B"]]
options = [
  { value = "r1", label = "1", score = 1 }, { value = "r2", label = "2", score = 2 }, { value = "r3", label = "3", score = 3 },
  { value = "r4", label = "4", score = 4 }, { value = "r5", label = "5", score = 5 },
]
[consistency]
max_inconsistent = 1
"""


def _two_by_two(tmp_path, text=BETWEEN_WITHIN, seed=0):
    rows = [fake_row(f"r{n:03d}", src, emo, emo, identity=f"{1001 + k}", sentence="DFA")
            for n, (src, emo, k) in enumerate((s, e, k) for s in ("A", "B") for e in ("anger", "happiness")
                                              for k in range(2))]
    m = build_manifest("/nonexistent/r", rows, name="r")
    plan = compile_plan(parse_spec(text, where="s.toml"), m, 3)
    stim = [s.to_dict() for s in m]
    answers, parts = simulate_answers(plan, stim, participants_per_batch=12, random_state=seed)
    rng = np.random.default_rng(seed)
    effect = {("A", "anger"): 2.0, ("A", "happiness"): 3.0, ("B", "anger"): 3.0, ("B", "happiness"): 4.5}
    for a in answers:  # a known effect: B more real, happiness more real, a larger happiness effect in B
        if a["question"] == "real" and a["verdict"] != "rejected":
            s = int(np.clip(round(effect[(a["source"], a["visual_emotion"])] + rng.normal(0, 0.7)), 1, 5))
            a["answer"], a["score"] = f"r{s}", s
    return write_export(tmp_path / f"export{seed}", plan, stim, answers, parts)


def test_between_within_realness_gets_the_right_model_and_the_same_formula_in_r(tmp_path):
    export = load_export(_two_by_two(tmp_path))
    analysis = compute(export, AnalysisOptions(n_boot=200))
    res = analysis.results
    sc = res["scales"]["real"]
    assert sc["factors"] == ["source", "emotion"]
    mm = sc["mixed_model"]
    assert mm["fitted"] and mm["formula"] == ("score ~ source + emotion + source:emotion + (1 | participant) + "
                                              "(1 | stimulus_id)")
    # Between participants (source) by Mann-Whitney, within (emotion) by Wilcoxon signed-rank: from the factors.
    tests = {(c["a"], c["b"]): c["test"] for c in sc["comparisons"]}
    assert tests == {("anger", "happiness"): "wilcoxon signed-rank (participants)",
                     ("A", "B"): "mann-whitney U (participant means)"}
    # Balanced complete data: the fixed effects are the contrasts of the cell means (an independent route).
    means = {(r["source"], r["emotion"]): r["mean"] for r in sc["means"]}
    fx = {r["term"]: r["estimate"] for r in mm["fixed"]}
    assert fx["Intercept"] == pytest.approx(means[("A", "anger")], abs=1e-6)
    assert fx["source[T.B]"] == pytest.approx(means[("B", "anger")] - means[("A", "anger")], abs=1e-6)
    inter = (means[("B", "happiness")] - means[("B", "anger")]) - (means[("A", "happiness")] - means[("A", "anger")])
    assert fx["source[T.B]:emotion[T.happiness]"] == pytest.approx(inter, abs=1e-6)
    assert fx["emotion[T.happiness]"] > 0.5
    out = tmp_path / "report"
    write_outputs(analysis, out)
    r_text = (out / "analysis_scales.R").read_text()
    r_formula = re.search(r"lmer\((.*), data = subset\(answers, question == \"real\"\)", r_text).group(1)
    assert r_formula == mm["formula"]  # one formula source for Python and R
    assert mm["fixed_formula"] == "score ~ " + r_formula.split(" ~ ")[1].split(" + (1 |")[0]
    # A 1..5 Likert scale: also the proportional-odds model, the same fixed part in Python and in ordinal::clm.
    om = sc["ordinal_model"]
    assert om["fitted"] and om["formula"] == "score ~ source + emotion + source:emotion"
    assert re.search(r"clm\((.*), data = d_real, link", r_text).group(1) == om["formula"]
    ob = {r["term"]: r["estimate"] for r in om["coefficients"]}
    assert ob["emotion[T.happiness]"] > 0 and ob["source[T.B]"] > 0  # the simulated effects, in direction
    html = (out / "report.html").read_text()
    assert "What was analysed and why" in html and "source (between participants)" in html
    assert "task1" not in res and "task2" not in res  # no emotion question: no emotion analysis invented
    texts = [x["text"] for x in res["sentences"]]
    assert any("Mann-Whitney U" in t and "for A and" in t for t in texts)
    assert any("Wilcoxon signed-rank test over" in t and "for anger and" in t for t in texts)
    assert any("the term source[T.B]:emotion[T.happiness] was b = " in t for t in texts)


def test_ambiguous_and_unsupported_combinations_are_refused_with_the_question_and_the_fix(tmp_path):
    two = BETWEEN_WITHIN.replace('[consistency]', '''[[questions]]
id = "feel"
type = "single"
prompt = "Which emotion?"
options = "design-emotions"
measures = "perceived_emotion"
[[questions]]
id = "feel2"
type = "single"
prompt = "Which other emotion?"
options = "design-emotions"
measures = "perceived_emotion"
[consistency]''')
    export = load_export(_two_by_two(tmp_path, two, seed=1))
    with pytest.raises(AnalysisOptionError, match="'feel' and 'feel2' both measure perceived_emotion.*secondary_of"):
        compute(export, AnalysisOptions(n_boot=50))
    sec = two.replace('measures = "perceived_emotion"\n[consistency]',
                      'measures = "perceived_emotion"\nsecondary_of = "feel"\n[consistency]')
    export = load_export(_two_by_two(tmp_path, sec, seed=2))
    with pytest.raises(AnalysisOptionError, match="'feel2' is declared secondary_of 'feel'.*no clip"):
        compute(export, AnalysisOptions(n_boot=50))
    bad = BETWEEN_WITHIN.replace('compare = [["anger", "happiness"], ["A", "B"]]', 'compare = [["anger", "B"]]')
    export = load_export(_two_by_two(tmp_path, bad, seed=3))
    with pytest.raises(AnalysisOptionError, match="question 'real': compare \\['anger', 'B'\\]"):
        compute(export, AnalysisOptions(n_boot=50))


CONGRUENT = """
[study]
name = "three-faces"
task = "factorial"
[participant]
title = "Talking faces"
[design]
batches = 1
clips_per_cell = 2
repeats_per_batch = 2
[design.factors]
source = { levels = ["OURS", "GT"] }
emotion = { levels = ["anger", "happiness", "sadness"] }
[examples]
per_emotion = 0
[[questions]]
id = "feel"
type = "single"
prompt = "Which emotion?"
options = "design-emotions"
measures = "perceived_emotion"
[[questions]]
id = "looks"
type = "scale"
prompt = "How real does it look?"
measures = "realness"
compare = [["OURS", "GT"]]
options = [{ value = "r1", label = "1", score = 1 }, { value = "r2", label = "2", score = 2 },
           { value = "r3", label = "3", score = 3 }]
[consistency]
max_inconsistent = 2
"""


def test_congruent_three_emotion_study_scores_accuracy_over_the_emotions_offered(tmp_path):
    rows = [fake_row(f"k{n:03d}", src, e, e, identity=f"{1001 + k}")
            for n, (src, e, k) in enumerate((s, e, k) for s in ("OURS", "GT") for e in ("anger", "happiness", "sadness")
                                            for k in range(2))]
    m = build_manifest("/nonexistent/k", rows, name="k")
    plan = compile_plan(parse_spec(CONGRUENT, where="c.toml"), m, 1)
    stim = [s.to_dict() for s in m]
    answers, parts = simulate_answers(plan, stim, participants_per_batch=20, random_state=5)
    export = load_export(write_export(tmp_path / "e", plan, stim, answers, parts))
    res = compute(export, AnalysisOptions(n_boot=100, mixed_models=False)).results
    assert "task2" not in res and "Every clip shows one emotion" in res["analysed"][1]
    t1 = res["task1"]
    assert {r["truth"] for r in t1["confusion"]} == {r["answer"] for r in t1["confusion"]} == {
        "anger", "happiness", "sadness"}
    # Plain loops over the answers the analysis kept (valid surveys, originals).
    valid = {p["assignment"] for p in parts if p["verdict"] == "valid"}
    kept = [a for a in answers if a["question"] == "feel" and a["assignment"] in valid and not a["is_repeat"]]
    for src in ("OURS", "GT"):
        mine = [a for a in kept if a["source"] == src]
        row = next(r for r in t1["accuracy"] if r["source"] == src)
        assert (row["n_answers"], row["n_correct"]) == (len(mine), sum(a["answer"] == a["visual_emotion"] for a in mine))
        assert row["chance"] == pytest.approx(1 / 3)
    assert t1["wilcoxon"]["a"] == "OURS" and t1["wilcoxon"]["b"] == "GT"  # the declared pair, within participants
    assert res["scales"]["looks"]["comparisons"][0]["test"].startswith("wilcoxon")
