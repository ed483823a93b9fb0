"""The live debugger: recent events and rejections of a source, as a list or a stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

import orjson

from tidings.core.clock import from_ms, iso

from .store import CollectStore

HEARTBEAT_S = 15.0


def event_entry(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "event",
        "seq": row["seq"],
        "type": row["type"],
        "event": row["event"],
        "messageId": row["message_id"],
        "receivedAt": iso(from_ms(row["received_at"])),
        "payload": orjson.loads(row["payload"]),
    }


def rejection_entry(row: dict[str, Any]) -> dict[str, Any]:
    payload: Any = None
    if row["payload"]:
        try:
            payload = orjson.loads(row["payload"])
        except orjson.JSONDecodeError:
            payload = row["payload"]
    return {
        "kind": "rejection",
        "id": row["id"],
        "endpoint": row["endpoint"],
        "index": row["batch_index"],
        "code": row["code"],
        "field": row["field"],
        "message": row["message"],
        "receivedAt": iso(from_ms(row["received_at"])),
        "payload": payload,
    }


class Flags(Protocol):
    """Validation flags the pipeline attaches to stored events (the profiles context)."""

    def flags_of(self, seqs: Sequence[int]) -> dict[int, list[dict[str, str]]]: ...

    def flag_counts(self, source_id: str) -> dict[str, int]: ...


class Debugger:
    def __init__(self, store: CollectStore, poll_s: float, flags: Flags | None = None) -> None:
        self.store = store
        self.poll_s = poll_s
        self.flags = flags

    def recent(self, source_id: str, limit: int, kind: str | None = None) -> dict[str, Any]:
        """The newest events and rejections of a source, newest first, and counts of reasons."""
        events = [] if kind == "rejection" else self.store.recent_events(source_id, limit)
        rejected = [] if kind == "event" else self.store.recent_rejections(source_id, limit)
        entries = [event_entry(r) for r in events]
        body: dict[str, Any] = {
            "events": entries,
            "rejections": [rejection_entry(r) for r in rejected],
            "rejection_counts": self.store.rejection_counts(source_id),
        }
        if self.flags is not None:
            # Flags appear once the pipeline has applied an event (usually within a second).
            flags = self.flags.flags_of([e["seq"] for e in entries])
            for entry in entries:
                entry["flags"] = flags.get(entry["seq"], [])
            body["flag_counts"] = self.flags.flag_counts(source_id)
        return body

    async def stream(
        self,
        source_id: str,
        is_disconnected: Callable[[], Any],
        max_seconds: float | None = None,
        after: tuple[int, int] | None = None,
    ) -> AsyncIterator[bytes]:
        """Server-sent events: ``event`` and ``rejection`` messages as they are committed.

        It starts after the newest event and rejection, or after ``after`` (an event ``seq``
        and a rejection id: what a page already shows, so nothing falls between the two).
        It polls the store, so it sees events committed by every process sharing the database.
        """
        loop = asyncio.get_running_loop()
        if after is None:
            after = await loop.run_in_executor(None, self.store.max_ids, source_id)
        last_seq, last_rejection = after
        yield b"retry: 2000\n: connected\n\n"
        started = idle_since = loop.time()
        while not await is_disconnected():
            if max_seconds is not None and loop.time() - started > max_seconds:
                return
            events = await loop.run_in_executor(
                None, self.store.recent_events, source_id, 500, last_seq
            )
            rejected = await loop.run_in_executor(
                None, self.store.recent_rejections, source_id, 500, last_rejection
            )
            for row in events:
                last_seq = row["seq"]
                yield b"event: event\ndata: " + orjson.dumps(event_entry(row)) + b"\n\n"
            for row in rejected:
                last_rejection = row["id"]
                yield b"event: rejection\ndata: " + orjson.dumps(rejection_entry(row)) + b"\n\n"
            if events or rejected:
                idle_since = loop.time()
            elif loop.time() - idle_since > HEARTBEAT_S:
                idle_since = loop.time()
                yield b": heartbeat\n\n"
            if len(events) < 500 and len(rejected) < 500:
                await asyncio.sleep(self.poll_s)

    # -- across sources (the admin dashboard) --------------------------------------------------
    def per_minute(self, since_ms: int) -> list[tuple[str, int, int]]:
        """``(source_id, minute, events)`` received since ``since_ms`` (minute: epoch ms // 60k)."""
        return self.store.events_per_minute(since_ms)

    def latest_rejections(self, limit: int) -> list[dict[str, Any]]:
        """The newest rejections of every source, newest first, each with its source id."""
        rows = self.store.latest_rejections(limit)
        return [{**rejection_entry(r), "source_id": r["source_id"]} for r in rows]

    def rejection_counts_since(self, since_ms: int) -> dict[str, int]:
        """Rejections by reason code since ``since_ms``, every source together."""
        return self.store.rejection_counts_since(since_ms)
