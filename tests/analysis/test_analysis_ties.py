"""Issue 19: ties in the signed-rank test must not depend on float noise, and the continuity correction of
one-sided tests must match scipy.stats.wilcoxon.

Reference values come from two independent routes: a stdlib-only signed-rank computation in exact
``Fraction`` arithmetic written out here, and scipy.stats.wilcoxon (asymptotic, exact, and its exhaustive
sign-flip permutation test for small n with zeros and ties)."""

from __future__ import annotations

import math
import random
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from analysis import task2
from analysis.stats import TIE_RTOL, paired_differences, paired_wilcoxon, snap_ties, wilcoxon_signed_rank


def _exact_signed_rank(d: list[Fraction]) -> tuple[Fraction, Fraction, Fraction]:
    """R+, Cureton's mean and variance (Pratt zeros) in exact arithmetic: plain Python, no numpy/scipy."""
    n = len(d)
    n0 = sum(1 for x in d if x == 0)
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [Fraction(0)] * n
    i = 0
    ties = []
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = Fraction(i + j + 2, 2)
        if d[order[i]] != 0 and j > i:
            ties.append(j - i + 1)
        i = j + 1
    r_plus = sum((r for r, x in zip(ranks, d) if x > 0), Fraction(0))
    mean = Fraction(n * (n + 1) - n0 * (n0 + 1), 4)
    var = (Fraction(n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1), 24)
           - Fraction(sum(t ** 3 - t for t in ties), 48))
    return r_plus, mean, var


def test_the_issue_example_is_one_tie():
    # -1/12 and +1/12 computed two ways (the values quoted in issue 19): one tie group, like the exact values.
    noisy = [-0.08333333333333348, 0.08333333333333304, 0.25, -0.5, 0.0]
    exact = [-1 / 12, 1 / 12, 0.25, -0.5, 0.0]
    a, b = wilcoxon_signed_rank(noisy), wilcoxon_signed_rank(exact)
    assert a == b
    # Pratt ranks of |d| = 0, 1/12, 1/12, 1/4, 1/2: 1, 2.5, 2.5, 4, 5 -> R+ = 2.5 + 4.
    assert a["r_plus"] == 6.5 and a["r_minus"] == 7.5
    snapped = snap_ties(np.abs(np.array(noisy)))
    assert snapped[0] == snapped[1] and snapped[4] == 0.0


def test_snap_ties_keeps_real_differences_apart():
    # Distinct ratios of small integers stay distinct; noise below TIE_RTOL goes; near-zero noise is a zero.
    values = np.array([1 / 3, 1 / 3 + 1e-6, 2 / 7, 2 / 7 * (1 + TIE_RTOL / 4), 1e-17, 0.5])
    s = snap_ties(values)
    assert len(set(s.tolist())) == 5  # 0, 2/7, 1/3, 1/3 + 1e-6, 1/2
    assert s[2] == s[3] and s[0] != s[1] and s[4] == 0.0
    assert snap_ties(np.array([])).size == 0


def _ratings_frame(scores: list[tuple[list[int], list[int]]], scale: float = 1.0, shift: float = 0.0,
                   seed: int = 0) -> pd.DataFrame:
    rows = []
    for p, (sa, sb) in enumerate(scores):
        rows += [(f"p{p}", "A", x * scale + shift) for x in sa] + [(f"p{p}", "B", x * scale + shift) for x in sb]
    random.Random(seed).shuffle(rows)
    df = pd.DataFrame(rows, columns=["participant", "source", "score"])
    df["position"] = range(len(df))
    return df


participant_scores = st.lists(
    st.tuples(st.lists(st.integers(1, 5), min_size=1, max_size=6), st.lists(st.integers(1, 5), min_size=1, max_size=6)),
    min_size=3, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scores=participant_scores, scale=st.sampled_from([1.0, 0.1, 1 / 3, 2.5, 7.0]),
       shift=st.sampled_from([0.0, -3.0, 0.7]), seed=st.integers(0, 10_000),
       alternative=st.sampled_from(["two-sided", "greater", "less"]),
       zero_method=st.sampled_from(["pratt", "wilcox", "zsplit"]))
