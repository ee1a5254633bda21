"""The report's words: numbers formatted for reading, human labels for every count and column, the
APA-style sentence of every test, and the comparison with the paper's published values.

Nothing here computes a statistic: every function reads the ``results`` dict of
:func:`analysis.report.compute` (the same keys as results.json) and writes text.

Conventions (APA 7): p with three decimals and no leading zero (p = .048), ``p < .001`` below .001;
statistics bounded by 1 (r, kappa) without a leading zero; percentages with one decimal; z, t with two
decimals; confidence intervals in brackets, their level stated once per sentence.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

ALPHA = 0.05

# The wording follows docs/analysis.md (the cleaning keys) and the export's codebook (docs/data-dictionary.md).
COUNT_LABELS: dict[str, str] = {
    "n_answers_total": "Answers in the export",
    "n_surveys_total": "Surveys (assignments) in the export",
    "n_participants_total": "Participants in the export",
    "n_surveys_valid": "Valid surveys (kept)",
    "n_surveys_rejected": "Surveys rejected as inconsistent",
    "n_surveys_incomplete": "Incomplete surveys (not completed)",
    "n_surveys_other": "Surveys with another verdict (e.g. pending)",
    "n_surveys_recomputed_valid": "Recomputed verdict: valid",
    "n_surveys_recomputed_rejected": "Recomputed verdict: rejected (inconsistent)",
    "n_surveys_recomputed_incomplete": "Recomputed verdict: incomplete",
    "n_verdict_disagreements": "Surveys whose recomputed verdict differs from the server's",
    "n_inconsistency_count_disagreements": "Complete surveys whose count of inconsistent answers differs from the server's",
    "n_participants_valid": "Participants with a valid survey",
    "n_answers_excluded_surveys": "Answers of excluded (not valid) surveys",
    "n_answers_repeats_excluded": "Answers to consistency repeats (used only for the check)",
    "n_answers_missing_dropped": "Missing answers dropped from valid surveys",
    "n_answers_missing_total": "Missing answers in all surveys",
    "n_answers_used": "Answers analysed",
    "n_repeat_pairs": "Repeated answers compared with their original",
    "n_repeat_pairs_inconsistent": "Repeated answers judged inconsistent",
    "n_participants_screen_failed": "Participants who failed the headphone screen (left before any trial)",
    "n_participants_audio_check_failed": "Participants who failed the sound (word) check (left before any trial)",
}
# Order of the exclusions table (a reader goes from the export to the analysed answers).
COUNT_ORDER = ("n_surveys_total", "n_participants_total", "n_participants_screen_failed",
               "n_participants_audio_check_failed", "n_surveys_recomputed_valid", "n_surveys_recomputed_rejected",
               "n_surveys_recomputed_incomplete", "n_verdict_disagreements", "n_inconsistency_count_disagreements",
               "n_surveys_valid", "n_surveys_rejected", "n_surveys_incomplete", "n_surveys_other",
               "n_participants_valid", "n_repeat_pairs", "n_repeat_pairs_inconsistent", "n_answers_total",
               "n_answers_excluded_surveys", "n_answers_repeats_excluded", "n_answers_missing_total",
               "n_answers_missing_dropped", "n_answers_used")

COLUMN_LABELS: dict[str, str] = {
    "source": "Source", "n_participants": "Participants", "n_answers": "Answers", "n_correct": "Correct",
    "accuracy": "Accuracy", "chance": "Chance", "binom_p": "p (binomial)", "binom_p_holm": "p (binomial, Holm)",
    "emotion": "Emotion", "mean_hu": "Mean Hu", "mean_pc": "Mean chance pc",
    "mean_diff_arcsine": "Hu - pc (arcsine units)", "t": "t", "df": "df", "p": "p", "p_holm": "p (Holm)",
    "cohen_kappa": "Cohen's kappa", "fleiss_kappa_mean": "Fleiss' kappa (mean over batches)",
    "n_batches_fleiss": "Batches (Fleiss)", "krippendorff_alpha": "Krippendorff's alpha",
    "n_units_alpha": "Stimuli (alpha)", "term": "Term", "estimate": "Estimate (log-odds)", "sd": "SD",
    "odds_ratio": "Odds ratio", "z": "z", "p_approx": "p (approx.)", "se": "SE", "mean": "Mean",
    "median": "Median", "score": "Score", "value": "Option value", "label": "Option", "count": "Count",
    "percent": "% of answers", "aspect": "Aspect", "n_responses": "Responses", "a": "A", "b": "B",
    "dv": "Measure", "unit": "Pairing unit", "n_unpaired": "Unpaired (left out)", "n": "n",
    "n_zeros": "Zero differences", "n_used": "Non-zero differences", "votes": "Votes",
    "rate": "Votes per response", "r_plus": "R+", "r_minus": "R-",
    "mean_h0": "E(R+) under H0", "var_h0": "Var(R+) under H0", "effect_r": "r = z / sqrt(n)",
    "rank_biserial": "Rank-biserial r", "median_diff": "Median difference", "zero_method": "Zero handling",
    "alternative": "Alternative", "correction": "Continuity correction", "method": "p from",
    "mean_a": "Mean A", "mean_b": "Mean B", "subset": "Videos", "counting": "Labels counted",
    "modality": "Matching the", "n_match": "Matching", "fraction": "% matching", "mean_visual": "Mean visual match",
    "mean_audio": "Mean audio match", "reference": "Reference emotion", "truth": "Shown emotion",
    "answer": "Answer", "row_total": "Row total", "row_percent": "Row %", "col_total": "Column total",
    "measure": "Measure", "paper": "Paper", "ours": "This study", "ours_ci": "This study's CI", "note": "Note",
    "count_label": "Count", "percent_of": "%", "contrast": "Contrast",
    "se_model": "SE (model-based)", "se_cluster": "SE (cluster-robust, by participant)",
}
VALUE_LABELS: dict[str, str] = {
    "primary_or_secondary": "primary or secondary", "all_labels": "all labels", "all": "all videos",
    "mismatched": "mismatched videos", "two-sided": "two-sided", "approx": "normal approx.", "exact": "exact",
}
# Labels that depend on the table.
TABLE_COLUMN_LABELS: dict[str, dict[str, str]] = {
    "task1_aspects": {"percent": "% of responses"},
    "task2_match_fractions": {"n": "n (responses; labels for all labels)"},
}
# Columns holding a fraction shown as a percentage, per table.
PERCENT_COLUMNS: dict[str, set[str]] = {
    "task1_accuracy": {"accuracy", "chance", "ci_low", "ci_high"},
    "task1_accuracy_all": {"accuracy", "chance", "ci_low", "ci_high"},
    "task2_match_fractions": {"fraction", "ci_low", "ci_high"},
    "task2_dominance": {"mean_visual", "mean_audio"},
}
P_COLUMNS = {"p", "p_holm", "binom_p", "binom_p_holm", "p_approx"}
BOUNDED_COLUMNS = {"cohen_kappa", "fleiss_kappa_mean", "krippendorff_alpha", "effect_r", "rank_biserial"}
# Wide tables show these columns in the report (every column stays in tables/NAME.csv).
SHOWN_COLUMNS: dict[str, list[str]] = {
    "task1_wilcoxon": ["a", "b", "unit", "n", "n_zeros", "mean_a", "mean_b", "median_diff", "r_plus", "r_minus", "z",
                       "p", "effect_r", "rank_biserial", "rank_biserial_ci"],
    "task1_wilcoxon_sensitivity": ["unit", "zero_method", "n", "n_zeros", "r_plus", "r_minus", "z", "p", "effect_r",
                                   "rank_biserial"],
    "task2_dominance": ["counting", "n", "n_zeros", "mean_visual", "mean_audio", "r_plus", "r_minus", "z", "p",
                        "p_holm", "effect_r", "rank_biserial", "rank_biserial_ci"],
    "task1_realness_distribution": ["source", "label", "score", "count", "percent"],
    "task1_aspects": ["source", "label", "count", "n_responses", "percent"],
    "task2_agreement": ["reference", "n_answers", "cohen_kappa", "fleiss_kappa_mean", "n_batches_fleiss",
                        "krippendorff_alpha", "n_units_alpha"],
}


# ------------------------------------------------------------------ numbers
def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def fmt_p(p: Any) -> str:
    """APA p without 'p': '.048', '< .001', 'n/a'."""
    if _missing(p):
        return "n/a"
    p = float(p)
    return "< .001" if p < 0.001 else f"{p:.3f}".removeprefix("0")


def p_clause(p: Any) -> str:
    """'p = .048' or 'p < .001'."""
    s = fmt_p(p)
    return f"p {s}" if s.startswith("<") else f"p = {s}"


def fmt_bounded(v: Any, digits: int = 2) -> str:
    """A statistic bounded by 1 without the leading zero: .26, -.31."""
    if _missing(v):
        return "n/a"
    s = f"{float(v):.{digits}f}"
    if float(s) == 0:  # -0.001 rounds to zero: no "-.00"
        s = s.lstrip("-")
    return s.replace("0.", ".", 1) if abs(float(v)) < 1 else s


def fmt_num(v: Any, sig: int = 3) -> str:
    """About ``sig`` significant digits, never scientific notation for ordinary sizes; integers as such."""
    if _missing(v):
        return ""
    if isinstance(v, (bool,)):
        return "yes" if v else "no"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer()):
        return f"{int(v)}"
    x = float(f"{float(v):.{sig}g}")  # rounded first, so 0.09999999 counts as 0.1
    if x == 0:
        return "0"
    decimals = max(0, sig - 1 - int(math.floor(math.log10(abs(x)))))
    out = f"{x:.{min(decimals, 4)}f}"
    return out.lstrip("-") if float(out) == 0 else out  # no "-0.0000"


def fmt_pct(v: Any, decimals: int = 1) -> str:
    if _missing(v):
        return "n/a"
    s = f"{100 * float(v):.{decimals}f}"
    return (s.lstrip("-") if float(s) == 0 else s) + "%"  # no "-0.0%"


def fmt_ci(lo: Any, hi: Any, fmt=fmt_num) -> str:
    if _missing(lo) or _missing(hi):
        return "n/a"
    return f"[{fmt(lo)}, {fmt(hi)}]"


def ci_label(ci: float) -> str:
    return f"{100 * ci:g}% CI"


# ------------------------------------------------------------------ tables
def readable_table(name: str, df: pd.DataFrame, *, ci: float = 0.95) -> pd.DataFrame:
    """The table as the report shows it: chosen columns, human labels, formatted text cells."""
    d = df.copy()
    pct = PERCENT_COLUMNS.get(name, set())
    if "ci_low" in d.columns and "ci_high" in d.columns:
        fmt = (lambda v: fmt_pct(v)) if "ci_low" in pct else fmt_num
        d.insert(list(d.columns).index("ci_low"), "ci",
                 [fmt_ci(lo, hi, fmt) for lo, hi in zip(d["ci_low"], d["ci_high"])])
        d = d.drop(columns=["ci_low", "ci_high"])
    if "rank_biserial_ci_low" in d.columns:
        d["rank_biserial_ci"] = [fmt_ci(lo, hi, fmt_bounded) for lo, hi in
                                 zip(d["rank_biserial_ci_low"], d["rank_biserial_ci_high"])]
    shown = SHOWN_COLUMNS.get(name)
    if shown:
        d = d[[c for c in shown if c in d.columns]]
    out = pd.DataFrame(index=d.index)
    numeric = []
    for col in d.columns:
        s = d[col]
        if col in P_COLUMNS:
            cells = s.map(fmt_p)
        elif col in pct:
            cells = s.map(fmt_pct)
        elif col in BOUNDED_COLUMNS:
            cells = s.map(fmt_bounded)
        elif col in ("percent", "row_percent"):
            cells = s.map(lambda v: "" if _missing(v) else f"{float(v):.1f}%")
        elif s.dtype == bool:
            cells = s.map(lambda v: "yes" if v else "no")
        elif pd.api.types.is_numeric_dtype(s):
            cells = s.map(fmt_num)
        else:
            cells = s.map(lambda v: "" if _missing(v) else VALUE_LABELS.get(str(v), str(v)))
        label = TABLE_COLUMN_LABELS.get(name, {}).get(col) or column_label(col, ci)
        if label in out.columns:
            raise AssertionError(f"two columns of {name} have the label {label!r}")
        out[label] = cells.to_numpy()
        if col in ("ci", "rank_biserial_ci") or pd.api.types.is_numeric_dtype(s):
            numeric.append(label)
    out = out.reset_index(drop=True)
    out.attrs["numeric"] = numeric
    return out


def table_html(df: pd.DataFrame, numeric: list[str] | None = None) -> str:
    """A plain HTML table: text columns left-aligned, number columns (``numeric``, default
    ``df.attrs["numeric"]``) right-aligned with the class ``num``; every cell escaped."""
    from markupsafe import escape

    numeric = set(df.attrs.get("numeric", []) if numeric is None else numeric)
    cls = [' class="num"' if c in numeric else "" for c in df.columns]
    head = "".join(f"<th scope=\"col\"{k}>{escape(c)}</th>" for c, k in zip(df.columns, cls))
    body = "".join("<tr>" + "".join(f"<td{k}>{escape(v)}</td>" for v, k in zip(row, cls)) + "</tr>\n"
                   for row in df.astype(str).itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def column_label(col: str, ci: float = 0.95) -> str:
    if col == "ci":
        return ci_label(ci)
    if col == "rank_biserial_ci":
        return f"Rank-biserial {ci_label(ci)}"
    return COLUMN_LABELS.get(col, col.replace("_", " ").capitalize())


def exclusions_table(counts: Mapping[str, int]) -> pd.DataFrame:
    """The cleaning counts with their labels and the share of the total they belong to."""
    totals = {"n_surveys": counts.get("n_surveys_total"), "n_answers": counts.get("n_answers_total"),
              "n_participants": counts.get("n_participants_total"), "n_repeat_pairs": counts.get("n_repeat_pairs")}
    rows = []
    keys = [k for k in COUNT_ORDER if k in counts] + sorted(k for k in counts if k not in COUNT_ORDER)
    for k in keys:
        v = counts[k]
        base = next((t for prefix, t in totals.items() if k.startswith(prefix) and not k.endswith("_total")
                     and k != prefix), None)
        if k in ("n_verdict_disagreements", "n_inconsistency_count_disagreements"):
            base = counts.get("n_surveys_total")
        share = f"{100 * v / base:.1f}%" if base else ""
        rows.append({"Count": COUNT_LABELS.get(k, k.removeprefix("n_").replace("_", " ").capitalize()),
                     "n": str(int(v)), "%": share})
    return pd.DataFrame(rows, columns=["Count", "n", "%"])


# ------------------------------------------------------------------ sentences
def _n_unit(w: Mapping[str, Any]) -> str:
    unit = {"participant": "participants", "item": "content items", "response": "pairs of responses"}.get(
        str(w.get("unit")), str(w.get("unit")))
    return f"n = {w['n']} {unit}"


def _alt_text(w: Mapping[str, Any]) -> str:
    return {"two-sided": "two-sided", "greater": "one-sided, A > B", "less": "one-sided, A < B"}.get(
        str(w.get("alternative")), str(w.get("alternative")))


def _effect(w: Mapping[str, Any], ci: float) -> str:
    s = f"r = {fmt_bounded(w.get('effect_r'))}, rank-biserial r = {fmt_bounded(w.get('rank_biserial'))}"
    if not _missing(w.get("rank_biserial_ci_low")):
        s += f", {ci_label(ci)} {fmt_ci(w['rank_biserial_ci_low'], w['rank_biserial_ci_high'], fmt_bounded)}"
    return s


def scale_text(distribution: list[Mapping[str, Any]], *, labels: bool = True) -> str:
    """From the realness distribution (the plan's scores): '1 = Definitely unreal, 5 = Definitely real', or
    with ``labels=False`` 'on the 1-5 scale'; '' when there are no scores."""
    scored = sorted({(float(r["score"]), str(r["label"])) for r in distribution if not _missing(r.get("score"))})
    if not scored:
        return ""
    (lo, lo_label), (hi, hi_label) = scored[0], scored[-1]
    if not labels:
        return f"on the {fmt_num(lo)}-{fmt_num(hi)} scale"
    return f"{fmt_num(lo)} = {lo_label}, {fmt_num(hi)} = {hi_label}"


PAIRING_TEXT = {"participant": "participant means", "item": "content-item means", "response": "paired responses"}


def wilcoxon_sentence(w: Mapping[str, Any], ci: float, scale: str = "") -> str:
    a, b = w["a"], w["b"]
    sig = not _missing(w.get("p")) and float(w["p"]) < ALPHA
    higher = (w.get("median_diff") or 0) > 0 or ((w.get("median_diff") or 0) == 0 and (w.get("z") or 0) > 0)
    if sig:
        verdict = f"{a} videos were rated as {'more' if higher else 'less'} real than {b} videos"
    else:
        verdict = f"realness ratings of {a} and {b} videos did not differ significantly"
    zero = {"pratt": "Pratt", "wilcox": "zeros dropped", "zsplit": "zero ranks split"}.get(str(w.get("zero_method")),
                                                                                        str(w.get("zero_method")))
    pairing = PAIRING_TEXT.get(str(w.get("unit")), str(w.get("unit")))
    return (f"A Wilcoxon signed-rank test ({pairing}, {zero}, {_alt_text(w)}) showed that {verdict} "
            f"(M = {fmt_num(w.get('mean_a'))} vs {fmt_num(w.get('mean_b'))}{f' {scale}' if scale else ''}, "
            f"median difference = {fmt_num(w.get('median_diff'))}), z = {w['z']:.2f}, {p_clause(w['p'])}, "
            f"{_effect(w, ci)}, {_n_unit(w)}.")


def dominance_sentence(d: Mapping[str, Any], ci: float) -> str:
    counting = {"primary": "primary labels", "primary_or_secondary": "primary or secondary labels"}.get(
        str(d["counting"]), str(d["counting"]))
    sig = not _missing(d.get("p_holm")) and float(d["p_holm"]) < ALPHA
    mv, ma = d.get("mean_visual"), d.get("mean_audio")
    if sig:
        which = "visual" if (mv or 0) > (ma or 0) else "audio"
        other = "audio" if which == "visual" else "visual"
        verdict = f"participants' {counting} matched the {which} emotion more often than the {other} emotion"
    else:
        verdict = f"how often participants' {counting} matched the visual and the audio emotion did not differ significantly"
    return (f"On mismatched videos, {verdict} (M = {fmt_pct(mv)} vs {fmt_pct(ma)} of a participant's videos), "
            f"Wilcoxon signed-rank z = {d['z']:.2f}, {p_clause(d['p'])} (Holm-adjusted {p_clause(d.get('p_holm'))}), "
            f"{_effect(d, ci)}, n = {d['n']} participants.")


def accuracy_sentence(r: Mapping[str, Any], ci: float) -> str:
    above = not _missing(r.get("binom_p_holm")) and float(r["binom_p_holm"]) < ALPHA
    return (f"Emotion accuracy for {r['source']} was {fmt_pct(r['accuracy'])}, {ci_label(ci)} "
            f"{fmt_ci(r['ci_low'], r['ci_high'], fmt_pct)} (bootstrap over participants), "
            f"{'above' if above else 'not significantly above'} chance ({fmt_pct(r['chance'])}; exact one-sided "
            f"binomial test, Holm-adjusted {p_clause(r['binom_p_holm'])}), n = {r['n_answers']} answers from "
            f"{r['n_participants']} participants.")


def realness_sentence(rows: list[Mapping[str, Any]], ci: float, scale: str = "") -> str:
    parts = [f"{r['source']} M = {fmt_num(r['mean'])} (SD = {fmt_num(r['sd'])}, {ci_label(ci)} "
             f"{fmt_ci(r['ci_low'], r['ci_high'])}, n = {r['n_answers']} answers)" for r in rows]
    return f"Mean realness ratings{f' ({scale})' if scale else ''} were " + "; ".join(parts) + "."


def hu_sentence(group: str, rows: list[Mapping[str, Any]], what: str) -> str:
    tested = [r for r in rows if not _missing(r.get("p_holm"))]
    above = [r for r in tested if float(r["p_holm"]) < ALPHA]
    detail = "; ".join(f"{r['emotion']} t({fmt_num(r['df'])}) = {r['t']:.2f}, {p_clause(r['p_holm'])}"
                       for r in tested)
    return (f"Wagner's unbiased hit rate Hu for {what} exceeded chance for {len(above)} of {len(tested)} emotions "
            f"(one-sided paired t-tests on arcsine-transformed Hu - pc over participants, Holm-adjusted): "
            f"{detail or 'no emotion could be tested'}.")


def model_sentence(term: Mapping[str, Any], ml: Mapping[str, Any], *, what: str, p_key: str) -> str:
    lo, hi = term.get("ci_low"), term.get("ci_high")
    ci = fmt_ci(math.exp(lo), math.exp(hi)) if not (_missing(lo) or _missing(hi)) else "n/a"
    label = term.get("contrast") or term["term"]
    return (f"{what}, {label}: OR = {fmt_num(term.get('odds_ratio'))}, "
            f"95% interval {ci}, z = {term['z']:.2f}, {p_clause(term.get(p_key))}, n = {ml.get('n_answers')} answers.")


def match_sentence(fracs: list[Mapping[str, Any]], counting: str, ci: float,
                   counts: Mapping[str, Any] | None = None) -> str:
    """How often the primary (or either) label matched the visual vs the audio emotion, all videos and
    mismatched ones, each with its bootstrap CI; with ``counts`` also how many responses had two labels."""
    f = {(r["subset"], r["modality"]): r for r in fracs if r["counting"] == counting}

    def pct(r: Mapping[str, Any]) -> str:
        ci_text = "" if _missing(r.get("ci_low")) else " " + fmt_ci(r["ci_low"], r["ci_high"], fmt_pct)
        return fmt_pct(r["fraction"]) + ci_text

    what = "Primary labels" if counting == "primary" else "Primary or secondary labels (either one)"
    parts = []
    for subset, of in (("all", "all {n} responses"), ("mismatched", "the {n} responses to mismatched videos")):
        v, a = f.get((subset, "visual")), f.get((subset, "audio"))
        if v and a:
            parts.append(f"the visual emotion in {pct(v)} and the audio emotion in {pct(a)} of "
                         + of.format(n=v["n"]))
    text = f"{what} matched " + "; and ".join(parts) + f" ({ci_label(ci)}s: bootstrap over participants)."
    if counts:
        text += f" {counts['n_two_labels']} of {counts['n_responses']} responses gave two distinct labels."
    return text


def agreement_sentence(rows: list[Mapping[str, Any]], key: str, what: str) -> str:
    parts = [f"{r[key]} kappa = {fmt_bounded(r.get('cohen_kappa'))}, alpha = {fmt_bounded(r.get('krippendorff_alpha'))}"
             for r in rows]
    return (f"Agreement of the answers with the {what} (Cohen's kappa) and between participants (Krippendorff's "
            f"alpha, nominal): " + "; ".join(parts) + ".")


def sentences(results: Mapping[str, Any]) -> list[dict[str, str]]:
    """One APA-style sentence per test (and per descriptive result a reader cites): the paper's headline
    results first (accuracy, realness and its Wilcoxon test; Task 2 matches and dominance), then Hu,
    agreement and the models.
    Each: {"id", "topic", "text"}."""
    ci = float(results.get("options", {}).get("ci", 0.95))
    out: list[dict[str, str]] = []

    def add(sid: str, topic: str, text: str) -> None:
        out.append({"id": sid, "topic": topic, "text": text})

    t1 = results.get("task1", {})
    for r in t1.get("accuracy", []):
        if r.get("accuracy") is not None:
            add(f"accuracy-{r['source']}", f"Task 1 accuracy, {r['source']}", accuracy_sentence(r, ci))
    dist = t1.get("realness_distribution", [])
    if t1.get("realness"):
        add("realness-means", "Task 1 realness", realness_sentence(t1["realness"], ci, scale_text(dist)))
    if t1.get("wilcoxon"):
        add("realness-wilcoxon", "Task 1 realness test",
            wilcoxon_sentence(t1["wilcoxon"], ci, scale_text(dist, labels=False)))
    groups: dict[str, list] = {}
    for r in t1.get("hu", []):
        groups.setdefault(r["source"], []).append(r)
    for g, rows in groups.items():
        add(f"hu-{g}", f"Task 1 unbiased hit rate, {g}", hu_sentence(g, rows, g))
    if t1.get("agreement"):
        add("agreement-task1", "Task 1 agreement", agreement_sentence(t1["agreement"], "source", "shown emotion"))
    ml = t1.get("mixed_logit")
    if ml and ml.get("fitted", True) and ml.get("fixed"):
        for term in ml["fixed"]:
            if term["term"] not in ("Intercept", "const") and not _missing(term.get("z")):
                add(f"logit-{term['term']}", "Task 1 mixed logit",
                    model_sentence(term, ml, what="Mixed-effects logistic regression of a correct answer",
                                   p_key="p" if "p" in term else "p_approx"))
    om = t1.get("ordinal_realness")
    if om and om.get("fitted", True) and om.get("coefficients"):
        for term in om["coefficients"]:
            add(f"ordinal-{term['term']}", "Task 1 ordinal model",
                model_sentence(term, om, what="Cumulative-logit model of realness", p_key="p"))
    t2 = results.get("task2")
    if t2:
        add("match-primary", "Task 2 primary labels", match_sentence(t2["match_fractions"], "primary", ci))
        if t2.get("has_secondary", True):  # a study with one label per video has no secondary counting
            add("match-either", "Task 2 primary or secondary labels",
                match_sentence(t2["match_fractions"], "primary_or_secondary", ci, t2["label_counts"]))
        for d in t2.get("dominance", []):
            add(f"dominance-{d['counting']}", "Task 2 visual vs audio dominance", dominance_sentence(d, ci))
        groups = {}
        for r in t2.get("hu", []):
            groups.setdefault(r["reference"], []).append(r)
        for g, rows in groups.items():
            add(f"hu-{g}", f"Task 2 unbiased hit rate, {g}", hu_sentence(g, rows, f"the {g} emotion as the truth"))
        if t2.get("agreement"):
            add("agreement-task2", "Task 2 agreement",
                agreement_sentence(t2["agreement"], "reference", "visual / audio emotion"))
    return out
