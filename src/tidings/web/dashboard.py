"""The dashboard: a list of panels, each one function from the app's services to what it shows.

Adding a panel (renders per minute, opens and clicks today, …) is one function that returns a
:class:`Panel` naming its template, added to :data:`PANELS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tidings.core.clock import to_ms

from .charts import PALETTE, Series, minute_chart

if TYPE_CHECKING:
    from tidings.core.deps import Container

MINUTES = 60
LATEST_REJECTIONS = 10


@dataclass(frozen=True, slots=True)
class Panel:
    key: str
    title: str
    template: str  # in web/templates; it reads ``panel.data``
    data: dict[str, Any] = field(default_factory=dict)
    wide: bool = False


PanelFunction = Callable[["Container"], Panel]


def events_per_minute(c: Container) -> Panel:
    now_minute = to_ms(c.clock.now()) // 60_000
    first = now_minute - MINUTES + 1
    names = {s.id: s.name for s in c.sources.list()}
    counts: dict[str, list[int]] = {}
    for source_id, minute, n in c.debugger.per_minute(first * 60_000):
        if first <= minute <= now_minute:
            counts.setdefault(source_id, [0] * MINUTES)[minute - first] += n
    ordered = sorted(counts, key=lambda sid: (-sum(counts[sid]), names.get(sid, sid)))
    series = [
        Series(names.get(sid, sid), counts[sid], PALETTE[i % len(PALETTE)])
        for i, sid in enumerate(ordered)
    ]
    rows = [
        {"source_id": sid, "series": s, "last": s.values[-1]}
        for sid, s in zip(ordered, series, strict=True)
    ]
    chart = minute_chart(series, first, "Events received per minute, by source")
    return Panel(
        "events",
        "Events per minute",
        "panel_events.html",
        {"chart": chart, "rows": rows, "total": sum(s.total for s in series)},
        wide=True,
    )


def rejected_events(c: Container) -> Panel:
    since = to_ms(c.clock.now() - timedelta(hours=24))
    counts = c.debugger.rejection_counts_since(since)
    names = {s.id: s.name for s in c.sources.list()}
    latest = c.debugger.latest_rejections(LATEST_REJECTIONS)
    for entry in latest:
        entry["source_name"] = names.get(entry["source_id"] or "")
    return Panel(
        "rejections",
        "Rejected events",
        "panel_rejections.html",
        {
            "counts": sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
            "total": sum(counts.values()),
            "latest": latest,
        },
    )


def pipeline_lag(c: Container) -> Panel:
    return Panel("pipeline", "Pipeline", "panel_pipeline.html", {"status": c.pipeline.status()})


PANELS: tuple[PanelFunction, ...] = (events_per_minute, rejected_events, pipeline_lag)


def dashboard(c: Container, panels: tuple[PanelFunction, ...] = PANELS) -> list[Panel]:
    return [panel(c) for panel in panels]
