"""The ingest queue and its writer: acknowledge only after commit, many requests per commit.

Request handlers validate their events and ``submit`` them; one writer task drains the queue
and commits everything waiting in a single transaction on the database's writer thread, then
resolves each request's future. While a commit is in flight the next requests pile up and share
the following commit (group commit). The queue is bounded by event count: when it is full,
``submit`` raises ``TooManyRequests`` (429 + Retry-After) instead of growing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidings.core.db import Database
from tidings.core.errors import ServiceUnavailable, TooManyRequests
from tidings.core.process import tune_garbage_collector

from .store import CollectStore, EventRow, RejectionRow

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    rows: Sequence[EventRow]
    rejected: Sequence[RejectionRow]
    future: asyncio.Future[None]
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.rows) + len(self.rejected)


@dataclass(slots=True)
class IngestStats:
    committed_events: int = 0
    commits: int = 0
    rejected_full: int = 0


class IngestQueue:
    """Bounded queue plus the group-commit writer task; start it inside the event loop."""

    def __init__(
        self,
        db: Database,
        store: CollectStore,
        *,
        max_events: int,
        commit_max_events: int,
        retry_after_s: int = 1,
    ) -> None:
        self.db = db
        self.store = store
        self.max_events = max_events
        self.commit_max_events = commit_max_events
        self.retry_after_s = retry_after_s
        self.stats = IngestStats()
        # Called on the event loop after each commit (the pipeline wakes up on it).
        self.on_commit: list[Callable[[], None]] = []
        self._pending: deque[_Pending] = deque()
        self._pending_events = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def depth(self) -> int:
        return self._pending_events

    def start(self) -> None:
        tune_garbage_collector()  # the process serves: tune its collector
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="tidings-ingest-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task

    async def submit(self, rows: Sequence[EventRow], rejected: Sequence[RejectionRow] = ()) -> None:
        """Return once ``rows`` and ``rejected`` are committed; raise 429 if the queue is full."""
        if not rows and not rejected:
            return
        if self._wakeup is None or self._closing:
            raise TooManyRequests(
                "shutting_down",
                "tidings is shutting down; retry shortly",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        n = len(rows) + len(rejected)
        if self._pending_events + n > self.max_events and self._pending_events > 0:
            self.stats.rejected_full += 1
            raise TooManyRequests(
                "queue_full",
                "the ingest queue is full; retry after the number of seconds in Retry-After",
                headers={
                    "Retry-After": str(self.retry_after_s),
                    "X-RateLimit-Reset": str(self.retry_after_s),
                },
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(rows, rejected, future))
        self._pending_events += n
        self._wakeup.set()
        await future

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            taken: list[_Pending] = []
            count = 0
            while self._pending and (
                not taken or count + self._pending[0].size <= self.commit_max_events
            ):
                item = self._pending.popleft()
                taken.append(item)
                count += item.size
            # Flattening the requests' rows happens on the writer thread, not the event loop.
            row_groups = [item.rows for item in taken if item.rows]
            rejected_groups = [item.rejected for item in taken if item.rejected]
            n_rows = sum(len(g) for g in row_groups)
            try:
                await self.db.run_write(self.store.append_groups, row_groups, rejected_groups)
            except Exception:
                log.exception("ingest commit of %d events failed", n_rows)
                for item in taken:
                    if not item.future.done():
                        item.future.set_exception(
                            ServiceUnavailable(
                                "storage_unavailable",
                                "the events could not be stored; retry later",
                                headers={"Retry-After": str(self.retry_after_s)},
                            )
                        )
            else:
                self.stats.commits += 1
                self.stats.committed_events += n_rows
                for item in taken:
                    if not item.future.done():
                        item.future.set_result(None)
                if n_rows:
                    for listener in self.on_commit:
                        listener()
            finally:
                self._pending_events -= count
