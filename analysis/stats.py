"""Statistical tests written out so that every number of the report can be traced: the Wilcoxon
signed-rank test (R+, R-, zeros, z, p, effect sizes), the exact binomial test against chance,
percentile bootstrap CIs that resample participants, and Holm's step-down correction.

References
----------
Wilcoxon, F. (1945). Individual comparisons by ranking methods. Biometrics Bulletin 1(6), 80-83.
Pratt, J. W. (1959). Remarks on zeros and ties in the Wilcoxon signed rank procedures. JASA 54, 655-667.
Cureton, E. E. (1967). The normal approximation to the signed-rank sampling distribution when zero
    differences are present. JASA 62, 1068-1069.
Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scand. J. Statist. 6, 65-70.
Kerby, D. S. (2014). The simple difference formula: an approach to teaching nonparametric
    correlation. Comprehensive Psychology 3 (matched-pairs rank-biserial correlation).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable, Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.errors import AnalysisOptionError

ZeroMethod = Literal["pratt", "wilcox", "zsplit"]
Alternative = Literal["two-sided", "greater", "less"]
WILCOXON_COLUMNS = ("n", "n_zeros", "n_used", "r_plus", "r_minus", "mean_h0", "var_h0", "z", "p",
                    "effect_r", "rank_biserial", "median_diff", "zero_method", "alternative", "correction", "method")


from stimuli.model_formulas import TIE_RTOL  # noqa: E402  (the one definition, shared with the export's R script)


def snap_ties(values: np.ndarray, rtol: float = TIE_RTOL) -> np.ndarray:
    """``values`` (|d| >= 0) with float noise removed before ranking: sorted, each run of values whose
    consecutive gaps are <= ``rtol`` x the larger value is replaced by the run's smallest value, and values
    <= ``rtol`` x the largest become 0. Exactly equal inputs are untouched; the callers of this module
    compute their differences exactly (:func:`paired_differences`), this guards every other caller.

    Examples
    --------
    >>> snap_ties(np.abs(np.array([-0.08333333333333348, 0.08333333333333304])))
    array([0.08333333, 0.08333333])
    """
    a = np.asarray(values, dtype=float)
    if a.size == 0:
        return a.copy()
    order = np.argsort(a, kind="stable")
    s = a[order]
    top = float(s[-1])
    new_run = np.ones(s.size, dtype=bool)
    new_run[1:] = (s[1:] - s[:-1]) > rtol * s[1:]
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(s.size), 0))
    snapped = s[run_start]
    snapped[snapped <= rtol * top] = 0.0
    out = np.empty_like(a)
    out[order] = snapped
    return out


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``values``, ties sharing the mean of their ranks."""
    return sps.rankdata(values, method="average")


def _tie_sizes(values: np.ndarray) -> np.ndarray:
    _, counts = np.unique(values, return_counts=True)
    return counts[counts > 1]


def _exact_sign_flip_p(ranks: np.ndarray, r_plus: float, offset: float, alternative: str) -> float:
    """Exact p of R+ under H0 (each non-zero difference's sign +/- with probability 1/2), conditional on the
    observed ranks (average ranks of ties are multiples of 1/2, so 2 * rank is an integer)."""
    twice = np.rint(2 * np.asarray(ranks, dtype=float)).astype(np.int64)
    total = int(twice.sum())
    dist = np.zeros(total + 1)
    dist[0] = 1.0
    for r in twice:  # convolve with (1 + x^r) / 2
        shifted = np.zeros_like(dist)
        shifted[r:] = dist[:total + 1 - r]
        dist = 0.5 * (dist + shifted)
    obs = int(round(2 * (r_plus - offset)))
    upper = float(dist[obs:].sum())
    lower = float(dist[:obs + 1].sum())
    if alternative == "greater":
        return min(1.0, upper)
    if alternative == "less":
        return min(1.0, lower)
    return min(1.0, 2 * min(upper, lower))


