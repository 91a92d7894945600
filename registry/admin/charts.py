"""Charts as server-rendered SVG: no JavaScript, no fetch, printable, readable without colour.

Each chart is drawn from the same rows as the table beside it; the SVG carries
a ``<title>`` and ``role="img"`` so that screen readers announce it, and the
table is the accessible version of the numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#0b5394", "#e69138", "#6aa84f", "#cc0000", "#674ea7", "#45818e", "#bf9000", "#999999")
FONT = 'font-family="system-ui, sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values, one per label."""

    name: str
    values: Sequence[float]


def _fmt_default(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _legend(series: Sequence[Series], x: int, y: int) -> str:
    parts = []
    for i, s in enumerate(series):
        parts.append(
            f'<rect x="{x}" y="{y + i * 16}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 14}" y="{y + i * 16 + 9}" {FONT}>{escape(s.name)}</text>'
        )
    return "".join(parts)


def hbar(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _fmt_default,
    maximum: float | None = None,
    width: int = 560,
    left: int = 150,
) -> Markup:
    """Return grouped horizontal bars: one group per label, one bar per series.

    ``left`` is the room for the labels, in the SVG's units.
    """
    bar, gap, right = 12, 8, 70
    group = bar * len(series) + gap
    top = 8 + 16 * len(series) + 8
    height = top + group * len(labels) + 8
    peak = maximum or max((v for s in series for v in s.values), default=0) or 1
    span = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="t"><title id="t">{escape(title)}</title>',
        _legend(series, left, 8),
    ]
    for row, label in enumerate(labels):
        y0 = top + row * group
        parts.append(
            f'<text x="{left - 6}" y="{y0 + group / 2}" text-anchor="end" {FONT}>{escape(label)}</text>'
        )
        for i, s in enumerate(series):
            value = s.values[row]
            w = max(0.0, span * value / peak)
            y = y0 + i * bar
            parts.append(
                f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(s.name)}: {escape(fmt(value))}</title></rect>'
                f'<text x="{left + w + 4:.1f}" y="{y + bar - 3}" {FONT} font-size="10">{escape(fmt(value))}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped  # nosec B704


def stacked(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _fmt_default,
    width: int = 560,
) -> Markup:
    """Return stacked horizontal bars: one bar per label, segments per series."""
    bar, gap, left, right = 16, 6, 150, 70
    top = 8 + 16 * len(series) + 8
    height = top + (bar + gap) * len(labels) + 8
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    span = width - left - right
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="t"><title id="t">{escape(title)}</title>',
        _legend(series, left, 8),
    ]
    for row, label in enumerate(labels):
        y = top + row * (bar + gap)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar - 4}" text-anchor="end" {FONT}>{escape(label)}</text>'
        )
        x = float(left)
        for i, s in enumerate(series):
            w = span * s.values[row] / peak
            if w > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar}" fill="{PALETTE[i % len(PALETTE)]}">'
                    f"<title>{escape(label)} · {escape(s.name)}: {escape(fmt(s.values[row]))}</title></rect>"
                )
            x += w
        parts.append(
            f'<text x="{x + 4:.1f}" y="{y + bar - 4}" {FONT} font-size="10">{escape(fmt(totals[row]))}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped  # nosec B704


def line(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = _fmt_default,
    width: int = 560,
    height: int = 240,
) -> Markup:
    """Return a line chart over ordered labels (periods), one line per series."""
    left, right, bottom = 60, 16, 40
    top = 8 + 16 * len(series) + 8
    peak = max((v for s in series for v in s.values), default=0) or 1
    floor = min(0.0, min((v for s in series for v in s.values), default=0))
    span_x = width - left - right
    span_y = height - top - bottom
    n = max(len(labels) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + span_x * i / n, top + span_y * (1 - (v - floor) / ((peak - floor) or 1))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="t"><title id="t">{escape(title)}</title>',
        _legend(series, left, 8),
        f'<line x1="{left}" y1="{top + span_y}" x2="{width - right}" y2="{top + span_y}" stroke="#333"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + span_y}" stroke="#333"/>',
        f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" {FONT}>{escape(fmt(peak))}</text>',
        f'<text x="{left - 4}" y="{top + span_y}" text-anchor="end" {FONT}>{escape(fmt(floor))}</text>',
    ]
    step = max(1, len(labels) // 8)
    for i, label in enumerate(labels):
        if i % step == 0 or i == len(labels) - 1:
            x, _ = xy(i, floor)
            parts.append(
                f'<text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" {FONT} font-size="10">{escape(label)}</text>'
            )
    for k, s in enumerate(series):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(s.values)))
        color = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="6 3"' if k % 2 else ""
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="2"{dash}/>'
        )
        for i, v in enumerate(s.values):
            x, y = xy(i, v)
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(labels[i])} · {escape(s.name)}: {escape(fmt(v))}</title></circle>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped  # nosec B704
