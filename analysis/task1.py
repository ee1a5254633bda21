"""Task 1 of the paper (Section IV-D): emotion classification and realness of GT/BL/OURS videos.

All functions take the long-form answers of :func:`analysis.cleaning.clean` (one row per answer) and
return tidy DataFrames. Sources are whatever labels the data has, ordered GT, BL, OURS first (the
paper's order) then the others alphabetically.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.confusion import confusion_matrix
from analysis.errors import AnalysisOptionError
from analysis.stats import (
    Alternative,
    PairingUnit,
    ZeroMethod,
    binomial_test,
    holm,
    paired_wilcoxon,
    ratio_bootstrap_ci,
)
from stimuli.emotions import EMOTIONS

PAPER_SOURCE_ORDER = ("GT", "BL", "OURS")


def source_order(sources: Sequence[str] | pd.Series) -> list[str]:
    """GT, BL, OURS (those present) then the other sources sorted."""
    values = sources if isinstance(sources, pd.Series) else pd.Series(list(sources), dtype=object)
    present = {str(v) for v in pd.unique(values)}
    return [s for s in PAPER_SOURCE_ORDER if s in present] + sorted(present - set(PAPER_SOURCE_ORDER))


def choose_comparison(sources: Sequence[str], a: str | None = None, b: str | None = None) -> tuple[str, str, str]:
    """Which two sources the realness Wilcoxon test compares, and why (a sentence for the report).

    Given ``a``/``b`` are checked against the data. Default: OURS vs BL when both are present, else the
    first two non-GT sources in :func:`source_order`, else the first two sources.
    """
    order = source_order(sources)
    if a is not None or b is not None:
        if a is None or b is None:
            raise AnalysisOptionError("give both sources of the comparison (--compare A B), or neither")
        for s in (a, b):
            if s not in order:
                raise AnalysisOptionError(f"source {s!r} is not in the answers (sources: {', '.join(order)})")
        if a == b:
            raise AnalysisOptionError(f"compare two different sources, not {a!r} with itself")
        return a, b, f"{a} vs {b}, as requested"
    if "OURS" in order and "BL" in order:
        return "OURS", "BL", "OURS vs BL (the paper's comparison; both sources are present)"
    non_gt = [s for s in order if s != "GT"]
    pool = non_gt if len(non_gt) >= 2 else order
    if len(pool) < 2:
        raise AnalysisOptionError(f"the realness comparison needs two sources; the answers have {order}")
    return pool[0], pool[1], (f"{pool[0]} vs {pool[1]}: OURS and BL are not both present, so the first two "
                              f"{'non-GT ' if pool is non_gt else ''}sources were compared")


def _question(answers: pd.DataFrame, question: str) -> pd.DataFrame:
    sub = answers[answers["question"] == question]
    return sub


def emotion_confusion(answers: pd.DataFrame, *, question: str = "emotion", truth: str = "visual_emotion",
                      labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Confusion matrix (counts, row percentages) of the emotion answers per source (Fig. 5), over ``labels``
    (the emotions the question offered; default the six) and any other answer given."""
    sub = _question(answers, question)
    base = list(labels) if labels is not None else list(EMOTIONS)
    cm = confusion_matrix(sub, truth=truth, answer="answer", by="source",
                          labels=base + sorted(set(sub["answer"]) - set(base)))
    order = {s: i for i, s in enumerate(source_order(sub["source"]))}
    return cm.sort_values("source", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def accuracy_by_source(answers: pd.DataFrame, *, question: str = "emotion", truth: str = "visual_emotion",
                       chance: float = 1 / 6, alternative: Alternative = "greater", n_boot: int = 2000,
                       ci: float = 0.95, random_state: int = 0) -> pd.DataFrame:
    """Accuracy of the emotion answers per source, its bootstrap CI over participants, the exact binomial
    test against ``chance`` and Holm-adjusted p over the sources.

    accuracy = correct answers / answers (pooled). CI: percentile bootstrap of the pooled accuracy
    resampling participants with replacement (``n_boot`` draws, ``random_state``). Binomial test: all
    answers of the source as independent trials (see the mixed model for the clustered view).

    Returns columns source, n_participants, n_answers, n_correct, accuracy, ci_low, ci_high, chance,
    binom_p, binom_p_holm.
    """
    sub = _question(answers, question)
    rows = []
    for k, src in enumerate(source_order(sub["source"])):
        s = sub[sub["source"] == src]
        correct = (s["answer"] == s[truth]).to_numpy()
        per = pd.DataFrame({"p": s["participant"].to_numpy(), "c": correct}).groupby("p")["c"].agg(["sum", "size"])
        lo, hi = ratio_bootstrap_ci(per["sum"].to_numpy(), per["size"].to_numpy(), n_boot=n_boot, ci=ci,
                                    random_state=random_state + k)
        n, c = int(len(s)), int(correct.sum())
        rows.append({"source": src, "n_participants": int(len(per)), "n_answers": n, "n_correct": c,
                     "accuracy": c / n if n else float("nan"), "ci_low": lo, "ci_high": hi, "chance": chance,
                     "binom_p": binomial_test(c, n, chance, alternative)})
    out = pd.DataFrame(rows, columns=["source", "n_participants", "n_answers", "n_correct", "accuracy", "ci_low",
                                      "ci_high", "chance", "binom_p"])
    out["binom_p_holm"] = holm(out["binom_p"].to_numpy())
    return out


def accuracy_all_sources(answers: pd.DataFrame, *, question: str = "emotion", truth: str = "visual_emotion",
                         chance: float = 1 / 6, alternative: Alternative = "greater", n_boot: int = 2000,
                         ci: float = 0.95, random_state: int = 0, label: str = "ALL") -> pd.DataFrame:
    """Accuracy of every emotion answer pooled over the sources (source ``label``), its bootstrap CI over
    participants and the exact binomial test against ``chance``: the columns of :func:`accuracy_by_source`.

    A single test, not part of the Holm family of the per-source tests (``binom_p_holm`` is NaN). Its unit
    is the answer, as in the per-source tests: the binomial test treats answers as independent trials.
    """
    sub = _question(answers, question)
    pooled = sub.assign(source=label)
    out = accuracy_by_source(pooled, question=question, truth=truth, chance=chance, alternative=alternative,
                             n_boot=n_boot, ci=ci, random_state=random_state + 50)
    out["binom_p_holm"] = float("nan")
    return out


def realness_summary(answers: pd.DataFrame, *, question: str = "realness", n_boot: int = 2000, ci: float = 0.95,
                     random_state: int = 0) -> pd.DataFrame:
    """Mean realness score per source (all answers pooled, as in the paper), sd, median and a bootstrap CI
    of the mean resampling participants. Columns source, n_participants, n_answers, mean, sd, median,
    ci_low, ci_high."""
    sub = _question(answers, question)
    rows = []
    for k, src in enumerate(source_order(sub["source"])):
        s = sub[sub["source"] == src]
        per = s.groupby("participant")["score"].agg(["sum", "size"])
        lo, hi = ratio_bootstrap_ci(per["sum"].to_numpy(), per["size"].to_numpy(), n_boot=n_boot, ci=ci,
                                    random_state=random_state + 100 + k)
        sc = s["score"].to_numpy(dtype=float)
        rows.append({"source": src, "n_participants": int(len(per)), "n_answers": int(len(sc)),
                     "mean": float(sc.mean()) if len(sc) else float("nan"),
                     "sd": float(sc.std(ddof=1)) if len(sc) > 1 else float("nan"),
                     "median": float(np.median(sc)) if len(sc) else float("nan"), "ci_low": lo, "ci_high": hi})
    return pd.DataFrame(rows, columns=["source", "n_participants", "n_answers", "mean", "sd", "median", "ci_low",
                                       "ci_high"])


def realness_distribution(answers: pd.DataFrame, *, question: str = "realness",
                          options: Sequence[Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """Count and percentage of each realness option per source (Fig. 6). ``options`` are the plan's
    options of the question (value, label, score); by default the scores found in the data.
    Columns source, score, value, label, count, percent (of the source's answers)."""
    sub = _question(answers, question)
    if options is None:
        options = [{"value": v, "label": v, "score": sc} for v, sc in
                   sub.drop_duplicates("answer")[["answer", "score"]].itertuples(index=False)]
    opts = sorted(options, key=lambda o: -float(o["score"]))
    rows = []
    for src in source_order(sub["source"]):
        s = sub[sub["source"] == src]
        counts = s["answer"].value_counts()
        for o in opts:
            c = int(counts.get(o["value"], 0))
            rows.append({"source": src, "score": float(o["score"]), "value": o["value"], "label": o.get("label", o["value"]),
                         "count": c, "percent": 100.0 * c / len(s) if len(s) else float("nan")})
    return pd.DataFrame(rows, columns=["source", "score", "value", "label", "count", "percent"])


def aspect_counts(answers: pd.DataFrame, *, question: str = "aspects",
                  options: Sequence[Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """How often each improvement aspect was chosen per source (Fig. 7). A multi-choice answer holds the
    chosen values joined by ';'; ``none`` is an option like the others.

    Columns source, aspect, label, count, n_responses (answers of the source), percent (of the responses).
    """
    sub = _question(answers, question)
    if options is None:
        vals = sorted({p for a in pd.unique(sub["answer"]) for p in str(a).split(";") if p})
        options = [{"value": v, "label": v} for v in vals]
    rows = []
    for src in source_order(sub["source"]):
        s = sub[sub["source"] == src]
        exploded = s["answer"].str.split(";").explode()
        counts = exploded.value_counts()
        for o in options:
            c = int(counts.get(o["value"], 0))
            rows.append({"source": src, "aspect": o["value"], "label": o.get("label", o["value"]), "count": c,
                         "n_responses": int(len(s)), "percent": 100.0 * c / len(s) if len(s) else float("nan")})
    return pd.DataFrame(rows, columns=["source", "aspect", "label", "count", "n_responses", "percent"])


def realness_wilcoxon(answers: pd.DataFrame, a: str, b: str, *, question: str = "realness",
                      unit: PairingUnit = "participant", zero_method: ZeroMethod = "pratt",
                      alternative: Alternative = "two-sided", correction: bool = False,
                      method: str = "approx") -> pd.DataFrame:
    """Wilcoxon signed-rank test of realness scores, source ``a`` vs ``b`` (see
    :func:`analysis.stats.paired_wilcoxon` for the pairing units and zero handling)."""
    sub = _question(answers, question)
    return paired_wilcoxon(sub, dv="score", within="source", a=a, b=b, unit=unit, zero_method=zero_method,
                           alternative=alternative, correction=correction, method=method)


def realness_wilcoxon_sensitivity(answers: pd.DataFrame, a: str, b: str, *, question: str = "realness",
                                  alternative: Alternative = "two-sided", correction: bool = False,
                                  method: str = "approx") -> pd.DataFrame:
    """The realness test under every pairing unit x zero method (a robustness table), each row with the
    chosen ``alternative``, continuity ``correction`` and p ``method`` (the columns alternative, correction
    and method label them), so that the table varies only what it says it varies."""
    frames = [realness_wilcoxon(answers, a, b, question=question, unit=u, zero_method=z, alternative=alternative,
                                correction=correction, method=method)
              for u in ("participant", "item", "response") for z in ("pratt", "wilcox", "zsplit")]
    return pd.concat(frames, ignore_index=True)