def wilcoxon_signed_rank(d: Sequence[float], *, zero_method: ZeroMethod = "pratt",
                         alternative: Alternative = "two-sided", correction: bool = False,
                         method: Literal["approx", "exact"] = "approx") -> dict:
    """Wilcoxon signed-rank test of paired differences ``d`` (x - y) with the normal approximation.

    Zero differences: ``"pratt"`` (default) ranks |d| with the zeros included and then drops the zero
    ranks; the null mean and variance are those of Cureton (1967):
    E = [n(n+1) - n0(n0+1)]/4, Var = [n(n+1)(2n+1) - n0(n0+1)(2n0+1)]/24 - sum(t^3 - t)/48 over tie
    groups of non-zero |d|. ``"wilcox"`` drops the zeros first (n' = n - n0). ``"zsplit"`` ranks with the
    zeros and splits the zero ranks equally between R+ and R- (ties over all |d|, zeros included).

    Before ranking, |d| equal up to the relative tolerance :data:`TIE_RTOL` are made equal and |d| below it
    become zeros (:func:`snap_ties`), so that float noise never splits a tie.

    z = (R+ - E - c)/sqrt(Var), with continuity correction when ``correction``: c = 0.5*sign(R+ - E) for
    two-sided, c = 0.5 for "greater" and c = -0.5 for "less" (as scipy.stats.wilcoxon).
    p: two-sided 2*(1 - Phi(|z|)), "greater" (x > y) 1 - Phi(z), "less" Phi(z). When no difference is
    non-zero (Var = 0) the test carries no evidence: z = 0 and p = 1.

    ``method="exact"`` replaces p by the exact sign-flip permutation p-value of R+ given the observed ranks
    (ties and zeros handled as by ``zero_method``; two-sided = 2 x the smaller tail); z is still reported.

    Effect sizes: r = z / sqrt(n) with n all pairs (zeros included); the matched-pairs rank-biserial
    correlation (R+ - R-)/(R+ + R-) (0 when both are 0).

    Returns a dict with the keys of :data:`WILCOXON_COLUMNS`.

    Examples
    --------
    >>> res = wilcoxon_signed_rank([1, 2, 0, -1, 3])
    >>> res["r_plus"], res["r_minus"], res["n_zeros"]
    (11.5, 2.5, 1)
    """
    if method not in ("approx", "exact"):
        raise AnalysisOptionError(f"method {method!r}: use approx or exact")
    if zero_method not in ("pratt", "wilcox", "zsplit"):
        raise AnalysisOptionError(f"zero_method {zero_method!r}: use pratt, wilcox or zsplit")
    if alternative not in ("two-sided", "greater", "less"):
        raise AnalysisOptionError(f"alternative {alternative!r}: use two-sided, greater or less")
    raw = np.asarray(d, dtype=float)
    raw = raw[~np.isnan(raw)]
    n = int(raw.size)
    # Ranks must not depend on float noise: |d| equal up to TIE_RTOL are tied (see snap_ties).
    a = snap_ties(np.abs(raw))
    d = np.sign(raw) * a
    zeros = a == 0
    n0 = int(zeros.sum())
    if zero_method == "wilcox":
        nz = a[~zeros]
        ranks = _average_ranks(nz) if nz.size else nz
        signs = np.sign(d[~zeros])
        r_plus = float(ranks[signs > 0].sum())
        r_minus = float(ranks[signs < 0].sum())
        m = n - n0
        mean = m * (m + 1) / 4.0
        var = m * (m + 1) * (2 * m + 1) / 24.0 - sum(t ** 3 - t for t in _tie_sizes(nz)) / 48.0
        n_used = m
    else:
        ranks = _average_ranks(a) if n else a
        r_plus = float(ranks[d > 0].sum())
        r_minus = float(ranks[d < 0].sum())
        if zero_method == "pratt":
            mean = (n * (n + 1) - n0 * (n0 + 1)) / 4.0
            var = ((n * (n + 1) * (2 * n + 1) - n0 * (n0 + 1) * (2 * n0 + 1)) / 24.0
                   - sum(t ** 3 - t for t in _tie_sizes(a[~zeros])) / 48.0)
            n_used = n - n0
        else:  # zsplit
            half = float(ranks[zeros].sum()) / 2.0
            r_plus += half
            r_minus += half
            mean = n * (n + 1) / 4.0
            var = n * (n + 1) * (2 * n + 1) / 24.0 - sum(t ** 3 - t for t in _tie_sizes(a)) / 48.0
            n_used = n
    if var <= 0 or n_used == 0 or (zero_method == "zsplit" and n0 == n):
        z, p = 0.0, 1.0
    else:
        diff = r_plus - mean
        if correction:
            # Towards the null for a two-sided test; for a one-sided test always against the alternative's
            # tail (greater: -0.5, less: +0.5), as scipy.stats.wilcoxon does: moving R+ towards its mean
            # when it lies on the other side would make the one-sided p too small.
            diff -= 0.5 * {"two-sided": np.sign(diff), "greater": 1.0, "less": -1.0}[alternative]
        z = float(diff / math.sqrt(var))
        if alternative == "two-sided":
            p = float(2 * sps.norm.sf(abs(z)))
        elif alternative == "greater":
            p = float(sps.norm.sf(z))
        else:
            p = float(sps.norm.cdf(z))
        p = min(p, 1.0)
    if method == "exact" and n_used > 0 and not (zero_method == "zsplit" and n0 == n):
        nonzero_ranks = ranks if zero_method == "wilcox" else ranks[~zeros]
        offset = float(ranks[zeros].sum()) / 2.0 if zero_method == "zsplit" else 0.0
        p = _exact_sign_flip_p(nonzero_ranks, r_plus, offset, alternative)
    total = r_plus + r_minus
    return {"n": n, "n_zeros": n0, "n_used": int(n_used), "r_plus": r_plus, "r_minus": r_minus,
            "mean_h0": float(mean), "var_h0": float(var), "z": z, "p": p,
            "effect_r": float(z / math.sqrt(n)) if n else float("nan"),
            "rank_biserial": float((r_plus - r_minus) / total) if total > 0 else 0.0,
            "median_diff": float(np.median(raw)) if n else float("nan"),
            "zero_method": zero_method, "alternative": alternative, "correction": bool(correction),
            "method": method}