# Found in CI: decimal scores (shift 0.7) whose exact mean differences are all zero; read as the binary
# floats' values, 1.7 + 1.7 + 4.7 differed from 3 x 2.7 and one zero became a tiny difference.
@example(scores=[([1], [1]), ([1], [1]), ([2], [1, 1, 4])], scale=1.0, shift=0.7, seed=0,
         alternative="two-sided", zero_method="pratt")
def test_permuting_and_rescaling_gives_identical_statistics(scores, scale, shift, seed, alternative, zero_method):
    """Shuffled rows and rescaled scores make equal mean differences arise in different float orders; the
    ranks (hence R+, the tie-corrected variance, z and the exact p) must not change."""
    keys = ["n", "n_zeros", "r_plus", "r_minus", "mean_h0", "var_h0"]
    base = paired_wilcoxon(_ratings_frame(scores), dv="score", within="source", a="A", b="B",
                           alternative=alternative, zero_method=zero_method).iloc[0]
    other = paired_wilcoxon(_ratings_frame(scores, scale, shift, seed), dv="score", within="source", a="A", b="B",
                            alternative=alternative, zero_method=zero_method).iloc[0]
    assert [base[k] for k in keys] == [other[k] for k in keys]
    assert other["z"] == pytest.approx(base["z"], abs=1e-12)
    assert other["p"] == pytest.approx(base["p"], abs=1e-12)
    ex_a = wilcoxon_signed_rank(paired_differences(_ratings_frame(scores), dv="score", within="source", a="A",
                                                   b="B")["diff"], method="exact", alternative=alternative)
    ex_b = wilcoxon_signed_rank(paired_differences(_ratings_frame(scores, scale, shift, seed), dv="score",
                                                   within="source", a="A", b="B")["diff"],
                                method="exact", alternative=alternative)
    assert ex_b["p"] == pytest.approx(ex_a["p"], abs=1e-12)
    # And both equal the exact-arithmetic reference (stdlib Fractions, Pratt).
    if zero_method == "pratt":
        exact = [Fraction(sum(sa), len(sa)) - Fraction(sum(sb), len(sb)) for sa, sb in scores]
        r_plus, mean, var = _exact_signed_rank(exact)
        assert base["r_plus"] == float(r_plus) and base["mean_h0"] == float(mean)
        assert base["var_h0"] == pytest.approx(float(var), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(fracs=st.lists(st.tuples(st.integers(-6, 6), st.integers(1, 6)), min_size=2, max_size=30),
       seed=st.integers(0, 10_000))
def test_differences_in_any_float_order_match_exact_arithmetic(fracs, seed):
    # Each difference p/q computed as (1/q + ... + 1/q) - (...) in a shuffled order: float noise differs from
    # the correctly rounded p/q, yet R+ and the variance are those of exact arithmetic.
    rng = random.Random(seed)
    noisy = []
    for p, q in fracs:
        terms = [1 / q] * abs(p) + [0.1, -0.1]
        rng.shuffle(terms)
        noisy.append(math.copysign(1, p) * sum(terms) if p else sum(terms) - sum(terms))
    r_plus, mean, var = _exact_signed_rank([Fraction(p, q) for p, q in fracs])
    ours = wilcoxon_signed_rank(noisy)
    assert ours["r_plus"] == float(r_plus) and ours["mean_h0"] == float(mean)
    assert ours["var_h0"] == pytest.approx(float(var), rel=1e-12)


def _task2_responses(per_participant: list[tuple[int, int, int]], seed: int) -> pd.DataFrame:
    """Responses to mismatched videos: per participant n responses of which k_v match the visual and k_a the
    audio emotion (disjoint), in a shuffled order."""
    rows = []
    for p, (n, kv, ka) in enumerate(per_participant):
        for k in range(n):
            rows.append({"participant": f"p{p}", "mismatched": True, "primary_match_visual": k < kv,
                         "primary_match_audio": kv <= k < kv + ka})
    random.Random(seed).shuffle(rows)
    df = pd.DataFrame(rows)
    df["either_match_visual"] = df["primary_match_visual"]
    df["either_match_audio"] = df["primary_match_audio"]
    return df


@settings(max_examples=40, deadline=None)
@given(data=st.lists(st.integers(1, 12).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.integers(0, t[0] - t[1])))), min_size=3, max_size=20),
    seed=st.integers(0, 1000))
