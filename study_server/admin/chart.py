"""A line chart drawn as SVG on the server (no script, no chart library, nothing fetched from elsewhere).

``line_chart(labels, series)`` -> SVG text. Every point is a ``<circle>`` carrying its numbers
(``data-series``, ``data-bin``, ``data-n``) and a ``<title>`` the browser shows on hover, so that tests
and screen readers read the same numbers the eye sees.
"""

from __future__ import annotations

import math
from html import escape
from typing import Sequence

COLOURS = {"arrivals": "#9aa5b1", "starts": "#3b82c4", "completions": "#e08a1e", "valid": "#2f9e44"}
WIDTH, HEIGHT = 1000, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 30, 44


def _nice_max(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k at or above ``value`` (at least 4, so that the ticks are whole numbers)."""
    if value <= 4:
        return 4
    power = 10 ** int(math.floor(math.log10(value)))
    for m in (1, 2, 5, 10):
        if m * power >= value:
            return m * power
    return 10 * power


def line_chart(labels: Sequence[str], series: dict[str, Sequence[int]], *, names: dict[str, str],
               caption: str) -> str:
    n = len(labels)
    top = _nice_max(max((max(v) for v in series.values() if len(v)), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: int) -> float:
        return TOP + plot_h * (1 - v / top)

    out = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
           f'aria-label="{escape(caption)}" xmlns="http://www.w3.org/2000/svg">',
           '<style>text{font:12px system-ui,sans-serif;fill:#444}.grid{stroke:#e5e5e5}</style>']
    for k in range(5):  # horizontal grid lines and y ticks
        v = top * k // 4
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v}</text>')
    step = max(1, math.ceil(n / 12))
    for i in range(0, n, step):  # x ticks: at most 12 labels
        out.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(labels[i])}</text>')
    for s, values in series.items():
        colour = COLOURS.get(s, "#555")
        if n > 1:
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        for i, v in enumerate(values):
            out.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}" data-series="{escape(s)}" '
                       f'data-bin="{i}" data-n="{v}"><title>{escape(labels[i])}: {v} '
                       f'{escape(names.get(s, s).lower())}</title></circle>')
    lx = LEFT
    for s in series:  # the legend, above the plot
        out.append(f'<rect x="{lx}" y="8" width="12" height="12" fill="{COLOURS.get(s, "#555")}"/>')
        out.append(f'<text x="{lx + 16}" y="18">{escape(names.get(s, s))}</text>')
        lx += 28 + 8 * len(names.get(s, s))
    out.append("</svg>")
    return "\n".join(out)
