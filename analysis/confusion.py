"""Confusion matrices in tidy form: one row per (group, truth, answer) cell.

Labels are the six emotions in the fixed order of ``stimuli.emotions.EMOTIONS`` followed by any other
label present in the data (sorted), so an emotion never shown gives an all-zero row (row_percent NaN)
and an emotion never answered an all-zero column: no crash, no silently missing row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from stimuli.emotions import EMOTIONS

CONFUSION_COLUMNS = ("truth", "answer", "count", "row_total", "row_percent", "col_total")


def label_order(*series: pd.Series, base: Sequence[str] = EMOTIONS) -> list[str]:
    """``base`` followed by any other non-empty value of the given series, sorted."""
    extra = set()
    for s in series:
        extra |= set(pd.unique(s)) - set(base) - {""}
    return list(base) + sorted(map(str, extra))


def confusion_matrix(data: pd.DataFrame, *, truth: str = "visual_emotion", answer: str = "answer",
                     by: str | Sequence[str] | None = None, labels: Sequence[str] | None = None) -> pd.DataFrame:
    """Counts and row-normalised percentages of ``answer`` given ``truth``, per group of ``by``.

    Parameters
    ----------
    data : long-form answers (one row per answer to the question of interest).
    truth, answer : column names.
    by : optional grouping column(s) (e.g. "source"): one full matrix per group.
    labels : row/column labels in order; default :func:`label_order` of both columns.

    Returns
    -------
    DataFrame with the ``by`` columns, then truth, answer, count, row_total, row_percent (100 * count /
    row_total; NaN for an empty row), col_total. Every (truth, answer) cell of every group is present.

    Examples
    --------
    >>> df = pd.DataFrame({"visual_emotion": ["anger", "anger"], "answer": ["anger", "fear"]})
    >>> cm = confusion_matrix(df)
    >>> cm[(cm.truth == "anger") & (cm.answer == "fear")]["row_percent"].item()
    50.0
    """
    by_cols = [by] if isinstance(by, str) else list(by or [])
    labels = list(labels) if labels is not None else label_order(data[truth], data[answer])
    groups = [()] if not by_cols else sorted({tuple(r) for r in data[by_cols].itertuples(index=False)})
    frames = []
    for g in groups:
        sub = data
        for c, v in zip(by_cols, g):
            sub = sub[sub[c] == v]
        t = pd.Categorical(sub[truth], categories=labels)
        a = pd.Categorical(sub[answer], categories=labels)
        ok = ~(pd.isna(t) | pd.isna(a))
        k = len(labels)
        counts = np.bincount(t.codes[ok].astype(np.int64) * k + a.codes[ok], minlength=k * k).reshape(k, k)
        row = counts.sum(axis=1)
        col = counts.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = np.where(row[:, None] > 0, 100.0 * counts / np.maximum(row[:, None], 1), np.nan)
        frame = pd.DataFrame({"truth": np.repeat(labels, k), "answer": np.tile(labels, k),
                              "count": counts.ravel(), "row_total": np.repeat(row, k),
                              "row_percent": pct.ravel(), "col_total": np.tile(col, k)})
        for c, v in zip(by_cols, g):
            frame.insert(by_cols.index(c), c, v)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def confusion_wide(tidy: pd.DataFrame, value: str = "row_percent") -> pd.DataFrame:
    """One matrix (truth rows x answer columns) from the tidy form of a single group, label order kept."""
    rows = list(dict.fromkeys(tidy["truth"]))
    cols = list(dict.fromkeys(tidy["answer"]))
    return tidy.pivot(index="truth", columns="answer", values=value).reindex(index=rows, columns=cols)