PairingUnit = Literal["participant", "item", "response"]


def paired_differences(data: pd.DataFrame, *, dv: str, within: str, a: str, b: str,
                       unit: PairingUnit = "participant", subject: str = "participant",
                       item: Sequence[str] = ("identity", "sentence", "visual_emotion"),
                       order: str = "position") -> pd.DataFrame:
    """Paired values of ``dv`` for level ``a`` vs level ``b`` of ``within``, one row per pairing unit.

    unit="participant": the mean of each participant's ``a`` answers vs the mean of their ``b`` answers
    (participants with only one of the two are dropped). unit="item": the mean over participants for each
    content item (the ``item`` columns: same face, sentence and emotion rendered by both sources); items
    rendered by only one source are dropped. unit="response": within each participant the k-th ``a``
    answer (in ``order``) is paired with the k-th ``b`` answer; unmatched extra answers are dropped.

    Means and differences are the correctly rounded floats of their exact rational values (see
    :func:`_exact_mean_difference`), so two differences equal in exact arithmetic are equal floats and tie
    in the signed-rank test whatever the order of the answers.

    Returns columns unit_id, a, b, diff (a - b).
    """
    if unit not in ("participant", "item", "response"):
        raise AnalysisOptionError(f"pairing unit {unit!r}: use participant, item or response")
    sub = data[data[within].isin([a, b])]
    if unit in ("participant", "item"):
        keys = [subject] if unit == "participant" else list(item)
        g = sub.groupby(keys + [within])[dv]
        sums = g.sum().unstack(within).reindex(columns=[a, b])
        counts = g.count().unstack(within).reindex(columns=[a, b])
        ok = (counts[a] > 0) & (counts[b] > 0)
        sums, counts = sums[ok], counts[ok]
        mean_a, mean_b, diff = _exact_mean_difference(sub, dv, keys, within, a, b, sums, counts)
        if unit == "participant":
            ids = list(sums.index.astype(str))
        else:
            ids = ["|".join(map(str, k)) if isinstance(k, tuple) else str(k) for k in sums.index]
        out = pd.DataFrame({"unit_id": ids, "a": mean_a, "b": mean_b, "diff": diff})
    else:
        s = sub.sort_values([subject, order], kind="stable").copy()
        s["_k"] = s.groupby([subject, within]).cumcount()
        m = s.pivot_table(index=[subject, "_k"], columns=within, values=dv, aggfunc="first")
        m = m.reindex(columns=[a, b]).dropna()
        ids = [f"{p}#{k}" for p, k in m.index]
        out = pd.DataFrame({"unit_id": ids, "a": m[a].to_numpy(), "b": m[b].to_numpy()})
        # One subtraction of two floats is correctly rounded: equal exact differences give equal floats.
        out["diff"] = out["a"] - out["b"]
    return out.reset_index(drop=True)


