"""What a rule reads: the recipient's facts and the open's context.

:class:`Facts` is the recipient: traits, derived state, audiences and, for behaviour
conditions, their events of one name (newest first, from one indexed query, never a scan of the
timeline). :class:`ProfileFacts` reads them from a profile's derived state and an events loader
the content service gives it; :class:`OpenContext` is the open: when, in which time zone, from
which device and email client, whether a machine fetched it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tidings.profiles.state import MAX_VIEWED, ProfileState

DAY_MS: Final = 86_400_000
MAX_EVENTS_READ: Final = 1000


@dataclass(frozen=True, slots=True)
class EventFact:
    """One event a behaviour condition counts: when, and its ``properties``."""

    timestamp_ms: int
    properties: Mapping[str, Any]


EventsLoader = Callable[[str, int | None], Sequence[EventFact]]
"""``(event name, since_ms)`` → that person's events of that name at or after ``since_ms``
(all kept ones when ``None``), newest first, at most :data:`MAX_EVENTS_READ`."""


class Facts(Protocol):
    def trait(self, path: str) -> tuple[bool, Any]:
        """``(found, value)`` of a trait; dotted paths reach into objects."""
        ...

    def state(self, field: str) -> float | None:
        """A derived number (see :data:`~tidings.rules.model.STATE_FIELDS`); ``None`` when
        it does not apply (days since the last order of someone who never ordered)."""
        ...

    def audiences(self) -> frozenset[str]: ...

    def events(self, name: str, since_ms: int | None) -> Sequence[EventFact]: ...


def lookup(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` at a dotted path; an exact key with dots wins over the path."""
    if path in data:
        return True, data[path]
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False, None
        value = value[part]
    return True, value


class ProfileFacts:
    """A profile's facts for rules, computed lazily and kept for one evaluation."""

    def __init__(
        self,
        state: ProfileState | None,
        now_ms: int,
        *,
        events: EventsLoader | None = None,
        audiences: frozenset[str] = frozenset(),
    ) -> None:
        self._state = state or ProfileState.empty()
        self._now_ms = now_ms
        self._events = events
        self._audiences = audiences
        self._numbers: dict[str, float | None] | None = None
        self._loaded: dict[tuple[str, int | None], Sequence[EventFact]] = {}

    def trait(self, path: str) -> tuple[bool, Any]:
        return lookup(self._state.traits, path)

    def state(self, field: str) -> float | None:
        if self._numbers is None:
            self._numbers = self._derive()
        return self._numbers.get(field)

    def _derive(self) -> dict[str, float | None]:
        state = self._state
        cols = state.columns()
        cart = state.cart()

        def days_since(ms: int | None) -> float | None:
            return None if ms is None else max(0.0, (self._now_ms - ms) / DAY_MS)

        return {
            "cart_quantity": cols["cart_quantity"],
            "cart_items": len(cart["items"]),
            "cart_value": cols["cart_value"],
            "order_count": cols["order_count"],
            "lifetime_revenue": cols["revenue"],
            "days_since_last_order": days_since(cols["last_order_ms"]),
            "days_since_first_seen": days_since(cols["first_seen_ms"]),
            "days_since_last_seen": days_since(cols["last_seen_ms"]),
            "event_count": cols["event_count"],
            "viewed_count": len(state.recently_viewed(MAX_VIEWED, exclude_purchased=False)),
        }

    def audiences(self) -> frozenset[str]:
        return self._audiences

    def events(self, name: str, since_ms: int | None) -> Sequence[EventFact]:
        if self._events is None:
            return ()
        key = (name, since_ms)
        found = self._loaded.get(key)
        if found is None:
            found = self._loaded[key] = self._events(name, since_ms)
        return found


@dataclass(frozen=True, slots=True)
class OpenContext:
    """The moment and circumstances of one open (or a preview or simulation of one).

    ``timezone`` is the recipient's (their ``timezone`` trait, else the block's default);
    ``device`` ``mobile|tablet|desktop``; ``client`` the email client
    (``apple_mail``, ``gmail``, ``outlook``, ...); ``country`` an ISO code from a trusted
    request header when configured; ``machine`` whether a proxy or scanner fetched the image.
    """

    now: datetime
    recipient: str = ""
    block_id: str = ""
    timezone: str = "UTC"
    user_agent: str | None = None
    device: str | None = None
    client: str | None = None
    country: str | None = None
    machine: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def now_ms(self) -> int:
        return int(self.now.timestamp() * 1000)

    def zone(self) -> ZoneInfo:
        return zone_or_utc(self.timezone)

    def local(self) -> datetime:
        """``now`` on the recipient's wall clock (DST included)."""
        now = self.now if self.now.tzinfo else self.now.replace(tzinfo=UTC)
        return now.astimezone(self.zone())


def zone_or_utc(name: str | None) -> ZoneInfo:
    """The IANA zone, or UTC for a missing or unknown name (never raises)."""
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def bucket(recipient: str, block_id: str, salt: str = "") -> int:
    """A stable number 0-99 for this recipient and block: the same on every open, every
    process and every release (BLAKE2b, not Python's randomised ``hash``)."""
    digest = hashlib.blake2b(
        f"{block_id}\x00{salt}\x00{recipient}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") % 100
