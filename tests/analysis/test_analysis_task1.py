"""Task 1 functions and the confusion matrix, on small frames whose values are computed by hand here."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.confusion import confusion_matrix, confusion_wide
from analysis.errors import AnalysisOptionError
from analysis.task1 import (
    accuracy_by_source,
    aspect_counts,
    choose_comparison,
    emotion_confusion,
    realness_distribution,
    realness_summary,
    realness_wilcoxon,
    source_order,
)
from stimuli.emotions import EMOTIONS


def long(rows) -> pd.DataFrame:
    """rows: (participant, source, stimulus, truth, question, answer, score)."""
    df = pd.DataFrame(rows, columns=["participant", "source", "stimulus_id", "visual_emotion", "question", "answer",
                                     "score"])
    df["position"] = range(len(df))
    df["identity"], df["sentence"], df["batch_id"] = "id", "S", "b01"
    return df


EMOTION_ROWS = [
    ("p1", "GT", "g1", "anger", "emotion", "anger", np.nan),
    ("p1", "GT", "g2", "anger", "emotion", "neutral", np.nan),
    ("p2", "GT", "g1", "anger", "emotion", "anger", np.nan),
    ("p2", "GT", "g3", "happiness", "emotion", "happiness", np.nan),
    ("p1", "BL", "b1", "anger", "emotion", "neutral", np.nan),
    ("p2", "BL", "b1", "anger", "emotion", "neutral", np.nan),
    ("p2", "BL", "b2", "sadness", "emotion", "sadness", np.nan),
]


def test_confusion_counts_percent_and_empty_rows():
    cm = emotion_confusion(long(EMOTION_ROWS))
    assert list(cm["source"].unique()) == ["GT", "BL"]  # the paper's order, not alphabetical
    gt = cm[cm["source"] == "GT"]
    assert len(gt) == 36 and list(gt["truth"].unique()) == list(EMOTIONS)
    wide = confusion_wide(gt, "count")
    assert wide.loc["anger", "anger"] == 2 and wide.loc["anger", "neutral"] == 1
    pct = confusion_wide(gt)
    assert pct.loc["anger", "anger"] == pytest.approx(200 / 3) and pct.loc["anger", "neutral"] == pytest.approx(100 / 3)
    # fear was never shown: an all-zero row with undefined percentages, not a crash and not a dropped row
    assert (wide.loc["fear"] == 0).all() and pct.loc["fear"].isna().all()
    # sadness was never answered for GT: an all-zero column
    assert (wide["sadness"] == 0).all()
    assert gt["col_total"][gt["answer"] == "neutral"].iloc[0] == 1


def test_confusion_extra_labels_and_groups():
    df = pd.DataFrame({"visual_emotion": ["anger", "anger"], "answer": ["anger", "contempt"], "g": ["x", "y"]})
    cm = confusion_matrix(df, by="g")
    assert set(cm["g"]) == {"x", "y"} and "contempt" in set(cm["answer"])
    assert len(cm) == 2 * 7 * 7


def test_accuracy_binomial_and_bootstrap():
    acc = accuracy_by_source(long(EMOTION_ROWS), n_boot=200, random_state=3).set_index("source")
    assert (acc.loc["GT", "n_correct"], acc.loc["GT", "n_answers"]) == (3, 4)
    assert acc.loc["BL", "accuracy"] == pytest.approx(1 / 3)
    # P(X >= 3 | n = 4, p = 1/6) by hand
    p_gt = sum(math.comb(4, i) * (1 / 6) ** i * (5 / 6) ** (4 - i) for i in (3, 4))
    assert acc.loc["GT", "binom_p"] == pytest.approx(p_gt)
    p_bl = sum(math.comb(3, i) * (1 / 6) ** i * (5 / 6) ** (3 - i) for i in (1, 2, 3))
    assert acc.loc["BL", "binom_p"] == pytest.approx(p_bl)
    assert acc.loc["GT", "binom_p_holm"] == pytest.approx(min(1, 2 * p_gt))  # the smaller p of two
    assert acc.loc["BL", "binom_p_holm"] == pytest.approx(max(2 * p_gt, p_bl))
    # bootstrap over 2 participants: GT accuracy of a resample is 1/2 (p1 twice), 3/4 (both) or 1 (p2 twice)
    assert 0.5 <= acc.loc["GT", "ci_low"] <= 0.75 <= acc.loc["GT", "ci_high"] <= 1.0
    again = accuracy_by_source(long(EMOTION_ROWS), n_boot=200, random_state=3).set_index("source")
    assert again.loc["GT", "ci_low"] == acc.loc["GT", "ci_low"]


REAL_ROWS = [
    ("p1", "OURS", "o1", "anger", "realness", "x", 5), ("p1", "OURS", "o2", "anger", "realness", "x", 4),
    ("p1", "BL", "b1", "anger", "realness", "x", 3), ("p1", "BL", "b2", "anger", "realness", "x", 4),
    ("p2", "OURS", "o1", "anger", "realness", "x", 3), ("p2", "BL", "b1", "anger", "realness", "x", 3),
    ("p3", "OURS", "o1", "anger", "realness", "x", 2), ("p3", "BL", "b1", "anger", "realness", "x", 4),
]


def test_realness_summary_distribution_and_wilcoxon():
    df = long(REAL_ROWS)
    df["answer"] = df["score"].map({5: "definitely_real", 4: "somewhat_real", 3: "neutral", 2: "somewhat_unreal"})
    s = realness_summary(df, n_boot=100).set_index("source")
    assert s.loc["OURS", "mean"] == pytest.approx((5 + 4 + 3 + 2) / 4)
    assert s.loc["BL", "mean"] == pytest.approx((3 + 4 + 3 + 4) / 4)
    assert s.loc["OURS", "median"] == 3.5
    d = realness_distribution(df)
    ours = d[d["source"] == "OURS"].set_index("score")
    assert list(ours.index) == [5.0, 4.0, 3.0, 2.0] and (ours["count"] == 1).all() and (ours["percent"] == 25).all()
    # participant means OURS - BL: p1 4.5 - 3.5 = 1, p2 3 - 3 = 0, p3 2 - 4 = -2.
    # Pratt: |d| 1, 0, 2 -> ranks 2, 1, 3; R+ = 2, R- = 3; E = (12 - 2)/4 = 2.5; Var = (3*4*7 - 1*2*3)/24 = 3.25
    w = realness_wilcoxon(df, "OURS", "BL").iloc[0]
    assert (w["n"], w["n_zeros"], w["r_plus"], w["r_minus"]) == (3, 1, 2.0, 3.0)
    assert w["z"] == pytest.approx(-0.5 / math.sqrt(3.25))
    assert w["mean_a"] == pytest.approx((4.5 + 3 + 2) / 3)


def test_aspect_counts_none_and_multi_choice():
    rows = [("p1", "GT", "g1", "anger", "aspects", "none", np.nan),
            ("p1", "GT", "g2", "anger", "aspects", "image_quality;lip_sync", np.nan),
            ("p2", "GT", "g1", "anger", "aspects", "lip_sync", np.nan),
            ("p2", "BL", "b1", "anger", "aspects", "none", np.nan)]
    opts = [{"value": v, "label": v.title()} for v in ("none", "image_quality", "lip_sync", "head_movement", "other")]
    a = aspect_counts(long(rows), options=opts)
    gt = a[a["source"] == "GT"].set_index("aspect")["count"].to_dict()
    assert gt == {"none": 1, "image_quality": 1, "lip_sync": 2, "head_movement": 0, "other": 0}
    assert a[(a["source"] == "GT") & (a["aspect"] == "lip_sync")]["percent"].item() == pytest.approx(200 / 3)
    assert a[(a["source"] == "BL") & (a["aspect"] == "none")]["count"].item() == 1


def test_choose_comparison():
    assert choose_comparison(["GT", "OURS", "BL"])[:2] == ("OURS", "BL")
    a, b, why = choose_comparison(["GT", "WARP", "LIPS"])
    assert (a, b) == ("LIPS", "WARP") and "non-GT" in why
    assert choose_comparison(["GT", "X"])[:2] == ("GT", "X")
    assert choose_comparison(["GT", "OURS", "BL"], "GT", "BL")[:2] == ("GT", "BL")
    with pytest.raises(AnalysisOptionError, match="not in the answers"):
        choose_comparison(["GT", "BL"], "OURS", "BL")
    with pytest.raises(AnalysisOptionError, match="two sources"):
        choose_comparison(["GT"])
    assert source_order(["Z", "OURS", "A", "GT"]) == ["GT", "OURS", "A", "Z"]
