"""Agreement beyond raw accuracy: Wagner's unbiased hit rate, Cohen's kappa against the truth, Fleiss'
kappa (complete, balanced batches) and Krippendorff's alpha (any number of raters per item).

References
----------
Wagner, H. L. (1993). On measuring performance in category judgment studies of nonverbal behavior.
    Journal of Nonverbal Behavior 17(1), 3-28.
Cohen, J. (1960). A coefficient of agreement for nominal scales. Educ. Psychol. Meas. 20, 37-46.
Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychol. Bull. 76, 378-382.
Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for Communication.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats import holm
from stimuli.emotions import EMOTIONS


def unbiased_hit_rates(data: pd.DataFrame, *, truth: str = "visual_emotion", answer: str = "answer",
                       subject: str = "participant", by: str | None = None,
                       labels: Sequence[str] = EMOTIONS) -> pd.DataFrame:
    """Wagner's unbiased hit rate per participant and emotion (within each group of ``by``).

    For participant p and emotion i: hits A_ii, n_stimulus (items of emotion i shown), n_response (answers
    i given), n_total (all answers). Hu = A_ii^2 / (n_stimulus * n_response) (0 when the emotion was
    shown but never answered; NaN when it was never shown). Chance proportion
    pc = (n_stimulus / n_total) * (n_response / n_total).

    Columns: [by], participant, emotion, n_stimulus, n_response, hits, n_total, hu, pc.
    """
    groups = [(None, data)] if by is None else [(g, d) for g, d in data.groupby(by, sort=False)]
    labels = list(labels)
    frames = []
    for g, d in groups:
        parts = pd.unique(d[subject])
        # int64: categorical codes are int8 for < 128 categories, and p_code * n_l would overflow.
        p_code = pd.Categorical(d[subject], categories=parts).codes.astype(np.int64)
        # A value outside the labels (a norming study's "other") is code -1: counted in n_total, in no cell.
        t_code = pd.Categorical(d[truth].where(d[truth].isin(labels)), categories=labels).codes.astype(np.int64)
        a_code = pd.Categorical(d[answer].where(d[answer].isin(labels)), categories=labels).codes.astype(np.int64)
        n_p, n_l = len(parts), len(labels)
        n_total = np.bincount(p_code, minlength=n_p)

        def table(codes: np.ndarray, mask: np.ndarray) -> np.ndarray:
            ok = mask & (codes >= 0)
            return np.bincount(p_code[ok] * n_l + codes[ok], minlength=n_p * n_l).reshape(n_p, n_l)

        everything = np.ones(len(d), dtype=bool)
        s = table(t_code, everything)          # (participants, emotions): items shown
        r = table(a_code, everything)          # answers given
        h = table(t_code, t_code == a_code)    # hits
        with np.errstate(invalid="ignore", divide="ignore"):
            hu = np.where(s == 0, np.nan, np.where(r == 0, 0.0, h * h / (s * r)))
        tot = n_total[:, None].astype(float)
        f = pd.DataFrame({"participant": np.repeat(parts, n_l), "emotion": np.tile(labels, n_p),
                          "n_stimulus": s.ravel(), "n_response": r.ravel(), "hits": h.ravel(),
                          "n_total": np.repeat(n_total, n_l), "hu": hu.ravel(),
                          "pc": ((s / tot) * (r / tot)).ravel()})
        if by is not None:
            f.insert(0, by, g)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


ALL_SOURCES = "ALL"


def pooled_hit_rates(data: pd.DataFrame, *, truth: str = "visual_emotion", answer: str = "answer",
                     by: str | None = None, labels: Sequence[str] = EMOTIONS,
                     include_all: bool = True) -> pd.DataFrame:
    """Wagner's unbiased hit rate from the pooled confusion table (all participants' answers in one table)
    per emotion, per group of ``by`` and, with ``include_all``, for every answer pooled (group ``"ALL"``).

    With A_ii the hits, n_stimulus the items of emotion i shown, n_response the answers i given and N all
    answers of the group: Hu = A_ii^2 / (n_stimulus n_response) (0 when i was shown but never answered, NaN
    when never shown) and its chance level pc = (n_stimulus / N)(n_response / N) (Wagner 1993, Table 2).
    This is the descriptive figure papers print next to the mean of per-participant Hu; the tests use the
    per-participant values (:func:`hu_tests`), because answers of one participant are not independent.

    Columns: [by], emotion, n_stimulus, n_response, hits, n_total, hu, pc.
    """
    labels = list(labels)
    groups = [(None, data)] if by is None else [(g, d) for g, d in data.groupby(by, sort=False)]
    if by is not None and include_all:
        groups.append((ALL_SOURCES, data))
    rows = []
    index = {e: i for i, e in enumerate(labels)}
    for g, d in groups:
        # -1 for a value outside ``labels`` (it counts in n_total, not in any emotion's row or column)
        t = d[truth].map(index).fillna(-1).to_numpy(dtype=np.int64)
        a = d[answer].map(index).fillna(-1).to_numpy(dtype=np.int64)
        n_l = len(labels)
        shown = np.bincount(t[t >= 0], minlength=n_l)
        given = np.bincount(a[a >= 0], minlength=n_l)
        hits = np.bincount(t[(t == a) & (t >= 0)], minlength=n_l)
        n_total = int(len(d))
        for i, e in enumerate(labels):
            s, r, h = int(shown[i]), int(given[i]), int(hits[i])
            hu = float("nan") if s == 0 else (0.0 if r == 0 else h * h / (s * r))
            row = {"emotion": e, "n_stimulus": s, "n_response": r, "hits": h, "n_total": n_total, "hu": hu,
                   "pc": (s / n_total) * (r / n_total) if n_total else float("nan")}
            rows.append({by: g, **row} if by is not None else row)
    return pd.DataFrame(rows, columns=([by] if by is not None else []) +
                        ["emotion", "n_stimulus", "n_response", "hits", "n_total", "hu", "pc"])


def hu_tests(hu: pd.DataFrame, *, by: str | None = None, alternative: str = "greater") -> pd.DataFrame:
    """Per emotion (and group): mean Hu, mean pc and the paired t-test of arcsin(sqrt(Hu)) against
    arcsin(sqrt(pc)) over participants (Wagner 1993), Holm-adjusted over the emotions of each group.
    Participants for whom the emotion was never shown (Hu NaN) are left out.

    Columns: [by], emotion, n_participants, mean_hu, mean_pc, mean_diff_arcsine, t, df, p, p_holm.
    """
    keys = ([by] if by else []) + ["emotion"]
    rows = []
    for k, d in hu.dropna(subset=["hu"]).groupby(keys, sort=False):
        k = k if isinstance(k, tuple) else (k,)
        diff = np.arcsin(np.sqrt(d["hu"].to_numpy())) - np.arcsin(np.sqrt(d["pc"].to_numpy()))
        n = len(diff)
        if n >= 2 and np.std(diff, ddof=1) > 0:
            t = float(diff.mean() / (np.std(diff, ddof=1) / np.sqrt(n)))
            if alternative == "greater":
                p = float(sps.t.sf(t, n - 1))
            elif alternative == "less":
                p = float(sps.t.cdf(t, n - 1))
            else:
                p = float(2 * sps.t.sf(abs(t), n - 1))
        else:
            t, p = float("nan"), float("nan")
        rows.append({**dict(zip(keys, k)), "n_participants": n, "mean_hu": float(d["hu"].mean()),
                     "mean_pc": float(d["pc"].mean()), "mean_diff_arcsine": float(diff.mean()), "t": t,
                     "df": n - 1, "p": p})
    out = pd.DataFrame(rows, columns=keys + ["n_participants", "mean_hu", "mean_pc", "mean_diff_arcsine", "t",
                                             "df", "p"])
    out["p_holm"] = np.nan
    for _, idx in (out.groupby(by, sort=False).groups.items() if by else [(None, out.index)]):
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].to_numpy())
    rank = {e: i for i, e in enumerate(EMOTIONS)}
    sort_cols = ["_e"]
    out["_e"] = out["emotion"].map(lambda e: rank.get(e, len(rank)))
    if by:
        first = {g: i for i, g in enumerate(dict.fromkeys(out[by]))}
        out["_g"] = out[by].map(first)
        sort_cols = ["_g", "_e"]
    return out.sort_values(sort_cols, kind="stable").drop(columns=sort_cols).reset_index(drop=True)


def cohen_kappa(truth: Sequence[str], answer: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Cohen's kappa of the answers against the truth: (po - pe) / (1 - pe) with po the observed agreement
    and pe = sum_k p_truth(k) p_answer(k). NaN when pe = 1 (a single category)."""
    t = np.asarray(truth, dtype=object)
    a = np.asarray(answer, dtype=object)
    n = len(t)
    if n == 0:
        return float("nan")
    cats = list(labels) if labels is not None else sorted(set(t) | set(a))
    po = float(np.mean(t == a))
    pe = sum(float(np.mean(t == c)) * float(np.mean(a == c)) for c in cats)
    return float("nan") if pe >= 1 else (po - pe) / (1 - pe)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from an (items x categories) count matrix with the same number of raters per item."""
    c = np.asarray(counts, dtype=float)
    n = c.sum(axis=1)
    if len(c) == 0 or n[0] < 2 or not np.all(n == n[0]):
        return float("nan")
    m = n[0]
    p_i = ((c * c).sum(axis=1) - m) / (m * (m - 1))
    p_bar = p_i.mean()
    p_j = c.sum(axis=0) / c.sum()
    pe = float((p_j ** 2).sum())
    return float("nan") if pe >= 1 else float((p_bar - pe) / (1 - pe))


def krippendorff_alpha(counts: np.ndarray, values: Sequence[float] | None = None,
                       metric: Literal["nominal", "interval"] = "nominal") -> float:
    """Krippendorff's alpha from a (units x categories) count matrix; units may have different numbers
    of raters (units with fewer than two are not pairable and are dropped).

    alpha = 1 - (n - 1) * sum_u [sum_ck n_uc n_uk d2(c,k) / (m_u - 1)] / sum_ck n_c n_k d2(c,k), with
    d2 = [c != k] (nominal) or (v_c - v_k)^2 (interval, ``values`` the categories' numbers).
    """
    c = np.asarray(counts, dtype=float)
    m = c.sum(axis=1)
    c = c[m >= 2]
    m = m[m >= 2]
    if len(c) == 0:
        return float("nan")
    k = c.shape[1]
    if metric == "nominal":
        d2 = 1.0 - np.eye(k)
    else:
        v = np.asarray(values, dtype=float)
        d2 = (v[:, None] - v[None, :]) ** 2
    observed = float((np.einsum("uc,ck,uk->u", c, d2, c) / (m - 1)).sum())
    nc = c.sum(axis=0)
    n = nc.sum()
    expected = float(nc @ d2 @ nc)
    if expected == 0:
        return float("nan")
    return 1.0 - (n - 1) * observed / expected


def _count_matrix(data: pd.DataFrame, unit: str, answer: str, labels: Sequence[str]) -> np.ndarray:
    cat = pd.Categorical(data[answer].where(data[answer].isin(list(labels))), categories=list(labels))
    u_codes, _ = pd.factorize(data[unit])
    ok = cat.codes >= 0
    mat = np.zeros((u_codes.max() + 1 if len(u_codes) else 0, len(labels)))
    np.add.at(mat, (u_codes[ok], cat.codes[ok]), 1)
    return mat


def agreement_table(data: pd.DataFrame, *, answer: str = "answer", truth: str = "visual_emotion",
                    by: str | None = "source", labels: Sequence[str] = EMOTIONS) -> pd.DataFrame:
    """Per group: Cohen's kappa of answers vs truth, Fleiss' kappa per batch (mean over batches whose
    items all have the same number of raters, and how many batches qualified) and Krippendorff's alpha
    (nominal) over stimuli. Columns: [by], n_answers, cohen_kappa, fleiss_kappa_mean, n_batches_fleiss,
    krippendorff_alpha, n_units_alpha."""
    groups = [(None, data)] if by is None else list(data.groupby(by, sort=False))
    rows = []
    for g, d in groups:
        fk = []
        for _, bd in d.groupby("batch_id"):
            k = fleiss_kappa(_count_matrix(bd, "stimulus_id", answer, labels))
            if not np.isnan(k):
                fk.append(k)
        mat = _count_matrix(d, "stimulus_id", answer, labels)
        row = {"n_answers": int(len(d)),
               "cohen_kappa": cohen_kappa(d[truth].to_numpy(), d[answer].to_numpy(), labels),
               "fleiss_kappa_mean": float(np.mean(fk)) if fk else float("nan"), "n_batches_fleiss": len(fk),
               "krippendorff_alpha": krippendorff_alpha(mat), "n_units_alpha": int((mat.sum(axis=1) >= 2).sum())}
        if by is not None:
            row = {by: g, **row}
        rows.append(row)
    return pd.DataFrame(rows)
