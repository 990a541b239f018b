"""An inline SVG bar chart of phase timings: no external file, so ``--self-contained-html`` holds it."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

ROW = 18
LABEL_WIDTH = 170
BAR_WIDTH = 300
COLOURS = {"provision": "#6c8ebf", "command": "#82b366", "user": "#d79b00", "other": "#999999"}


def bar_chart(rows: Sequence[tuple[str, float, str]], *, title: str = "time per phase") -> str:
    """Horizontal bars of (label, seconds, kind), each labelled with its seconds and share of the total."""
    total = sum(seconds for _, seconds, _ in rows) or 1.0
    height = ROW * len(rows) + 4
    width = LABEL_WIDTH + BAR_WIDTH + 120
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dumont-chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
    ]
    for i, (label, seconds, kind) in enumerate(rows):
        y = i * ROW + 2
        w = max(1.0, seconds / total * BAR_WIDTH)
        colour = COLOURS.get(kind, COLOURS["other"])
        parts.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{w:.1f}" height="{ROW - 5}" fill="{colour}">'
            f"<title>{escape(label)}: {seconds:.2f} s</title></rect>"
            f'<text x="{LABEL_WIDTH + w + 4:.1f}" y="{y + 12}">{seconds:.2f} s ({seconds / total * 100:.1f}%)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
