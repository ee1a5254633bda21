"""Sample-size planning (``emostudy power``): how many participants for a target effect.

Analytic where a closed route exists:

* :func:`n_binomial_vs_chance`: accuracy against chance (exact one-sided binomial test). The smallest
  number of independent answers N whose exact test at level alpha reaches the power, then inflated by
  the design effect 1 + (m - 1) * ICC for m answers per participant (answers of one participant are
  correlated), and divided by m: participants = ceil(N * DE / m).
* :func:`n_paired`: a paired comparison with standardised effect d = mean(diff)/sd(diff) (e.g. the
  per-participant realness difference OURS - BL): the exact paired t-test via the non-central t; for the
  Wilcoxon signed-rank test that n divided by its asymptotic relative efficiency 3/pi (normal
  differences; Lehmann 1975).

By simulation otherwise:

* :func:`simulated_power_accuracy_difference` / :func:`n_by_simulation`: the per-participant paired
  Wilcoxon test (Pratt) of accuracy on source A vs source B, participants differing in ability
  (normal random intercept with SD ``tau`` on the logit scale), m items per source.

References
----------
Lehmann, E. L. (1975). Nonparametrics: Statistical Methods Based on Ranks. Holden-Day.
Kish, L. (1965). Survey Sampling. Wiley (design effect).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import stats as sps

from analysis.errors import AnalysisOptionError
from analysis.stats import wilcoxon_signed_rank


def _check_prob(name: str, value: float) -> None:
    if not 0 < value < 1:
        raise AnalysisOptionError(f"{name} = {value}: give a probability strictly between 0 and 1")


def _check_level(alpha: float, power: float) -> None:
    """A test level and a target power outside (0, 1) can never be met: refuse them before searching."""
    _check_prob("alpha", alpha)
    _check_prob("power", power)


def binomial_power(n: int, p1: float, p0: float, alpha: float) -> tuple[float, int]:
    """Power of the exact one-sided test H0: p = p0 vs p > p0 with n trials, and its critical count."""
    k_crit = int(sps.binom.isf(alpha, n, p0)) + 1  # smallest k with P0(X >= k) <= alpha
    while k_crit > 0 and sps.binom.sf(k_crit - 2, n, p0) <= alpha:
        k_crit -= 1
    while sps.binom.sf(k_crit - 1, n, p0) > alpha:
        k_crit += 1
    return float(sps.binom.sf(k_crit - 1, n, p1)), k_crit


def n_binomial_vs_chance(p1: float, *, p0: float = 1 / 6, alpha: float = 0.05, power: float = 0.8,
                         answers_per_participant: int = 15, icc: float = 0.0, max_n: int = 100000) -> dict:
    """Participants needed to show accuracy ``p1`` above chance ``p0`` (see the module docstring).

    Returns dict: n_answers_independent, critical_count, achieved_power, design_effect, n_answers,
    n_participants, method.
    """
    _check_prob("p1", p1)
    _check_prob("p0", p0)
    _check_level(alpha, power)
    if p1 <= p0:
        raise AnalysisOptionError(f"p1 = {p1} must exceed chance p0 = {p0} for a one-sided test above chance")
    if answers_per_participant < 1 or not 0 <= icc < 1:
        raise AnalysisOptionError("answers_per_participant must be >= 1 and icc in [0, 1)")
    for n in range(1, max_n + 1):
        pw, k = binomial_power(n, p1, p0, alpha)
        if pw >= power:
            de = 1 + (answers_per_participant - 1) * icc
            n_ans = math.ceil(n * de)
            return {"n_answers_independent": n, "critical_count": k, "achieved_power": pw, "design_effect": de,
                    "n_answers": n_ans, "n_participants": math.ceil(n_ans / answers_per_participant),
                    "method": "analytic: exact binomial, one-sided, design effect 1 + (m - 1) ICC"}
    raise AnalysisOptionError(f"more than {max_n} answers needed; is the effect p1 - p0 = {p1 - p0:.3g} realistic?")


def paired_t_power(n: int, d: float, alpha: float, alternative: str = "two-sided") -> float:
    """Power of the paired t-test with n pairs and standardised effect d (non-central t)."""
    if n < 2:
        return 0.0
    df = n - 1
    ncp = d * math.sqrt(n)
    if alternative == "two-sided":
        t = sps.t.isf(alpha / 2, df)
        return float(sps.nct.sf(t, df, ncp) + sps.nct.cdf(-t, df, ncp))
    t = sps.t.isf(alpha, df)
    return float(sps.nct.sf(t, df, abs(ncp)))


def n_paired(effect_size: float, *, alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided",
             test: str = "wilcoxon", max_n: int = 100000) -> dict:
    """Pairs (participants) for a paired test of standardised effect ``effect_size``.

    Returns dict: n_t (paired t), n_participants (for ``test``), achieved_power_t, are, method.
    """
    _check_level(alpha, power)
    if effect_size == 0:
        raise AnalysisOptionError("effect_size 0 cannot be detected; give the smallest effect worth finding")
    if test not in ("wilcoxon", "t"):
        raise AnalysisOptionError(f"test {test!r}: use wilcoxon or t")
    for n in range(2, max_n + 1):
        pw = paired_t_power(n, abs(effect_size), alpha, alternative)
        if pw >= power:
            are = 3 / math.pi if test == "wilcoxon" else 1.0
            return {"n_t": n, "achieved_power_t": pw, "are": are, "n_participants": math.ceil(n / are),
                    "method": ("analytic: paired t via non-central t" +
                               (", divided by the Wilcoxon ARE 3/pi" if test == "wilcoxon" else ""))}
    raise AnalysisOptionError(f"more than {max_n} pairs needed for effect size {effect_size}")


def simulated_power_accuracy_difference(n: int, p_a: float, p_b: float, *, items_per_source: int = 5,
                                        tau: float = 0.5, alpha: float = 0.05, n_sim: int = 500,
                                        alternative: str = "two-sided", random_state: int = 0) -> float:
    """Monte-Carlo power of the per-participant Wilcoxon test (Pratt) of accuracy on A vs B."""
    _check_prob("p_a", p_a)
    _check_prob("p_b", p_b)
    rng = np.random.default_rng(random_state)
    la, lb = math.log(p_a / (1 - p_a)), math.log(p_b / (1 - p_b))
    hits = 0
    for _ in range(n_sim):
        u = rng.normal(0.0, tau, size=n)
        k_a = rng.binomial(items_per_source, 1 / (1 + np.exp(-(la + u))))
        k_b = rng.binomial(items_per_source, 1 / (1 + np.exp(-(lb + u))))
        # (k_a - k_b) / m: one correctly rounded division, so equal accuracy differences tie exactly.
        res = wilcoxon_signed_rank((k_a - k_b) / items_per_source, zero_method="pratt", alternative=alternative)
        hits += res["p"] < alpha
    return hits / n_sim


def n_by_simulation(power_at: Callable[[int], float], *, power: float = 0.8, n_min: int = 3,
                    n_max: int = 5000) -> dict:
    """Smallest n with ``power_at(n) >= power``: doubling from ``n_min``, then bisection (Monte-Carlo power
    is noisy; the answer is accurate to its simulation error)."""
    lo, hi = n_min, n_min
    evaluated = {}
    while True:
        evaluated[hi] = power_at(hi)
        if evaluated[hi] >= power:
            break
        lo = hi
        hi *= 2
        if hi > n_max:
            raise AnalysisOptionError(f"power {power} not reached with {n_max} participants")
    if lo == hi:
        return {"n_participants": hi, "achieved_power": evaluated[hi], "evaluated": evaluated}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        evaluated[mid] = power_at(mid)
        if evaluated[mid] >= power:
            hi = mid
        else:
            lo = mid
    return {"n_participants": hi, "achieved_power": evaluated[hi], "evaluated": dict(sorted(evaluated.items()))}


def n_accuracy_difference(p_a: float, p_b: float, *, items_per_source: int = 5, tau: float = 0.5,
                          alpha: float = 0.05, power: float = 0.8, n_sim: int = 500,
                          alternative: str = "two-sided", random_state: int = 0) -> dict:
    """Participants for the per-participant accuracy comparison A vs B, by simulation."""
    _check_level(alpha, power)
    if n_sim < 1:
        raise AnalysisOptionError(f"n_sim = {n_sim}: give at least 1 simulated study per sample size")
    out = n_by_simulation(lambda n: simulated_power_accuracy_difference(
        n, p_a, p_b, items_per_source=items_per_source, tau=tau, alpha=alpha, n_sim=n_sim,
        alternative=alternative, random_state=random_state + n), power=power)
    out["method"] = (f"simulation: {n_sim} studies per n, logit random intercept SD {tau}, "
                     f"{items_per_source} items per source, Wilcoxon (Pratt) per participant")
    return out
