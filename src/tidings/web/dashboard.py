"""The dashboard: a list of panels, each one function from the app's services to what it shows.

Adding a panel (renders per minute, opens and clicks today, …) is one function that returns a
:class:`Panel` naming its template, added to :data:`PANELS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from tidings.core.clock import to_ms
from tidings.tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED

from .charts import PALETTE, Series, minute_chart

if TYPE_CHECKING:
    from tidings.core.deps import Container

MINUTES = 60
LATEST_REJECTIONS = 10
# Today's opens and clicks are counted from the email source's events, a page at a time; past
# this many the panel says it stopped counting rather than slow the dashboard down.
TODAY_MAX_EVENTS = 200_000
TODAY_PAGE = 5000


@dataclass(frozen=True, slots=True)
class Panel:
    key: str
    title: str
    template: str  # in web/templates; it reads ``panel.data``
    data: dict[str, Any] = field(default_factory=dict)
    wide: bool = False


PanelFunction = Callable[["Container"], Panel]


def _last_hour(c: Container) -> tuple[int, int]:
    """The current epoch minute and the first of the hour that ends with it."""
    now_minute = to_ms(c.clock.now()) // 60_000
    return now_minute, now_minute - MINUTES + 1


def events_per_minute(c: Container) -> Panel:
    now_minute, first = _last_hour(c)
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
    chart = minute_chart(series, first, "Events received per minute, by source", key="events-chart")
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


def renders_per_minute(c: Container) -> Panel:
    now_minute, first = _last_hour(c)
    people, machines = [0] * MINUTES, [0] * MINUTES
    for minute, machine, n in c.content.renders_per_minute(first * 60_000):
        if first <= minute <= now_minute:
            (machines if machine else people)[minute - first] += n
    series = [
        Series("Opened by people", people, PALETTE[0]),
        Series("Fetched by machines", machines, PALETTE[1]),
    ]
    chart = minute_chart(
        series, first, "Blocks rendered per minute", key="renders-chart", unit="renders"
    )
    return Panel(
        "renders",
        "Renders per minute",
        "panel_renders.html",
        {"chart": chart, "series": series, "total": sum(s.total for s in series)},
        wide=True,
    )


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def opens_and_clicks_today(c: Container) -> Panel:
    """Email Opened and Email Link Clicked received since midnight (UTC), people's and
    machines' apart (the ``machine_open`` / ``machine_click`` flags the tracking set)."""
    now = c.clock.now()
    now_minute, first = _last_hour(c)
    counts = {"human_opens": 0, "machine_opens": 0, "human_clicks": 0, "machine_clicks": 0}
    hour = {key: [0] * MINUTES for key in counts}
    names = [EMAIL_OPENED, EMAIL_LINK_CLICKED]
    page = c.tracking.email_events_since(names, to_ms(_start_of_day(now)), TODAY_PAGE)
    seen = 0
    while page and seen < TODAY_MAX_EVENTS:
        for _seq, ts, event, payload in page:
            props = orjson.loads(payload).get("properties") or {}
            if event == EMAIL_OPENED:
                key = "machine_opens" if props.get("machine_open") else "human_opens"
            else:
                key = "machine_clicks" if props.get("machine_click") else "human_clicks"
            counts[key] += 1
            if first <= ts // 60_000 <= now_minute:
                hour[key][ts // 60_000 - first] += 1
        seen += len(page)
        page = c.tracking.email_events(names, page[-1][0], TODAY_PAGE)
    labels = {
        "human_opens": "Opens by people",
        "machine_opens": "Opens by machines",
        "human_clicks": "Clicks by people",
        "machine_clicks": "Clicks by machines",
    }
    series = [
        Series(labels[key], hour[key], PALETTE[i % len(PALETTE)]) for i, key in enumerate(counts)
    ]
    chart = minute_chart(
        series, first, "Opens and clicks per minute", key="email-chart", unit="opens and clicks"
    )
    return Panel(
        "email",
        "Opens and clicks today",
        "panel_email.html",
        {
            "counts": counts,
            "labels": labels,
            "chart": chart,
            "series": series,
            "capped": seen >= TODAY_MAX_EVENTS,
            "max_events": TODAY_MAX_EVENTS,
            "since": _start_of_day(now),
        },
        wide=True,
    )


def pipeline_lag(c: Container) -> Panel:
    return Panel("pipeline", "Pipeline", "panel_pipeline.html", {"status": c.pipeline.status()})


PANELS: tuple[PanelFunction, ...] = (
    events_per_minute,
    rejected_events,
    pipeline_lag,
    renders_per_minute,
    opens_and_clicks_today,
)


def dashboard(c: Container, panels: tuple[PanelFunction, ...] = PANELS) -> list[Panel]:
    return [panel(c) for panel in panels]
