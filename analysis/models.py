"""Regression models that respect the design: answers are clustered in participants and in items.

* :func:`correctness_mixed_logit`: mixed-effects logistic regression of correctness (answer == truth) on
  source, with crossed random intercepts for participant and stimulus (item), fitted by maximum likelihood
  with the Laplace approximation (:mod:`analysis.glmm`, the method of lme4::glmer): fixed effects (log-odds,
  treatment coding against the reference source) with standard errors from the Hessian of the deviance,
  Wald z, p and 95% intervals, odds ratios, the random-effect SDs, and in words whether the fit is singular
  (a random-effect SD estimated at zero) or did not converge.
* :func:`realness_ordinal`: cumulative-logit (proportional odds) model of the realness score on source,
  fitted by maximum likelihood (Newton steps on the analytic score; checked against statsmodels'
  ``OrderedModel`` and R's ordinal::clm), with two standard errors per coefficient: model-based
  (inverse observed information, as R's ordinal::clm reports) and cluster-robust by participant (sandwich
  with the CR1 factor G/(G-1) * (N-1)/(N-K), :func:`cluster_robust_factor`); the p-value and interval use
  the cluster-robust one. Item and participant effects are not modelled as random there.

Both formulas are defined once in :mod:`stimuli.model_formulas`; the Psych-DS export writes the same ones
into its ``analysis/analysis.R`` (lme4::glmer, ordinal::clm with the same two standard errors), so R refits
exactly these models.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps
from scipy.special import expit

from analysis.errors import AnalysisOptionError
from stimuli.model_formulas import CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL

RANDOM_EFFECT_NAMES = {"participant": "participant", "stimulus_id": "item"}
"""Names of the random-effect SDs in the results (random_sd keys) per grouping column."""

Z95 = float(sps.norm.ppf(0.975))


def _design(sources: pd.Series, reference: str) -> tuple[pd.DataFrame, list[str]]:
    levels = [reference] + sorted(set(sources) - {reference})
    cols = [f"source[{s}]" for s in levels[1:]]
    X = pd.DataFrame({c: (sources == s).astype(float).to_numpy() for c, s in zip(cols, levels[1:])},
                     index=sources.index)
    return X, levels


def contrast_label(term: str, reference: str) -> str:
    """A model term in words: ``source[STILL]`` against reference FULL -> ``STILL vs FULL``;
    ``Intercept`` -> ``FULL (intercept)``."""
    if term in ("Intercept", "(Intercept)"):
        return f"{reference} (intercept)"
    if term.startswith("source[") and term.endswith("]"):
        return f"{term[len('source['):-1]} vs {reference}"
    return term


def cluster_robust_factor(n_obs: int, n_params: int, n_clusters: int) -> float:
    """The small-sample factor of the cluster-robust (CR1) sandwich: G/(G-1) * (N-1)/(N-K) (statsmodels'
    and Stata's default); the R script of the Psych-DS export uses the same one."""
    return n_clusters / (n_clusters - 1) * (n_obs - 1) / (n_obs - n_params)


def correctness_mixed_logit(answers: pd.DataFrame, *, question: str = "emotion", truth: str = "visual_emotion",
                            reference: str | None = None, random_state: int = 0) -> dict[str, Any]:
    """Fit correct ~ source + (1|participant) + (1|stimulus) by maximum likelihood (Laplace approximation,
    :mod:`analysis.glmm`). ``random_state`` is accepted for compatibility and unused (the fit is deterministic).

    Returns a dict: formula, reference, method, n_answers, n_participants, n_items, seconds, fixed (list of
    dicts term, contrast (in words), estimate, se, z, p, ci_low, ci_high, odds_ratio, odds_ratio_ci_low,
    odds_ratio_ci_high; ``sd`` and ``p_approx`` are the same se and p under their old names), random_sd
    (participant, item), converged, singular (names of the random effects estimated at zero), se_method,
    deviance, notes (sentences: what went wrong, empty when nothing did).
    """
    from analysis.glmm import fit_laplace

    d = answers[answers["question"] == question]
    if d.empty:
        raise AnalysisOptionError(f"no answers to question {question!r} for the mixed model")
    sources = list(pd.unique(d["source"]))
    reference = reference or ("GT" if "GT" in sources else sorted(sources)[0])
    if reference not in sources:
        raise AnalysisOptionError(f"reference source {reference!r} is not in the answers ({', '.join(sources)})")
    y = (d["answer"] == d[truth]).astype(float).to_numpy()
    if y.min() == y.max():
        raise AnalysisOptionError(f"the mixed model needs both correct and wrong answers to {question!r}; all "
                                  f"{len(d)} answers are {'correct' if y[0] else 'wrong'}")
    X, levels = _design(d["source"], reference)
    X.insert(0, "Intercept", 1.0)
    spec = CORRECTNESS_MIXED_LOGIT  # the one definition shared with the export's analysis.R
    assert spec.fixed == ("source",), spec
    codes, uniques = zip(*(pd.factorize(d[g]) for g in spec.random))
    for g, u in zip(spec.random, uniques):
        if len(u) < 2:  # as lme4: a random intercept needs two levels of its grouping column
            raise AnalysisOptionError(f"the mixed model needs at least two levels of {g!r} (random intercept); the "
                                      f"answers to {question!r} have {len(u)}")
    # Complete separation: a source whose answers are all correct (or all wrong) has an infinite log-odds
    # ratio; the optimiser stops somewhere far out with a meaningless SE. Said, and left without a test.
    separated = {s: ("all correct" if v.min() == 1 else "all wrong")
                 for s, v in pd.Series(y, index=d.index).groupby(d["source"].to_numpy()) if v.min() == v.max()}
    vc_names = [RANDOM_EFFECT_NAMES.get(g, g) for g in spec.random]
    t0 = time.perf_counter()
    fit = fit_laplace(y, X.to_numpy(), list(X.columns), list(codes), vc_names)
    seconds = time.perf_counter() - t0
    fixed = []
    notes = list(fit.notes)
    for j, name in enumerate(X.columns):
        b, se, z, p = float(fit.beta[j]), float(fit.se[j]), float(fit.z[j]), float(fit.p[j])
        source = reference if name == "Intercept" else name[len("source["):-1]
        if source in separated:
            b = se = z = p = float("nan")
            notes.append(f"{contrast_label(name, reference)}: the answers of {source} are {separated[source]} "
                         f"(complete separation), so its log-odds are not finite: no estimate and no test")
        lo, hi = b - Z95 * se, b + Z95 * se
        fixed.append({"term": name, "contrast": contrast_label(name, reference), "estimate": b, "se": se, "z": z,
                      "p": p, "ci_low": lo, "ci_high": hi, "odds_ratio": float(np.exp(b)),
                      "odds_ratio_ci_low": float(np.exp(lo)), "odds_ratio_ci_high": float(np.exp(hi)),
                      "sd": se, "p_approx": p})
    if fit.singular:
        notes.append("singular fit: the random-intercept SD of " + " and ".join(fit.singular)
                     + " is estimated at zero (the data show no variation between them beyond chance); the "
                       "fixed effects are those of the model without that term")
    if not fit.converged:
        notes.append("the fit did not converge: treat its estimates and p-values with caution")
    return {"formula": spec.formula, "reference": reference,
            "method": "maximum likelihood, Laplace approximation (as lme4::glmer), Wald z tests",
            "n_answers": int(len(d)), "n_participants": int(len(uniques[spec.random.index("participant")])),
            "n_items": int(len(uniques[spec.random.index("stimulus_id")])),
            "seconds": seconds, "fixed": fixed,
            "random_sd": {n: float(abs(fit.theta[k])) for k, n in enumerate(vc_names)},
            "converged": fit.converged, "singular": fit.singular, "se_method": fit.se_method,
            "deviance": float(fit.deviance), "notes": notes}


def _ordinal_scores(y_codes: np.ndarray, X: np.ndarray, beta: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Per-answer scores (gradient of the log-likelihood) of the cumulative logit in the parameters
    (beta, cut_1..cut_{K-1}): P(y = j) = F(cut_j - x'beta) - F(cut_{j-1} - x'beta), F logistic."""
    eta = X @ beta
    full = np.concatenate([[-np.inf], cuts, [np.inf]])
    up, lo = full[y_codes + 1] - eta, full[y_codes] - eta
    Fu, Fl = expit(up), expit(lo)
    fu, fl = Fu * (1 - Fu), Fl * (1 - Fl)  # the logistic density
    prob = Fu - Fl
    k = len(cuts)
    s = np.zeros((len(eta), X.shape[1] + k))
    s[:, : X.shape[1]] = -((fu - fl) / prob)[:, None] * X
    rows = np.arange(len(eta))
    has_up = y_codes < k
    s[rows[has_up], X.shape[1] + y_codes[has_up]] += fu[has_up] / prob[has_up]
    has_lo = y_codes > 0
    s[rows[has_lo], X.shape[1] + y_codes[has_lo] - 1] -= fl[has_lo] / prob[has_lo]
    return s


def realness_ordinal(answers: pd.DataFrame, *, question: str = "realness", reference: str | None = None) -> dict[str, Any]:
    """Fit the proportional-odds model P(score <= k) = logit^-1(theta_k - x'beta) of realness on source.

    Positive beta: higher realness than the reference source. Returns a dict: formula, reference, method,
    n_answers, n_participants, seconds, coefficients (term, contrast, estimate, se_model, se_cluster, se (=
    se_cluster), z, p, ci_low, ci_high (from the cluster-robust SE), odds_ratio), thresholds, se_note.
    """
    d = answers[(answers["question"] == question) & answers["score"].notna()]
    if d.empty:
        raise AnalysisOptionError(f"no scored answers to question {question!r} for the ordinal model")
    sources = list(pd.unique(d["source"]))
    reference = reference or ("GT" if "GT" in sources else sorted(sources)[0])
    X, levels = _design(d["source"], reference)
    if X.shape[1] == 0:
        raise AnalysisOptionError("the ordinal model needs at least two sources")
    y = pd.Series(pd.Categorical(d["score"].astype(int), ordered=True), index=d.index)
    if len(y.cat.categories) < 2:
        raise AnalysisOptionError(f"the ordinal model needs at least two different scores of {question!r}; all "
                                  f"{len(d)} answers scored {y.cat.categories[0]}")
    groups = pd.factorize(d["participant"])[0]
    t0 = time.perf_counter()
    p_fe = X.shape[1]
    Xn, codes = X.to_numpy(), y.cat.codes.to_numpy()
    nat, converged = _fit_cumulative_logit(codes, Xn, len(y.cat.categories))
    cut = nat[p_fe:]
    # Model-based covariance in the parameters (beta, cut_1..cut_K-1): the inverse of the observed information
    # (the Jacobian of the analytic total score, by central differences).
    info = _ordinal_information(codes, Xn, nat)
    bread = np.linalg.inv((info + info.T) / 2)
    scores = _ordinal_scores(codes, Xn, nat[:p_fe], nat[p_fe:])
    per_cluster = np.zeros((groups.max() + 1, len(nat)))
    np.add.at(per_cluster, groups, scores)
    n_cl = int(groups.max() + 1)
    meat = per_cluster.T @ per_cluster
    v_cl = bread @ meat @ bread * cluster_robust_factor(len(d), len(nat), n_cl)
    seconds = time.perf_counter() - t0
    coefs = []
    for j, name in enumerate(X.columns):
        b = float(nat[j])
        se_m, se_c = float(np.sqrt(bread[j, j])), float(np.sqrt(v_cl[j, j]))
        z = b / se_c if se_c > 0 else float("nan")
        coefs.append({"term": name, "contrast": contrast_label(name, reference), "estimate": b,
                      "se_model": se_m, "se_cluster": se_c, "se": se_c, "z": z,
                      "p": float(2 * sps.norm.sf(abs(z))), "z_model": b / se_m if se_m > 0 else float("nan"),
                      "p_model": float(2 * sps.norm.sf(abs(b / se_m))) if se_m > 0 else float("nan"),
                      "ci_low": b - Z95 * se_c, "ci_high": b + Z95 * se_c, "odds_ratio": float(np.exp(b))})
    cats = list(y.cat.categories)
    thresholds = [{"between": f"{cats[k]}|{cats[k + 1]}", "value": float(cut[k])} for k in range(len(cats) - 1)]
    return {"formula": REALNESS_ORDINAL.formula, "reference": reference,
            "method": "maximum likelihood (Newton steps on the analytic score; logit link)",
            "se_note": (f"two standard errors: model-based (inverse information, as R's ordinal::clm) and "
                        f"cluster-robust by participant ({n_cl} clusters, CR1 sandwich); z, p and the 95% "
                        f"interval use the cluster-robust one"),
            "n_answers": int(len(d)), "n_participants": n_cl, "seconds": seconds, "coefficients": coefs,
            "thresholds": thresholds, "converged": converged}


def _ordinal_information(codes: np.ndarray, X: np.ndarray, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Observed information of the cumulative logit at ``theta`` = (beta, cuts): minus the Jacobian of the
    total score, central differences of the analytic score."""
    p = X.shape[1]
    info = np.zeros((len(theta), len(theta)))
    for j in range(len(theta)):
        e = np.zeros(len(theta))
        e[j] = h
        up = _ordinal_scores(codes, X, (theta + e)[:p], (theta + e)[p:]).sum(axis=0)
        down = _ordinal_scores(codes, X, (theta - e)[:p], (theta - e)[p:]).sum(axis=0)
        info[:, j] = -(up - down) / (2 * h)
    return (info + info.T) / 2


def _ordinal_loglik(codes: np.ndarray, X: np.ndarray, theta: np.ndarray) -> float:
    p = X.shape[1]
    cuts = theta[p:]
    if np.any(np.diff(cuts) <= 0):
        return -np.inf
    eta = X @ theta[:p]
    full = np.concatenate([[-np.inf], cuts, [np.inf]])
    prob = expit(full[codes + 1] - eta) - expit(full[codes] - eta)
    return float(np.sum(np.log(prob))) if np.all(prob > 0) else -np.inf


def _fit_cumulative_logit(codes: np.ndarray, X: np.ndarray, n_categories: int) -> tuple[np.ndarray, bool]:
    """Maximum likelihood of P(y <= k) = logistic(cut_k - x'beta): Newton steps on the analytic score with the
    information of :func:`_ordinal_information`, step halving (cuts kept increasing). Start: beta = 0, the
    cuts at the logits of the cumulative proportions. Returns ((beta, cuts), converged)."""
    p = X.shape[1]
    cum = np.cumsum(np.bincount(codes, minlength=n_categories))[:-1] / len(codes)
    theta = np.concatenate([np.zeros(p), np.log(np.clip(cum, 1e-6, 1 - 1e-6) / np.clip(1 - cum, 1e-6, 1))])
    ll = _ordinal_loglik(codes, X, theta)
    for _ in range(100):
        score = _ordinal_scores(codes, X, theta[:p], theta[p:]).sum(axis=0)
        info = _ordinal_information(codes, X, theta)
        try:
            step = np.linalg.solve(info, score)
        except np.linalg.LinAlgError:
            return theta, False
        t = 1.0
        while t > 1e-8 and _ordinal_loglik(codes, X, theta + t * step) < ll - 1e-12 * abs(ll):
            t /= 2
        if t <= 1e-8:
            return theta, False
        theta = theta + t * step
        ll = _ordinal_loglik(codes, X, theta)
        if float(score @ step) < 1e-12 * max(1.0, abs(ll)):
            return theta, True
    return theta, False
