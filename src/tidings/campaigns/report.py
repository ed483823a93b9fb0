"""A campaign's report, computed from what its messages did (pure: no database here).

**Engagement** is per message (one per recipient): a human open is an ``Email Opened`` without
``machine_open``; a human click an ``Email Link Clicked`` without ``machine_click``. A person who
clicked also opened (their client may block images, so the pixel never loaded), so unique opens
count messages with a human open *or* click; machine opens count messages opened by a machine
only. Click-to-open is unique clicks over unique opens.

**Attribution.** Each ``Order Completed`` of a recipient goes to the *latest* human touch before
it, across every campaign the person got: the latest click within the window if there is one,
else the latest open within the window. The campaign is credited only when that touch is one of
its own emails, so an order is attributed at most once, and two campaigns never both claim it.
An order id seen twice counts once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tidings.profiles.ecommerce import normalize
from tidings.tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED

ORDER_COMPLETED = "Order Completed"


@dataclass(slots=True)
class Engagement:
    """What one message did."""

    human_open: bool = False
    machine_open: bool = False
    human_click: bool = False
    machine_click: bool = False
    unsubscribed: bool = False
    replied: bool = False
    conversions: int = 0
    revenue: float = 0.0

    @property
    def opened(self) -> bool:
        return self.human_open or self.human_click


@dataclass(frozen=True, slots=True)
class Touch:
    at_ms: int
    click: bool
    campaign_id: str | None
    email_id: str | None


@dataclass(slots=True)
class Totals:
    recipients: int = 0
    unique_opens: int = 0
    machine_opens: int = 0
    unique_clicks: int = 0
    machine_clicks: int = 0
    unsubscribes: int = 0
    replies: int = 0
    conversions: int = 0
    revenue: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, e: Engagement) -> None:
        self.recipients += 1
        self.unique_opens += e.opened
        self.machine_opens += e.machine_open and not e.opened
        self.unique_clicks += e.human_click
        self.machine_clicks += e.machine_click and not e.human_click
        self.unsubscribes += e.unsubscribed
        self.replies += e.replied
        self.conversions += e.conversions
        self.revenue += e.revenue


def engagement_of(
    messages: Sequence[tuple[str, Mapping[str, Any]]], engaged: dict[str, Engagement]
) -> None:
    """Fold ``(event, properties)`` of one campaign's email events into ``engaged`` (by
    ``email_id``)."""
    from tidings.tracking.events import EMAIL_REPLIED, UNSUBSCRIBED

    for event, props in messages:
        email_id = props.get("email_id")
        if not isinstance(email_id, str):
            continue
        e = engaged.setdefault(email_id, Engagement())
        if event == EMAIL_OPENED:
            if props.get("machine_open"):
                e.machine_open = True
            else:
                e.human_open = True
        elif event == EMAIL_LINK_CLICKED:
            if props.get("machine_click"):
                e.machine_click = True
            else:
                e.human_click = True
        elif event == UNSUBSCRIBED:
            e.unsubscribed = True
        elif event == EMAIL_REPLIED:
            e.replied = True


def touches_and_orders(
    rows: Sequence[tuple[int, int, str, dict[str, Any]]],
) -> tuple[list[Touch], list[tuple[int, str, float]]]:
    """A person's human touches and their orders ``(at_ms, order key, total)``, from their
    ``(timestamp, seq, event, message)`` rows."""
    touches: list[Touch] = []
    orders: list[tuple[int, str, float]] = []
    seen: set[str] = set()
    for ts, seq, event, message in rows:
        props = message.get("properties")
        props = props if isinstance(props, dict) else {}
        if event == ORDER_COMPLETED:
            read = normalize(message)
            key = read.order_id or f"seq:{seq}"
            if key in seen:
                continue
            seen.add(key)
            orders.append((ts, key, float(read.total or 0.0)))
        elif event == EMAIL_OPENED and not props.get("machine_open"):
            touches.append(Touch(ts, False, props.get("campaign_id"), props.get("email_id")))
        elif event == EMAIL_LINK_CLICKED and not props.get("machine_click"):
            touches.append(Touch(ts, True, props.get("campaign_id"), props.get("email_id")))
    return touches, orders


def attribute(touches: Sequence[Touch], at_ms: int, window_ms: int) -> Touch | None:
    """The touch an order at ``at_ms`` belongs to: the latest click in the window before it,
    else the latest open in the window, else none."""
    in_window = [t for t in touches if 0 <= at_ms - t.at_ms <= window_ms]
    clicks = [t for t in in_window if t.click]
    chosen = clicks or in_window
    return max(chosen, key=lambda t: t.at_ms) if chosen else None
