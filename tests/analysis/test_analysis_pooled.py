"""Issue 19: pooled Hu and its chance level per source and for ALL sources, the ALL-pooled accuracy test and
agreement, and a sensitivity table that honours the chosen Wilcoxon options. Values are pinned by hand
computations written out in the comments, or cross-checked between two routes of the module."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats as sps

from analysis import agreement, task1
from analysis.io import load_export
from analysis.report import AnalysisOptions, compute
from analysis.simulate import simulate_export


def _answers() -> pd.DataFrame:
    rows = [("X", "p1", "anger", "anger"), ("X", "p1", "anger", "happiness"), ("X", "p2", "happiness", "happiness"),
            ("X", "p2", "happiness", "happiness"), ("Y", "p1", "anger", "anger"), ("Y", "p2", "happiness", "anger")]
    return pd.DataFrame(rows, columns=["source", "participant", "visual_emotion", "answer"]).assign(
        question="emotion")


def test_pooled_hu_by_hand():
    hu = agreement.pooled_hit_rates(_answers(), by="source")
    got = {(r.source, r.emotion): (r.hu, r.pc) for r in hu.itertuples() if r.emotion in ("anger", "happiness")}
    # X (N = 4): anger shown 2, answered 1, hit 1 -> Hu 1/2, pc (2/4)(1/4); happiness 2, 3, 2 -> 4/6, (2/4)(3/4).
    # Y (N = 2): anger 1, 2, 1 -> 1/2, (1/2)(2/2); happiness shown 1, never answered -> Hu 0, pc 0.
    # ALL (N = 6): anger 3, 3, 2 -> 4/9, (3/6)(3/6); happiness 3, 3, 2 -> 4/9, 1/4.
    expected = {("X", "anger"): (1 / 2, 1 / 8), ("X", "happiness"): (4 / 6, 3 / 8), ("Y", "anger"): (1 / 2, 1 / 2),
                ("Y", "happiness"): (0.0, 0.0), ("ALL", "anger"): (4 / 9, 1 / 4), ("ALL", "happiness"): (4 / 9, 1 / 4)}
    assert got.keys() == expected.keys()
    for k, (h, pc) in expected.items():
        assert got[k] == pytest.approx((h, pc)), k
    never_shown = hu[(hu["source"] == "X") & (hu["emotion"] == "fear")].iloc[0]
    assert math.isnan(never_shown["hu"]) and never_shown["pc"] == 0.0
    # Pooled Hu is not the mean of per-participant Hu: X anger per participant: p1 1/(2*1) = 1/2; p2 never
    # shown anger -> only p1 -> mean 1/2 (equal here), X happiness: p1 shown 0 (NaN), p2 2*2/(2*2) = 1 != 4/6.
    per = agreement.unbiased_hit_rates(_answers(), by="source").dropna(subset=["hu"])
    assert per[(per["source"] == "X") & (per["emotion"] == "happiness")]["hu"].mean() == pytest.approx(1.0)


def test_accuracy_all_sources_is_one_pooled_binomial_test():
    acc = task1.accuracy_all_sources(_answers(), n_boot=50).iloc[0]
    # 4 of 6 answers correct (X: anger, joy, joy; Y: anger).
    assert (acc["source"], acc["n_answers"], acc["n_correct"], acc["n_participants"]) == ("ALL", 6, 4, 2)
    assert acc["binom_p"] == pytest.approx(sps.binomtest(4, 6, 1 / 6, alternative="greater").pvalue)
    assert math.isnan(acc["binom_p_holm"])


@pytest.fixture(scope="module")
def analysis_with_options(tmp_path_factory):
    export = simulate_export(tmp_path_factory.mktemp("pooled") / "export", "emotion-realness", n_batches=2,
                             participants_per_batch=5, random_state=5)
    opts = AnalysisOptions(n_boot=100, mixed_models=False, correction=True, wilcoxon_method="exact",
                           alternative="greater")
    return compute(load_export(export), opts)


def test_report_has_pooled_rows_that_agree_with_each_other(analysis_with_options):
    t1 = analysis_with_options.results["task1"]
    pooled = pd.DataFrame(t1["hu_pooled"])
    assert list(dict.fromkeys(pooled["source"])) == t1["sources"] + ["ALL"]
    all_rows = pooled[pooled["source"] == "ALL"]
    n = int(all_rows["n_total"].iloc[0])
    assert n == t1["accuracy_all"]["n_answers"] == sum(a["n_answers"] for a in t1["accuracy"])
    assert int(all_rows["hits"].sum()) == t1["accuracy_all"]["n_correct"]
    # Cohen's kappa of ALL answers from the pooled table: po = hits / N, pe = sum of the chance levels pc.
    po, pe = all_rows["hits"].sum() / n, all_rows["pc"].sum()
    assert t1["agreement_all"]["cohen_kappa"] == pytest.approx((po - pe) / (1 - pe))
    assert t1["agreement_all"]["source"] == "ALL" and t1["agreement_all"]["n_answers"] == n
    assert "task1_hu_pooled" in analysis_with_options.tables
    assert "pooled confusion table" in " ".join(analysis_with_options.methods)


def test_sensitivity_table_honours_the_options(analysis_with_options):
    t1 = analysis_with_options.results["task1"]
    sens = pd.DataFrame(t1["wilcoxon_sensitivity"])
    assert len(sens) == 9
    assert set(sens["correction"]) == {True} and set(sens["method"]) == {"exact"}
    assert set(sens["alternative"]) == {"greater"}
    main = t1["wilcoxon"]
    same = sens[(sens["unit"] == main["unit"]) & (sens["zero_method"] == main["zero_method"])].iloc[0]
    assert same["p"] == pytest.approx(main["p"]) and same["z"] == pytest.approx(main["z"])
    # z with the one-sided correction (greater: R+ - E - 0.5) in every row.
    assert list(sens["z"]) == pytest.approx(list((sens["r_plus"] - sens["mean_h0"] - 0.5) / sens["var_h0"] ** 0.5))
