"""Maximum-likelihood logistic regression with crossed random intercepts, by the Laplace approximation
(the method of lme4::glmer with its default nAGQ = 1).

Model: ``P(y = 1) = logistic(X beta + b_g1[i] + b_g2[i])`` with ``b_gk ~ N(0, sd_k^2)`` independent, one
random intercept per level of each grouping column (crossed, not nested). In lme4's parametrisation the
random effects are ``b = Lambda u`` with ``Lambda = diag(theta_k)`` per level and ``u ~ N(0, I)``; the
Laplace deviance of ``(theta, beta)`` is

    d(theta, beta) = sum_i dev_i(u*) + |u*|^2 + log det(Lambda' Z' W Z Lambda + I)

at the conditional mode ``u*`` (penalised iteratively reweighted least squares, Newton steps with step
halving), with ``W`` the binomial weights ``mu (1 - mu)`` there. The estimates minimise ``d`` over
``theta >= 0`` and ``beta``: first ``theta`` alone with ``beta`` in the inner fit (lme4's nAGQ = 0 stage,
L-BFGS-B), then both together by Newton steps with a finite-difference Hessian (step 1e-4; step halving;
stopped when a step moves no parameter by 1e-3, which leaves an error of order 1e-6), falling back to
L-BFGS-B where the Hessian is not positive definite. ``d`` is even in each theta, so a Newton step may cross
zero; the SD is |theta|. The random-effect SDs are ``theta`` (the binomial scale is 1).

Standard errors: as ``vcov()`` of a glmer fit (whose ``calc.derivs`` is on by default), from the Hessian of
``d`` over ``(theta, beta)`` by finite differences: ``V = 2 H^-1``, its ``beta`` block (the Hessian of the
last Newton step, at most 1e-3 from the estimates). Where that Hessian is not positive definite, the
conditional one, ``(X'WX - X'WZ Lambda M^-1 Lambda Z'WX)^-1`` at the optimum's ``theta`` (lme4's fallback),
and the fit says so. Wald z = estimate / SE, two-sided normal p, 95% interval estimate +/- 1.959964 SE.

With two grouping columns the ``q x q`` system ``M = Lambda' Z' W Z Lambda + I`` is solved by eliminating
the larger group (its block is diagonal) and factoring the Schur complement of the smaller one (dense
Cholesky when it is small and dense, sparse LU otherwise; its sparsity pattern is computed once), so that
the fit of the 100,000-answer benchmark (25,875 answers to the emotion question, 1,725 participants, 720
items) takes 0.7 s of CPU (docs/benchmarks.md).

Checked against lme4::glmer (R 4.2.2, lme4 1.1-31) in tests/analysis/test_analysis_glmm_vs_lme4.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import linalg, optimize, sparse
from scipy import stats as sps
from scipy.sparse import linalg as splinalg
from scipy.special import expit

SINGULAR_TOL = 1e-4
"""A random-effect SD (theta) below this is reported as a singular fit (lme4::isSingular's default tol)."""

Z95 = float(sps.norm.ppf(0.975))


@dataclass
class LaplaceFit:
    """The fit: fixed effects (estimate, se), random-effect SDs, deviance and what went wrong, in words."""

    names: list[str]
    beta: np.ndarray
    se: np.ndarray
    theta: np.ndarray
    group_names: list[str]
    deviance: float
    converged: bool
    singular: list[str]
    se_method: str
    iterations: int
    notes: list[str] = field(default_factory=list)

    @property
    def z(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.beta / self.se

    @property
    def p(self) -> np.ndarray:
        return 2 * sps.norm.sf(np.abs(self.z))

    @property
    def loglik(self) -> float:
        return -self.deviance / 2


class _Problem:
    """The data of one fit and the Laplace deviance of (theta, beta); remembers the last mode as a start."""

    def __init__(self, y: np.ndarray, X: np.ndarray, groups: list[np.ndarray]):
        if not 1 <= len(groups) <= 2:
            raise ValueError("one or two grouping columns (random intercepts) are supported")
        self.y = np.asarray(y, dtype=float)
        self.X = np.asarray(X, dtype=float)
        self.n, self.p = self.X.shape
        self.codes = [np.asarray(g, dtype=np.int64) for g in groups]
        self.sizes = [int(g.max()) + 1 for g in self.codes]
        # Eliminate the larger group (diagonal block), keep the smaller one in the dense Schur complement.
        self.order = sorted(range(len(groups)), key=lambda k: -self.sizes[k])
        self.u = [np.zeros(s) for s in self.sizes]

    # --- the inner problem: the conditional mode of u at (theta, beta)
    def _eta(self, theta, offset, u):
        eta = offset.copy()
        for k, c in enumerate(self.codes):
            eta += theta[k] * u[k][c]
        return eta

    def _prepare_pattern(self) -> None:
        """The sparsity of the cross block (the distinct (large, small) level pairs of the rows) and of the
        Schur complement of the small group, computed once: each evaluation then only sums weights into them."""
        a, b = self.order
        na, nb = self.sizes[a], self.sizes[b]
        uniq, inv = np.unique(self.codes[a] * nb + self.codes[b], return_inverse=True)
        self.pair_of_row = inv.ravel()
        self.pa, self.pb = uniq // nb, uniq % nb
        n_pairs = len(uniq)
        counts = np.bincount(self.pa, minlength=na)  # uniq is sorted: the pairs of each level a are contiguous
        self.triples = None
        if int((counts.astype(np.int64) ** 2).sum()) <= 10_000_000:
            # every (pair p, pair q) of the same large level with p <= q: their small levels are i <= j (the pairs
            # of a level are sorted by the small level), an upper-triangle entry of S
            starts = np.cumsum(counts) - counts
            rep = counts[self.pa]
            t1 = np.repeat(np.arange(n_pairs), rep)
            t2 = starts[self.pa[t1]] + (np.arange(t1.size) - np.repeat(np.cumsum(rep) - rep, rep))
            keep = t1 <= t2
            t1, t2 = t1[keep], t2[keep]
            i, j = self.pb[t1], self.pb[t2]
            diag_keys = np.arange(nb) * (nb + 1)
            upper, up_inv = np.unique(np.concatenate([i * nb + j, diag_keys]), return_inverse=True)
            up_inv = up_inv.ravel()
            ui, uj = upper // nb, upper % nb
            # the full symmetric pattern: the upper entries and their mirrors, in CSC order (by column, then row)
            rows = np.concatenate([ui, uj[ui != uj]])
            cols = np.concatenate([uj, ui[ui != uj]])
            src = np.concatenate([np.arange(len(upper)), np.flatnonzero(ui != uj)])
            order = np.lexsort((rows, cols))
            indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=nb))])
            self.triples = (t1, t2, up_inv[: t1.size], up_inv[t1.size:], len(upper), src[order], rows[order], indptr)

    def _system(self, theta, w):
        """Diagonal blocks of M (per group) and the cross block's entries per (large, small) level pair."""
        diag = [theta[k] ** 2 * np.bincount(c, weights=w, minlength=self.sizes[k]) + 1.0
                for k, c in enumerate(self.codes)]
        cross = None
        if len(self.codes) == 2:
            a, b = self.order
            if not hasattr(self, "pair_of_row"):
                self._prepare_pattern()
            cross = theta[a] * theta[b] * np.bincount(self.pair_of_row, weights=w, minlength=len(self.pa))
        return diag, cross

    def _factor(self, diag, cross):
        """(solve, logdet) for M."""
        if cross is None:
            d = diag[0]
            return (lambda r: [r[0] / d]), float(np.sum(np.log(d)))
        a, b = self.order
        na, nb = self.sizes[a], self.sizes[b]
        da = diag[a]
        pa, pb = self.pa, self.pb
        if self.triples is not None:  # S = diag(d_b) - C' diag(1/d_a) C on the precomputed pattern
            t1, t2, up_idx, up_diag, n_up, src, rows, indptr = self.triples
            q = cross / np.sqrt(da[pa])
            up = -np.bincount(up_idx, weights=q[t1] * q[t2], minlength=n_up)
            up[up_diag] += diag[b]
            schur = sparse.csc_matrix((up[src], rows, indptr), shape=(nb, nb))
        else:
            C = sparse.csr_matrix((cross, (pa, pb)), shape=(na, nb))
            schur = sparse.csc_matrix(sparse.diags(diag[b]) - C.T @ sparse.diags(1.0 / da) @ C)
        # Dense Cholesky when the complement is small and dense (every participant saw most items); a sparse LU
        # (symmetric ordering, no pivoting: the matrix is positive definite) when it is sparse (batches: items
        # meet only within their batch) or large.
        if nb <= 2500 and schur.nnz > 0.05 * nb * nb:
            cf = linalg.cho_factor(schur.toarray(), lower=True, check_finite=False)
            logdet_s = 2.0 * float(np.sum(np.log(np.diag(cf[0]))))
            solve_s = lambda r: linalg.cho_solve(cf, r, check_finite=False)  # noqa: E731
        else:
            lu = splinalg.splu(schur, permc_spec="MMD_AT_PLUS_A", options={"SymmetricMode": True},
                               diag_pivot_thresh=0.0)
            logdet_s = float(np.sum(np.log(np.abs(lu.U.diagonal()))))
            solve_s = lu.solve

        def solve(r):
            ra, rb = r[a], r[b]
            xb = solve_s(rb - np.bincount(pb, weights=cross * (ra / da)[pa], minlength=nb))
            xa = (ra - np.bincount(pa, weights=cross * xb[pb], minlength=na)) / da
            out = [None, None]
            out[a], out[b] = xa, xb
            return out

        return solve, float(np.sum(np.log(da))) + logdet_s

    def _penalised(self, eta, u):
        # Bernoulli deviance: 2 sum log(1 + e^eta) - 2 sum y eta
        return 2.0 * float(np.sum(np.logaddexp(0.0, eta)) - self.y @ eta) + sum(float(v @ v) for v in u)

    def mode(self, theta, beta, *, tol=1e-11, max_iter=60):
        """PIRLS: the u that minimises deviance + |u|^2; returns (u, eta, w, objective)."""
        offset = self.X @ beta
        u = [v.copy() for v in self.u]
        eta = self._eta(theta, offset, u)
        obj = self._penalised(eta, u)
        for _ in range(max_iter):
            mu = expit(eta)
            w = mu * (1.0 - mu)
            r = self.y - mu
            # half-gradient of the objective in u and the Newton system M delta = -grad
            grad = [u[k] - theta[k] * np.bincount(c, weights=r, minlength=self.sizes[k])
                    for k, c in enumerate(self.codes)]
            solve, _ = self._factor(*self._system(theta, w))
            delta = solve([-g for g in grad])
            decrement = -sum(float(g @ d) for g, d in zip(grad, delta))
            step = 1.0
            while True:
                u_new = [v + step * d for v, d in zip(u, delta)]
                eta_new = self._eta(theta, offset, u_new)
                obj_new = self._penalised(eta_new, u_new)
                if obj_new <= obj + 1e-12 * abs(obj) or step < 1e-8:
                    break
                step /= 2
            u, eta, obj = u_new, eta_new, obj_new
            if decrement < tol * max(1.0, abs(obj)):
                break
        mu = expit(eta)
        return u, eta, mu * (1.0 - mu), obj

    def deviance(self, theta, beta, *, keep=True):
        u, eta, w, obj = self.mode(theta, beta)
        if keep:
            self.u = u
        _, logdet = self._factor(*self._system(theta, w))
        return obj + logdet

    # --- the nAGQ = 0 stage: beta and u together at theta
    def joint_mode(self, theta, beta0, *, tol=1e-10, max_iter=60):
        """Minimise deviance + |u|^2 over (beta, u) at theta (Newton on the Schur complement in beta)."""
        beta = beta0.copy()
        u = [v.copy() for v in self.u]
        eta = self._eta(theta, self.X @ beta, u)
        obj = self._penalised(eta, u)
        for _ in range(max_iter):
            mu = expit(eta)
            w = mu * (1.0 - mu)
            r = self.y - mu
            gu = [u[k] - theta[k] * np.bincount(c, weights=r, minlength=self.sizes[k])
                  for k, c in enumerate(self.codes)]
            gb = -(self.X.T @ r)
            solve, _ = self._factor(*self._system(theta, w))
            # cross block Lambda Z' W X, per group
            zwx = [theta[k] * np.stack([np.bincount(c, weights=w * self.X[:, j], minlength=self.sizes[k])
                                        for j in range(self.p)], axis=1) for k, c in enumerate(self.codes)]
            minv_zwx = [solve([z[:, j] for z in zwx]) for j in range(self.p)]
            xwx = self.X.T @ (self.X * w[:, None])
            schur = xwx - np.array([[sum(float(zwx[k][:, i] @ minv_zwx[j][k]) for k in range(len(u)))
                                     for j in range(self.p)] for i in range(self.p)])
            mg = solve([-g for g in gu])
            rhs = -gb - np.array([sum(float(zwx[k][:, i] @ mg[k]) for k in range(len(u))) for i in range(self.p)])
            db = np.linalg.lstsq(schur, rhs, rcond=None)[0]  # exact when schur is regular (the usual case)
            du = [mg[k] - sum(minv_zwx[j][k] * db[j] for j in range(self.p)) for k in range(len(u))]
            decrement = -(float(gb @ db) + sum(float(g @ d) for g, d in zip(gu, du)))
            step = 1.0
            while True:
                b_new = beta + step * db
                u_new = [v + step * d for v, d in zip(u, du)]
                eta_new = self._eta(theta, self.X @ b_new, u_new)
                obj_new = self._penalised(eta_new, u_new)
                if obj_new <= obj + 1e-12 * abs(obj) or step < 1e-8:
                    break
                step /= 2
            beta, u, eta, obj = b_new, u_new, eta_new, obj_new
            if decrement < tol * max(1.0, abs(obj)):
                break
        self.u = u
        mu = expit(eta)
        _, logdet = self._factor(*self._system(theta, mu * (1.0 - mu)))
        return beta, obj + logdet, schur

    def conditional_vcov(self, theta, beta):
        """(X'WX - X'WZ Lambda M^-1 Lambda Z'WX)^-1 at the mode (lme4's RX-based vcov)."""
        u, eta, w, _ = self.mode(theta, beta)
        solve, _ = self._factor(*self._system(theta, w))
        zwx = [theta[k] * np.stack([np.bincount(c, weights=w * self.X[:, j], minlength=self.sizes[k])
                                    for j in range(self.p)], axis=1) for k, c in enumerate(self.codes)]
        minv = [solve([z[:, j] for z in zwx]) for j in range(self.p)]
        xwx = self.X.T @ (self.X * w[:, None])
        schur = xwx - np.array([[sum(float(zwx[k][:, i] @ minv[j][k]) for k in range(len(u)))
                                 for j in range(self.p)] for i in range(self.p)])
        return np.linalg.inv(schur)


