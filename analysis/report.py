"""``emostudy analyze``: from an export folder to ``report.html``, ``figures/``, ``tables/*.csv`` and
``results.json``.

:func:`compute` runs every analysis that the answers allow (Task 1 parts when the emotion / realness /
aspects questions are present, Task 2 parts when the primary question is), :func:`write_outputs` writes
the files. Same inputs and options (``seed`` included) give the same numbers and the same
results.json bytes. Keys of results.json: docs/analysis.md.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from analysis import agreement, figures, paper, report_text, task1, task2
from analysis.cleaning import Cleaned, clean
from analysis.errors import AnalysisError, AnalysisOptionError
from analysis.flow import participant_flow
from analysis.io import Export, load_export
from analysis.sample import sample_description
from analysis.stats import paired_differences, ratio_bootstrap_ci
from stimuli.emotions import EMOTIONS

RESULTS_SCHEMA_VERSION = 1


@dataclass
class AnalysisOptions:
    """Every choice of the analysis; all of them are written into results.json and the methods text.

    compare: the two sources of the realness Wilcoxon test (a, b), None = OURS vs BL when present, else the
    first two non-GT sources. pairing_unit: participant (mean per participant, default), item or response.
    zero_method: pratt (default, Cureton 1967 normal approximation), wilcox or zsplit. alternative of the
    Wilcoxon tests: two-sided (default), greater, less (a > b). n_boot/ci/seed: bootstrap over participants.
    chance: accuracy under guessing; None (default) = 1 / number of options of the emotion question (1/6
    for the six emotions). verdict_source: recomputed (default) or server.
    mixed_models: fit the mixed logit and ordinal models (slow on big studies).
    """

    seed: int = 0
    n_boot: int = 2000
    ci: float = 0.95
    compare: tuple[str, str] | None = None
    pairing_unit: Literal["participant", "item", "response"] = "participant"
    zero_method: Literal["pratt", "wilcox", "zsplit"] = "pratt"
    alternative: Literal["two-sided", "greater", "less"] = "two-sided"
    correction: bool = False
    wilcoxon_method: Literal["approx", "exact"] = "approx"
    chance: float | None = None
    verdict_source: Literal["recomputed", "server"] = "recomputed"
    mixed_models: bool = True
    emotion_question: str = "emotion"
    realness_question: str = "realness"
    aspects_question: str = "aspects"
    primary_question: str = "primary"
    secondary_question: str | None = "secondary"  # None: one label per video (no primary-or-secondary rows)

    def validate(self) -> None:
        if self.pairing_unit not in ("participant", "item", "response"):
            raise AnalysisOptionError(f"pairing unit {self.pairing_unit!r}: use participant, item or response")
        if self.zero_method not in ("pratt", "wilcox", "zsplit"):
            raise AnalysisOptionError(f"zero method {self.zero_method!r}: use pratt, wilcox or zsplit")
        if self.alternative not in ("two-sided", "greater", "less"):
            raise AnalysisOptionError(f"alternative {self.alternative!r}: use two-sided, greater or less")
        if self.wilcoxon_method not in ("approx", "exact"):
            raise AnalysisOptionError(f"Wilcoxon method {self.wilcoxon_method!r}: use approx or exact")
        if not 0 < self.ci < 1 or self.n_boot < 1:
            raise AnalysisOptionError("ci must lie in (0, 1) and n_boot be >= 1")
        if self.chance is not None and not 0 < self.chance < 1:
            raise AnalysisOptionError(f"chance {self.chance}: a probability in (0, 1)")


@dataclass
class Analysis:
    """Everything :func:`compute` found: results (JSON-able), tables (name -> DataFrame), figures
    (name -> matplotlib Figure), the methods text and the cleaned data."""

    results: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    cleaned: Cleaned | None = None
    export: Export | None = None


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _jsonable(v) for k, v in r.items()} for r in df.to_dict(orient="records")]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if v is pd.NA or v is None:
        return None
    return v


def rank_biserial_rows(d: np.ndarray, zero_method: str) -> np.ndarray:
    """The matched-pairs rank-biserial r of :func:`analysis.stats.wilcoxon_signed_rank` for every row of
    ``d`` (shape (B, n)) at once. Zeros have the smallest |d|, so ranking with them and subtracting their
    count gives the ranks without them (wilcox); zsplit adds half the zero ranks to both sides."""
    from scipy.stats import rankdata

    d = np.atleast_2d(np.asarray(d, dtype=float))
    ranks = rankdata(np.abs(d), axis=1)  # average ranks, zeros included
    pos, neg, zero = d > 0, d < 0, d == 0
    if zero_method == "wilcox":
        ranks = ranks - zero.sum(axis=1, keepdims=True)
    r_plus = (ranks * pos).sum(axis=1)
    r_minus = (ranks * neg).sum(axis=1)
    total = r_plus + r_minus
    if zero_method == "zsplit":
        total = total + (ranks * zero).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (r_plus - r_minus) / np.where(total > 0, total, 1), 0.0)


def _rank_biserial_ci(d: np.ndarray, *, zero_method: str, n_boot: int, ci: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap CI of the matched-pairs rank-biserial correlation, resampling the pairing units
    (same zero handling as the test)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    lo, hi = np.nanpercentile(rank_biserial_rows(d[idx], zero_method), [100 * (1 - ci) / 2, 100 * (1 + ci) / 2])
    return float(lo), float(hi)


def _realness_pairs(answers: pd.DataFrame, a: str, b: str, unit: str) -> np.ndarray:
    """The paired realness differences a - b of the Wilcoxon test (same pairing unit)."""
    return paired_differences(answers, dv="score", within="source", a=a, b=b, unit=unit)["diff"].to_numpy()


def _fraction_cis(resp: pd.DataFrame, frac: pd.DataFrame, opt: AnalysisOptions) -> pd.DataFrame:
    """Bootstrap CIs (participants resampled) of the Task 2 match fractions: the columns ci_low, ci_high."""
    r = resp.copy()
    lows, highs = [], []
    for k, row in enumerate(frac.itertuples(index=False)):
        s = r[r["mismatched"]] if row.subset == "mismatched" else r
        col = task2.MODALITIES[row.modality]
        if row.counting == "primary":
            num, den = s[f"primary_match_{row.modality}"].astype(float), pd.Series(1.0, index=s.index)
        elif row.counting == "primary_or_secondary":
            num, den = s[f"either_match_{row.modality}"].astype(float), pd.Series(1.0, index=s.index)
        else:
            num = s[f"primary_match_{row.modality}"].astype(float) + (s["two_labels"] & (s["secondary"] == s[col]))
            den = 1.0 + s["two_labels"].astype(float)
        g = pd.DataFrame({"p": s["participant"], "num": num.astype(float), "den": den}).groupby("p")
        lo, hi = ratio_bootstrap_ci(g["num"].sum().to_numpy(), g["den"].sum().to_numpy(), n_boot=opt.n_boot,
                                    ci=opt.ci, random_state=opt.seed + 300 + k)
        lows.append(lo)
        highs.append(hi)
    return frac.assign(ci_low=lows, ci_high=highs)


def _aspect_rates(ans: pd.DataFrame, question: str, sources: list[str], opt: AnalysisOptions) -> pd.DataFrame:
    """Aspect votes without 'none' per source, per response, with a participant bootstrap CI of the rate."""
    a = ans[ans["question"] == question]
    votes = a["answer"].map(lambda v: sum(1 for x in str(v).split(";") if x and x != "none"))
    rows = []
    for k, src in enumerate(sources):
        sel = a["source"] == src
        if not sel.any():
            continue
        g = pd.DataFrame({"p": a.loc[sel, "participant"], "v": votes[sel], "n": 1.0}).groupby("p")
        lo, hi = ratio_bootstrap_ci(g["v"].sum().to_numpy(), g["n"].sum().to_numpy(), n_boot=opt.n_boot, ci=opt.ci,
                                    random_state=opt.seed + 500 + k)
        n = int(sel.sum())
        rows.append({"source": src, "votes": int(votes[sel].sum()), "n_responses": n,
                     "rate": float(votes[sel].sum() / n), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["source", "votes", "n_responses", "rate", "ci_low", "ci_high"])


def compute(export: Export, options: AnalysisOptions | None = None,
            step: Callable[[str], None] | None = None) -> Analysis:
    """Run every analysis the answers allow. ``step(name)`` is called before each stage (progress)."""
    opt = options or AnalysisOptions()
    opt.validate()
    defaults = AnalysisOptions()
    plan_ids = [q.get("id") for q in export.plan.get("questions", [])]
    for role in ("emotion", "realness", "aspects", "primary", "secondary"):
        qid = getattr(opt, f"{role}_question")
        if qid != getattr(defaults, f"{role}_question") and export.question(qid) is None:
            # A mistyped id would silently drop that part of the report.
            raise AnalysisOptionError(f"--question {role} {qid}: the plan has no question {qid!r} "
                                      f"(its questions: {', '.join(map(str, plan_ids)) or 'none'})")
    step = step or (lambda name: None)
    step("cleaning")
    cleaned = clean(export, verdict_source=opt.verdict_source)
    ans = cleaned.answers
    questions_present = set(ans["question"])
    # What each question measures (the spec's `measures`) chooses its analysis: analysis.measures.
    from analysis import measures as measures_mod
    from analysis.scales import with_factor_columns

    ans_f = with_factor_columns(ans)
    choice = measures_mod.choose(export.plan, ans_f)
    if choice is not None:
        opt = measures_mod.report_options(choice, opt, defaults, ans)
    res: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "input": {"study": str(export.plan.get("study", {}).get("name", "")), "task": export.task,
                  "spec_sha256": export.plan.get("spec_sha256"), "manifest_sha256": export.plan.get("manifest_sha256"),
                  "answers_sha256": hashlib.sha256((export.path / "answers.csv").read_bytes()).hexdigest()
                  if (export.path / "answers.csv").is_file() else None,
                  "warnings": list(export.warnings)},
        "options": _jsonable({k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opt).items()}),
        "cleaning": dict(cleaned.counts),
    }
    out = Analysis(results=res, cleaned=cleaned, export=export)
    if choice is not None:
        res["analysed"] = choice.text()
    out.tables["cleaning_surveys"] = cleaned.surveys
    out.tables["cleaning_counts"] = pd.DataFrame(sorted(cleaned.counts.items()), columns=["count", "value"])
    out.tables["consistency_pairs"] = cleaned.pairs
    flow = participant_flow(export, cleaned)
    res["flow"] = flow
    task_name = {"emotion-realness": "Task 1", "av-mismatch": "Task 2"}.get(export.task, export.task or "study")
    out.figures["participant_flow"] = figures.flow_diagram(
        flow, title=f"Participant flow, {task_name}: {res['input']['study'] or 'study'}").figure
    c = cleaned.counts
    max_bad = export.plan["consistency"]["max_inconsistent"]
    rules = "; ".join(_rule_in_words(r) for r in export.plan["consistency"].get("rules", []))
    out.methods.append(
        f"Cleaning. {c['n_answers_total']} answers from {c['n_surveys_total']} surveys "
        f"({c['n_participants_total']} participants) were read. Consistency was recomputed from the raw answers "
        f"with the plan's rules ({rules or 'none'}); a survey was rejected when more than {max_bad} of its repeated "
        f"answers were inconsistent, and incomplete when a required answer was missing. Recomputed: "
        f"{c['n_surveys_recomputed_valid']} valid, {c['n_surveys_recomputed_rejected']} rejected, "
        f"{c['n_surveys_recomputed_incomplete']} incomplete; {c['n_verdict_disagreements']} survey(s) disagree with "
        f"the server's stored verdict and {c['n_inconsistency_count_disagreements']} complete survey(s) with its "
        f"count of inconsistent answers. Surveys were excluded by the {opt.verdict_source} verdict: "
        f"{c['n_surveys_valid']} valid surveys ({c['n_participants_valid']} participants) kept, "
        f"{c['n_answers_excluded_surveys']} answers of excluded surveys, {c['n_answers_repeats_excluded']} answers to "
        f"consistency repeats and {c['n_answers_missing_dropped']} missing answers dropped; "
        f"{c['n_answers_used']} answers enter the statistics.")
    valid_col = "server_verdict" if cleaned.verdict_source == "server" else "verdict"
    sample = sample_description(export.participants,
                                cleaned.surveys.loc[cleaned.surveys[valid_col].astype(str) == "valid", "assignment"])
    if sample:  # the spec's [demographics]: who the analysed sample were
        out.methods.append(f"Sample. {sample}.")
        res["sample"] = sample
    pct_ci = f"{100 * opt.ci:g}%"
    boot = (f"percentile bootstrap {pct_ci} CI with {opt.n_boot} resamples of participants (not answers), "
            f"random seed {opt.seed}")
    wil = (f"Wilcoxon signed-rank test (differences of means computed exactly, so that equal differences tie), "
           f"{ZERO_METHOD_WORDS.get(opt.zero_method, opt.zero_method)}"
           + (" (Pratt 1959; normal approximation with the null mean and variance of Cureton 1967)"
              if opt.zero_method == "pratt" else "")
           + (f", tie-corrected normal approximation{' with continuity correction' if opt.correction else ''}, "
              if opt.wilcoxon_method == "approx" else
              ", exact sign-flip permutation p-value given the observed ranks (z from the normal approximation), ")
           + f"{opt.alternative} alternative; reported n, zeros, R+, R-, z, p, r = z/sqrt(n) and the matched-pairs "
           f"rank-biserial correlation")

    # ---------------------------------------------------------------- Task 1
    if opt.emotion_question in questions_present:
        step("task 1: emotion")
        em = ans[ans["question"] == opt.emotion_question]
        sources = task1.source_order(em["source"])
        q_em = export.question(opt.emotion_question)
        offered1 = [e for e in EMOTIONS if any(o.get("value") == e for o in (q_em or {}).get("options", []))]
        cm = task1.emotion_confusion(ans, question=opt.emotion_question, labels=offered1 or None)
        n_opt = len(q_em.get("options", [])) if q_em else 0
        chance = opt.chance if opt.chance is not None else (1 / n_opt if n_opt else 1 / len(EMOTIONS))
        acc = task1.accuracy_by_source(ans, question=opt.emotion_question, chance=chance, n_boot=opt.n_boot,
                                       ci=opt.ci, random_state=opt.seed)
        hu = agreement.unbiased_hit_rates(em, by="source")
        hu_t = agreement.hu_tests(hu, by="source")
        agr = agreement.agreement_table(em, by="source")
        order = {s: i for i, s in enumerate(sources)}
        agr = agr.sort_values("source", key=lambda s: s.map(order)).reset_index(drop=True)
        hu_t = hu_t.sort_values("source", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
        # Pooled over participants (per source and ALL sources): issue 19; the tests stay per participant.
        hu_pool = agreement.pooled_hit_rates(em, by="source")
        hu_pool = hu_pool.sort_values("source", key=lambda s: s.map(order).fillna(len(order)),
                                      kind="stable").reset_index(drop=True)
        acc_all = task1.accuracy_all_sources(ans, question=opt.emotion_question, chance=chance, n_boot=opt.n_boot,
                                             ci=opt.ci, random_state=opt.seed)
        agr_all = agreement.agreement_table(em, by=None)
        agr_all.insert(0, "source", agreement.ALL_SOURCES)
        res["task1"] = {"sources": sources, "accuracy": _records(acc), "confusion": _records(cm),
                        "hu": _records(hu_t), "agreement": _records(agr), "accuracy_all": _records(acc_all)[0],
                        "agreement_all": _records(agr_all)[0], "hu_pooled": _records(hu_pool)}
        out.tables.update({"task1_confusion": cm, "task1_accuracy": acc, "task1_hu": hu_t,
                           "task1_hu_per_participant": hu, "task1_agreement": agr, "task1_accuracy_all": acc_all,
                           "task1_agreement_all": agr_all, "task1_hu_pooled": hu_pool})
        out.figures["task1_confusion"] = figures.confusion_grid(cm, "source", groups=sources, truth_label="Shown emotion",
                                                                answer_label="Answer")
        out.figures["task1_accuracy"] = figures.accuracy_bars(acc).figure
        out.methods.append(
            f"Task 1 emotion. Confusion matrices of the answer against the shown (visual) emotion per source, "
            f"rows normalised to 100% (emotions in the order {', '.join(e for e in cm['truth'].unique())}). "
            f"Accuracy = correct answers / answers per source, with a {boot}, and an exact one-sided binomial test "
            f"against chance {chance:.4f}{' (1 / number of options)' if opt.chance is None else ''} "
            f"(Holm-adjusted over the {len(acc)} sources). Wagner's unbiased hit rate "
            f"Hu per participant, source and emotion, compared with the chance proportion pc by a paired t-test of "
            f"arcsin(sqrt(Hu)) - arcsin(sqrt(pc)) over participants (one-sided, Holm over the emotions of each source). "
            f"Cohen's kappa of the answers against the truth, Fleiss' kappa per batch (mean over batches) and "
            f"Krippendorff's alpha (nominal) over stimuli measure agreement. For description, Hu and its chance "
            f"level are also computed from the pooled confusion table of each source and of ALL sources together, "
            f"and accuracy with its binomial test and the agreement measures for ALL sources pooled (one test, "
            f"outside the Holm family).")
        if opt.mixed_models:
            step("task 1: mixed logit")
            from analysis.models import correctness_mixed_logit
            try:
                ml = correctness_mixed_logit(ans, question=opt.emotion_question, random_state=opt.seed)
            except AnalysisOptionError as exc:  # e.g. every answer correct: nothing to fit
                res["task1"]["mixed_logit"] = {"fitted": False, "reason": str(exc)}
                out.methods.append(f"The mixed-effects logistic regression was not fitted: {exc}.")
            else:
                ml.pop("seconds", None)
                res["task1"]["mixed_logit"] = _jsonable(ml)
                out.tables["task1_mixed_logit"] = pd.DataFrame(ml["fixed"])[
                    ["contrast", "estimate", "se", "z", "p", "ci_low", "ci_high", "odds_ratio"]]
                sds = ", ".join(f"{k} {v:.2f}" for k, v in ml["random_sd"].items())
                out.methods.append(
                    f"A mixed-effects logistic regression of correctness on source with random intercepts for "
                    f"participants and stimuli ({ml['formula']}, reference source {ml['reference']}) was fitted by "
                    f"maximum likelihood with the Laplace approximation (the method of lme4::glmer); estimates "
                    f"are log-odds with standard errors from the curvature of the likelihood, Wald z tests and 95% "
                    f"intervals. Random-intercept SDs: {sds}."
                    + "".join(f" Note: {n}." for n in ml["notes"]))
        _norm_covariates(export, ans, opt, out)
    if opt.realness_question in questions_present:
        step("task 1: realness")
        re_ans = ans[ans["question"] == opt.realness_question]
        q = export.question(opt.realness_question)
        summ = task1.realness_summary(ans, question=opt.realness_question, n_boot=opt.n_boot, ci=opt.ci,
                                      random_state=opt.seed)
        dist = task1.realness_distribution(ans, question=opt.realness_question,
                                           options=q.get("options") if q else None)
        present = list(re_ans["source"].unique())
        t1 = res.setdefault("task1", {})
        t1.update({"realness": _records(summ), "realness_distribution": _records(dist)})
        out.tables.update({"task1_realness": summ, "task1_realness_distribution": dist})
        if len(present) >= 2 or opt.compare:
            a, b, why = task1.choose_comparison(present, *(opt.compare or (None, None)))
            w = task1.realness_wilcoxon(ans, a, b, question=opt.realness_question, unit=opt.pairing_unit,
                                        zero_method=opt.zero_method, alternative=opt.alternative,
                                        correction=opt.correction, method=opt.wilcoxon_method)
            sens = task1.realness_wilcoxon_sensitivity(ans, a, b, question=opt.realness_question,
                                                       alternative=opt.alternative, correction=opt.correction,
                                                       method=opt.wilcoxon_method)
            d = _realness_pairs(ans[ans["question"] == opt.realness_question], a, b, opt.pairing_unit)
            lo, hi = _rank_biserial_ci(d, zero_method=opt.zero_method, n_boot=opt.n_boot, ci=opt.ci,
                                       seed=opt.seed + 600)
            w = w.assign(rank_biserial_ci_low=lo, rank_biserial_ci_high=hi)
            t1.update({"wilcoxon": {**_records(w)[0], "comparison_reason": why},
                       "wilcoxon_sensitivity": _records(sens)})
            out.tables.update({"task1_wilcoxon": w, "task1_wilcoxon_sensitivity": sens})
        else:
            a, b, why = "", "", f"no realness comparison: the answers have a single source ({', '.join(present)})"
            t1["wilcoxon"] = None
        out.figures["task1_realness"] = figures.realness_bars(dist, kind="stacked").figure
        unit_text = {"participant": "the mean score of each participant on each source (participants who rated "
                                    "both sources)",
                     "item": "the mean score of each content item (identity, sentence, emotion) on each source "
                             "(items rendered by both sources)",
                     "response": "the k-th rating of a participant on one source with their k-th rating on the other "
                                 "(in presentation order)"}[opt.pairing_unit]
        scored = ", ".join(f"{r['label']} = {r['score']:g}" for r in
                           dist.drop_duplicates("value")[["label", "score"]].to_dict(orient="records"))
        out.methods.append(
            f"Task 1 realness. Options scored as in the plan ({scored}); mean per source over all "
            f"answers with a {boot}. "
            + (f"Comparison: {why}. {wil}, pairing {unit_text}; difference = {a} - {b}. The sensitivity table "
               f"repeats the test for every pairing unit and zero method. The rank-biserial correlation has a "
               f"percentile bootstrap {pct_ci} CI resampling the pairing units ({opt.n_boot} resamples, random "
               f"seed {opt.seed + 600}). " if a else f"{why.capitalize()}. ")
            + "The distribution figure shows the percentage of each option per source.")
        if opt.mixed_models:
            step("task 1: ordinal model")
            from analysis.models import realness_ordinal
            try:
                om = realness_ordinal(ans, question=opt.realness_question)
            except AnalysisOptionError as exc:  # e.g. every answer has the same score: nothing to fit
                t1["ordinal_realness"] = {"fitted": False, "reason": str(exc)}
                out.methods.append(f"The ordinal model of realness was not fitted: {exc}.")
            else:
                om.pop("seconds", None)
                t1["ordinal_realness"] = _jsonable(om)
                out.tables["task1_ordinal_realness"] = pd.DataFrame(om["coefficients"])[
                    ["contrast", "estimate", "se_model", "se_cluster", "z", "p", "ci_low", "ci_high", "odds_ratio"]]
                out.methods.append(
                    f"A proportional-odds (cumulative logit) model of the realness score on source ({om['formula']}, "
                    f"reference source {om['reference']}) was fitted by maximum likelihood; it reports {om['se_note']}.")
    if opt.aspects_question in questions_present:
        step("task 1: aspects")
        q = export.question(opt.aspects_question)
        asp = task1.aspect_counts(ans, question=opt.aspects_question, options=q.get("options") if q else None)
        totals = asp[asp["aspect"] != "none"].groupby("source", sort=False)["count"].sum()
        res.setdefault("task1", {}).update({"aspects": _records(asp),
                                            "aspect_totals_excluding_none": {k: int(v) for k, v in totals.items()}})
        out.tables["task1_aspects"] = asp
        rates = _aspect_rates(ans, opt.aspects_question, task1.source_order(asp["source"]), opt)
        res["task1"]["aspect_rates"] = _records(rates)
        out.tables["task1_aspect_rates"] = rates
        out.figures["task1_aspects"] = figures.aspect_bars(asp).figure
        out.methods.append("Improvement aspects: each multi-choice answer is split at ';' and every chosen option "
                           "counted once per answer ('none' is an option); totals exclude 'none'. Votes per response "
                           f"(without 'none') per source have a percentile bootstrap {pct_ci} CI resampling participants "
                           f"({opt.n_boot} resamples, random seeds {opt.seed + 500}+).")

    # ---------------------------------------------------------------- Task 2
    if opt.primary_question in questions_present:
        step("task 2")
        has_secondary = opt.secondary_question is not None and opt.secondary_question in questions_present
        resp = task2.label_responses(ans, primary=opt.primary_question,
                                     secondary=opt.secondary_question if has_secondary else None)
        q_p = export.question(opt.primary_question) or {}
        offered = [o["value"] for o in q_p.get("options", []) if o.get("value") in EMOTIONS] or list(EMOTIONS)
        cm2 = task2.primary_confusions(resp, labels=offered)
        frac = task2.match_fractions(resp)
        countings = ("primary", "primary_or_secondary") if has_secondary else ("primary",)
        if not has_secondary:
            frac = frac[frac["counting"] == "primary"].reset_index(drop=True)
        dom = pd.concat([task2.dominance_test(resp, subset="mismatched", counting=cnt, zero_method=opt.zero_method,
                                              alternative=opt.alternative, correction=opt.correction,
                                              method=opt.wilcoxon_method)
                         for cnt in countings], ignore_index=True)
        from analysis.stats import holm
        dom["p_holm"] = holm(dom["p"].to_numpy())
        rb = [_rank_biserial_ci(task2.dominance_per_participant(resp, counting=cnt)["diff"].to_numpy(),
                                zero_method=opt.zero_method, n_boot=opt.n_boot, ci=opt.ci, seed=opt.seed + 700 + k)
              for k, cnt in enumerate(dom["counting"])]
        dom["rank_biserial_ci_low"] = [lo for lo, _ in rb]
        dom["rank_biserial_ci_high"] = [hi for _, hi in rb]
        frac = _fraction_cis(resp, frac, opt)
        g2 = resp.groupby("participant")["two_labels"]
        two_ci = ratio_bootstrap_ci(g2.sum().to_numpy(), g2.size().to_numpy(), n_boot=opt.n_boot, ci=opt.ci,
                                    random_state=opt.seed + 400)
        per = task2.dominance_per_participant(resp)
        resp_long = resp.rename(columns={"primary": "answer"})
        hu_rows = []
        for m, col in task2.MODALITIES.items():
            h = agreement.unbiased_hit_rates(resp_long, truth=col, answer="answer")
            h.insert(0, "reference", m)
            hu_rows.append(h)
        hu2 = pd.concat(hu_rows, ignore_index=True)
        hu2_t = agreement.hu_tests(hu2, by="reference")
        hu2_pool = pd.concat([agreement.pooled_hit_rates(resp_long, truth=col).assign(reference=m)
                              for m, col in task2.MODALITIES.items()], ignore_index=True)
        hu2_pool = hu2_pool[["reference"] + [c for c in hu2_pool.columns if c != "reference"]]
        agr2 = pd.concat([agreement.agreement_table(resp_long, truth=col, by=None).assign(reference=m)
                          for m, col in task2.MODALITIES.items()], ignore_index=True)
        chance2 = opt.chance if opt.chance is not None else 1 / len(offered)
        vs_chance = task2.fractions_vs_chance(frac, chance2)
        out.tables["task2_vs_chance"] = vs_chance
        res["task2"] = {"label_counts": task2.label_counts(resp), "match_fractions": _records(frac),
                        "emotions_offered": offered, "chance": chance2, "vs_chance": _records(vs_chance),
                        "has_secondary": has_secondary,
                        "confusion": _records(cm2), "dominance": _records(dom), "hu": _records(hu2_t),
                        "agreement": _records(agr2), "hu_pooled": _records(hu2_pool),
                        "two_labels_ci": _jsonable(list(two_ci))}
        out.tables.update({"task2_confusion": cm2, "task2_match_fractions": frac, "task2_dominance": dom,
                           "task2_dominance_per_participant": per, "task2_hu": hu2_t, "task2_agreement": agr2,
                           "task2_hu_pooled": hu2_pool})
        fig = figures.Figure(figsize=(4.6, 8.6), dpi=100)
        ax1, ax2 = fig.subplots(2, 1)
        figures.confusion_heatmap(cm2[cm2["reference"] == "visual"], ax=ax1, title="Primary label vs visual emotion",
                                  truth_label="Visual emotion", answer_label="Primary label")
        figures.confusion_heatmap(cm2[cm2["reference"] == "audio"], ax=ax2, title="Primary label vs audio emotion",
                                  truth_label="Audio emotion", answer_label="Primary label")
        fig.tight_layout()
        out.figures["task2_confusion"] = fig
        out.figures["task2_match"] = figures.match_bars(frac).figure
        if not has_secondary:
            out.methods.append(
                f"Face vs voice ({opt.primary_question}). One response = one participant's label for one video "
                f"(one label per video: no primary-or-secondary counting). Confusion of the label against the visual "
                f"and against the audio emotion over the {len(offered)} emotions offered ({', '.join(offered)}). "
                f"Fractions of responses whose label matches the visual / audio emotion, for all videos and for "
                f"mismatched ones (visual != audio), each with an exact one-sided binomial test against chance "
                f"{chance2:.4f}{' (1 / number of emotions offered)' if opt.chance is None else ''}. Visual vs audio "
                f"dominance: per participant, the fraction of mismatched videos matching the visual minus the fraction "
                f"matching the audio emotion; {wil}. Hu and agreement are computed with the visual and with the audio "
                f"emotion as the truth. Match fractions have a {boot}.")
        else:
            out.methods.append(
                "Task 2. One response = one participant's labels for one video; the secondary answer 'none' means a single "
                "label and a secondary equal to the primary counts once. Fractions of responses whose primary label "
                "matches the visual / audio emotion, for all videos and for mismatched ones (visual != audio); "
                "'primary or secondary' counts a response as matching when either label matches; 'all labels' divides "
                "the matching labels by all labels given. Visual vs audio dominance: per participant, the fraction of "
                f"mismatched videos matching the visual minus the fraction matching the audio emotion; {wil}; "
                "Holm-adjusted over the two countings (primary; primary or secondary). Hu and agreement are computed "
                "with the visual and with the audio emotion as the truth. Each match fraction and the share of responses "
                f"with two labels has a percentile bootstrap {pct_ci} CI resampling participants ({opt.n_boot} resamples, "
                f"random seeds {opt.seed + 300}+ and {opt.seed + 400}), the rank-biserial r of each dominance test one "
                f"resampling participants (seeds {opt.seed + 700}+).")
    if choice is not None:
        for qc in choice.by_role("scale"):
            if qc.question not in questions_present:
                continue
            step(f"scale: {qc.question}")
            measures_mod.scale_section(out, ans_f, qc, choice, opt)
    if "task1" not in res and "task2" not in res and not res.get("scales"):
        raise AnalysisError(f"no question of the analysis ({opt.emotion_question}, {opt.realness_question}, "
                            f"{opt.aspects_question}, {opt.primary_question}) has valid answers; check the answers' question "
                            "ids (--question ROLE ID) and the cleaning counts")
    res["methods"] = out.methods
    res["sentences"] = report_text.sentences(res) + (measures_mod.extra_sentences(res) if choice is not None else [])
    res["paper_comparison"] = paper.comparison(res, export.plan)
    return out


def _norm_covariates(export: Export, ans: pd.DataFrame, opt: AnalysisOptions, out: Analysis) -> None:
    """A study on a set chosen by `emostudy select`: its manifest carries each clip's norms, used here as a
    covariate of a correct answer (analysis.norms.norm_covariate_model)."""
    from analysis.norms import norm_covariate_model, norms_covariates

    cov = norms_covariates(export)
    if "norm_recognition" not in cov:
        return
    m = norm_covariate_model(ans, cov, question=opt.emotion_question)
    out.results["task1"]["norm_covariates"] = _jsonable(m)
    if not m["fitted"]:
        out.methods.append(f"The clips carry norms, but the norm covariate model was not fitted: {m['reason']}.")
        return
    out.tables["task1_norm_covariates"] = pd.DataFrame(m["terms"])
    out.methods.append(
        f"The clips carry norms from a norming study (emostudy select): a logistic regression {m['formula']} over "
        f"{m['n_answers']} answers to {m['n_clips']} clips, fitted by maximum likelihood with standard errors "
        f"clustered by participant ({m['n_participants']}), asks whether a clip's recognition rate in the norming "
        f"study predicts a correct answer here.")


def _png_base64(fig: Any, png: Path | None = None) -> str:
    """The figure as base64 PNG: the bytes of the PNG already written when given, else rendered now."""
    if png is not None and png.is_file():
        return base64.b64encode(png.read_bytes()).decode("ascii")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=150, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure_entry(analysis: Analysis, name: str, alt: str, figure_dir: Path | None) -> dict[str, Any]:
    data = _png_base64(analysis.figures[name], figure_dir / f"{name}.png" if figure_dir else None)
    # PNGs are 150 dpi: show them at 100 CSS px per inch (the IHDR width is bytes 16-20).
    width = int.from_bytes(base64.b64decode(data[:32])[16:20], "big") * 2 // 3
    return {"alt": alt, "data": data, "width": width}


def _flow_text(flow: dict[str, Any]) -> str:
    left = lambda d: f"{d['returned']} returned, {d['expired']} expired, {d['incomplete']} incomplete"
    text = (f"Of {flow['arrived']} surveys (assignments) allocated, {flow['started']} were started and "
            f"{flow['completed']} completed; {flow['not_started']['total']} were never started ({left(flow['not_started'])}) "
            f"and {flow['not_completed']['total']} were left before the end ({left(flow['not_completed'])}). "
            f"Of the completed surveys {flow['valid']} were valid and {flow['rejected']} rejected as inconsistent "
            f"(verdicts: {flow['verdict_source']}). Analysed: {flow['analysed_surveys']} surveys of "
            f"{flow['analysed_participants']} participants, {flow['analysed_answers']} answers.")
    if not flow["status_known"]:
        text += (" The export has no participant status (participants.csv without a status column), so returned and "
                 "expired surveys are counted as incomplete.")
    return text


def render_html(analysis: Analysis, figure_dir: Path | None = None) -> str:
    """The self-contained report (figures embedded as base64 PNG, CSS and the copy-button script inline, no
    external resources). ``figure_dir``: where :func:`write_outputs` saved the PNGs (reused instead of
    drawing again)."""
    import jinja2

    from analysis.report_template import CSS, SCRIPT, TEMPLATE

    res = analysis.results
    T = analysis.tables
    ci = float(res["options"]["ci"])
    sections = []

    def sec(sid: str, title: str, figs: list[tuple[str, str]], tables: list[tuple[str, str]], text: str = "") -> None:
        shown = [_figure_entry(analysis, name, alt, figure_dir) for name, alt in figs if name in analysis.figures]
        tabs = []
        for name, tt in tables:
            if name in T:
                readable = report_text.readable_table(name, T[name], ci=ci)
                tabs.append({"title": tt, "name": name, "html": _markup(report_text.table_html(readable)),
                             "more": bool(set(T[name].columns) - set(report_text.SHOWN_COLUMNS.get(name, T[name].columns))
                                          - {"ci_low", "ci_high", "rank_biserial_ci_low", "rank_biserial_ci_high"})})
        sections.append({"id": sid, "title": title, "text": text, "figures": shown, "tables": tabs})

    t1 = res.get("task1", {})
    if "accuracy" in t1:
        sec("task1-emotion", "Task 1: emotion classification",
            [("task1_confusion", "Confusion matrices per source (row %)"), ("task1_accuracy", "Accuracy per source")],
            [("task1_accuracy", "Accuracy per source"), ("task1_hu", "Unbiased hit rate Hu per emotion"),
             ("task1_agreement", "Agreement"), ("task1_accuracy_all", "Accuracy, all sources pooled"),
             ("task1_hu_pooled", "Hu and chance pc from the pooled confusion table (per source and ALL)"),
             ("task1_agreement_all", "Agreement, all sources pooled"), ("task1_mixed_logit", "Mixed-effects logistic regression (fixed effects)"),
             ("task1_norm_covariates", "Correct answer by the clip's norm recognition (logistic, clustered SE)")])
    if "realness" in t1:
        w = t1["wilcoxon"]
        sec("task1-realness", "Task 1: realness",
            [("task1_realness", "Realness ratings per source")],
            [("task1_realness", "Realness per source"), ("task1_realness_distribution", "Distribution"),
             ("task1_wilcoxon", "Wilcoxon signed-rank test"), ("task1_wilcoxon_sensitivity", "Sensitivity of the test"),
             ("task1_ordinal_realness", "Ordinal (cumulative logit) model")],
            text="No comparison: a single source." if w is None else f"{w['comparison_reason']}.")
    if "aspects" in t1:
        sec("task1-aspects", "Task 1: aspects to improve", [("task1_aspects", "Aspects to improve per source")],
            [("task1_aspects", "Aspect counts"), ("task1_aspect_rates", "Aspect votes per response (without 'none')")])
    if "task2" in res:
        lc = res["task2"]["label_counts"]
        two = res["task2"].get("has_secondary", True)
        offered = res["task2"].get("emotions_offered", list(EMOTIONS))
        sec("task2", "Task 2: mismatched audio and visual emotions" if two else
            f"Face vs voice: which modality people follow ({len(offered)} emotions, chance 1/{len(offered)})",
            [("task2_confusion", "Primary label vs visual (top) and audio (bottom) emotion" if two else
              "Label vs visual (top) and audio (bottom) emotion"),
             ("task2_match", "Match fractions")],
            [("task2_match_fractions", "Labels matching the visual / audio emotion"),
             ("task2_vs_chance", "Match fractions against chance"),
             ("task2_dominance", "Visual vs audio dominance (per participant)"),
             ("task2_hu", "Unbiased hit rate Hu"),
             ("task2_hu_pooled", "Hu and chance pc from the pooled confusion table"), ("task2_agreement", "Agreement")],
            text=(f"{lc['n_two_labels']} of {lc['n_responses']} responses have two distinct labels; "
                  f"{lc['n_secondary_equal_primary']} repeat the primary as secondary; {lc['n_mismatched']} responses "
                  f"are to mismatched videos." if two else
                  f"{lc['n_responses']} responses (one label each); {lc['n_mismatched']} to mismatched videos."))
    for qid, sc in (res.get("scales") or {}).items():
        sec(f"scale-{qid}", f"Scale '{qid}' ({sc['measures']})", [],
            [(f"scale_{qid}_means", "Mean score per cell"), (f"scale_{qid}_comparisons", "Declared comparisons"),
             (f"scale_{qid}_mixed_model", "Linear mixed model (fixed effects)"),
             (f"scale_{qid}_ordinal_model", "Ordinal (cumulative logit) model")],
            text=f"Model: {sc['mixed_model'].get('formula', '')}" + ("" if sc["mixed_model"].get("fitted", True)
                                                                    else f" (not fitted: {sc['mixed_model']['reason']})"))
    paper_cmp = res.get("paper_comparison")
    paper_ctx = None
    if paper_cmp:
        rows = pd.DataFrame(paper_cmp["rows"], columns=["measure", "paper", "ours", "ours_ci", "note"])
        rows.columns = [report_text.column_label(c, ci) for c in rows.columns]
        paper_ctx = {"notes": paper_cmp["notes"], "html": _markup(report_text.table_html(rows, []))}
    flow = res["flow"]
    flow_fig = (_figure_entry(analysis, "participant_flow", "Participant flow: surveys from arrival to the analysed "
                              "sample (CONSORT-style)", figure_dir) if "participant_flow" in analysis.figures else None)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(
        title=f"emostudy report: {res['input']['study'] or 'study'}", study=res["input"]["study"],
        task=res["input"]["task"], warnings=res["input"]["warnings"], methods=analysis.methods,
        sentences=res["sentences"], flow_figure=flow_fig, analysed=res.get("analysed", []), flow_text=_flow_text(flow), paper=paper_ctx,
        counts_table=_markup(report_text.table_html(report_text.exclusions_table(res["cleaning"]), ["n", "%"])),
        sections=sections, css=_markup(CSS), script=_markup(SCRIPT))


def _markup(html: str) -> Any:
    from markupsafe import Markup

    return Markup(html)


def results_json_bytes(results: dict[str, Any]) -> bytes:
    return (json.dumps(_jsonable(results), indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def _check_out(out: Path, overwrite: bool) -> None:
    if (out / "report.html").exists() and not overwrite:
        raise AnalysisError(f"{out} already holds a report; choose a new --out folder or pass --overwrite")
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"{out} is a file; give a folder for --out")


def write_outputs(analysis: Analysis, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
    """Write report.html, results.json, tables/*.csv and figures/*.png|pdf into ``out_dir``.

    An existing report in ``out_dir`` is refused unless ``overwrite`` (files are then replaced one by one;
    nothing else in the folder is touched).
    """
    from stimuli.manifest import atomic_write_bytes

    out = Path(out_dir)
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, df in analysis.tables.items():
        p = out / "tables" / f"{name}.csv"
        atomic_write_bytes(p, df.to_csv(index=False, lineterminator="\n").encode())
        paths[f"tables/{name}.csv"] = p
    for name, fig in analysis.figures.items():
        for ext, p in figures.save_figure(fig, out / "figures", name).items():
            paths[f"figures/{name}.{ext}"] = p
    atomic_write_bytes(out / "results.json", results_json_bytes(analysis.results))
    if analysis.results.get("scales"):
        from analysis.scales import r_script
        from stimuli.model_formulas import ModelFormula

        models = {q: ModelFormula(**sc["model_formula"]) for q, sc in analysis.results["scales"].items()}
        ordinal = {q: ModelFormula(**sc["ordinal_formula"]) for q, sc in analysis.results["scales"].items()
                   if "ordinal_formula" in sc}
        atomic_write_bytes(out / "analysis_scales.R", r_script(models, ordinal=ordinal).encode())
        paths["analysis_scales.R"] = out / "analysis_scales.R"
    atomic_write_bytes(out / "report.html", render_html(analysis, out / "figures").encode())
    paths["results.json"] = out / "results.json"
    paths["report.html"] = out / "report.html"
    return paths


ZERO_METHOD_WORDS = {"pratt": "zero differences kept in the ranking and left out of the sum (Pratt's method)",
                     "wilcox": "zero differences dropped before ranking (Wilcoxon's method)",
                     "zsplit": "zero differences ranked and their ranks split between the two sums"}


def _rule_in_words(rule: dict) -> str:
    """A consistency rule of the plan in words (no internal keys such as max_abs_diff)."""
    q, kind, tol = rule["question"], rule["kind"], rule.get("tolerance", 0)
    if kind == "equal":
        return f"{q}: the repeat's answer must equal the original"
    if kind == "max_abs_diff":
        return f"{q}: the two scores may differ by at most {tol:g}"
    if kind == "max_set_diff":
        return f"{q}: the two sets of chosen options may differ in at most {tol:g} option(s)"
    return f"{q}: {kind} (tolerance {tol})"


def analyze(export_dir: str | Path, out_dir: str | Path, options: AnalysisOptions | None = None, *,
            overwrite: bool = False, console: Any = None, progress: bool = False) -> Analysis:
    """Read the export, compute everything, write the outputs; returns the :class:`Analysis`.

    Examples
    --------
    >>> analyze("study-export", "study-report")  # doctest: +SKIP
    """
    _check_out(Path(out_dir), overwrite)
    export = load_export(export_dir)
    if not progress:
        analysis = compute(export, options)
        write_outputs(analysis, out_dir, overwrite=overwrite)
        return analysis
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task = bar.add_task("analysis", total=None)
        analysis = compute(export, options, step=lambda name: bar.update(task, description=name))
        bar.update(task, description="writing report")
        write_outputs(analysis, out_dir, overwrite=overwrite)
        bar.update(task, description="done")
    return analysis


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--no-pdf-header-footer")


def find_chromium() -> str | None:
    """The Chromium that prints the PDF: $EMOSTUDY_CHROMIUM, else the first of CHROMIUM_NAMES on PATH, else
    /usr/bin/chromium (Debian's, the one the browser tests use); None when there is none."""
    import os
    import shutil

    env = os.environ.get("EMOSTUDY_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def chromium_or_error() -> str:
    """:func:`find_chromium` or an :class:`AnalysisError` that says how to get one (or print by hand)."""
    import os

    found = find_chromium()
    if found is None:
        where = (f"EMOSTUDY_CHROMIUM={os.environ['EMOSTUDY_CHROMIUM']} is not a file" if os.environ.get("EMOSTUDY_CHROMIUM")
                 else f"none of {', '.join(CHROMIUM_NAMES)} is on PATH and /usr/bin/chromium does not exist")
        raise AnalysisError(f"--pdf prints the report with Chromium, but {where}. Install it (Debian/Ubuntu: "
                            f"apt-get install chromium) or set EMOSTUDY_CHROMIUM to its path; or leave out --pdf, "
                            f"open report.html in a browser and print it to PDF (the print stylesheet gives the "
                            f"same pages).")
    return found


def print_pdf(html: str | Path, pdf: str | Path, *, chromium: str | None = None, timeout: float = 300) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium (A4, the report's print stylesheet, no header or
    footer). Chromium runs with a throwaway profile; its output is shown when it fails."""
    import subprocess
    import tempfile

    exe = chromium or chromium_or_error()
    html, pdf = Path(html).resolve(), Path(pdf).resolve()
    with tempfile.TemporaryDirectory(prefix="emostudy-pdf-") as profile:
        tmp = pdf.with_name(f".{pdf.name}.part")
        argv = [exe, *CHROMIUM_ARGS, f"--user-data-dir={profile}", f"--print-to-pdf={tmp}", html.as_uri()]
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout)
        except subprocess.CalledProcessError as exc:
            raise AnalysisError(f"Chromium ({exe}) could not print {html} (exit code {exc.returncode}): "
                                f"{(exc.stderr or exc.stdout or '').strip()[-2000:]}") from None
        except subprocess.TimeoutExpired:
            raise AnalysisError(f"Chromium ({exe}) did not print {html} within {timeout:g} s") from None
        if not tmp.is_file() or tmp.read_bytes()[:4] != b"%PDF":
            raise AnalysisError(f"Chromium ({exe}) wrote no PDF for {html}; print report.html from a browser instead")
        tmp.replace(pdf)
    return pdf
