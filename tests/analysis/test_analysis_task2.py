"""Task 2 on a hand-made export: match fractions, secondary labels equal to the primary, dominance test."""

from __future__ import annotations

import pytest
from analysis_builders import participant_row, survey_rows, tiny_task2_plan

from analysis.cleaning import clean
from analysis.io import load_export
from analysis.task2 import (
    dominance_per_participant,
    dominance_test,
    label_counts,
    label_responses,
    match_fractions,
    primary_confusions,
)

PAIRS = [("anger", "sadness"), ("happiness", "happiness"), ("fear", "disgust")]  # t0, t2 mismatched


@pytest.fixture
def resp(export_writer):
    plan, stimuli = tiny_task2_plan(PAIRS)
    p1 = {(0, "primary"): "anger", (0, "secondary"): "sadness",
          (1, "primary"): "happiness", (1, "secondary"): "happiness",   # secondary equal to the primary
          (2, "primary"): "disgust", (2, "secondary"): "none"}
    p2 = {(0, "primary"): "sadness", (0, "secondary"): "none",
          (1, "primary"): "neutral", (1, "secondary"): "happiness",
          (2, "primary"): "fear", (2, "secondary"): "anger"}
    rows = survey_rows(plan, stimuli, "a1", "p1", p1) + survey_rows(plan, stimuli, "a2", "p2", p2)
    folder = export_writer(plan, stimuli, rows, [participant_row("a1", "p1", "valid"),
                                                 participant_row("a2", "p2", "valid")])
    return label_responses(clean(load_export(folder)).answers)


def test_match_fractions_by_hand(resp):
    f = match_fractions(resp).set_index(["subset", "counting", "modality"])
    # primary matches visual: p1t0, p1t1, p2t2 (3 of 6); audio: p1t1, p1t2, p2t0 (3 of 6)
    assert f.loc[("all", "primary", "visual"), ["n", "n_match"]].tolist() == [6, 3]
    assert f.loc[("all", "primary", "audio"), "n_match"] == 3
    # primary or secondary: visual adds p2t1 (secondary happiness) -> 4; audio adds p1t0, p2t1 -> 5
    assert f.loc[("all", "primary_or_secondary", "visual"), "n_match"] == 4
    assert f.loc[("all", "primary_or_secondary", "audio"), "fraction"] == pytest.approx(5 / 6)
    # all labels: 6 primaries + 3 distinct secondaries (p1t0, p2t1, p2t2; p1t1 repeats its primary) = 9
    assert f.loc[("all", "all_labels", "visual"), ["n", "n_match"]].tolist() == [9, 4]
    assert f.loc[("all", "all_labels", "audio"), "n_match"] == 5
    # mismatched only (t0, t2): primary visual p1t0, p2t2 = 2 of 4; audio p1t2, p2t0 = 2; either audio + p1t0 = 3
    assert f.loc[("mismatched", "primary", "visual"), ["n", "n_match"]].tolist() == [4, 2]
    assert f.loc[("mismatched", "primary", "audio"), "n_match"] == 2
    assert f.loc[("mismatched", "primary_or_secondary", "audio"), "n_match"] == 3


def test_label_counts_secondary_equal_primary(resp):
    assert label_counts(resp) == {"n_responses": 6, "n_two_labels": 3, "n_secondary_none": 2,
                                  "n_secondary_equal_primary": 1, "n_mismatched": 4}


def test_dominance_all_differences_zero(resp):
    per = dominance_per_participant(resp).set_index("participant")
    assert per.loc["p1", ["visual", "audio", "diff"]].tolist() == [0.5, 0.5, 0.0]
    t = dominance_test(resp).iloc[0]
    assert (t["n"], t["n_zeros"], t["p"], t["z"]) == (2, 2, 1.0, 0.0)
    # counting either label: p1 visual 1/2, audio 2/2 -> -0.5; p2 visual 1/2, audio 1/2 -> 0
    t2 = dominance_test(resp, counting="primary_or_secondary").iloc[0]
    assert (t2["n_zeros"], t2["r_plus"], t2["r_minus"]) == (1, 0.0, 2.0)


def test_primary_confusions(resp):
    cm = primary_confusions(resp)
    vis = cm[(cm["reference"] == "visual") & (cm["truth"] == "happiness")].set_index("answer")["count"]
    assert vis["happiness"] == 1 and vis["neutral"] == 1
    aud = cm[(cm["reference"] == "audio") & (cm["truth"] == "disgust")].set_index("answer")["count"]
    assert aud["disgust"] == 1 and aud["fear"] == 1
    assert cm[(cm["reference"] == "audio") & (cm["truth"] == "anger")]["row_percent"].isna().all()
