"""Delivering simulated events: over HTTP with Segment's own client, or straight to the store.

- :func:`send_http` uses the official ``segment-analytics-python`` client pointed at a tidings
  server (``host=url``) with its own batching and retries, so a simulation is also a load and
  correctness test of the collection API.
- :func:`send_direct` skips HTTP for speed but not the rules: each message is validated and
  turned into a row by the collection layer's own :class:`~tidings.collect.messages.Enricher`
  (what ``POST /v1/batch`` does), and rows are appended through
  :class:`~tidings.collect.store.CollectStore` in transactions of ``transaction_events``,
  idempotently (a messageId already stored for the source is skipped).

Both show a Rich progress bar with events/s unless ``progress=False``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

from tidings.collect.messages import Enricher, Limits, enrich_many
from tidings.collect.store import CollectStore, EventRow
from tidings.core.clock import Clock, SystemClock
from tidings.core.db import Database

from .shoppers import SimEvent

HTTP_BATCH_EVENTS = 400  # stays under Segment's 500 KB per batch with our ~1 KB messages
HTTP_QUEUE_EVENTS = 10_000
DIRECT_TRANSACTION_EVENTS = 5_000
PROGRESS_EVERY = 1_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class SendResult:
    """What a send did. ``names`` counts events by name (``track``) or type (the others)."""

    via: str
    sent: int = 0
    stored: int | None = None  # rows new to the store (direct only: HTTP cannot tell)
    rejected: int = 0  # refused by validation (direct) or reported by the client (HTTP)
    errors: list[str] = field(default_factory=list)  # the first few reasons
    elapsed_s: float = 0.0
    names: Counter[str] = field(default_factory=Counter)
    persons: set[str] = field(default_factory=set)

    @property
    def events_per_s(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def note_error(self, message: str) -> None:
        if len(self.errors) < 10:
            self.errors.append(message)


class _RateColumn(ProgressColumn):
    """Events and events/s of an open-ended task (the stream's length is not known ahead)."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{task.completed:>12,.0f} events  {rate:>9,.0f} events/s", style="cyan")


def _progress(console: Console | None, enabled: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        _RateColumn(),
        TextColumn("[progress.elapsed]{task.elapsed:>6.1f} s"),
        console=console,
        disable=not enabled,
        transient=False,
    )


def _tally(events: Iterable[SimEvent], result: SendResult) -> Iterator[SimEvent]:
    names, persons = result.names, result.persons
    for ev in events:
        msg = ev.message
        names[msg.get("event") or msg["type"]] += 1
        persons.add(ev.person_id)
        yield ev


# -- HTTP ----------------------------------------------------------------------------------------
class _Errors:
    """Collects what the client's ``on_error`` hears, from its consumer thread."""

    def __init__(self, result: SendResult) -> None:
        self.result = result
        self.lock = threading.Lock()

    def __call__(self, error: Exception, batch: list[dict[str, Any]]) -> None:
        with self.lock:
            self.result.rejected += len(batch)
            self.result.note_error(f"{error.__class__.__name__}: {error}")


def _call(client: Any, msg: dict[str, Any], at: datetime) -> tuple[bool, Any]:
    """The client call a shop's code would make for ``msg``."""
    common = {
        "context": msg.get("context"),
        "timestamp": at,
        "integrations": msg.get("integrations"),
        "message_id": msg.get("messageId"),
    }
    user_id, anonymous_id = msg.get("userId"), msg.get("anonymousId")
    type_ = msg["type"]
    if type_ == "track":
        return client.track(  # type: ignore[no-any-return]
            user_id, msg["event"], msg.get("properties"), anonymous_id=anonymous_id, **common
        )
    if type_ == "identify":
        return client.identify(  # type: ignore[no-any-return]
            user_id, msg.get("traits"), anonymous_id=anonymous_id, **common
        )
    if type_ in ("page", "screen"):
        call = client.page if type_ == "page" else client.screen
        return call(  # type: ignore[no-any-return]
            user_id,
            msg.get("category"),
            msg.get("name"),
            msg.get("properties"),
            anonymous_id=anonymous_id,
            **common,
        )
    if type_ == "group":
        return client.group(  # type: ignore[no-any-return]
            user_id, msg["groupId"], msg.get("traits"), anonymous_id=anonymous_id, **common
        )
    if type_ == "alias":
        return client.alias(msg["previousId"], user_id, **common)  # type: ignore[no-any-return]
    raise ValueError(f"unknown message type {type_!r}")


def send_http(
    events: Iterable[SimEvent],
    url: str,
    write_key: str,
    *,
    batch_events: int = HTTP_BATCH_EVENTS,
    gzip: bool = False,
    timeout_s: float = 30.0,
    max_retries: int = 10,
    progress: bool = True,
    console: Console | None = None,
) -> SendResult:
    """Send ``events`` to the tidings server at ``url`` with ``segment-analytics-python``.

    The client batches (``batch_events`` per ``/v1/batch`` request), retries (honouring
    ``429``/``Retry-After``) and reports failures to ``on_error``; those are counted in
    ``rejected``. Returns once everything was delivered or given up on.
    """
    from segment.analytics import Client

    result = SendResult("http")
    client = Client(
        write_key=write_key,
        host=url.rstrip("/"),
        on_error=_Errors(result),
        gzip=gzip,
        upload_size=batch_events,
        upload_interval=0.05,
        max_queue_size=HTTP_QUEUE_EVENTS,
        max_retries=max_retries,
        timeout=timeout_s,
    )
    queue = client.queue
    started = time.monotonic()
    try:
        with _progress(console, progress) as bar:
            task = bar.add_task("sending over HTTP", total=None)
            sent = 0
            for ev in _tally(events, result):
                # Wait rather than let the client drop what its full queue cannot take.
                while queue.qsize() >= HTTP_QUEUE_EVENTS - 1:
                    time.sleep(0.002)
                at = EPOCH + timedelta(milliseconds=ev.timestamp_ms)  # exact, unlike a float
                ok, _ = _call(client, ev.message, at)
                if not ok:
                    result.rejected += 1
                    result.note_error("the client's queue refused an event")
                sent += 1
                if sent % PROGRESS_EVERY == 0:
                    bar.update(task, completed=sent)
            bar.update(task, completed=sent, description="waiting for the last batches")
            client.flush()
            bar.update(task, description="sent over HTTP")
    finally:
        client.shutdown()
    result.sent = sent
    result.elapsed_s = time.monotonic() - started
    return result


# -- direct --------------------------------------------------------------------------------------
def _chunks(events: Iterable[SimEvent], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for ev in events:
        chunk.append(ev.message)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def send_direct(
    events: Iterable[SimEvent],
    database_url: str,
    source_id: str,
    *,
    transaction_events: int = DIRECT_TRANSACTION_EVENTS,
    limits: Limits | None = None,
    clock: Clock | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> SendResult:
    """Store ``events`` for the source ``source_id`` in the (migrated) database at
    ``database_url`` through the collection layer, without HTTP.

    Each transaction's messages are validated and enriched as one ``/v1/batch`` request
    (``received`` now, no ``sentAt``, so the messages' own timestamps are kept); invalid ones
    are counted in ``rejected`` with their reasons and not stored. The next chunk is generated
    while the previous one commits.
    """
    limits = limits or Limits()
    clock = clock or SystemClock()
    result = SendResult("direct")
    # A bulk load: on SQLite, commits need not wait for the disk (a crash loses at most the
    # last transactions, never the database's integrity; a rerun adds what is missing).
    db = Database.from_url(database_url, synchronous="NORMAL")
    store = CollectStore(db.engine)
    if store.get_source(source_id) is None:
        db.close()
        raise ValueError(f"no source with id {source_id!r} in that database")
    before = store.count_events(source_id)
    started = time.monotonic()
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidings-simulate-writer")
    in_flight: Future[None] | None = None
    sent = 0
    try:
        with _progress(console, progress) as bar:
            task = bar.add_task("writing to the store", total=None)
            for chunk in _chunks(_tally(events, result), transaction_events):
                enricher = Enricher(source_id, clock.now(), limits)
                outcome = enrich_many(enricher, chunk, None, True)
                for rejected in outcome.rejected:
                    result.rejected += 1
                    result.note_error(f"{rejected.error.code}: {rejected.error.message}")
                rows: list[EventRow] = outcome.rows
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(store.append, rows)
                sent += len(chunk)
                bar.update(task, completed=sent)
            if in_flight is not None:
                in_flight.result()
        result.stored = store.count_events(source_id) - before
    finally:
        writer.shutdown(wait=True)
        db.close()
    result.sent = sent
    result.elapsed_s = time.monotonic() - started
    return result