SCORE_DENOMINATOR = 10 ** 9  # scores are rationals with denominators up to this (see _exact_mean_difference)


def _exact_mean_difference(sub: pd.DataFrame, dv: str, keys: list[str], within: str, a: str, b: str,
                           sums: pd.DataFrame, counts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mean_a, mean_b and mean_a - mean_b per unit, each the correctly rounded float of the exact rational
    value, so that differences equal in exact arithmetic are bit-identical (ties stay ties).

    Integer scores (the usual case): the difference is (S_a n_b - S_b n_a) / (n_a n_b) with exact integer
    numerator and denominator and one IEEE division (correctly rounded). Other values: the same in
    :class:`fractions.Fraction` arithmetic, each score read as the nearest fraction with a denominator of at
    most ``SCORE_DENOMINATOR`` (1.7 is 17/10, 0.1 x 3 is 3/10), so that scores written as decimals or scaled
    by a constant keep the ties their exact values have (``Fraction(1.7)`` itself is the binary float's value,
    and 1.7 + 1.7 + 4.7 would then differ from 3 x 2.7 by float noise).
    """
    na = counts[a].to_numpy(dtype=np.int64)
    nb = counts[b].to_numpy(dtype=np.int64)
    values = sub[dv].to_numpy(dtype=float)
    finite = values[~np.isnan(values)]
    if finite.size == 0 or (np.all(finite == np.round(finite)) and np.abs(finite).max() * len(finite) < 2 ** 40):
        sa = np.rint(sums[a].to_numpy(dtype=float)).astype(np.int64)
        sb = np.rint(sums[b].to_numpy(dtype=float)).astype(np.int64)
        nums = [int(x) * int(y) - int(u) * int(v) for x, y, u, v in zip(sa, nb, sb, na)]
        dens = [int(x) * int(y) for x, y in zip(na, nb)]
        diff = np.array([n / d for n, d in zip(nums, dens)], dtype=float)  # int / int: correctly rounded
        return sa / na, sb / nb, diff
    frac_sums = (sub.dropna(subset=[dv]).assign(_f=lambda f: [Fraction(x).limit_denominator(SCORE_DENOMINATOR) for x in f[dv]])
                 .groupby(keys + [within])["_f"].agg(lambda x: sum(x, Fraction(0))).unstack(within))
    frac_sums = frac_sums.reindex(index=sums.index, columns=[a, b])
    ma = [Fraction(s) / int(n) for s, n in zip(frac_sums[a], na)]
    mb = [Fraction(s) / int(n) for s, n in zip(frac_sums[b], nb)]
    return (np.array([float(x) for x in ma]), np.array([float(x) for x in mb]),
            np.array([float(x - y) for x, y in zip(ma, mb)]))


def paired_wilcoxon(data: pd.DataFrame, *, dv: str, within: str, a: str, b: str,
                    unit: PairingUnit = "participant", zero_method: ZeroMethod = "pratt",
                    alternative: Alternative = "two-sided", correction: bool = False,
                    subject: str = "participant",
                    item: Sequence[str] = ("identity", "sentence", "visual_emotion"),
                    method: Literal["approx", "exact"] = "approx") -> pd.DataFrame:
    """Wilcoxon signed-rank test of ``a`` vs ``b`` (difference a - b) with an explicit pairing unit.

    Returns one row: a, b, dv, unit, n_unpaired (participants or items with only one of the two sources, or
    answers left without a partner, none of them in the test), then the columns of
    :data:`WILCOXON_COLUMNS`, mean_a, mean_b.
    """
    pairs = paired_differences(data, dv=dv, within=within, a=a, b=b, unit=unit, subject=subject, item=item)
    sub = data[data[within].isin([a, b])]
    if unit == "participant":
        n_unpaired = int(sub[subject].nunique()) - len(pairs)
    elif unit == "item":
        n_unpaired = int(len(sub.drop_duplicates(list(item)))) - len(pairs)
    else:
        n_unpaired = int(len(sub)) - 2 * len(pairs)
    res = wilcoxon_signed_rank(pairs["diff"].to_numpy(), zero_method=zero_method, alternative=alternative,
                               correction=correction, method=method)
    row = {"a": a, "b": b, "dv": dv, "unit": unit, "n_unpaired": n_unpaired, **res,
           "mean_a": float(pairs["a"].mean()) if len(pairs) else float("nan"),
           "mean_b": float(pairs["b"].mean()) if len(pairs) else float("nan")}
    return pd.DataFrame([row])


def binomial_test(k: int, n: int, p0: float = 1 / 6, alternative: Alternative = "greater") -> float:
    """Exact binomial test of k successes in n trials against success probability ``p0``.

    "greater": P(X >= k); "less": P(X <= k); "two-sided": the sum of the probabilities of all outcomes
    no more likely than k (the usual exact two-sided definition). n = 0 gives p = 1.
    """
    if n == 0:
        return 1.0
    return float(sps.binomtest(int(k), int(n), p0, alternative=alternative).pvalue)


def bootstrap_ci(groups: pd.DataFrame, statistic: Callable[[np.ndarray], np.ndarray], *, n_boot: int = 2000,
                 ci: float = 0.95, random_state: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI resampling the rows of ``groups`` (one row per participant) with replacement.

    ``statistic`` receives an integer array of shape (n_boot, n_rows) of resampled row indices and returns
    n_boot values. The resampling draws come from ``numpy.random.default_rng(random_state)``.
    """
    n = len(groups)
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(random_state)
    idx = rng.integers(0, n, size=(n_boot, n))
    values = np.asarray(statistic(idx), dtype=float)
    lo, hi = np.nanpercentile(values, [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(lo), float(hi)


def ratio_bootstrap_ci(numerator: np.ndarray, denominator: np.ndarray, *, n_boot: int = 2000, ci: float = 0.95,
                       random_state: int = 0) -> tuple[float, float]:
    """Bootstrap CI of sum(numerator)/sum(denominator) resampling units (participants) with replacement."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)

    def stat(idx: np.ndarray) -> np.ndarray:
        d = den[idx].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return num[idx].sum(axis=1) / d

    return bootstrap_ci(pd.DataFrame({"n": den}), stat, n_boot=n_boot, ci=ci, random_state=random_state)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN stays NaN and is not counted in the family).

    Sorted ascending p(1) <= ... <= p(m): adj(i) = max_{j<=i} min(1, (m - j + 1) p(j)).
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    vals = p[ok]
    order = np.argsort(vals, kind="stable")
    adj = np.minimum(1.0, (m - np.arange(m)) * vals[order])
    adj = np.maximum.accumulate(adj)
    res = np.empty(m)
    res[order] = adj
    out[ok] = res
    return out
