"""Regression models that respect the design: answers are clustered in participants and in items.

* :func:`correctness_mixed_logit`: mixed-effects logistic regression of correctness (answer == truth) on
  source, with crossed random intercepts for participant and stimulus (item). Fitted with statsmodels'
  ``BinomialBayesMixedGLM`` by variational Bayes (``fit_vb``); reported: posterior means and SDs of the
  fixed effects (log-odds, treatment coding against the reference source), odds ratios, 95% intervals
  mean +/- 1.96 SD, and the random-effect SDs. (A variational posterior, not a maximum-likelihood fit:
  statsmodels has no Laplace/AGQ GLMM; the approximation is stated in the report.)
* :func:`realness_ordinal`: cumulative-logit (proportional odds) model of the realness score on source,
  statsmodels ``OrderedModel`` (distr="logit"), with cluster-robust (participant) standard errors; the
  item and participant effects are not modelled as random there (statsmodels has no mixed ordinal model).

Both formulas are defined once in :mod:`stimuli.model_formulas`; the Psych-DS export writes the same ones
into its ``analysis/analysis.R`` (lme4::glmer, ordinal::clm), so R refits exactly these models.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy import stats as sps

from analysis.errors import AnalysisOptionError
from stimuli.model_formulas import CORRECTNESS_MIXED_LOGIT, REALNESS_ORDINAL

RANDOM_EFFECT_NAMES = {"participant": "participant", "stimulus_id": "item"}
"""Names of the random-effect SDs in the results (random_sd keys) per grouping column."""


def _design(sources: pd.Series, reference: str) -> tuple[pd.DataFrame, list[str]]:
    levels = [reference] + sorted(set(sources) - {reference})
    cols = [f"source[{s}]" for s in levels[1:]]
    X = pd.DataFrame({c: (sources == s).astype(float).to_numpy() for c, s in zip(cols, levels[1:])},
                     index=sources.index)
    return X, levels


_FAST_VB_CLASS: Any = None


def _fast_binomial_vb_class() -> Any:
    """statsmodels' ``BinomialBayesMixedGLM`` with the ELBO and its gradient evaluated at all quadrature
    nodes at once: the same function and gradient (the same sums in another order), ~3x cheaper per step.

    statsmodels loops over its 10 Gauss-Legendre nodes and, at each one, builds a new sparse matrix
    ``exog_vc2.multiply(vc_sd)`` and multiplies it and ``exog_vc`` by a vector. The gradient is linear in
    the per-node vectors, so here they are summed over the nodes first (weights included) and each sparse
    product is done once per step; ``(Z2 * vc_sd)' r`` is ``vc_sd * (Z2' r)``. log(1 + e^x) and the logistic
    function use stable forms built on exp(-|x|): equal to statsmodels' expressions
    where those do not overflow.
    """
    global _FAST_VB_CLASS
    if _FAST_VB_CLASS is not None:
        return _FAST_VB_CLASS
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM, glw

    weights = np.array([w[0] for w in glw])
    nodes = np.array([w[1] for w in glw])

    class FastBinomialBayesMixedGLM(BinomialBayesMixedGLM):
        _cache: tuple[bytes, tuple[np.ndarray, ...]] | None = None

        def _lp_stats(self, fep_mean, fep_sd, vc_mean, vc_sd):
            # np.einsum instead of np.dot: the products are tiny (N x 3), and a multithreaded BLAS call costs more
            # in thread wake-ups than the work on a busy machine (measured: 3x slower per step at load 10).
            tm = np.einsum("nk,k->n", self.exog, fep_mean) + self.exog_vc.dot(vc_mean)
            tv = np.einsum("nk,k->n", self.exog ** 2, fep_sd ** 2) + self.exog_vc2.dot(vc_sd ** 2)
            return tm, tv

        def _node_terms(self, vb_mean: np.ndarray, vb_sd: np.ndarray) -> tuple[np.ndarray, ...]:
            """The linear predictor at every node, its exp(-|.|), and the unpacked parameters; cached for
            the last (mean, sd) because the optimizer asks for the ELBO and its gradient at the same point."""
            key = vb_mean.tobytes() + vb_sd.tobytes()
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            fep_mean, vcp_mean, vc_mean = self._unpack(vb_mean)
            fep_sd, vcp_sd, vc_sd = self._unpack(vb_sd)
            tm, tv = self._lp_stats(fep_mean, fep_sd, vc_mean, vc_sd)
            z = self.rng * nodes                                    # (Q,) Gauss-Legendre nodes on [-rng, rng]
            phi = np.exp(-(z ** 2) / 2) / np.sqrt(2 * np.pi)        # (Q,) standard normal density
            lin = tm[:, None] + np.sqrt(tv)[:, None] * z[None, :]   # (N, Q)
            e = np.exp(-np.abs(lin))                                # (N, Q), in (0, 1]: no overflow
            terms = (fep_mean, vcp_mean, vc_mean, fep_sd, vcp_sd, vc_sd, tm, tv, z, phi, lin, e)
            self._cache = (key, terms)
            return terms

        def vb_elbo(self, vb_mean, vb_sd):
            fep_mean, vcp_mean, vc_mean, fep_sd, vcp_sd, vc_sd, tm, tv, z, phi, lin, e = self._node_terms(vb_mean, vb_sd)
            softplus = np.log1p(e) + np.maximum(lin, 0.0)          # log(1 + exp(lin)), stable
            iv = -self.rng * float(np.einsum("nq,q->", softplus, weights * phi))
            iv += float(np.einsum("n,n->", self.endog, tm))
            iv += self._elbo_common(fep_mean, fep_sd, vcp_mean, vcp_sd, vc_mean, vc_sd)
            return iv + np.sum(np.log(fep_sd)) + np.sum(np.log(vcp_sd)) + np.sum(np.log(vc_sd))

        def vb_elbo_grad(self, vb_mean, vb_sd):
            fep_mean, vcp_mean, vc_mean, fep_sd, vcp_sd, vc_sd, tm, tv, z, phi, lin, e = self._node_terms(vb_mean, vb_sd)
            u = -np.where(lin >= 0, 1.0, e) / (1.0 + e)             # (N, Q): -logistic(lin), stable
            u_sum = np.einsum("nq,q->n", u, weights * phi)                       # sum_q w_q u_q    (N,)
            r_sum = np.einsum("nq,q->n", u, weights * phi * z) / np.sqrt(tv)    # sum_q w_q z_q u_q / sqrt(tv)
            fep_mean_grad = self.rng * np.einsum("n,nk->k", u_sum, self.exog) + np.einsum("n,nk->k", self.endog,
                                                                                         self.exog)
            vc_mean_grad = (self.rng * np.asarray(self.exog_vc.T.dot(u_sum)).ravel()
                            + np.asarray(self.exog_vc.T.dot(self.endog)).ravel())
            fep_sd_grad = self.rng * np.einsum("n,nk->k", r_sum, self.exog ** 2) * fep_sd
            vc_sd_grad = self.rng * vc_sd * np.asarray(self.exog_vc2.T.dot(r_sum)).ravel()
            vcp_mean_grad = np.zeros_like(vcp_mean)
            vcp_sd_grad = np.zeros_like(vcp_sd)
            common = self._elbo_grad_common(fep_mean, fep_sd, vcp_mean, vcp_sd, vc_mean, vc_sd)
            fep_mean_grad = fep_mean_grad + common[0]
            fep_sd_grad = fep_sd_grad + common[1] + 1 / fep_sd
            vcp_mean_grad = vcp_mean_grad + common[2]
            vcp_sd_grad = vcp_sd_grad + common[3] + 1 / vcp_sd
            vc_mean_grad = vc_mean_grad + common[4]
            vc_sd_grad = vc_sd_grad + common[5] + 1 / vc_sd
            return (np.concatenate((fep_mean_grad, vcp_mean_grad, vc_mean_grad)),
                    np.concatenate((fep_sd_grad, vcp_sd_grad, vc_sd_grad)))

    _FAST_VB_CLASS = FastBinomialBayesMixedGLM
    return _FAST_VB_CLASS


def correctness_mixed_logit(answers: pd.DataFrame, *, question: str = "emotion", truth: str = "visual_emotion",
                            reference: str | None = None, random_state: int = 0) -> dict[str, Any]:
    """Fit correct ~ source + (1|participant) + (1|stimulus) by variational Bayes (start seeded by
    ``random_state``).

    Returns a dict: formula, reference, method, n_answers, n_participants, n_items, seconds, fixed (list of
    dicts term, estimate, sd, ci_low, ci_high, odds_ratio, z, p_approx) and random_sd (participant, item).
    """
    from threadpoolctl import threadpool_limits

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
    # One random intercept per grouping column of the formula: sparse indicator columns side by side (a dense
    # answers x (participants + items) matrix would not fit for big studies).
    codes, levels = zip(*(pd.factorize(d[g]) for g in spec.random))
    offsets = np.cumsum([0] + [len(u) for u in levels])
    rows = np.concatenate([np.arange(len(d))] * len(codes))
    cols = np.concatenate([c + off for c, off in zip(codes, offsets)])
    exog_vc = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(d), int(offsets[-1])))
    ident = np.concatenate([np.full(len(u), k, dtype=int) for k, u in enumerate(levels)])
    vc_names = [RANDOM_EFFECT_NAMES.get(g, g) for g in spec.random]
    p_uni, i_uni = levels[spec.random.index("participant")], levels[spec.random.index("stimulus_id")]
    t0 = time.perf_counter()
    # fit_vb draws its starting point at random: seeded, so that the same data give the same estimates.
    model = _fast_binomial_vb_class()(y, X.to_numpy(), exog_vc, ident, vcp_p=1.0, fe_p=2.0,
                                      fep_names=list(X.columns), vcp_names=vc_names)
    # One BLAS thread: each of the ~400 steps does a few vector operations of length p (L-BFGS-B) and N x 3
    # products; waking a thread pool for them cost more than the work (14x for L-BFGS-B alone at load 10).
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", RuntimeWarning)
        # L-BFGS-B instead of statsmodels' default BFGS: the same optimum (checked to 1e-4 on 2,700 answers)
        # with O(p) instead of O(p^2) memory and time per step; p = 2 x (fixed effects + participants + items).
        res = model.fit_vb(rng=np.random.default_rng(random_state), fit_method="L-BFGS-B",
                           minim_opts={"maxiter": 5000})
    seconds = time.perf_counter() - t0
    fixed = []
    for j, name in enumerate(X.columns):
        m, s = float(res.fe_mean[j]), float(res.fe_sd[j])
        z = m / s if s > 0 else float("nan")
        fixed.append({"term": name, "estimate": m, "sd": s, "ci_low": m - 1.96 * s, "ci_high": m + 1.96 * s,
                      "odds_ratio": float(np.exp(m)), "z": z, "p_approx": float(2 * sps.norm.sf(abs(z)))})
    vc = {n: float(np.exp(res.vcp_mean[k])) for k, n in enumerate(vc_names)}
    retvals = getattr(res, "optim_retvals", None)
    converged = bool(getattr(retvals, "success", True))
    return {"formula": spec.formula,
            "reference": reference, "method": "statsmodels BinomialBayesMixedGLM.fit_vb (variational Bayes, L-BFGS-B)",
            "n_answers": int(len(d)), "n_participants": int(len(p_uni)), "n_items": int(len(i_uni)),
            "seconds": seconds, "fixed": fixed, "random_sd": vc, "converged": converged}


def realness_ordinal(answers: pd.DataFrame, *, question: str = "realness", reference: str | None = None) -> dict[str, Any]:
    """Fit the proportional-odds model P(score <= k) = logit^-1(theta_k - x'beta) of realness on source.

    Positive beta: higher realness than the reference source. Returns a dict: formula, reference, method,
    n_answers, seconds, coefficients (term, estimate, se, z, p, ci_low, ci_high, odds_ratio), thresholds.
    """
    from statsmodels.miscmodels.ordinal_model import OrderedModel

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
    model = OrderedModel(y, X, distr="logit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(method="bfgs", disp=False, maxiter=500, cov_type="cluster", cov_kwds={"groups": groups})
    seconds = time.perf_counter() - t0
    params, bse = res.params, res.bse
    coefs = []
    for name in X.columns:
        b, se = float(params[name]), float(bse[name])
        z = b / se if se > 0 else float("nan")
        coefs.append({"term": name, "estimate": b, "se": se, "z": z, "p": float(2 * sps.norm.sf(abs(z))),
                      "ci_low": b - 1.96 * se, "ci_high": b + 1.96 * se, "odds_ratio": float(np.exp(b))})
    cut = model.transform_threshold_params(params.to_numpy())
    cats = list(y.cat.categories)
    thresholds = [{"between": f"{cats[k]}|{cats[k + 1]}", "value": float(cut[k + 1])} for k in range(len(cats) - 1)]
    return {"formula": REALNESS_ORDINAL.formula, "reference": reference,
            "method": "statsmodels OrderedModel(distr='logit'), BFGS, cluster-robust SE by participant",
            "n_answers": int(len(d)), "seconds": seconds, "coefficients": coefs, "thresholds": thresholds,
            "converged": bool(res.mle_retvals.get("converged", True))}
