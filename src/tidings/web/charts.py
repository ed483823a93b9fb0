"""Charts drawn on the server as inline SVG: no JavaScript library, readable without scripts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup, escape

# Distinct on white and for the common colour-vision deficiencies (Okabe-Ito, darkened to 3:1).
PALETTE = ("#4f46e5", "#d55e00", "#0072b2", "#009e73", "#cc79a7", "#b8860b", "#56606b")

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[int]
    colour: str = PALETTE[0]

    @property
    def total(self) -> int:
        return sum(self.values)

    @property
    def peak(self) -> int:
        return max(self.values, default=0)


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 × 10ⁿ at or above ``value`` (and at least 4, for four ticks)."""
    if value <= 4:
        return 4
    magnitude: int = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    return 10 * magnitude


def _minute_label(minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%H:%M")


def minute_chart(
    series: Sequence[Series],
    first_minute: int,
    title: str,
    *,
    key: str = "chart",
    unit: str = "events",
) -> Markup:
    """A line per series over consecutive minutes starting at ``first_minute`` (epoch minutes).

    Every series has the same length; ``key`` makes the SVG's ids unique on a page with several
    charts, ``unit`` names what is counted. The SVG has a title and a description for screen
    readers; the page shows the same numbers as a table.
    """
    count = max((len(s.values) for s in series), default=0)
    top = nice_ceiling(max((s.peak for s in series), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w * i / max(count - 1, 1))

    def y(v: int) -> float:
        return TOP + plot_h - plot_h * v / top

    total = sum(s.total for s in series)
    desc = f"{total:,} {unit} in the last {count} minutes"
    if series:
        desc += ": " + "; ".join(f"{s.label} {s.total:,} (peak {s.peak:,}/min)" for s in series)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(key)}-title {escape(key)}-desc" '
        'preserveAspectRatio="xMidYMid meet">',
        f'<title id="{escape(key)}-title">{escape(title)}</title>',
        f'<desc id="{escape(key)}-desc">{escape(desc)}</desc>',
    ]
    for tick in range(5):
        value = top * tick // 4
        ty = y(value)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
            f'<text class="axis" x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{value:,}</text>'
        )
    for i in range(0, count, 15):
        parts.append(
            f'<text class="axis" x="{x(i):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{_minute_label(first_minute + i)}</text>"
        )
    if count:
        end, base = x(count - 1), HEIGHT - 8
        parts.append(f'<text class="axis" x="{end:.1f}" y="{base}" text-anchor="end">now</text>')
    for s in series:
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(s.values))
        parts.append(
            f'<polyline class="line" fill="none" stroke="{escape(s.colour)}" stroke-width="2" '
            f'stroke-linejoin="round" points="{points}"/>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every interpolated text is escaped above)
