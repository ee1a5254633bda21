"""Hu, Cohen's and Fleiss' kappa, Krippendorff's alpha: hand computations and published examples."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.agreement import (
    agreement_table,
    cohen_kappa,
    fleiss_kappa,
    hu_tests,
    krippendorff_alpha,
    unbiased_hit_rates,
)


def test_unbiased_hit_rate_by_hand():
    df = pd.DataFrame({"participant": "p1", "visual_emotion": ["anger", "anger", "happiness", "fear"],
                       "answer": ["anger", "happiness", "happiness", "anger"]})
    hu = unbiased_hit_rates(df).set_index("emotion")
    assert hu.loc["anger", "hu"] == pytest.approx(1 / (2 * 2)) and hu.loc["anger", "pc"] == pytest.approx(0.25)
    assert hu.loc["happiness", "hu"] == pytest.approx(1 / (1 * 2)) and hu.loc["happiness", "pc"] == pytest.approx(1 / 8)
    assert hu.loc["fear", "hu"] == 0.0 and hu.loc["fear", "pc"] == 0.0  # shown, never answered
    assert math.isnan(hu.loc["disgust", "hu"])  # never shown


def test_hu_arcsine_paired_t():
    hu = pd.DataFrame({"participant": ["a", "b", "c"], "emotion": "anger", "hu": [0.25, 0.5, 1.0],
                       "pc": [0.04, 0.09, 0.04]})
    diffs = [math.asin(math.sqrt(h)) - math.asin(math.sqrt(p)) for h, p in zip(hu["hu"], hu["pc"])]
    t = statistics.mean(diffs) / (statistics.stdev(diffs) / math.sqrt(3))
    res = hu_tests(hu).iloc[0]
    assert res["t"] == pytest.approx(t) and res["df"] == 2
    assert res["p"] == pytest.approx(sps.ttest_1samp(diffs, 0, alternative="greater").pvalue)
    assert res["mean_hu"] == pytest.approx(1.75 / 3)


def test_cohen_kappa_by_hand():
    # po = 3/4; pe = 0.5 * 0.25 + 0.5 * 0.75 = 0.5; kappa = 0.25 / 0.5
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "b", "b"]) == pytest.approx(0.5)
    assert math.isnan(cohen_kappa(["a", "a"], ["a", "a"]))


def test_fleiss_kappa_published_example():
    # Fleiss (1971)-style example reproduced on Wikipedia: 10 subjects, 14 raters, 5 categories, kappa = 0.210
    f = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    # by hand: P_i = (sum n_ij^2 - 14) / (14 * 13), p_j = column share
    p_i = [(sum(x * x for x in row) - 14) / (14 * 13) for row in f.tolist()]
    p_j = [sum(col) / 140 for col in zip(*f.tolist())]
    pe = sum(p * p for p in p_j)
    assert fleiss_kappa(f) == pytest.approx((statistics.mean(p_i) - pe) / (1 - pe))
    assert fleiss_kappa(f) == pytest.approx(0.210, abs=5e-4)
    assert math.isnan(fleiss_kappa(np.array([[2, 0], [1, 0]])))  # unequal raters per item


def test_krippendorff_alpha_published_example():
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders, 12 units, missing values;
    # alpha nominal 0.743, interval 0.849. One row per coder, None = no value.
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    m = np.zeros((12, 5))
    for row in coders:
        for u, v in enumerate(row):
            if v is not None:
                m[u, v - 1] += 1
    assert krippendorff_alpha(m) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(m, values=[1, 2, 3, 4, 5], metric="interval") == pytest.approx(0.849, abs=5e-4)


def test_agreement_table_groups():
    df = pd.DataFrame({"source": ["GT"] * 4, "batch_id": "b01", "stimulus_id": ["s1", "s1", "s2", "s2"],
                       "visual_emotion": ["anger", "anger", "fear", "fear"],
                       "answer": ["anger", "anger", "fear", "anger"]})
    t = agreement_table(df).iloc[0]
    # Krippendorff by hand: units s1 {anger x2}, s2 {fear, anger}; n = 4, n_anger = 3, n_fear = 1.
    # observed disagreement sum_u (m_u^2 - sum n_uc^2)/(m_u - 1) = 0 + (4 - 2)/1 = 2; expected 2 * 3 * 1 = 6
    assert t["krippendorff_alpha"] == pytest.approx(1 - 3 * 2 / 6)
    assert t["n_units_alpha"] == 2 and t["n_batches_fleiss"] == 1