def test_dominance_differences_are_exact(data, seed):
    per = task2.dominance_per_participant(_task2_responses(data, seed))
    expected = {f"p{p}": Fraction(kv - ka, n) for p, (n, kv, ka) in enumerate(data)}
    assert all(d == float(expected[p]) for p, d in zip(per["participant"], per["diff"]))
    r_plus, mean, var = _exact_signed_rank([expected[p] for p in per["participant"]])
    res = task2.dominance_test(_task2_responses(data, seed + 1)).iloc[0]
    assert res["r_plus"] == float(r_plus) and res["var_h0"] == pytest.approx(float(var), rel=1e-12)


# ------------------------------------------------------------------ the continuity correction against scipy

WITH_ZEROS = [3, -1, 0, 2, 2, -2, 0, 5, -4, 1, -6, 0.5]       # zeros and a tie group
NO_ZEROS = [1.5, -0.2, 3.1, 2.2, -0.7, 4.0, 0.9, 2.8, -1.1, 0.3]  # no zeros, no ties
MOSTLY_NEGATIVE = [-3, -1, 2, -2, -5, -4, 1, -6, -0.5, 0.25]      # R+ < E: the case of the issue


@pytest.mark.parametrize("d", [WITH_ZEROS, NO_ZEROS, MOSTLY_NEGATIVE], ids=["zeros", "no-zeros", "r-below-mean"])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("correction", [False, True])
@pytest.mark.parametrize("zero_method", ["pratt", "wilcox", "zsplit"])
def test_asymptotic_matches_scipy(d, alternative, correction, zero_method):
    ours = wilcoxon_signed_rank(d, zero_method=zero_method, alternative=alternative, correction=correction)
    ref = sps.wilcoxon(d, zero_method=zero_method, alternative=alternative, correction=correction,
                       method="asymptotic")
    # scipy reports -|z| for two-sided tests.
    z = -abs(ours["z"]) if alternative == "two-sided" else ours["z"]
    assert z == pytest.approx(float(ref.zstatistic), rel=1e-12)
    assert ours["p"] == pytest.approx(float(ref.pvalue), rel=1e-12)


def test_one_sided_correction_never_moves_towards_the_alternative():
    # R+ < E: for "greater" the correction still subtracts 0.5, so p(greater) grows (was too small before).
    plain = wilcoxon_signed_rank(MOSTLY_NEGATIVE, alternative="greater")
    corrected = wilcoxon_signed_rank(MOSTLY_NEGATIVE, alternative="greater", correction=True)
    assert corrected["r_plus"] < corrected["mean_h0"]
    assert corrected["p"] > plain["p"]
    assert corrected["z"] == pytest.approx((plain["r_plus"] - plain["mean_h0"] - 0.5) / math.sqrt(plain["var_h0"]))
    less = wilcoxon_signed_rank(MOSTLY_NEGATIVE, alternative="less", correction=True)
    assert less["z"] == pytest.approx((plain["r_plus"] - plain["mean_h0"] + 0.5) / math.sqrt(plain["var_h0"]))


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_exact_without_zeros_matches_scipy_exact(alternative):
    ours = wilcoxon_signed_rank(NO_ZEROS, zero_method="wilcox", method="exact", alternative=alternative)
    ref = sps.wilcoxon(NO_ZEROS, alternative=alternative, method="exact")
    assert ours["p"] == pytest.approx(float(ref.pvalue), rel=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("zero_method", ["pratt", "wilcox", "zsplit"])
def test_exact_with_zeros_and_ties_matches_scipy_permutation(alternative, zero_method):
    # n = 12 <= 13: scipy's permutation test enumerates all 2^12 sign flips, i.e. the exact conditional p.
    ours = wilcoxon_signed_rank(WITH_ZEROS, zero_method=zero_method, method="exact", alternative=alternative)
    ref = sps.wilcoxon(WITH_ZEROS, zero_method=zero_method, alternative=alternative,
                       method=sps.PermutationMethod())
    assert ours["p"] == pytest.approx(float(ref.pvalue), rel=1e-9)
