"""analysis.io and analysis.cleaning on hand-made exports: verdict thresholds, exclusions and counts."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from analysis_builders import consistent_task1, participant_row, survey_rows, tiny_task1_plan

from analysis.cleaning import clean, responses
from analysis.errors import ExportFormatError
from analysis.io import load_export, read_csv

EMO = {0: "anger", 1: "happiness", 2: "anger", 3: "neutral", 4: "anger", 5: "happiness"}
REAL = {0: 5, 1: 4, 2: 3, 3: 2, 4: 4, 5: 5}
ASP = {0: "none", 1: "image_quality", 2: "image_quality;lip_sync", 3: "none", 4: "head_movement", 5: "none"}


def five_inconsistent() -> dict:
    # repeat 6 (of 0): emotion differs, realness 3 vs 5 (|diff| 2 > 1), aspects {iq, lip} vs {none} (3 > 1): 3 bad
    # repeat 7 (of 2): emotion differs, realness 1 vs 3 (2 > 1), aspects {iq} vs {iq, lip} (1, within): 2 bad
    # repeat 8 (of 4): realness 3 vs 4 (1, within), aspects {head, other} vs {head} (1, within): 0 bad
    return consistent_task1({**EMO, 6: "happiness", 7: "fear"}, {**REAL, 6: 3, 7: 1, 8: 3},
                            {**ASP, 6: "image_quality;lip_sync", 7: "image_quality", 8: "head_movement;other"})


def six_inconsistent() -> dict:
    a = five_inconsistent()
    a[(8, "realness")] = "somewhat_unreal"  # 2 vs 4: the sixth inconsistent answer
    return a


@pytest.fixture
def study(export_writer):
    plan, stimuli = tiny_task1_plan()
    rows, parts = [], []

    def add(assignment, participant, answers, verdict):
        rows.extend(survey_rows(plan, stimuli, assignment, participant, answers, verdict))
        parts.append(participant_row(assignment, participant, verdict))

    add("a1", "pA", five_inconsistent(), "valid")             # exactly at the threshold: valid
    add("a2", "pB", six_inconsistent(), "valid")              # just over: rejected (the server said valid)
    add("a3", "pC", consistent_task1(EMO, REAL, ASP), "valid")  # pC: one valid survey ...
    add("a4", "pC", six_inconsistent(), "rejected")           # ... and one rejected survey
    incomplete = consistent_task1(EMO, REAL, ASP)
    incomplete[(3, "realness")] = ""                          # a missing answer
    add("a5", "pD", incomplete, "valid")
    parts.append(participant_row("a6", "pE", "incomplete"))  # abandoned before the first answer
    return export_writer(plan, stimuli, rows, parts)


def test_verdicts_thresholds_and_counts(study):
    c = clean(load_export(study))
    v = c.surveys.set_index("assignment")
    assert v.loc["a1", "n_inconsistent"] == 5 and v.loc["a1", "verdict"] == "valid"
    assert v.loc["a2", "n_inconsistent"] == 6 and v.loc["a2", "verdict"] == "rejected"
    assert v.loc["a3", "n_inconsistent"] == 0 and v.loc["a4", "verdict"] == "rejected"
    assert v.loc["a5", "verdict"] == "incomplete" and v.loc["a5", "n_missing"] == 1
    assert v.loc["a6", "verdict"] == "incomplete" and v.loc["a6", "n_missing"] == 27 and v.loc["a6", "verdicts_agree"]
    assert (v.drop(index="a6")["n_repeat_answers"] == 9).all()
    # server: a2 "valid" and a5 "valid" disagree with the recomputed verdicts
    assert sorted(v.index[~v["verdicts_agree"]]) == ["a2", "a5"]
    k = c.counts
    assert k["n_answers_total"] == 5 * 27
    assert (k["n_surveys_valid"], k["n_surveys_rejected"], k["n_surveys_incomplete"]) == (2, 2, 2)
    assert k["n_verdict_disagreements"] == 2
    assert k["n_inconsistency_count_disagreements"] == 0  # the hand-made participants.csv has no counts
    assert k["n_participants_total"] == 5 and k["n_participants_valid"] == 2  # pA and pC
    assert k["n_answers_excluded_surveys"] == 3 * 27
    assert k["n_answers_repeats_excluded"] == 2 * 9  # 3 repeats x 3 questions in each valid survey
    assert k["n_answers_used"] == 2 * 18
    assert k["n_answers_missing_total"] == 1 and k["n_answers_missing_dropped"] == 0
    # pC's answers come only from the valid survey a3
    assert set(c.answers.loc[c.answers["participant"] == "pC", "assignment"]) == {"a3"}
    assert (c.answers["is_repeat"] == 0).all()


def test_none_is_an_answer_not_missing(study):
    # A spec may spell the option "None": pandas' default reader turns it into NaN, the export reader must not.
    text = (study / "answers.csv").read_text().replace(",none,", ",None,")
    (study / "answers.csv").write_text(text)
    plan = (study / "plan.json").read_text().replace('"value": "none"', '"value": "None"')
    (study / "plan.json").write_text(plan)
    raw = pd.read_csv(study / "answers.csv")
    # "None" at positions 0, 3, 5 in every survey, and at repeat 6 in the consistent a3 and a5: 17, + 1 missing
    assert raw["answer"].isna().sum() == 17 + 1
    c = clean(load_export(study))
    asp = c.answers[c.answers["question"] == "aspects"]
    assert (asp["answer"] == "None").sum() == 2 * 3  # positions 0, 3, 5 in a1 and a3
    assert not c.answers["answer"].isna().any()
    assert c.counts["n_answers_missing_total"] == 1


def test_server_verdicts_option(study):
    c = clean(load_export(study), verdict_source="server")
    # server: a1, a2, a3, a5 valid; a4 rejected. a5 has one missing answer, dropped and counted.
    assert c.counts["n_surveys_valid"] == 4
    assert c.counts["n_answers_missing_dropped"] == 1
    assert c.counts["n_answers_used"] == 4 * 18 - 1


def test_scores_filled_from_plan_and_wide_responses(study):
    c = clean(load_export(study))
    real = c.answers[(c.answers["question"] == "realness") & (c.answers["assignment"] == "a3")]
    assert dict(zip(real["position"], real["score"])) == {p: float(s) for p, s in REAL.items()}
    wide = responses(c.answers, ["emotion", "realness", "aspects"])
    assert len(wide) == 12 and set(wide.columns) >= {"emotion", "realness", "aspects", "source"}


def _edit_answers(folder, fn):
    df = read_csv(folder / "answers.csv")
    fn(df)
    df.to_csv(folder / "answers.csv", index=False)


@pytest.mark.parametrize("edit,match", [
    (lambda df: df.__delitem__("question"), r"missing column\(s\) question"),
    (lambda df: df.__setitem__("position", ["x"] + list(df["position"][1:])), r"row 1 \(line 2\), column 'position'"),
    (lambda df: df.loc.__setitem__((2, "answer"), "furious"), r"row 3 \(line 4\), column 'answer'"),
    (lambda df: df.loc.__setitem__((df.index[df["question"] == "aspects"][1], "answer"), "lip_sync;image_quality"),
     "option order"),
    (lambda df: df.loc.__setitem__((df.index[df["question"] == "aspects"][1], "answer"), "none;other"), "exclusive"),
    (lambda df: df.loc.__setitem__((0, "question"), "mood"), "not a question of the plan"),
    (lambda df: df.loc.__setitem__((0, "visual_emotion"), "angry"), "visual_emotion"),
    # rows 0-2 are position 0's three questions (one answer id); row 3 is position 1's emotion answer
    (lambda df: df.loc.__setitem__((3, "answer_id"), df.loc[0, "answer_id"]), "twice for the same question"),
])
def test_bad_exports_name_row_and_column(study, edit, match):
    _edit_answers(study, edit)
    with pytest.raises(ExportFormatError, match=match):
        clean(load_export(study))


def test_missing_plan_and_manifest_mismatch(study, tmp_path):
    other = tmp_path / "copy"
    shutil.copytree(study, other)
    (other / "plan.json").unlink()
    with pytest.raises(ExportFormatError, match="plan.json: file not found"):
        load_export(other)
    _edit_answers(study, lambda df: df.loc.__setitem__((0, "source"), "BL" if df.loc[0, "source"] != "BL" else "GT"))
    with pytest.raises(ExportFormatError, match="manifest.json says"):
        load_export(study)
