"""Inline SVG charts (no external file, so ``--self-contained-html`` holds them): the phases as bars, a nested phase
drawn inside its parent's stretch, and the status timeline on a time axis.

Text is never clipped: the label column is as wide as the longest label needs (up to ``LABEL_CHARS`` characters;
a longer label is cut with an ellipsis and shown whole in the bar's tooltip).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

ROW = 20
CHAR = 6.6  # px per character at font-size 11 sans-serif, generous: a label never runs past its column
LABEL_CHARS = 44
BAR_WIDTH = 320
VALUE_WIDTH = 130  # "12345.67 s (100.0%)"
INDENT = 10  # px per nesting level in the label column
COLOURS = {"provision": "#4e79a7", "command": "#59a14f", "user": "#f28e2b", "other": "#bab0ac"}
STATUS_COLOURS = {
    "running": "#59a14f",
    "loading": "#edc948",
    "created": "#9c9c9c",
    "scheduling": "#9c9c9c",
    "unknown": "#d3d3d3",
    "exited": "#e15759",
    "stopped": "#e15759",
    "offline": "#b07aa1",
}


def _fit(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def _open(width: float, height: float, title: str, css: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{css}" role="img" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
    )


Bar = tuple[str, float, str] | tuple[str, float, str, int]  # (label, seconds, kind[, depth])


def bar_chart(rows: Sequence[Bar], *, title: str = "time per phase") -> str:
    """Horizontal bars of (label, seconds, kind[, depth]): a top-level bar's length is its share of the total, and
    a nested one is drawn inside its parent's stretch, so the picture adds up the way the table does."""
    items = [(r[0], r[1], r[2], r[3] if len(r) > 3 else 0) for r in rows]
    total = sum(seconds for _, seconds, _, depth in items if depth == 0) or 1.0
    shown = [_fit(label) for label, _, _, _ in items]
    label_width = (
        max([len(text) * CHAR + INDENT * item[3] for text, item in zip(shown, items, strict=True)] + [40.0]) + 8
    )
    width = label_width + BAR_WIDTH + VALUE_WIDTH
    parts = [_open(width, ROW * len(items) + 4, title, "dumont-chart")]
    scale = BAR_WIDTH / total
    anchor, values = label_width - 6, label_width + BAR_WIDTH + 6
    cursor = [0.0]  # per depth: where the next bar at that depth starts (seconds from the table's start)
    for i, (label, seconds, kind, depth) in enumerate(items):
        if depth < len(cursor) - 1:
            del cursor[depth + 1 :]
        while len(cursor) <= depth:
            cursor.append(cursor[-1])
        start = cursor[depth]
        cursor[depth] = start + seconds
        cursor.append(start)  # a child of this row starts where it starts
        y = i * ROW + 2
        parts.append(
            f'<text x="{anchor:.1f}" y="{y + 13}" text-anchor="end">{escape(shown[i])}</text>'
            f'<rect x="{label_width + start * scale:.1f}" y="{y + 3}" width="{max(1.0, seconds * scale):.1f}" '
            f'height="{ROW - 6}" rx="2" fill="{COLOURS.get(kind, COLOURS["other"])}">'
            f"<title>{escape(label)}: {seconds:.2f} s</title></rect>"
            f'<text x="{values:.1f}" y="{y + 13}" fill="#444">{seconds:.2f} s ({seconds / total * 100:.1f}%)</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _ticks(span: float) -> list[float]:
    """Round tick positions for an axis of ``span`` seconds: about five of them."""
    raw = span / 5 if span > 0 else 1.0
    step = next(s * 10**e for e in range(-2, 6) for s in (1, 2, 5) if s * 10**e >= raw)
    return [i * step for i in range(int(span / step) + 1)]


def timeline_chart(changes: Sequence[Mapping[str, Any]], *, width: float = 560.0) -> str:
    """The status changes as coloured stretches on a time axis of seconds since the create call returned, each
    stretch named (when it is wide enough) and lasting until the next change; the last is a short mark."""
    if not changes:
        return ""
    ats = [float(c["at"]) for c in changes]
    origin = min(0.0, ats[0])
    left, right, top = 10.0, 24.0, 16.0
    tail = max(len(str(changes[-1]["status"])) * CHAR, 40.0)  # room for the last status's name
    scale = (width - left - right - tail) / max(ats[-1] - origin, 1.0)
    span = (width - left - right) / scale
    height = 68.0
    parts = [_open(width, height, "status timeline", "dumont-timeline-chart")]
    for i, change in enumerate(changes):
        x = left + (ats[i] - origin) * scale
        nxt = left + (ats[i + 1] - origin) * scale if i + 1 < len(changes) else x + 8
        status = str(change["status"])
        colour = STATUS_COLOURS.get(status, "#bab0ac")
        stretch = max(2.0, nxt - x)
        label = (
            f'<text x="{x + 2:.1f}" y="{top - 4}" fill="#333">{escape(status)}</text>'
            if stretch >= len(status) * CHAR or i + 1 == len(changes)
            else ""
        )
        parts.append(
            f'<rect class="dumont-status" x="{x:.1f}" y="{top}" width="{stretch:.1f}" height="14" '
            f'fill="{colour}"><title>{escape(status)} at {ats[i]:.1f} s</title></rect>'
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + 22}" stroke="#555"/>{label}'
        )
    for t in _ticks(span):
        x = left + t * scale
        if x > width - right:
            break
        parts.append(
            f'<line x1="{x:.1f}" y1="{top + 30}" x2="{x:.1f}" y2="{top + 34}" stroke="#888"/>'
            f'<text x="{x:.1f}" y="{top + 46}" text-anchor="middle" fill="#555">{t + origin:g} s</text>'
        )
    parts.append(f'<line x1="{left}" y1="{top + 30}" x2="{width - right}" y2="{top + 30}" stroke="#888"/>')
    parts.append("</svg>")
    return "".join(parts)
