"""Segment messages: validation with Segment's limits and enrichment into stored events.

This is the ingest hot path, so it is plain Python over dicts from orjson rather than a
pydantic model per event (about ten times faster); the OpenAPI schema in ``schemas.py``
documents the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from tidings.core.clock import iso, to_ms
from tidings.core.errors import FieldError
from tidings.core.ids import new_message_id

from .store import EventRow

TYPES = ("track", "identify", "page", "screen", "group", "alias")
SHORT_PATHS = {t[0]: t for t in TYPES}  # analytics.js posts to /v1/t, /v1/i, ...
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
_dumps = orjson.dumps


@dataclass(frozen=True, slots=True)
class Limits:
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    max_message_id_chars: int = 100


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int | None
    error: FieldError
    raw: Any

    def as_dict(self) -> dict[str, Any]:
        out = self.error.as_dict()
        if self.index is not None:
            out["index"] = self.index
        return out


class InvalidMessage(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.error = FieldError(code, message, field)


def parse_time(value: Any, field: str) -> datetime:
    """An ISO-8601 instant; a value without a zone is taken as UTC."""
    if not isinstance(value, str):
        raise InvalidMessage("invalid_timestamp", "must be an ISO-8601 date-time string", field)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidMessage(
            "invalid_timestamp", f"{value[:40]!r} is not an ISO-8601 date-time", field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise InvalidMessage("invalid_timestamp", "is out of range in UTC", field) from None


def _identifier(msg: dict[str, Any], field: str) -> str | None:
    value = msg.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if len(value) > 500:
            raise InvalidMessage("too_long", "must be at most 500 characters", field)
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        # Segment's server libraries accept numeric ids and send them as strings.
        text = str(value)
        msg[field] = text
        return text
    raise InvalidMessage("invalid_type", "must be a string", field)


class Enricher:
    """Turns one request's messages into event rows, with the request's shared facts."""

    __slots__ = (
        "batch_context",
        "client_ip",
        "email_identifies",
        "limits",
        "received_at",
        "received_iso",
        "received_ms",
        "sent_at",
        "sent_at_raw",
        "source_id",
    )

    def __init__(
        self,
        source_id: str,
        received_at: datetime,
        limits: Limits,
        *,
        sent_at: Any = None,
        batch_context: dict[str, Any] | None = None,
        client_ip: str | None = None,
        email_identifies: bool = False,
    ) -> None:
        self.source_id = source_id
        self.limits = limits
        self.received_at = received_at
        self.received_iso = iso(received_at)
        self.received_ms = to_ms(received_at)
        self.sent_at_raw = sent_at
        self.sent_at = parse_time(sent_at, "sentAt") if sent_at is not None else None
        self.batch_context = batch_context
        self.client_ip = client_ip
        # Events tidings makes itself (email tracking, ESP webhooks) may name their person by
        # ``context.traits.email`` alone, as Segment's Email spec does.
        self.email_identifies = email_identifies

    def enrich(self, msg: Any, type_: str | None, check_size: bool) -> EventRow:
        """Validate one message and return the row to store; raises ``InvalidMessage``."""
        # The hot path: every event of every request passes here, so the common cases are
        # inlined (a plain string id, a UTC timestamp) and the rare ones take the helpers.
        if not isinstance(msg, dict):
            raise InvalidMessage("invalid_type", "each message must be a JSON object", None)
        if check_size and len(_dumps(msg)) > self.limits.max_event_bytes:
            raise InvalidMessage(
                "event_too_large",
                f"an event may be at most {self.limits.max_event_bytes} bytes",
                None,
            )
        get = msg.get
        if type_ is None:
            type_ = get("type")
            if type_ not in TYPES:
                raise InvalidMessage(
                    "invalid_type" if type_ is not None else "missing_field",
                    "must be one of " + ", ".join(TYPES),
                    "type",
                )
        msg["type"] = type_
        if "writeKey" in msg:
            del msg["writeKey"]  # a secret: never stored with the event

        user_id = get("userId")
        if user_id.__class__ is not str or not user_id or len(user_id) > 500:
            user_id = _identifier(msg, "userId")
        anonymous_id = get("anonymousId")
        if anonymous_id.__class__ is not str or not anonymous_id or len(anonymous_id) > 500:
            anonymous_id = _identifier(msg, "anonymousId")
        if type_ == "alias":
            if _identifier(msg, "previousId") is None:
                raise InvalidMessage("missing_field", "alias needs previousId", "previousId")
            if user_id is None:
                raise InvalidMessage("missing_field", "alias needs userId", "userId")
        elif user_id is None and anonymous_id is None and not self._has_email(msg):
            raise InvalidMessage(
                "no_user_anon_id", "each event needs a userId or an anonymousId", "userId"
            )
        if user_id is None and "userId" in msg:
            del msg["userId"]

        event = get("event")
        if type_ == "track":
            if not isinstance(event, str) or not event.strip():
                raise InvalidMessage("missing_field", "track needs an event name", "event")
            if len(event) > 500:
                raise InvalidMessage("too_long", "must be at most 500 characters", "event")
        else:
            event = None
        if type_ == "group" and _identifier(msg, "groupId") is None:
            raise InvalidMessage("missing_field", "group needs a groupId", "groupId")

        for field in OBJECT_FIELDS:
            value = get(field)
            if value is not None and not isinstance(value, dict):
                raise InvalidMessage("invalid_type", "must be a JSON object", field)

        message_id = get("messageId")
        if message_id is None or message_id == "":
            message_id = msg["messageId"] = new_message_id()
        elif not isinstance(message_id, str):
            raise InvalidMessage("invalid_type", "must be a string", "messageId")
        elif len(message_id) > self.limits.max_message_id_chars:
            raise InvalidMessage(
                "too_long",
                f"must be at most {self.limits.max_message_id_chars} characters",
                "messageId",
            )

        if self.batch_context:
            msg["context"] = {**self.batch_context, **(get("context") or {})}
        if self.client_ip is not None:
            context = get("context")
            if context and context.get("direct") is True and "ip" not in context:
                context["ip"] = self.client_ip

        timestamp = self._timestamp(msg)
        msg["receivedAt"] = self.received_iso
        msg["timestamp"] = iso(timestamp)
        return (
            self.source_id,
            message_id,
            type_,
            event,
            user_id,
            anonymous_id,
            int(timestamp.timestamp() * 1000),  # tidings.core.clock.to_ms, inlined
            self.received_ms,
            _dumps(msg).decode(),
        )

    def _has_email(self, msg: dict[str, Any]) -> bool:
        if not self.email_identifies:
            return False
        context = msg.get("context")
        traits = context.get("traits") if isinstance(context, dict) else None
        email = traits.get("email") if isinstance(traits, dict) else None
        return isinstance(email, str) and bool(email.strip())

    def _timestamp(self, msg: dict[str, Any]) -> datetime:
        """receivedAt - (sentAt - originalTimestamp): the device's time, corrected for skew."""
        original_raw = msg.get("originalTimestamp")
        field = "originalTimestamp"
        if original_raw is None:
            original_raw, field = msg.get("timestamp"), "timestamp"
        sent_raw = msg.get("sentAt")
        if sent_raw is None:
            sent_raw, sent = self.sent_at_raw, self.sent_at
        else:
            sent = parse_time(sent_raw, "sentAt")
        if sent_raw is not None:
            msg["sentAt"] = sent_raw
        if original_raw is None:
            return self.received_at
        original = parse_time(original_raw, field)
        msg["originalTimestamp"] = original_raw
        if sent is None:
            return original
        skew: timedelta = sent - original
        try:
            return self.received_at - skew
        except OverflowError:
            raise InvalidMessage("invalid_timestamp", "is too far from sentAt", field) from None


@dataclass(slots=True)
class Outcome:
    rows: list[EventRow]
    rejected: list[Rejected]


def enrich_many(
    enricher: Enricher, messages: list[Any], type_: str | None, check_size: bool
) -> Outcome:
    """Validate a batch: good messages become rows, bad ones are reported by index."""
    rows: list[EventRow] = []
    rejected: list[Rejected] = []
    for index, msg in enumerate(messages):
        try:
            rows.append(enricher.enrich(msg, type_, check_size))
        except InvalidMessage as exc:
            rejected.append(Rejected(index, exc.error, msg))
    return Outcome(rows, rejected)
