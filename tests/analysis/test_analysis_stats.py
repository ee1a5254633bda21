"""analysis.stats: every value pinned by a hand computation written out here (plain Python), with scipy
as a second, independent implementation where it has the same test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis.errors import AnalysisOptionError
from analysis.stats import (
    binomial_test,
    holm,
    paired_differences,
    paired_wilcoxon,
    ratio_bootstrap_ci,
    wilcoxon_signed_rank,
)

D = [3, -1, 0, 2, 2, -2, 0, 5]  # two zeros and a tie group of three |2|


def two_sided(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def test_pratt_by_hand():
    # |d| sorted: 0 0 1 2 2 2 3 5 -> ranks 1.5 1.5 3 5 5 5 7 8; zeros' ranks dropped (Pratt).
    # R+ = 7 + 5 + 5 + 8 = 25; R- = 3 + 5 = 8.
    # Cureton: E = (8*9 - 2*3)/4 = 16.5; Var = (8*9*17 - 2*3*5)/24 - (3^3 - 3)/48 = 49.75 - 0.5 = 49.25.
    r = wilcoxon_signed_rank(D)
    assert (r["n"], r["n_zeros"], r["n_used"]) == (8, 2, 6)
    assert (r["r_plus"], r["r_minus"]) == (25.0, 8.0)
    assert r["mean_h0"] == 16.5 and r["var_h0"] == pytest.approx(49.25)
    z = 8.5 / math.sqrt(49.25)
    assert r["z"] == pytest.approx(z)
    assert r["p"] == pytest.approx(two_sided(z))
    assert r["effect_r"] == pytest.approx(z / math.sqrt(8))
    assert r["rank_biserial"] == pytest.approx((25 - 8) / 33)
    assert r["p"] == pytest.approx(sps.wilcoxon(D, zero_method="pratt", method="approx").pvalue)


def test_wilcox_drops_zeros_by_hand():
    # non-zero |d|: 3 1 2 2 2 5 -> ranks 5 1 3 3 3 6; R+ = 5+3+3+6 = 17, R- = 1+3 = 4.
    # E = 6*7/4 = 10.5; Var = 6*7*13/24 - 24/48 = 22.25.
    r = wilcoxon_signed_rank(D, zero_method="wilcox")
    assert (r["r_plus"], r["r_minus"], r["n_used"]) == (17.0, 4.0, 6)
    assert r["var_h0"] == pytest.approx(22.25)
    assert r["z"] == pytest.approx(6.5 / math.sqrt(22.25))
    assert r["p"] == pytest.approx(sps.wilcoxon(D, zero_method="wilcox", method="approx").pvalue)


def test_zsplit_by_hand():
    # zero ranks 1.5 + 1.5 split equally: R+ = 25 + 1.5, R- = 8 + 1.5. E = 8*9/4 = 18.
    # Var = 8*9*17/24 - (2^3-2)/48 - (3^3-3)/48 = 51 - 0.125 - 0.5.
    r = wilcoxon_signed_rank(D, zero_method="zsplit")
    assert (r["r_plus"], r["r_minus"]) == (26.5, 9.5)
    assert r["var_h0"] == pytest.approx(50.375)
    assert r["z"] == pytest.approx(8.5 / math.sqrt(50.375))
    assert r["p"] == pytest.approx(sps.wilcoxon(D, zero_method="zsplit", method="approx").pvalue)


def test_one_sided_and_continuity():
    z = 8.5 / math.sqrt(49.25)
    g = wilcoxon_signed_rank(D, alternative="greater")
    assert g["p"] == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    l = wilcoxon_signed_rank(D, alternative="less")
    assert l["p"] == pytest.approx(1 - 0.5 * math.erfc(z / math.sqrt(2)))
    c = wilcoxon_signed_rank(D, correction=True)
    assert c["z"] == pytest.approx(8.0 / math.sqrt(49.25))


@pytest.mark.parametrize("zero_method", ["pratt", "wilcox", "zsplit"])
def test_all_differences_zero(zero_method):
    r = wilcoxon_signed_rank([0, 0, 0, 0], zero_method=zero_method)
    assert r["n_zeros"] == 4 and r["z"] == 0.0 and r["p"] == 1.0
    assert r["rank_biserial"] == 0.0
    if zero_method == "zsplit":
        assert r["r_plus"] == r["r_minus"] == 5.0  # ranks 2.5 * 4 = 10 split in halves
    else:
        assert r["r_plus"] == r["r_minus"] == 0.0


def test_all_ties_no_zeros():
    # |d| all 1: ranks all 2.5 (n=4); R+ = 7.5 (three positive), R- = 2.5.
    # E = 5, Var = 4*5*9/24 - (64-4)/48 = 7.5 - 1.25 = 6.25, z = 2.5/2.5 = 1.
    r = wilcoxon_signed_rank([1, 1, 1, -1])
    assert (r["r_plus"], r["r_minus"]) == (7.5, 2.5)
    assert r["var_h0"] == pytest.approx(6.25)
    assert r["z"] == pytest.approx(1.0)


def test_bad_options():
    with pytest.raises(AnalysisOptionError, match="zero_method"):
        wilcoxon_signed_rank(D, zero_method="none")
    with pytest.raises(AnalysisOptionError, match="alternative"):
        wilcoxon_signed_rank(D, alternative="bigger")


def _ratings() -> pd.DataFrame:
    # Two participants; each rated two OURS and two BL items (items i1, i2 rendered by both sources).
    rows = [("p1", "OURS", "i1", 0, 5), ("p1", "BL", "i1", 1, 3), ("p1", "OURS", "i2", 2, 4), ("p1", "BL", "i2", 3, 4),
            ("p2", "OURS", "i1", 0, 3), ("p2", "BL", "i2", 1, 2), ("p2", "BL", "i1", 2, 3), ("p2", "OURS", "i2", 3, 3),
            ("p3", "OURS", "i1", 0, 4)]  # p3 rated only OURS: dropped from participant/response pairing
    return pd.DataFrame(rows, columns=["participant", "source", "identity", "position", "score"]).assign(
        sentence="S", visual_emotion="anger")


def test_pairing_units_by_hand():
    df = _ratings()
    # participant means: p1 OURS 4.5, BL 3.5 -> 1.0; p2 OURS 3, BL 2.5 -> 0.5.
    p = paired_differences(df, dv="score", within="source", a="OURS", b="BL", unit="participant")
    assert dict(zip(p["unit_id"], p["diff"])) == {"p1": 1.0, "p2": 0.5}
    # item means over participants: i1 OURS (5+3+4)/3 = 4, BL (3+3)/2 = 3 -> 1; i2 OURS 3.5, BL 3 -> 0.5.
    i = paired_differences(df, dv="score", within="source", a="OURS", b="BL", unit="item")
    assert sorted(i["diff"]) == [0.5, 1.0]
    # responses in presentation order: p1 (5,3), (4,4); p2 (3,2), (3,3) -> diffs 2, 0, 1, 0.
    r = paired_differences(df, dv="score", within="source", a="OURS", b="BL", unit="response")
    assert list(r["diff"]) == [2.0, 0.0, 1.0, 0.0]
    w = paired_wilcoxon(df, dv="score", within="source", a="OURS", b="BL", unit="response")
    # Pratt on [2, 0, 1, 0]: ranks 0,0 -> 1.5; 1 -> 3; 2 -> 4. R+ = 7, R- = 0; E = (20 - 6)/4 = 3.5,
    # Var = (4*5*9 - 2*3*5)/24 = 6.25 -> z = 3.5/2.5 = 1.4.
    assert w["r_plus"].item() == 7.0 and w["n_zeros"].item() == 2
    assert w["z"].item() == pytest.approx(1.4)
    assert w["n_unpaired"].item() == 1  # p3's single OURS answer
    wp = paired_wilcoxon(df, dv="score", within="source", a="OURS", b="BL")
    assert wp["n_unpaired"].item() == 1 and wp["n"].item() == 2  # p3 rated only OURS
    with pytest.raises(AnalysisOptionError, match="pairing unit"):
        paired_differences(df, dv="score", within="source", a="OURS", b="BL", unit="video")


def test_binomial_by_hand():
    greater = sum(math.comb(10, i) * (1 / 6) ** i * (5 / 6) ** (10 - i) for i in range(5, 11))
    assert binomial_test(5, 10) == pytest.approx(greater)
    less = sum(math.comb(10, i) * (1 / 6) ** i * (5 / 6) ** (10 - i) for i in range(0, 6))
    assert binomial_test(5, 10, alternative="less") == pytest.approx(less)
    assert binomial_test(0, 0) == 1.0


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 (m = 3): 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06.
    out = holm([0.01, 0.04, 0.03, float("nan")])
    assert out[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(out[3])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_bootstrap_resamples_participants_with_a_seed():
    num = np.array([3, 0, 1, 2])  # correct answers per participant
    den = np.array([5, 5, 2, 4])  # answers per participant
    lo, hi = ratio_bootstrap_ci(num, den, n_boot=50, random_state=7)
    # The same resampling written as a loop over draws of whole participants.
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 4, size=(50, 4))
    vals = [sum(num[j] for j in row) / sum(den[j] for j in row) for row in idx]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(vals, [2.5, 97.5])))
    assert ratio_bootstrap_ci(num, den, n_boot=50, random_state=7) == (lo, hi)
    assert ratio_bootstrap_ci(num, den, n_boot=50, random_state=8) != (lo, hi)


def _exact_by_enumeration(ranks, r_plus_obs, alternative):
    """All 2^n sign assignments of the non-zero ranks, equally likely under H0 (plain Python)."""
    import itertools

    sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product((0, 1), repeat=len(ranks))]
    upper = sum(1 for x in sums if x >= r_plus_obs - 1e-9) / len(sums)
    lower = sum(1 for x in sums if x <= r_plus_obs + 1e-9) / len(sums)
    return {"greater": upper, "less": lower, "two-sided": min(1.0, 2 * min(upper, lower))}[alternative]


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_permutation_p_with_ties_and_zeros(alternative):
    # Pratt ranks of the non-zero differences of D: 7, 3, 5, 5, 5, 8 (R+ = 25)
    r = wilcoxon_signed_rank(D, method="exact", alternative=alternative)
    assert r["method"] == "exact" and r["r_plus"] == 25.0
    assert r["p"] == pytest.approx(_exact_by_enumeration([7, 3, 5, 5, 5, 8], 25, alternative))
    # wilcox: ranks among the non-zero |d| only: 5, 1, 3, 3, 3, 6 (R+ = 17)
    w = wilcoxon_signed_rank(D, zero_method="wilcox", method="exact", alternative=alternative)
    assert w["p"] == pytest.approx(_exact_by_enumeration([5, 1, 3, 3, 3, 6], 17, alternative))


def test_exact_matches_scipy_without_ties():
    d = [1.5, -0.2, 3.1, 2.2, -0.7, 4.0, 0.9, 2.8]
    ours = wilcoxon_signed_rank(d, zero_method="wilcox", method="exact")["p"]
    assert ours == pytest.approx(sps.wilcoxon(d, method="exact").pvalue)
    with pytest.raises(AnalysisOptionError, match="method"):
        wilcoxon_signed_rank(d, method="monte-carlo")
