"""The mixed logit (analysis.glmm, Laplace approximation) against lme4::glmer on the same answers.

Tolerances (written once here): fixed effects within 0.01 log-odds, standard errors within 2% (relative),
Wald z within 0.1 (the issue's bound; measured: < 0.01), random-effect SDs within 0.02, the deviance
(-2 log-likelihood) within 0.01, and the same singular / not singular verdict (lme4::isSingular).
Two datasets: one with clear participant and item variation, one simulated without item variation (near
singular: lme4 and we put the item SD at zero).
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from analysis.models import correctness_mixed_logit

TOL_ESTIMATE = 0.01
TOL_SE_REL = 0.02
TOL_Z = 0.1
TOL_SD = 0.02
TOL_DEVIANCE = 0.01

R_FIT = """
suppressMessages(library(lme4))
d <- read.csv(commandArgs(TRUE)[1], colClasses = "character")
d$correct <- as.integer(d$answer == d$visual_emotion)
d$source <- relevel(factor(d$source), ref = "GT")
f <- suppressMessages(glmer(correct ~ source + (1 | participant) + (1 | stimulus_id), data = d, family = binomial))
cf <- coef(summary(f))
out <- data.frame(name = c(rownames(cf), "sd_participant", "sd_item", "deviance", "singular"),
                  estimate = c(cf[, 1], getME(f, "theta")[c("participant.(Intercept)", "stimulus_id.(Intercept)")],
                               -2 * as.numeric(logLik(f)), as.numeric(isSingular(f))),
                  se = c(cf[, 2], NA, NA, NA, NA), z = c(cf[, 3], NA, NA, NA, NA))
