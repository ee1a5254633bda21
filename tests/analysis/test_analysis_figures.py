"""Figures: ax=None makes a new figure, a given Axes is drawn into and returned; cells read as percentages."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from analysis.confusion import confusion_matrix
from analysis.figures import aspect_bars, confusion_heatmap, realness_bars, save_figure
from stimuli.emotions import EMOTIONS


def test_heatmap_cells_and_fixed_order():
    df = pd.DataFrame({"visual_emotion": ["anger", "anger", "anger", "sadness"],
                       "answer": ["anger", "anger", "neutral", "sadness"]})
    ax = confusion_heatmap(confusion_matrix(df))
    assert isinstance(ax, Axes)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 36
    assert texts[0] == "67%" and texts[4] == "33%"  # row anger: anger 2/3, neutral 1/3
    assert texts[6] == "-"  # disgust never shown: an empty row, marked, not dropped
    assert [t.get_text() for t in ax.get_xticklabels()] == [e[:3].upper() for e in EMOTIONS]


def test_given_axes_is_used_and_files_written(tmp_path):
    fig = Figure()
    ax = fig.add_subplot(1, 1, 1)
    dist = pd.DataFrame({"source": ["GT", "GT", "BL", "BL"], "score": [5, 1, 5, 1], "value": ["r", "u", "r", "u"],
                         "label": ["Real", "Unreal", "Real", "Unreal"], "count": [3, 1, 1, 1],
                         "percent": [75.0, 25.0, 50.0, 50.0]})
    assert realness_bars(dist, ax=ax) is ax
    heights = sorted(round(p.get_height()) for p in ax.patches)
    assert heights == [25, 50, 50, 75]
    grouped = realness_bars(dist, kind="grouped")
    assert grouped is not ax and len(grouped.patches) == 4
    counts = pd.DataFrame({"source": ["GT", "BL"], "aspect": ["none", "none"], "label": ["None", "None"],
                           "count": [4, 2]})
    a = aspect_bars(counts)
    assert sorted(p.get_height() for p in a.patches) == [2, 4]
    paths = save_figure(a.figure, tmp_path, "aspects")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and paths["pdf"].read_bytes()[:4] == b"%PDF"
