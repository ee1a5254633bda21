"""Figures that read like the paper's (Figs. 5-8): row-normalised confusion heatmaps with percentages in
the cells and emotions in the fixed order, realness distributions as stacked or grouped bars, aspect
counts as grouped bars. Plus accuracy with bootstrap CIs and the Task 2 match fractions.

Every function takes ``ax=None`` (a new ``matplotlib.figure.Figure`` is made, without pyplot, so no
global state and no GUI backend: rendering goes through Agg) and returns the Axes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.confusion import confusion_wide

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _new_ax(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    fig = Figure(figsize=size, dpi=100)
    return fig.add_subplot(1, 1, 1)


def confusion_heatmap(tidy: pd.DataFrame, *, ax: Axes | None = None, title: str | None = None,
                      truth_label: str = "Truth", answer_label: str = "Answer", cmap: str = "Blues") -> Axes:
    """Heatmap of one tidy confusion matrix (a single group of :func:`analysis.confusion.confusion_matrix`):
    colour = row percentage, cell text "xx%" (an empty row shows "-")."""
    import seaborn as sns

    ax = _new_ax(ax, (4.6, 4.0))
    pct = confusion_wide(tidy, "row_percent")
    annot = pct.map(lambda v: "-" if pd.isna(v) else f"{v:.0f}%")
    sns.heatmap(pct.fillna(0.0).to_numpy(), ax=ax, vmin=0, vmax=100, cmap=cmap, annot=annot.to_numpy(), fmt="",
                cbar=False, square=True, linewidths=0.5, linecolor="white",
                xticklabels=[c[:3].upper() for c in pct.columns], yticklabels=[r[:3].upper() for r in pct.index],
                annot_kws={"fontsize": 8})
    ax.set_xlabel(answer_label)
    ax.set_ylabel(truth_label)
    ax.tick_params(axis="y", rotation=0)
    if title:
        ax.set_title(title)
    return ax


def confusion_grid(tidy: pd.DataFrame, by: str, *, groups: Sequence[str] | None = None, title_fmt: str = "{}",
                   truth_label: str = "Truth", answer_label: str = "Answer") -> Figure:
    """One heatmap per group side by side (Fig. 5: GT, BL, OURS)."""
    groups = list(groups) if groups is not None else list(dict.fromkeys(tidy[by]))
    fig = Figure(figsize=(4.2 * max(1, len(groups)), 4.2), dpi=100)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False)[0]
    for ax, g in zip(axes, groups):
        confusion_heatmap(tidy[tidy[by] == g], ax=ax, title=title_fmt.format(g), truth_label=truth_label,
                          answer_label=answer_label)
    fig.tight_layout()
    return fig


def realness_bars(dist: pd.DataFrame, *, ax: Axes | None = None, kind: str = "stacked") -> Axes:
    """Realness distribution per source (Fig. 6) from :func:`analysis.task1.realness_distribution`:
    percentage of answers per option, stacked (default) or grouped bars."""
    ax = _new_ax(ax, (6.0, 3.6))
    sources = list(dict.fromkeys(dist["source"]))
    options = list(dict.fromkeys(dist["label"]))
    pct = dist.pivot(index="source", columns="label", values="percent").reindex(index=sources, columns=options).fillna(0)
    x = np.arange(len(sources))
    colours = ["#1a9850", "#91cf60", "#d9d9d9", "#fc8d59", "#d73027"]
    if kind == "stacked":
        bottom = np.zeros(len(sources))
        for j, opt in enumerate(options):
            ax.bar(x, pct[opt].to_numpy(), bottom=bottom, label=opt, color=colours[j % len(colours)], width=0.6)
            bottom += pct[opt].to_numpy()
        ax.set_ylim(0, 100)
    elif kind == "grouped":
        w = 0.8 / max(1, len(options))
        for j, opt in enumerate(options):
            ax.bar(x - 0.4 + w * (j + 0.5), pct[opt].to_numpy(), width=w, label=opt, color=colours[j % len(colours)])
    else:
        raise ValueError(f"kind {kind!r}: use stacked or grouped")
    ax.set_xticks(x, sources)
    ax.set_ylabel("% of answers")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title("Realness ratings")
    return ax


def aspect_bars(counts: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Count of each improvement aspect per source as grouped bars (Fig. 7), from
    :func:`analysis.task1.aspect_counts`."""
    ax = _new_ax(ax, (6.4, 3.6))
    sources = list(dict.fromkeys(counts["source"]))
    aspects = list(dict.fromkeys(counts["label"]))
    table = counts.pivot(index="label", columns="source", values="count").reindex(index=aspects, columns=sources).fillna(0)
    x = np.arange(len(aspects))
    w = 0.8 / max(1, len(sources))
    for j, s in enumerate(sources):
        ax.bar(x - 0.4 + w * (j + 0.5), table[s].to_numpy(), width=w, label=s, color=PALETTE[j % len(PALETTE)])
    ax.set_xticks(x, aspects, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("count")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Aspects to improve")
    return ax


def accuracy_bars(acc: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Accuracy per source with its bootstrap CI and the chance level (from task1.accuracy_by_source)."""
    ax = _new_ax(ax, (4.0, 3.4))
    x = np.arange(len(acc))
    y = 100 * acc["accuracy"].to_numpy()
    err = np.vstack([y - 100 * acc["ci_low"].to_numpy(), 100 * acc["ci_high"].to_numpy() - y])
    ax.bar(x, y, color=[PALETTE[i % len(PALETTE)] for i in range(len(acc))], width=0.6)
    ax.errorbar(x, y, yerr=np.nan_to_num(err), fmt="none", ecolor="black", capsize=4)
    if len(acc):
        ax.axhline(100 * float(acc["chance"].iloc[0]), color="grey", ls="--", lw=1, label="chance")
        ax.legend(fontsize=8, frameon=False)
    ax.set_xticks(x, acc["source"].tolist())
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Emotion accuracy")
    return ax


def match_bars(fractions: pd.DataFrame, *, ax: Axes | None = None) -> Axes:
    """Task 2: % of responses matching the visual vs the audio emotion, per subset and counting."""
    ax = _new_ax(ax, (6.4, 3.6))
    f = fractions.copy()
    f["group"] = f["subset"] + "\n" + f["counting"].str.replace("_", " ")
    groups = list(dict.fromkeys(f["group"]))
    x = np.arange(len(groups))
    for j, m in enumerate(("visual", "audio")):
        v = f[f["modality"] == m].set_index("group").reindex(groups)["fraction"].to_numpy() * 100
        ax.bar(x - 0.2 + 0.4 * j, v, width=0.4, label=m, color=PALETTE[j])
    ax.set_xticks(x, groups, fontsize=7)
    ax.set_ylabel("% matching")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Labels matching the visual / audio emotion")
    return ax


def save_figure(fig: Figure, folder: str | Path, name: str) -> dict[str, Path]:
    """Write ``name.png`` (150 dpi) and ``name.pdf`` into ``folder``; metadata without dates so the same
    figure gives the same bytes. The layout is made tight once (legends outside the axes included), which
    costs one draw instead of the two of ``bbox_inches="tight"`` per file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    out = {}
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Creator": None, "Producer": None})):
        p = folder / f"{name}.{ext}"
        fig.savefig(p, format=ext, dpi=150, metadata=meta)
        out[ext] = p
    return out


def flow_diagram(flow: dict, *, ax: Axes | None = None, title: str | None = None) -> Axes:
    """CONSORT-style participant flow from :func:`analysis.flow.participant_flow`: the main column
    arrived -> started -> completed -> valid -> analysed, and to the right of each step the surveys that
    left there (did not start / did not complete, split into returned, expired and incomplete; rejected as
    inconsistent). Every number is a count of surveys (assignments) except the analysed box, which also
    gives participants and answers."""
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    ax = _new_ax(ax, (7.6, 6.6))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.axis("off")
    x_main, w_main, h_main = 24, 40, 12
    x_side, w_side = 76, 40
    ys = [92, 71, 50, 29, 8]

    def box(x: float, y: float, w: float, h: float, text: str, face: str, edge: str, size: float) -> None:
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=1.5",
                                    facecolor=face, edgecolor=edge, linewidth=1.2))
        ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.35)

    def left(d: dict) -> str:
        return f"returned {d['returned']}, expired {d['expired']}\nincomplete {d['incomplete']}"

    main = [f"Arrived (surveys allocated)\nn = {flow['arrived']}",
            f"Started the trials\nn = {flow['started']}",
            f"Completed every trial\nn = {flow['completed']}",
            f"Valid (consistent repeats)\nn = {flow['valid']}",
            f"Analysed: {flow['analysed_surveys']} surveys\n{flow['analysed_participants']} participants, "
            f"{flow['analysed_answers']} answers"]
    exits = [f"Did not start: {flow['not_started']['total']}\n" + left(flow["not_started"]),
             f"Did not complete: {flow['not_completed']['total']}\n" + left(flow["not_completed"]),
             f"Rejected (inconsistent): {flow['rejected']}"
             + (f"\nother verdict: {flow['other']}" if flow.get("other") else "")]
    for k, (y, text) in enumerate(zip(ys, main)):
        box(x_main, y, w_main, h_main, text, "#dfe8f5" if k == len(main) - 1 else "#eef3fa", "#4c72b0", 10)
    for y0, y1 in zip(ys[:-1], ys[1:]):
        ax.add_patch(FancyArrowPatch((x_main, y0 - h_main / 2), (x_main, y1 + h_main / 2), arrowstyle="-|>",
                                     mutation_scale=14, color="#333333", linewidth=1.2, shrinkA=0, shrinkB=0))
    for k, text in enumerate(exits):
        y_mid = (ys[k] + ys[k + 1]) / 2
        h = 12 if "\n" in text else 7
        box(x_side, y_mid, w_side, h, text, "#fbf1ea", "#dd8452", 9)
        ax.add_patch(FancyArrowPatch((x_main, y_mid), (x_side - w_side / 2, y_mid), arrowstyle="-|>",
                                     mutation_scale=12, color="#777777", linewidth=1.1, shrinkA=0, shrinkB=0))
    if title:
        ax.set_title(title, fontsize=11)
    return ax
