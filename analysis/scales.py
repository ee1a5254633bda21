"""Scale questions in a design of one's own (issue 27): means per cell, the declared pairwise tests and a
mixed model whose formula is written once (:func:`stimuli.model_formulas.design_scale_formula`) and used
both here and in the R script the report writes (``analysis_scales.R``).

* :func:`cell_means`: mean score per cell of the design's factors, with a percentile bootstrap CI resampling
  participants (the ratio of their sums to their counts).
* :func:`declared_comparisons`: for each (factor, a, b, test) the spec declares: ``wilcoxon`` (a factor
  within participants: signed-rank test of each participant's mean a - mean b) or ``mann-whitney`` (between
  participants: U test of the participant means at a against those at b).
* :func:`mixed_model`: linear mixed model ``score ~ factors and interactions + (1 | participant) +
  (1 | stimulus_id)`` fitted by REML with statsmodels ``MixedLM`` (participant as the group, the item as a
  variance component; participants and items are crossed, and statsmodels fits crossed intercepts this way).
* :func:`ordinal_model`: for a Likert question (:func:`is_likert`), the proportional-odds model of the same
  fixed part (statsmodels OrderedModel; participant-clustered SEs: statsmodels has no mixed ordinal model).
* :func:`r_script`: lme4::lmer (and ordinal::clm for a Likert question) of the same formula texts.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd

from analysis.errors import AnalysisOptionError
from analysis.stats import paired_differences, ratio_bootstrap_ci, wilcoxon_signed_rank
from stimuli.model_formulas import ModelFormula, design_scale_formula


def with_factor_columns(answers: pd.DataFrame) -> pd.DataFrame:
    """The answers with the derived factor columns ``emotion`` (visual, else audio) and ``congruence``."""
    a = answers.copy()
    a["emotion"] = a["visual_emotion"].where(a["visual_emotion"] != "", a["audio_emotion"])
    both = (a["visual_emotion"] != "") & (a["audio_emotion"] != "")
    a["congruence"] = np.where(~both, "", np.where(a["visual_emotion"] == a["audio_emotion"], "matched",
                                                   "mismatched"))
    return a


def _used_factors(sub: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """The factors that vary among the answers (a factor with one level has nothing to estimate)."""
    return [f for f in factors if sub[f].nunique() > 1]


def cell_means(answers: pd.DataFrame, *, question: str, factors: Sequence[str], n_boot: int = 2000,
               ci: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Columns: the factors, n_participants, n_answers, mean, sd, ci_low, ci_high (one row per cell)."""
    sub = answers[answers["question"] == question]
    fs = list(factors)
    rows = []
    for k, (cell, s) in enumerate(sub.groupby(fs, sort=True) if fs else [((), sub)]):
        cell = cell if isinstance(cell, tuple) else (cell,)
        per = s.groupby("participant")["score"].agg(["sum", "size"])
        lo, hi = ratio_bootstrap_ci(per["sum"].to_numpy(), per["size"].to_numpy(), n_boot=n_boot, ci=ci,
                                    random_state=random_state + 900 + k)
        sc = s["score"].to_numpy(dtype=float)
        rows.append({**dict(zip(fs, cell)), "n_participants": int(len(per)), "n_answers": int(len(sc)),
                     "mean": float(sc.mean()), "sd": float(sc.std(ddof=1)) if len(sc) > 1 else float("nan"),
                     "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=[*fs, "n_participants", "n_answers", "mean", "sd", "ci_low", "ci_high"])


def declared_comparisons(answers: pd.DataFrame, *, question: str,
                         compare: Sequence[tuple[str, str, str, str]], zero_method: str = "pratt",
                         alternative: str = "two-sided") -> pd.DataFrame:
    """One row per declared comparison: factor, a, b, test, n_a, n_b, mean_a, mean_b, statistic, z, p."""
    from scipy.stats import mannwhitneyu

    sub = answers[answers["question"] == question]
    rows = []
    for col, a, b, test in compare:
        if test == "wilcoxon":
            d = paired_differences(sub, dv="score", within=col, a=a, b=b, unit="participant")
            w = wilcoxon_signed_rank(d["diff"].to_numpy(), zero_method=zero_method, alternative=alternative)
            rows.append({"factor": col, "a": a, "b": b, "test": "wilcoxon signed-rank (participants)",
                         "n_a": int(len(d)), "n_b": int(len(d)), "mean_a": float(d["a"].mean()),
                         "mean_b": float(d["b"].mean()), "statistic": w.get("r_plus"), "z": w.get("z"),
                         "p": w.get("p")})
        else:
            ma = sub[sub[col] == a].groupby("participant")["score"].mean()
            mb = sub[sub[col] == b].groupby("participant")["score"].mean()
            if len(ma) == 0 or len(mb) == 0:
                raise AnalysisOptionError(f"question '{question}': compare {a} vs {b}: no participant answered "
                                          f"{'level ' + a if len(ma) == 0 else 'level ' + b}")
            alt = {"two-sided": "two-sided", "greater": "greater", "less": "less"}[alternative]
            u = mannwhitneyu(ma.to_numpy(), mb.to_numpy(), alternative=alt, method="asymptotic")
            rows.append({"factor": col, "a": a, "b": b, "test": "mann-whitney U (participant means)",
                         "n_a": int(len(ma)), "n_b": int(len(mb)), "mean_a": float(ma.mean()),
                         "mean_b": float(mb.mean()), "statistic": float(u.statistic), "z": float("nan"),
                         "p": float(u.pvalue)})
    return pd.DataFrame(rows, columns=["factor", "a", "b", "test", "n_a", "n_b", "mean_a", "mean_b", "statistic",
                                       "z", "p"])


def model_formula(answers: pd.DataFrame, *, question: str, factors: Sequence[str]) -> ModelFormula:
    """The model of ``question``: :func:`design_scale_formula` over the factors that vary in its answers."""
    sub = answers[answers["question"] == question]
    return design_scale_formula(question, tuple(_used_factors(sub, factors)))


def mixed_model(answers: pd.DataFrame, *, question: str, formula: ModelFormula) -> dict[str, Any]:
    """Fit ``formula`` (REML). Returns formula, fixed (term, estimate, se, z, p), random_sd, n, converged."""
    import statsmodels.formula.api as smf

    sub = answers[answers["question"] == question].copy()
    if sub["score"].nunique() < 2:
        raise AnalysisOptionError(f"question '{question}': every answer has the same score; no model to fit")
    fixed_text = f"{formula.response} ~ {' + '.join(formula.fixed) if formula.fixed else '1'}"
    groups, *others = formula.random
    vc = {g: f"0 + C({g})" for g in others}
    for f in ("participant", "stimulus_id"):
        sub[f] = sub[f].astype(str)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm(fixed_text, sub, groups=sub[groups], re_formula="1", vc_formula=vc or None).fit(reml=True)
    fe = fit.fe_params
    rows = [{"term": t, "estimate": float(fe[t]), "se": float(fit.bse_fe[t]), "z": float(fit.tvalues[t]),
             "p": float(fit.pvalues[t])} for t in fe.index]
    rsd = {groups: float(np.sqrt(max(float(fit.cov_re.iloc[0, 0]), 0.0)))}
    for name, v in zip(others, np.atleast_1d(fit.vcomp)):
        rsd[name] = float(np.sqrt(max(float(v), 0.0)))
    return {"formula": formula.formula, "fixed_formula": fixed_text, "method": "statsmodels MixedLM, REML",
            "fixed": rows, "random_sd": rsd, "n": int(len(sub)), "converged": bool(fit.converged)}


def ordinal_formula(formula: ModelFormula) -> ModelFormula:
    """The proportional-odds model of a Likert question: the mixed model's fixed part, no random effects
    (statsmodels has no mixed ordinal model; participant-clustered standard errors instead)."""
    return ModelFormula(formula.name.replace("scale_mixed_", "scale_ordinal_"), formula.response, formula.fixed)


def is_likert(options: Sequence[dict[str, Any]]) -> bool:
    """Three or more options with distinct whole-number scores: an ordinal (Likert) scale."""
    scores = [o.get("score") for o in options]
    return (len(scores) >= 3 and all(isinstance(x, (int, float)) and float(x).is_integer() for x in scores)
            and len(set(scores)) == len(scores))


def ordinal_model(answers: pd.DataFrame, *, question: str, formula: ModelFormula) -> dict[str, Any]:
    """Fit :func:`ordinal_formula` (cumulative logit, statsmodels OrderedModel, BFGS, participant-clustered
    SEs). Returns formula, method, coefficients (term, estimate, se, z, p, odds_ratio), n, converged."""
    import patsy
    from scipy import stats as sps
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    sub = answers[(answers["question"] == question) & answers["score"].notna()].copy()
    if not formula.fixed:
        raise AnalysisOptionError(f"question '{question}': no factor varies, so the ordinal model has no terms")
    X = patsy.dmatrix(" + ".join(formula.fixed), sub, return_type="dataframe").drop(columns="Intercept")
    y = pd.Series(pd.Categorical(sub["score"].astype(int), ordered=True), index=sub.index)
    if len(y.cat.categories) < 2:
        raise AnalysisOptionError(f"question '{question}': every answer has the same score; no model to fit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = OrderedModel(y, X, distr="logit").fit(method="bfgs", disp=False, maxiter=1000, cov_type="cluster",
                                                    cov_kwds={"groups": pd.factorize(sub["participant"])[0]})
    rows = []
    for t in X.columns:
        b, se = float(res.params[t]), float(res.bse[t])
        z = b / se if se > 0 else float("nan")
        rows.append({"term": t, "estimate": b, "se": se, "z": z, "p": float(2 * sps.norm.sf(abs(z))),
                     "odds_ratio": float(np.exp(b))})
    return {"formula": formula.formula, "method": "statsmodels OrderedModel(distr='logit'), BFGS, cluster-robust SE "
            "by participant", "coefficients": rows, "n": int(len(sub)),
            "converged": bool(res.mle_retvals.get("converged", True))}


def r_script(models: dict[str, ModelFormula], answers_file: str = "answers.csv",
             ordinal: dict[str, ModelFormula] | None = None) -> str:
    """``analysis_scales.R``: the mixed model of every scale question refitted with lme4 (same formulas)."""
    lines = ["# analysis_scales.R - written by `emostudy analyze`: the mixed models of the scale questions,",
             "# with the formulas the Python report fitted (stimuli.model_formulas.design_scale_formula).",
             "# Run from the export folder:  Rscript analysis_scales.R", "library(lme4)",
             f"answers <- read.csv(\"{answers_file}\", colClasses = \"character\", na.strings = \"\")",
             "answers <- answers[answers$is_repeat == \"0\" & answers$verdict == \"valid\", ]",
             "answers$score <- as.numeric(answers$score)",
             "answers$emotion <- ifelse(answers$visual_emotion != \"\", answers$visual_emotion, answers$audio_emotion)"]
    if ordinal:
        lines.insert(4, "library(ordinal)")
    for qid, f in models.items():
        lines += [f"# question {qid}",
                  f"fit_{qid} <- lmer({f.formula}, data = subset(answers, question == \"{qid}\"), REML = TRUE)",
                  f"print(summary(fit_{qid}))"]
        if ordinal and qid in ordinal:
            lines += [f"d_{qid} <- subset(answers, question == \"{qid}\")",
                      f"d_{qid}$score <- factor(d_{qid}$score, ordered = TRUE)",
                      f"ord_{qid} <- clm({ordinal[qid].formula}, data = d_{qid}, link = \"logit\")",
                      f"print(summary(ord_{qid}))"]
    return "\n".join(lines) + "\n"
