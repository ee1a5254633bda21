"""Norms of a stimulus set from a norming study's export (``emostudy norms``): per clip, per emotion, per
identity, the reliability of the ratings, the set-level confusion and how well the machine check
(``emostudy check``) predicts people.

Which answers count: those of :func:`analysis.cleaning.clean` (valid surveys, original showings, no
missing answers); the repeats serve the test-retest rows of the reliability table. The clips are those of
the plan's batches (a clip nobody rated validly has ``n_ratings`` 0 and empty measures), labelled from the
export's manifest (else from the answers). A clip's *intended* emotion is its visual emotion, or its audio
emotion when the visual one is null (``stimuli.designs.stimulus_emotion``).

Per clip (:func:`stimulus_norms`, one row per clip)
    ``n_ratings`` answers to the emotion question; ``n_hits`` of them the intended emotion;
    ``recognition`` = n_hits / n_ratings with the Wilson score interval (``ci_low``, ``ci_high``; Wilson
    1927); ``modal_label``: the most chosen option, tied options joined by ``;`` in option order
    (``n_modal`` of them), ``modal_share`` its share; ``other_share``: the share of ``other`` (or ``none``)
    answers; ``entropy_bits``: the Shannon entropy (bits) of the label distribution over the question's
    options; ``hu``: the per-clip unbiased hit rate, the clip's hit rate times the precision of its emotion's
    label over the whole study, ``hu = (n_hits / n_ratings) * (H_e / R_e)`` with ``H_e`` the hits on all
    clips of emotion e and ``R_e`` the times label e was chosen for any clip. Its mean over the clips of an
    emotion weighted by their ratings is Wagner's (1993) Hu of the pooled confusion table,
    ``H_e^2 / (S_e R_e)``. For every scale question q: ``q_n``, ``q_mean``, ``q_sd`` (n - 1).
    With check results in the manifest: ``machine_prob`` (the rater's probability of the intended emotion)
    and ``machine_top`` (its top class in the study's labels: a class the question does not offer, such as
    FER's "surprise", counts as ``other``).
Reliability (:func:`reliability`, one row per scale, plus recognition as the 0/1 hit)
    Split-half: each clip's ratings, ordered by participant, split into odd and even places (``r_oddeven``)
    or, ``n_splits`` times, at random (``r_random``: the mean Pearson r over splits); the two half-means are
    correlated over clips with at least two ratings and stepped up by Spearman-Brown, 2r / (1 + r). ICC:
    one-way random effects (each clip has its own raters; Shrout & Fleiss 1979), ``icc1`` for one rating and
    ``icck`` for the mean of a clip's ratings, with ``k0 = (N - sum n_i^2 / N) / (n - 1)`` for unequal
    n_i (McGraw & Wong 1996). Test-retest: Pearson r of the scores given to an original and its repeat
    (the emotion question: the share of equal answers).
Raters (:func:`rater_table`, one row per valid participant)
    ``n_clips`` rated; ``recognition``: their share of intended emotions; ``consensus``: their agreement with
    the modal label of the *other* raters of each clip (1/m for one of m tied labels; clips no one else rated
    are left out); per scale q, ``q_sd`` (their SD over clips: 0 = the same score for every clip) and
    ``q_r_others`` (Pearson r of their scores with the other raters' clip means). ``straight_lining``: three
    or more clips and the same score for every clip on every scale, which the consistency check cannot see.
    Nobody is excluded for it: the report lists them and the researcher decides.
Machine check vs people (:func:`machine_vs_people`)
    Spearman rank correlation of ``machine_prob`` and ``recognition`` over the clips with both; the top-class
    agreement: over those clips, 1 when the machine's top class is the people's modal label, 1/m when it is
    one of m tied modal labels, else 0, averaged.

References
----------
Wagner, H. L. (1993). On measuring performance in category judgment studies of nonverbal behavior.
    Journal of Nonverbal Behavior 17(1), 3-28.
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical inference. JASA 22, 209-212.
Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater reliability.
    Psychological Bulletin 86(2), 420-428.
McGraw, K. O., & Wong, S. P. (1996). Forming inferences about some intraclass correlation coefficients.
    Psychological Methods 1(1), 30-46.

Example
-------
>>> norms = compute_norms(load_export("norming-export"))  # doctest: +SKIP
>>> norms.stimuli[["stimulus_id", "recognition", "ci_low", "ci_high"]].head()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.cleaning import Cleaned, clean
from analysis.confusion import confusion_matrix
from analysis.errors import AnalysisError
from analysis.io import Export
from stimuli.emotions import EMOTIONS

NORMS_SCHEMA_VERSION = 1
NO_EMOTION = ("other", "none")  # option values that name no emotion
# The machine rater's classes (FER-2013, generator/check/rater.py) in the study's emotion names.
FER_TO_EMOTION = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
                  "neutral": "neutral", "surprise": "other"}


@dataclass
class Norms:
    """Result of :func:`compute_norms`: tables (DataFrames) and the numbers of ``norms.json``."""

    stimuli: pd.DataFrame
    emotions: pd.DataFrame
    identities: pd.DataFrame
    reliability: pd.DataFrame
    confusion: pd.DataFrame
    raters: pd.DataFrame
    machine: dict[str, Any]
    summary: dict[str, Any]
    scales: list[str]
    labels: list[str]
    emotion_question: str | None
    cleaned: Cleaned | None = field(default=None, repr=False)


def wilson_interval(k: int, n: int, ci: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(sps.norm.ppf(0.5 + ci / 2))
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # k = 0 and k = n have the bounds 0 and 1 exactly (the formula gives them up to rounding)
    return (0.0 if k == 0 else max(0.0, centre - half), 1.0 if k == n else min(1.0, centre + half))


def spearman_brown(r: float, factor: float = 2.0) -> float:
    """Reliability of a test ``factor`` times as long: factor r / (1 + (factor - 1) r)."""
    if not np.isfinite(r):
        return math.nan
    return factor * r / (1 + (factor - 1) * r)


def entropy_bits(counts: Sequence[float]) -> float:
    c = np.asarray(counts, dtype=float)
    total = c.sum()
    if total <= 0:
        return math.nan
    p = c[c > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0


def emotion_question_of(plan: Mapping[str, Any]) -> str | None:
    """The emotion question: the design's ``emotion_question`` (norming), else the first single-choice
    question with emotion options."""
    named = (plan.get("design") or {}).get("emotion_question")
    for q in plan.get("questions", []):
        if named is not None and q["id"] == named:
            return q["id"]
    if named is None:
        for q in plan.get("questions", []):
            if q["type"] == "single" and any(o["value"] in EMOTIONS for o in q["options"]):
                return q["id"]
    return None


def read_qc(path: str | Path) -> dict[str, tuple[Any, Any]]:
    """The machine check's opinion of each clip from a check report (``SET/qc/qc.json`` of `emostudy check`):
    stimulus_id -> (the rater's probability of the intended emotion, its top class). For sets whose manifest
    does not carry the check (a check run with ``--no-manifest``, e.g. while the study was already planned)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        records = data["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnalysisError(f"{path}: not a check report (qc.json of `emostudy check`): {exc}") from None
    out: dict[str, tuple[Any, Any]] = {}
    for r in records:
        rater = (r or {}).get("rater") or {}
        if r.get("stimulus_id"):
            out[r["stimulus_id"]] = (rater.get("intended_prob"), rater.get("top"))
    return out


def _stimulus_labels(export: Export, ids: list[str], qc: dict[str, tuple[Any, Any]] | None = None) -> pd.DataFrame:
    cols = ["source", "identity", "sentence", "visual_emotion", "audio_emotion"]
    rows: dict[str, dict[str, Any]] = {}
    machine: dict[str, tuple[Any, Any]] = dict(qc or {})
    for r in (export.manifest or {}).get("stimuli", []):
        if isinstance(r, dict) and r.get("stimulus_id") in ids:
            rows[r["stimulus_id"]] = {**{c: r.get(c) or "" for c in cols}, "media_sha256": r.get("sha256") or ""}
            ck = r.get("check") or {}
            if ck:  # the manifest's own check results come first
                machine[r["stimulus_id"]] = (ck.get("rater_intended_prob"), ck.get("rater_top"))
    first = export.answers.drop_duplicates("stimulus_id").set_index("stimulus_id")
    out = []
    for sid in ids:
        lab = rows.get(sid) or ({**{c: str(first.at[sid, c]) for c in cols}, "media_sha256": ""} if sid in first.index
                                else {**{c: "" for c in cols}, "media_sha256": ""})
        prob, top = machine.get(sid, (None, None))
        out.append({"stimulus_id": sid, **lab, "intended": lab["visual_emotion"] or lab["audio_emotion"],
                    "machine_prob": np.nan if prob is None else float(prob), "machine_top_raw": top or ""})
    return pd.DataFrame(out)


def stimulus_norms(answers: pd.DataFrame, labels: pd.DataFrame, *, emotion_question: str | None,
                   options: list[str], scales: list[str], ci: float = 0.95) -> pd.DataFrame:
    """One row per clip of ``labels`` (see the module docstring for the columns)."""
    out = labels[["stimulus_id", "source", "identity", "sentence", "intended"]].copy()
    n = len(out)
    if emotion_question is not None:
        emo = answers[answers["question"] == emotion_question]
        counts = (pd.crosstab(emo["stimulus_id"], emo["answer"]).reindex(index=out["stimulus_id"], columns=options,
                                                                         fill_value=0).fillna(0).astype(int))
        cm = counts.to_numpy()
        n_r = cm.sum(axis=1)
        idx = {o: i for i, o in enumerate(options)}
        hits = np.array([cm[i, idx[e]] if e in idx else 0 for i, e in enumerate(out["intended"])])
        # Set-level label precision per emotion: hits on clips of e / times label e was chosen.
        intended = out["intended"].to_numpy()
        precision = {}
        for e in options:
            chosen = int(cm[:, idx[e]].sum())
            h_e = int(hits[intended == e].sum())
            precision[e] = h_e / chosen if chosen else 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(n_r > 0, hits / np.maximum(n_r, 1), np.nan)
        cis = [wilson_interval(int(h), int(k), ci) for h, k in zip(hits, n_r)]
        modal, share, n_modal = [], [], []
        for i in range(n):
            if n_r[i] == 0:
                modal.append("")
                share.append(np.nan)
                n_modal.append(0)
                continue
            top = cm[i].max()
            tied = [o for o, c in zip(options, cm[i]) if c == top]
            modal.append(";".join(tied))
            share.append(top / n_r[i])
            n_modal.append(len(tied))
        other = [o for o in options if o in NO_EMOTION]
        out["n_ratings"] = n_r
        out["n_hits"] = hits
        out["recognition"] = rate
        out["ci_low"] = [c[0] for c in cis]
        out["ci_high"] = [c[1] for c in cis]
        out["modal_label"] = modal
        out["n_modal"] = n_modal
        out["modal_share"] = share
        out["other_share"] = np.where(n_r > 0, cm[:, [idx[o] for o in other]].sum(axis=1) / np.maximum(n_r, 1)
                                      if other else 0.0, np.nan)
        out["hu"] = [rate[i] * precision.get(e, 0.0) if n_r[i] else np.nan for i, e in enumerate(intended)]
        out["entropy_bits"] = [entropy_bits(cm[i]) for i in range(n)]
    for q in scales:
        sub = answers[answers["question"] == q]
        g = sub.groupby("stimulus_id")["score"]
        out[f"{q}_n"] = g.size().reindex(out["stimulus_id"]).fillna(0).astype(int).to_numpy()
        out[f"{q}_mean"] = g.mean().reindex(out["stimulus_id"]).to_numpy()
        out[f"{q}_sd"] = g.std(ddof=1).reindex(out["stimulus_id"]).to_numpy()
    out["machine_prob"] = labels["machine_prob"].to_numpy()
    out["media_sha256"] = labels["media_sha256"].to_numpy()  # which media file was normed (emostudy select checks it)
    out["machine_top"] = [_machine_label(t, options) for t in labels["machine_top_raw"]]
    return out


def _machine_label(fer_class: str, options: list[str]) -> str:
    """The machine rater's top class in the study's labels: a class the question does not offer is "other"."""
    if not fer_class:
        return ""
    label = FER_TO_EMOTION.get(fer_class, "other")
    return label if label in options else "other"


def group_norms(per_stim: pd.DataFrame, by: str, scales: list[str], answers: pd.DataFrame | None = None,
                emotion_question: str | None = None) -> pd.DataFrame:
    """Per ``by`` (``intended`` or ``identity``): clips, clips rated, ratings, recognition (mean, SD, min and
    median over rated clips; pooled = hits / ratings), for ``intended`` Wagner's Hu of the pooled table, and
    the mean of the clip means of each scale."""
    rows = []
    for key, d in per_stim.groupby(by, sort=True):
        rated = d[d["n_ratings"] > 0] if "n_ratings" in d else d.iloc[0:0]
        row: dict[str, Any] = {by: key, "n_stimuli": len(d), "n_stimuli_rated": len(rated)}
        if "n_ratings" in d:
            n_r, hits = int(d["n_ratings"].sum()), int(d["n_hits"].sum())
            rec = rated["recognition"]
            row.update(n_ratings=n_r, recognition_mean=rec.mean() if len(rec) else np.nan,
                       recognition_sd=rec.std(ddof=1) if len(rec) > 1 else np.nan,
                       recognition_min=rec.min() if len(rec) else np.nan,
                       recognition_median=rec.median() if len(rec) else np.nan,
                       recognition_pooled=hits / n_r if n_r else np.nan)
            if by == "intended" and answers is not None and emotion_question is not None:
                chosen = int((answers[(answers["question"] == emotion_question)]["answer"] == key).sum())
                row["hu_pooled"] = hits * hits / (n_r * chosen) if n_r and chosen else (0.0 if n_r else np.nan)
        for q in scales:
            row[f"{q}_mean"] = d[f"{q}_mean"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def _half_means(groups: list[np.ndarray], order: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([g[o[0::2]].mean() for g, o in zip(groups, order)])
    b = np.array([g[o[1::2]].mean() for g, o in zip(groups, order)])
    return a, b


def _random_split_rs(groups: list[np.ndarray], n_splits: int, rng: np.random.Generator) -> list[float]:
    """Pearson r of the half-means for ``n_splits`` random splits: each split orders every group's ratings at
    random and halves them into odd and even places (as ``_half_means`` of a random permutation), for all
    groups at once (one sort per split instead of one permutation per clip)."""
    if not groups:
        return []
    sizes = np.array([len(g) for g in groups])
    code = np.repeat(np.arange(len(groups)), sizes)
    values = np.concatenate(groups).astype(float)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_even = (sizes + 1) // 2  # places 0, 2, 4, ...
    out = []
    for _ in range(n_splits):
        order = np.lexsort((rng.random(len(values)), code))  # within each clip, a random order
        place = np.arange(len(values)) - start[code[order]]
        even = place % 2 == 0
        v = values[order]
        a = np.bincount(code[order][even], weights=v[even], minlength=len(groups)) / n_even
        b = np.bincount(code[order][~even], weights=v[~even], minlength=len(groups)) / (sizes - n_even)
        out.append(_pearson(a, b))
    return out


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def icc_oneway(groups: list[np.ndarray]) -> tuple[float, float, float]:
    """(icc1, icck, k0) of the one-way random-effects model over groups (clips) of ratings; groups with
    fewer than two ratings are left out."""
    groups = [g for g in groups if len(g) >= 2]
    n = len(groups)
    if n < 2:
        return (math.nan, math.nan, math.nan)
    sizes = np.array([len(g) for g in groups], dtype=float)
    total = sizes.sum()
    grand = np.concatenate(groups).mean()
    means = np.array([g.mean() for g in groups])
    ssb = float((sizes * (means - grand) ** 2).sum())
    ssw = float(sum(((g - g.mean()) ** 2).sum() for g in groups))
    msb, msw = ssb / (n - 1), ssw / (total - n) if total > n else math.nan
    k0 = (total - (sizes ** 2).sum() / total) / (n - 1)
    if msb == 0 or not np.isfinite(msw):
        return (math.nan, math.nan, k0)
    return ((msb - msw) / (msb + (k0 - 1) * msw), (msb - msw) / msb, k0)


def reliability(answers: pd.DataFrame, repeats: pd.DataFrame, *, scales: list[str], emotion_question: str | None,
                labels: pd.DataFrame, n_splits: int = 200, seed: int = 0) -> pd.DataFrame:
    """Split-half (odd-even and random), ICC and test-retest per measure (see the module docstring)."""
    rng = np.random.default_rng(seed)
    measures: list[tuple[str, pd.DataFrame]] = []
    for q in scales:
        measures.append((q, answers[answers["question"] == q].assign(_v=lambda d: d["score"].astype(float))))
    if emotion_question is not None:
        intended = labels.set_index("stimulus_id")["intended"]
        e = answers[answers["question"] == emotion_question]
        measures.append(("recognition", e.assign(_v=(e["answer"] == e["stimulus_id"].map(intended)).astype(float))))
    rows = []
    for name, d in measures:
        d = d.sort_values(["stimulus_id", "participant", "assignment"])
        groups = [g["_v"].to_numpy() for _, g in d.groupby("stimulus_id", sort=True)]
        two = [g for g in groups if len(g) >= 2]
        a, b = _half_means(two, [np.arange(len(g)) for g in two])
        r_oe = _pearson(a, b)
        rs = _random_split_rs(two, n_splits, rng)
        r_rand = float(np.nanmean(rs)) if rs and not all(np.isnan(rs)) else math.nan
        icc1, icck, k0 = icc_oneway(groups)
        rows.append({"measure": name, "n_stimuli": len(two), "n_ratings": int(sum(len(g) for g in two)),
                     "r_oddeven": r_oe, "sb_oddeven": spearman_brown(r_oe), "r_random": r_rand,
                     "sb_random": spearman_brown(r_rand), "icc1": icc1, "icck": icck, "k0": k0,
                     **_retest(answers, repeats, name, emotion_question)})
    return pd.DataFrame(rows)


def _retest(answers: pd.DataFrame, repeats: pd.DataFrame, name: str, emotion_question: str | None) -> dict[str, Any]:
    q = emotion_question if name == "recognition" else name
    rep = repeats[repeats["question"] == q]
    if not len(rep):
        return {"n_retest": 0, "retest": np.nan}
    orig = answers[answers["question"] == q].set_index(["assignment", "position"])
    keys = list(zip(rep["assignment"], rep["repeat_of"].astype(int)))
    has = [k in orig.index for k in keys]
    rep = rep[has]
    keys = [k for k, h in zip(keys, has) if h]
    if not keys:
        return {"n_retest": 0, "retest": np.nan}
    if name == "recognition":
        same = (orig.loc[keys, "answer"].to_numpy() == rep["answer"].to_numpy())
        return {"n_retest": len(keys), "retest": float(same.mean())}
    return {"n_retest": len(keys), "retest": _pearson(orig.loc[keys, "score"].to_numpy(float),
                                                      rep["score"].to_numpy(float))}


def rater_table(answers: pd.DataFrame, labels: pd.DataFrame, *, scales: list[str],
                emotion_question: str | None) -> pd.DataFrame:
    """One row per rater (see the module docstring)."""
    intended = labels.set_index("stimulus_id")["intended"].to_dict()
    people = sorted(answers["participant"].unique())
    rows: dict[str, dict[str, Any]] = {p: {"participant": p} for p in people}
    if emotion_question is not None:
        e = answers[answers["question"] == emotion_question]
        counts = pd.crosstab(e["stimulus_id"], e["answer"])
        for p, d in e.groupby("participant"):
            credit = []
            for sid, a in zip(d["stimulus_id"], d["answer"]):
                others = counts.loc[sid].copy()
                others[a] -= 1
                if others.sum() == 0:
                    continue
                tied = set(others.index[others == others.max()])
                credit.append(1.0 / len(tied) if a in tied else 0.0)
            rows[p].update(n_clips=int(len(d)), recognition=float((d["answer"] == d["stimulus_id"].map(intended)).mean()),
                           consensus=float(np.mean(credit)) if credit else np.nan)
    flat: dict[str, list[bool]] = {p: [] for p in people}
    for q in scales:
        d = answers[answers["question"] == q]
        g = d.groupby("stimulus_id")["score"]
        total, count = g.sum(), g.size()
        for p, dp in d.groupby("participant"):
            rest = count.loc[dp["stimulus_id"]].to_numpy() - 1
            with np.errstate(invalid="ignore", divide="ignore"):
                others = (total.loc[dp["stimulus_id"]].to_numpy() - dp["score"].to_numpy()) / rest
            ok = rest > 0
            rows[p].setdefault("n_clips", int(len(dp)))
            rows[p][f"{q}_sd"] = float(dp["score"].std(ddof=1)) if len(dp) > 1 else np.nan
            rows[p][f"{q}_r_others"] = _pearson(dp["score"].to_numpy(float)[ok], others[ok])
            flat[p].append(len(dp) >= 3 and dp["score"].nunique() == 1)
    for p in people:
        rows[p]["straight_lining"] = bool(flat[p]) and all(flat[p])
    return pd.DataFrame(list(rows.values()))


def machine_vs_people(per_stim: pd.DataFrame) -> dict[str, Any]:
    """Rank correlation of the machine's probability of the intended emotion with the recognition rate, and
    the agreement of the top classes (ties share the credit; see the module docstring)."""
    if "recognition" not in per_stim:
        return {"available": False, "reason": "the study has no emotion question"}
    both = per_stim[per_stim["machine_prob"].notna() & (per_stim["n_ratings"] > 0)]
    if not len(both):
        return {"available": False, "reason": "no clip has machine check results (run `emostudy check SET` before "
                                              "planning the norming study) and ratings"}
    rho, p = (sps.spearmanr(both["machine_prob"], both["recognition"]) if len(both) >= 3
              and both["machine_prob"].nunique() > 1 and both["recognition"].nunique() > 1 else (math.nan, math.nan))
    tops = both[both["machine_top"] != ""]
    credit = [(1.0 / len(m.split(";")) if t in m.split(";") else 0.0) for t, m in zip(tops["machine_top"],
                                                                                   tops["modal_label"])]
    said_intended = (tops["machine_top"] == tops["intended"])
    return {"available": True, "n_stimuli": int(len(both)), "spearman_rho": float(rho), "p_value": float(p),
            "n_top": int(len(tops)), "top_agreement": float(np.mean(credit)) if credit else math.nan,
            "machine_top_is_intended": float(said_intended.mean()) if len(tops) else math.nan,
            "people_modal_is_intended": float(np.mean([t in m.split(";") and len(m.split(";")) == 1
                                                       for t, m in zip(tops["intended"], tops["modal_label"])]))
            if len(tops) else math.nan}


def compute_norms(export: Export, *, ci: float = 0.95, n_splits: int = 200, seed: int = 0,
                  qc: dict[str, tuple[Any, Any]] | None = None) -> Norms:
    """Every table of the norms (see the module docstring); ``qc`` (:func:`read_qc`) gives the machine check's
    results of clips whose manifest row has none."""
    if not 0 < ci < 1:
        raise AnalysisError(f"ci {ci!r} must be between 0 and 1 (e.g. 0.95)")
    plan = export.plan
    cleaned = clean(export)
    answers = cleaned.answers
    eq = emotion_question_of(plan)
    scales = [q["id"] for q in plan["questions"] if q["type"] == "scale"]
    if eq is None and not scales:
        raise AnalysisError(f"{export.path}: the plan has no emotion question and no scale question; norms need "
                            "at least one (the ready-made spec: `emostudy plan --spec norming`)")
    options = [o["value"] for o in next(q for q in plan["questions"] if q["id"] == eq)["options"]] if eq else []
    ids = sorted(dict.fromkeys(it["stimulus_id"] for b in plan["batches"] for it in b["items"]))
    labels = _stimulus_labels(export, ids, qc)
    per = stimulus_norms(answers, labels, emotion_question=eq, options=options, scales=scales, ci=ci)
    emotions = group_norms(per, "intended", scales, answers, eq)
    identities = group_norms(per, "identity", scales)
    rel = reliability(answers, cleaned.repeats, scales=scales, emotion_question=eq, labels=labels,
                      n_splits=n_splits, seed=seed)
    if eq is not None:
        emo = answers[answers["question"] == eq].merge(labels[["stimulus_id", "intended"]], on="stimulus_id")
        truths = [e for e in EMOTIONS if e in set(labels["intended"])]
        conf = confusion_matrix(emo, truth="intended", answer="answer", labels=list(dict.fromkeys(truths + options)))
        conf = conf[conf["truth"].isin(truths)].reset_index(drop=True)
    else:
        conf = pd.DataFrame(columns=["truth", "answer", "count", "row_total", "row_percent", "col_total"])
    raters = rater_table(answers, labels, scales=scales, emotion_question=eq)
    machine = machine_vs_people(per)
    rated = per[per["n_ratings"] > 0] if "n_ratings" in per else per
    summary: dict[str, Any] = {
        "n_stimuli": int(len(per)), "n_stimuli_rated": int(len(rated)),
        "n_stimuli_unrated": int(len(per) - len(rated)),
        "unrated": per.loc[per["n_ratings"] == 0, "stimulus_id"].tolist() if "n_ratings" in per else [],
        "n_participants_valid": int(cleaned.counts["n_participants_valid"]),
        "n_surveys_valid": int(cleaned.counts["n_surveys_valid"]),
        "n_surveys_rejected": int(cleaned.counts["n_surveys_rejected"]),
        "n_surveys_incomplete": int(cleaned.counts["n_surveys_incomplete"]),
        "n_raters_straight_lining": int(raters["straight_lining"].sum()) if len(raters) else 0,
        "straight_lining": raters.loc[raters["straight_lining"], "participant"].tolist() if len(raters) else [],
        "emotion_question": eq, "options": options, "scales": scales,
    }
    if "n_ratings" in per and len(rated):
        summary.update(ratings_per_stimulus_min=int(rated["n_ratings"].min()),
                       ratings_per_stimulus_median=float(rated["n_ratings"].median()),
                       ratings_per_stimulus_max=int(rated["n_ratings"].max()),
                       recognition_mean=float(rated["recognition"].mean()),
                       recognition_pooled=float(rated["n_hits"].sum() / rated["n_ratings"].sum()),
                       chance=1.0 / len(options) if options else math.nan,
                       other_share=float((rated["other_share"] * rated["n_ratings"]).sum() / rated["n_ratings"].sum()))
    return Norms(stimuli=per, emotions=emotions, identities=identities, reliability=rel, confusion=conf,
                 raters=raters, machine=machine, summary=summary, scales=scales, labels=options, emotion_question=eq,
                 cleaned=cleaned)


def norms_covariates(export: Export, columns: Sequence[str] = ("recognition", "hu", "intensity_mean",
                                                               "genuineness_mean", "valence_mean", "arousal_mean")
                     ) -> pd.DataFrame:
    """Per clip of the export's manifest, the norms that ``emostudy select`` recorded (manifest schema 3), as
    covariates for a study run on a selected set: ``stimulus_id`` and ``norm_<column>`` for each column present
    (NaN where a clip has no norms). Merge it into the answers on ``stimulus_id``.

    Example
    -------
    >>> answers = export.answers.merge(norms_covariates(export), on="stimulus_id")  # doctest: +SKIP
    """
    rows = []
    for r in (export.manifest or {}).get("stimuli", []):
        if isinstance(r, dict) and "stimulus_id" in r:
            n = r.get("norms") or {}
            rows.append({"stimulus_id": r["stimulus_id"],
                         **{f"norm_{c}": (np.nan if n.get(c) is None else float(n[c])) for c in columns}})
    out = pd.DataFrame(rows, columns=["stimulus_id", *(f"norm_{c}" for c in columns)])
    return out.loc[:, out.notna().any() | (out.columns == "stimulus_id")]


def norm_covariate_model(answers: pd.DataFrame, covariates: pd.DataFrame, *, question: str = "emotion",
                         truth: str = "visual_emotion", covariate: str = "norm_recognition") -> dict[str, Any]:
    """Does a clip's norm predict whether this study's participants read it as intended? A logistic regression
    of a correct answer on ``covariate`` (a column of :func:`norms_covariates`), with one indicator per source
    after the first when there are several, fitted by maximum likelihood (statsmodels GLM, binomial) with
    standard errors clustered by participant (the answers of one participant are not independent).

    Returns ``{"fitted": False, "reason": ...}`` when the answers do not allow it, else ``fitted``, ``formula``,
    ``n_answers``, ``n_participants``, ``n_clips`` and ``terms``: one dict per term (term, estimate in log-odds,
    se, z, p, odds_ratio).
    """
    import statsmodels.api as sm

    d = answers[answers["question"] == question].merge(covariates[["stimulus_id", covariate]], on="stimulus_id")
    d = d[d[covariate].notna()]
    if len(d) < 20 or d[covariate].nunique() < 2:
        return {"fitted": False, "reason": f"{len(d)} answers to clips with a {covariate} of "
                                           f"{d[covariate].nunique()} distinct value(s): too few to fit"}
    y = (d["answer"] == d[truth]).astype(float).to_numpy()
    if y.min() == y.max():
        return {"fitted": False, "reason": "every answer is " + ("correct" if y[0] else "wrong")}
    X = pd.DataFrame({"intercept": 1.0, covariate: d[covariate].to_numpy(float)})
    sources = sorted(d["source"].unique())
    for src in sources[1:]:
        X[f"source[{src}]"] = (d["source"] == src).to_numpy(float)
    groups = pd.factorize(d["participant"])[0]
    fit = sm.GLM(y, X, family=sm.families.Binomial()).fit(cov_type="cluster", cov_kwds={"groups": groups})
    terms = [{"term": t, "estimate": float(fit.params[t]), "se": float(fit.bse[t]), "z": float(fit.tvalues[t]),
              "p": float(fit.pvalues[t]), "odds_ratio": float(np.exp(fit.params[t]))} for t in X.columns]
    formula = f"correct ~ {covariate}" + (" + source" if len(sources) > 1 else "")
    return {"fitted": True, "formula": formula, "n_answers": int(len(d)), "n_participants": int(groups.max() + 1),
            "n_clips": int(d["stimulus_id"].nunique()), "terms": terms}


__all__ = ["Norms", "norms_covariates", "norm_covariate_model", "compute_norms", "stimulus_norms", "group_norms", "reliability", "icc_oneway",
           "machine_vs_people", "wilson_interval", "spearman_brown", "entropy_bits", "emotion_question_of",
           "FER_TO_EMOTION", "NORMS_SCHEMA_VERSION"]