def _hessian(f, x, h=1e-4, *, cheap=False):
    """Finite-difference Hessian and central gradient of f at x, and f(x). Off-diagonal terms: the 4-point
    central formula (as lme4's deriv12), or with ``cheap`` one extra point per pair,
    (f(x+hi+hj) - f(x+hi) - f(x+hj) + f(x)) / h^2 (for Newton steps, not for standard errors). f is even in the
    theta coordinates, so points at negative theta are evaluated as they are: d(-theta) = d(theta)."""
    k = len(x)
    f0 = f(x)
    H = np.zeros((k, k))
    g = np.zeros(k)
    fp, fm = np.zeros(k), np.zeros(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        fp[i], fm[i] = f(x + e), f(x - e)
        g[i] = (fp[i] - fm[i]) / (2 * h)
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h ** 2
    for i in range(k):
        for j in range(i + 1, k):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = h, h
            if cheap:
                H[i, j] = (f(x + ei + ej) - fp[i] - fp[j] + f0) / (h * h)
            else:
                H[i, j] = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (4 * h * h)
            H[j, i] = H[i, j]
    return H, g, f0


def fit_laplace(y: np.ndarray, X: np.ndarray, names: list[str], groups: list[np.ndarray],
                group_names: list[str]) -> LaplaceFit:
    """Fit the model of the module docstring. ``groups``: integer codes 0..L-1 per grouping column."""
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the dense products here are small, and on a busy machine waking a thread pool for each
    # costs more than the work (measured: a 720 x 720 Cholesky took 0.4 s at load 12 with the default pool).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_laplace(y, X, names, groups, group_names)


def _fit_laplace(y: np.ndarray, X: np.ndarray, names: list[str], groups: list[np.ndarray],
                 group_names: list[str]) -> LaplaceFit:
    prob = _Problem(y, X, groups)
    ng = len(groups)
    # Start: the fixed-effects logistic fit (a few Newton steps), theta = 1 (lme4's start).
    beta = np.zeros(prob.p)
    for _ in range(25):
        mu = expit(prob.X @ beta)
        w = mu * (1 - mu) + 1e-12
        step = np.linalg.solve(prob.X.T @ (prob.X * w[:, None]) + 1e-8 * np.eye(prob.p), prob.X.T @ (prob.y - mu))
        beta = beta + step
        if np.max(np.abs(step)) < 1e-8:
            break
    notes: list[str] = []
    # Stage 1 (nAGQ = 0): theta alone, beta and u in the inner fit.
    state = {"beta": beta}

    def stage1(theta):
        b, dev, _ = prob.joint_mode(np.abs(theta), state["beta"])
        state["beta"] = b
        return dev

    r1 = optimize.minimize(stage1, np.ones(ng), method="L-BFGS-B", bounds=[(0, None)] * ng,
                           options={"maxiter": 200})
    theta1 = np.maximum(r1.x, 0.0)
    beta1, _, _ = prob.joint_mode(theta1, state["beta"])

    # Stage 2: the Laplace deviance over (theta, beta). Newton steps with a finite-difference Hessian from the
    # stage-1 estimates (close: a few steps), step halving when a step does not lower the deviance; L-BFGS-B
    # (central-difference gradient) when the Hessian is not positive definite on the way.
    def dev(x):
        return prob.deviance(np.abs(x[:ng]), x[ng:])

    x = np.concatenate([theta1, beta1])
    newton_ok, iterations, H = False, int(r1.nit), None
    for _ in range(10):
        H, g, f0 = _hessian(dev, x, cheap=True)
        try:
            np.linalg.cholesky(H)
            step = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            break
        iterations += 1
        t, f1 = 1.0, dev(x - step)
        while f1 > f0 + 1e-10 * abs(f0) and t > 1e-4:
            t /= 2
            f1 = dev(x - t * step)
        if f1 > f0 + 1e-10 * abs(f0):
            break
        x, deviance = x - t * step, f1
        if np.max(np.abs(t * step)) < 1e-3:
            # converged: the error left after a Newton step of s is O(s^2) (< 1e-6 here); the Hessian of this
            # last step (at most 1e-3 away) gives the standard errors
            newton_ok = True
            break
    message = "Newton steps converged"
    if not newton_ok:
        def dev_and_grad(x, h=1e-5):
            f0 = dev(x)
            g = np.zeros_like(x)
            for i in range(len(x)):
                e = np.zeros_like(x)
                e[i] = h
                g[i] = (dev(x + e) - dev(x - e)) / (2 * h)
            return f0, g

        x0 = x.copy()
        x0[:ng] = np.abs(x0[:ng])
        r2 = optimize.minimize(dev_and_grad, x0, jac=True, method="L-BFGS-B",
                               bounds=[(0, None)] * ng + [(None, None)] * prob.p,
                               options={"maxiter": 500, "ftol": 1e-13, "gtol": 1e-7})
        x, iterations = r2.x.copy(), iterations + int(r2.nit)
        message = str(r2.message)
        H, g, deviance = _hessian(dev, x)
    x[:ng] = np.abs(x[:ng])
    theta, beta = x[:ng], x[ng:]
    H = (H + H.T) / 2
    singular = [group_names[k] for k in range(ng) if theta[k] < SINGULAR_TOL]
    # Convergence as lme4 checks it: the gradient scaled by the Hessian (Newton step) small; the gradient of a
    # theta on its bound at 0 pointing outwards does not count.
    free = np.array([not (k < ng and theta[k] < SINGULAR_TOL and g[k] >= 0) for k in range(len(x))])
    converged = True
    try:
        scaled = np.linalg.solve(H[np.ix_(free, free)], g[free])
        if np.max(np.abs(scaled)) > 2e-3:
            converged = False
            notes.append(f"the optimiser stopped ({message}) with a scaled gradient of "
                         f"{np.max(np.abs(scaled)):.2g} (> 0.002)")
    except np.linalg.LinAlgError:
        pass
    se_method = "Hessian of the Laplace deviance over (theta, beta), finite differences"
    se = None
    try:
        V = 2 * np.linalg.inv(H)
        vb = np.diag(V)[ng:]
        if np.all(np.isfinite(vb)) and np.all(vb > 0) and np.all(np.linalg.eigvalsh(H) > 0):
            se = np.sqrt(vb)
    except np.linalg.LinAlgError:
        pass
    if se is None:
        se_method = "conditional on the random-effect SDs (the Hessian over (theta, beta) is not positive definite)"
        notes.append("the Hessian of the deviance is not positive definite: standard errors conditional on the "
                     "estimated random-effect SDs")
        se = np.sqrt(np.diag(prob.conditional_vcov(theta, beta)))
    return LaplaceFit(names=list(names), beta=beta, se=se, theta=theta, group_names=list(group_names),
                      deviance=deviance, converged=converged, singular=singular, se_method=se_method,
                      iterations=iterations, notes=notes)
