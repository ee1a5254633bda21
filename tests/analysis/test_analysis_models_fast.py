"""analysis.models: the vectorised variational objective equals statsmodels' own (same ELBO, same gradient)
at random points, and the fit reaches the same estimates as statsmodels' class (issue 19, speed)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import sparse


def _problem(seed: int = 0, n_p: int = 30, n_i: int = 12):
    rng = np.random.default_rng(seed)
    p = np.repeat(np.arange(n_p), n_i)
    i = np.tile(np.arange(n_i), n_p)
    src = i % 3
    eta = -0.3 + 0.8 * (src == 1) - 0.5 * (src == 2) + rng.normal(0, 0.7, n_p)[p] + rng.normal(0, 0.4, n_i)[i]
    y = (rng.random(len(p)) < 1 / (1 + np.exp(-eta))).astype(float)
    X = np.column_stack([np.ones(len(p)), src == 1, src == 2]).astype(float)
    rows = np.r_[np.arange(len(p)), np.arange(len(p))]
    Z = sparse.csr_matrix((np.ones(len(rows)), (rows, np.r_[p, n_p + i])), shape=(len(p), n_p + n_i))
    ident = np.r_[np.zeros(n_p, dtype=int), np.ones(n_i, dtype=int)]
    return y, X, Z, ident


def test_objective_and_gradient_equal_statsmodels():
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    from analysis.models import _fast_binomial_vb_class

    args = _problem()
    ref = BinomialBayesMixedGLM(*args, vcp_p=1.0, fe_p=2.0)
    fast = _fast_binomial_vb_class()(*args, vcp_p=1.0, fe_p=2.0)
    rng = np.random.default_rng(3)
    n = ref.k_fep + ref.k_vcp + ref.k_vc
    for scale in (0.1, 1.0, 4.0):  # 4.0: linear predictors far out where the stable forms matter
        mean, sd = rng.normal(size=n) * scale, np.exp(rng.normal(size=n) * 0.3 - 1)
        assert fast.vb_elbo(mean, sd) == pytest.approx(ref.vb_elbo(mean, sd), rel=1e-12)
        g_ref, g_fast = ref.vb_elbo_grad(mean, sd), fast.vb_elbo_grad(mean, sd)
        for a, b in zip(g_ref, g_fast):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * np.abs(a).max())
    # The cache answers only for the same point: another point gives another value.
    m2 = rng.normal(size=n)
    assert fast.vb_elbo(m2, sd) == pytest.approx(ref.vb_elbo(m2, sd), rel=1e-12)


def test_fit_matches_statsmodels_class():
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    from analysis.models import _fast_binomial_vb_class

    args = _problem(seed=1)
    fits = []
    for cls in (BinomialBayesMixedGLM, _fast_binomial_vb_class()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(cls(*args, vcp_p=1.0, fe_p=2.0).fit_vb(rng=np.random.default_rng(0), fit_method="L-BFGS-B",
                                                               minim_opts={"maxiter": 5000}))
    np.testing.assert_allclose(fits[1].fe_mean, fits[0].fe_mean, atol=2e-3)
    np.testing.assert_allclose(np.exp(fits[1].vcp_mean), np.exp(fits[0].vcp_mean), atol=2e-2)