write.csv(out, commandArgs(TRUE)[2], row.names = FALSE)
"""


def _answers(seed: int, n_part: int, n_items: int, sd_part: float, sd_item: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b_p, b_i = rng.normal(0, sd_part, n_part), rng.normal(0, sd_item, n_items)
    effect = {"GT": 0.8, "BL": -0.3, "OURS": 0.2}
    rows = []
    for p in range(n_part):
        for i in rng.choice(n_items, size=n_items // 2, replace=False):
            src = ("GT", "BL", "OURS")[i % 3]
            correct = rng.random() < 1 / (1 + np.exp(-(effect[src] + b_p[p] + b_i[i])))
            rows.append({"participant": f"p{p:02d}", "stimulus_id": f"s{i:02d}", "source": src, "question": "emotion",
                         "visual_emotion": "anger", "answer": "anger" if correct else "fear"})
    return pd.DataFrame(rows)


DATASETS = {
    "participants and items vary": dict(seed=1, n_part=30, n_items=24, sd_part=0.8, sd_item=0.6),
    "no item variation (singular)": dict(seed=3, n_part=24, n_items=18, sd_part=0.4, sd_item=0.0),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_laplace_fit_agrees_with_glmer(name, rscript, tmp_path):
    answers = _answers(**DATASETS[name])
    answers.to_csv(tmp_path / "answers.csv", index=False)
    (tmp_path / "fit.R").write_text(R_FIT)
    proc = subprocess.run([rscript, str(tmp_path / "fit.R"), str(tmp_path / "answers.csv"), str(tmp_path / "r.csv")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = pd.read_csv(tmp_path / "r.csv").set_index("name")
    ours = correctness_mixed_logit(answers)
    r_terms = {"(Intercept)": "Intercept", "sourceBL": "source[BL]", "sourceOURS": "source[OURS]"}
    fixed = {f["term"]: f for f in ours["fixed"]}
    for r_name, term in r_terms.items():
        f, row = fixed[term], r.loc[r_name]
        assert abs(f["estimate"] - row["estimate"]) < TOL_ESTIMATE, (term, f["estimate"], row["estimate"])
        assert abs(f["se"] / row["se"] - 1) < TOL_SE_REL, (term, f["se"], row["se"])
        assert abs(f["z"] - row["z"]) < TOL_Z, (term, f["z"], row["z"])
    assert abs(ours["random_sd"]["participant"] - r.loc["sd_participant", "estimate"]) < TOL_SD
    assert abs(ours["random_sd"]["item"] - r.loc["sd_item", "estimate"]) < TOL_SD
    assert abs(ours["deviance"] - r.loc["deviance", "estimate"]) < TOL_DEVIANCE
    singular_in_r = bool(r.loc["singular", "estimate"])
    assert (ours["singular"] == ["item"]) if singular_in_r else (ours["singular"] == [])
    assert singular_in_r == (name == "no item variation (singular)")
    if singular_in_r:  # said in words
        assert any("singular fit" in n and "item" in n for n in ours["notes"])
    assert ours["converged"]


def test_standard_errors_are_not_a_posterior_spread():
    # The method is maximum likelihood; the SE column is the Hessian's, and the fit is deterministic.
    answers = _answers(**DATASETS["participants and items vary"])
    a, b = correctness_mixed_logit(answers, random_state=0), correctness_mixed_logit(answers, random_state=7)
    assert "Laplace" in a["method"] and "variational" not in a["method"].lower()
    assert a["se_method"].startswith("Hessian")
    assert [f["estimate"] for f in a["fixed"]] == [f["estimate"] for f in b["fixed"]]
    assert [f["contrast"] for f in a["fixed"]] == ["GT (intercept)", "BL vs GT", "OURS vs GT"]


def test_complete_separation_is_said_and_left_without_a_test():
    # BL never answered correctly: its log-odds ratio is minus infinity (glmer stops near -23 with SE 724).
    answers = _answers(seed=5, n_part=20, n_items=12, sd_part=0.5, sd_item=0.3)
    answers.loc[answers["source"] == "BL", "answer"] = "fear"
    fit = correctness_mixed_logit(answers)
    bl = next(f for f in fit["fixed"] if f["contrast"] == "BL vs GT")
    assert all(np.isnan(bl[k]) for k in ("estimate", "se", "z", "p"))
    assert any("BL are all wrong" in n and "complete separation" in n for n in fit["notes"])
    ours = next(f for f in fit["fixed"] if f["contrast"] == "OURS vs GT")
    assert np.isfinite(ours["se"]) and 0 < ours["p"] < 1


def test_one_participant_is_refused_with_the_reason():
    from analysis.errors import AnalysisOptionError

    with pytest.raises(AnalysisOptionError, match="at least two levels of 'participant'"):
        correctness_mixed_logit(_answers(seed=6, n_part=1, n_items=24, sd_part=0.5, sd_item=0.3))


def test_dense_and_sparse_schur_complements_give_the_same_deviance():
    # Every participant rates every item (a dense complement: Cholesky) vs the generic sparse product path.
    from analysis.glmm import _Problem

    rng = np.random.default_rng(2)
    n_p, n_i = 40, 30
    p_codes, i_codes = np.repeat(np.arange(n_p), n_i), np.tile(np.arange(n_i), n_p)
    y = (rng.random(n_p * n_i) < 0.6).astype(float)
    X = np.column_stack([np.ones(n_p * n_i), (i_codes % 2).astype(float)])
    theta, beta = np.array([0.7, 0.4]), np.array([0.3, -0.2])
    a = _Problem(y, X, [p_codes, i_codes])
    b = _Problem(y, X, [p_codes, i_codes])
    b._prepare_pattern()
    b.triples = None  # the generic C' D^-1 C product
    assert a.deviance(theta, beta) == pytest.approx(b.deviance(theta, beta), rel=1e-12)
    # and a dense brute-force Laplace deviance of the same model
    from scipy.special import expit

    u = np.concatenate(a.u)
    Z = np.zeros((n_p * n_i, n_p + n_i))
    Z[np.arange(n_p * n_i), p_codes] = theta[0]
    Z[np.arange(n_p * n_i), n_p + i_codes] = theta[1]
    big, small = a.order
    u = np.concatenate([a.u[0], a.u[1]])
    eta = X @ beta + Z @ u
    w = expit(eta) * (1 - expit(eta))
    M = Z.T @ (Z * w[:, None]) + np.eye(n_p + n_i)
    dev = 2 * np.sum(np.logaddexp(0, eta) - y * eta) + u @ u + np.linalg.slogdet(M)[1]
    assert a.deviance(theta, beta) == pytest.approx(dev, rel=1e-10)
