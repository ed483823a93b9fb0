"""The consumer loop: read a batch after the cursor, prepare it, commit it with the cursor.

Runs in-process under ``tidings serve`` (an asyncio task; preparing happens on its own thread,
the commit on the database's writer thread, taking turns with ingest on SQLite) or alone as
``tidings worker`` (:meth:`Pipeline.run_forever`). Only the lease holder applies batches; see
:mod:`tidings.pipeline.lease`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tidings.collect.store import CollectStore
from tidings.core.clock import Clock, to_ms
from tidings.core.db import Database
from tidings.profiles.projector import CONSUMER, Plan, Projector

from .lease import Lease
from .store import Cursor, CursorStore, StaleCursor

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _collector_paused() -> Iterator[bool]:
    """Preparing a batch allocates tens of thousands of objects that all survive it (states,
    identifiers, rows); the cyclic collector would walk them, and the whole in-memory graph
    and state cache, many times over for nothing: nothing here makes cycles. Paused for the
    batch (process-wide; whatever was allocated meanwhile is collected as usual once it
    resumes). Yields whether this call paused it (false when it already was)."""
    if not gc.isenabled():
        yield False
        return
    gc.disable()
    try:
        yield True
    finally:
        gc.enable()


# While draining a backlog the collector stays paused; every this many batches a collection
# of the young generations walks what they allocated once (then never again during the
# drain), and frees any cycle among it. The full collections resume when the drain ends.
_YOUNG_COLLECTION_BATCHES = 4


# The interpreter's switch interval while draining (seconds; CPython's default is 0.005).
# The committing thread gives the GIL up inside every SQLite or psycopg call and needs it back
# to go on; with the preparing thread busy in Python it waited up to the whole interval each
# time, and the batch commits, not the preparing, set the pace: 1,000,000 events went through
# at 17,868 events/s with 5 ms and 22,242 with 0.5 ms, for the same CPU (docs/benchmarks.md).
DRAIN_SWITCH_INTERVAL_S = 0.0005


@contextlib.contextmanager
def _quick_gil_handoff() -> Iterator[None]:
    """:data:`DRAIN_SWITCH_INTERVAL_S` for the block (it is per process: ``drain`` runs in the
    CLI and ``tidings worker``, processes of their own; the server's loop does not drain)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, DRAIN_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _after(cursor: Cursor, plan: Plan) -> Cursor:
    """The cursor as it will be once ``plan`` commits."""
    return Cursor(cursor.name, plan.last_seq, cursor.epoch, max(cursor.updated_at, 1))


@dataclass(frozen=True, slots=True)
class BatchResult:
    events: int
    position: int


class Stats:
    """This process's counters (thread-safe); lags come from ``pipeline_batches``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.applied = 0
        self.batches = 0
        self.stale = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_batch_ms: int | None = None
        #: Receipt to commit of the oldest event of the last batch (the worst delay in it).
        self.last_lag_ms: int | None = None
        #: Wall seconds spent preparing batches (reading the log, the in-memory work) and
        #: committing them (the database's writes and the commit): whichever is near the
        #: elapsed time of a drain is what bounds it.
        self.preparing_s = 0.0
        self.committing_s = 0.0
        self._rate: deque[tuple[float, int]] = deque(maxlen=120)

    def prepared(self, seconds: float) -> None:
        with self._lock:
            self.preparing_s += seconds

    def record(self, plan: Plan, committed_ms: int, seconds: float) -> None:
        with self._lock:
            self.committing_s += seconds
            self.applied += plan.size
            self.batches += 1
            self.last_batch_ms = committed_ms
            if plan.received_at:
                self.last_lag_ms = committed_ms - min(plan.received_at)
            self._rate.append((time.monotonic(), plan.size))

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            recent = [(t, n) for t, n in self._rate if now - t <= 10.0]
        span = (now - recent[0][0]) if len(recent) > 1 else 0.0
        rate = sum(n for _, n in recent[1:]) / span if span > 0 else 0.0
        return {
            "applied_events": self.applied,
            "batches": self.batches,
            "stale_batches": self.stale,
            "errors": self.errors,
            "last_error": self.last_error,
            "events_per_s": round(rate, 1),
            "last_batch_lag_ms": self.last_lag_ms,
            "preparing_s": round(self.preparing_s, 3),
            "committing_s": round(self.committing_s, 3),
        }


class Pipeline:
    def __init__(
        self,
        db: Database,
        collect: CollectStore,
        cursors: CursorStore,
        projector: Projector,
        lease: Lease,
        clock: Clock,
        *,
        batch_events: int = 2000,
        poll_s: float = 0.25,
    ) -> None:
        self.db = db
        self.collect = collect
        self.cursors = cursors
        self.projector = projector
        self.lease = lease
        self.clock = clock
        self.batch_events = batch_events
        self.poll_s = poll_s
        self.stats = Stats()
        self.leader = False
        self._epoch: int | None = None
        self._position: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._wakeup: asyncio.Event | None = None
        self._prepare_thread: ThreadPoolExecutor | None = None
        # Held while a batch is prepared and committed: the in-memory graph and states are
        # shared, so two appliers in one process (the in-process loop and a drain()) take
        # turns instead of preparing from each other's half-applied state.
        self._applying = threading.Lock()
        # Called with the ids of the profiles a batch changed or removed, after its commit
        # (caches of profile views drop them).
        self.on_applied: list[Callable[[set[str]], None]] = []

    # -- batches, synchronously (the worker, tests, rebuilds) ----------------------------------
    def step(self) -> BatchResult:
        """Apply the next batch if there is one; returns how many events were applied."""
        with self._applying:
            prepared = self._prepare()
            if prepared is None:
                return BatchResult(0, self._position or 0)
            cursor, plan = prepared
            try:
                self._commit_locked(cursor, plan)
            except BaseException:
                self._failed()
                raise
            return BatchResult(plan.size, plan.last_seq)

    def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply batches until caught up with the log; returns the number of events.

        Each batch commits on a second thread while the next one is prepared here: the
        commit spends most of its time in the database (the GIL is free), preparing in Python.
        The next batch is prepared as if this one committed; if it does not, both are
        dropped and the in-memory state is rebuilt from the store.
        """
        total = 0
        batches = 0
        prepared: tuple[Cursor, Plan] | None = None
        with (
            self._applying,
            _quick_gil_handoff(),
            _collector_paused() as paused,
            ThreadPoolExecutor(1, thread_name_prefix="tidings-commit") as committer,
        ):
            while True:
                batches += 1
                if paused and batches % _YOUNG_COLLECTION_BATCHES == 0:
                    gc.collect(1)
                if prepared is None:
                    prepared = self._prepare()
                    if prepared is None:
                        return total
                cursor, plan = prepared
                pending = committer.submit(self._commit_locked, cursor, plan)
                following: tuple[Cursor, Plan] | None = None
                failed: BaseException | None = None
                try:
                    following = self._prepare(_after(cursor, plan))
                except Exception as error:  # retried from the store once the commit is done
                    failed = error
                try:
                    pending.result()
                except StaleCursor:
                    self._failed()
                    prepared = None
                    continue
                except BaseException:
                    self._failed()
                    raise
                total += plan.size
                if progress is not None:
                    progress(plan.size)
                if failed is not None:
                    log.warning("preparing the next batch failed (%s); retrying", failed)
                    self._failed()
                prepared = following

    def _prepare(self, cursor: Cursor | None = None) -> tuple[Cursor, Plan] | None:
        """The next batch after ``cursor`` (default: the stored cursor), prepared."""
        if cursor is None:
            cursor = self.cursors.get(CONSUMER)
            if cursor.epoch != self._epoch or cursor.position != self._position:
                # Someone else moved the cursor or rewrote derived state: start from the store.
                self.projector.reset()
                self._epoch, self._position = cursor.epoch, cursor.position
        started = time.perf_counter()
        with _collector_paused():
            batch = self.collect.read_log(cursor.position, self.batch_events)
            if not batch:
                return None
            plan = self.projector.prepare(batch)
        self.stats.prepared(time.perf_counter() - started)
        return cursor, plan

    def _commit_locked(self, cursor: Cursor, plan: Plan) -> None:
        """:meth:`_commit` holding the writers' lock, as ``Database.run_write`` does: a
        ``tidings worker`` beside the server takes turns with its ingest commits instead of
        polling in SQLite's busy handler (sleeps of up to 100 ms, a second per batch under
        steady ingest)."""
        with self.db.writers_lock():
            self._commit(cursor, plan)

    def _commit(self, cursor: Cursor, plan: Plan) -> None:
        """Write the plan and advance the cursor in one transaction (the caller resets the
        in-memory state if this raises)."""
        at = to_ms(self.clock.now())
        started = time.perf_counter()
        try:
            with _collector_paused(), self.db.engine.begin() as conn:
                self.cursors.advance(conn, cursor, plan.last_seq, at)
                self.projector.write(conn, plan, at)
                # Taken last, just before COMMIT: the delay it gives excludes only the fsync.
                done = to_ms(self.clock.now())
                self.cursors.record_batch(
                    conn, CONSUMER, plan.first_seq, plan.last_seq, plan.size, done
                )
        except StaleCursor:
            self.stats.stale += 1
            raise
        self._position = plan.last_seq
        self.stats.record(plan, done, time.perf_counter() - started)
        changed = plan.dirty | plan.deleted_profiles
        for listener in self.on_applied:
            listener(changed)

    def _failed(self) -> None:
        self.projector.reset()
        self._epoch = self._position = None

    # -- as a service ----------------------------------------------------------------------------
    def run_forever(
        self, stop: threading.Event, on_batch: Callable[[int], None] | None = None
    ) -> None:
        """The ``tidings worker`` loop: take the lease, apply batches, stand by when idle."""
        while not stop.is_set():
            if not self._hold_lease():
                stop.wait(1.0)
                continue
            try:
                self.drain(on_batch)
            except Exception as error:  # keep running; the batch is retried
                log.exception("pipeline batch failed; retrying")
                self.stats.failed(error)
                stop.wait(1.0)
                continue
            stop.wait(self.poll_s)
        self.release()

    def _hold_lease(self) -> bool:
        try:
            self.leader = self.lease.try_acquire()
        except Exception as error:
            log.warning("pipeline lease unavailable: %s", error)
            self.leader = False
        return self.leader

    def release(self) -> None:
        self.lease.release()
        self.leader = False

    def start(self) -> None:
        """Run in the current event loop (under ``tidings serve``)."""
        self._wakeup = asyncio.Event()
        self._closing = False
        self._prepare_thread = ThreadPoolExecutor(1, thread_name_prefix="tidings-pipeline")
        self._task = asyncio.create_task(self._run(), name="tidings-pipeline")

    def notify(self) -> None:
        """New events were committed: look now rather than at the next poll."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def stop(self) -> None:
        self._closing = True
        self.notify()
        if self._task is not None:
            await self._task
            self._task = None
        if self._prepare_thread is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._prepare_thread, self.release)
            self._prepare_thread.shutdown(wait=True)
            self._prepare_thread = None

    async def _run(self) -> None:
        assert self._wakeup is not None and self._prepare_thread is not None
        loop = asyncio.get_running_loop()
        while not self._closing:
            leader = await loop.run_in_executor(self._prepare_thread, self._hold_lease)
            if not leader:
                await self._sleep(1.0)
                continue
            # One batch at a time per Pipeline: a drain() on another thread (the CLI, tests)
            # waits for this batch, and this loop for a running drain.
            await loop.run_in_executor(self._prepare_thread, self._applying.acquire)
            pause: float | None = None
            try:
                prepared = await loop.run_in_executor(self._prepare_thread, self._prepare)
                if prepared is None:
                    pause = self.poll_s
                else:
                    cursor, plan = prepared
                    try:
                        await self.db.run_write(self._commit, cursor, plan)
                    except BaseException:
                        self._failed()
                        raise
                    if plan.size < self.batch_events:
                        pause = self.poll_s
            except StaleCursor:
                pass
            except Exception as error:
                log.exception("pipeline batch failed; retrying")
                self.stats.failed(error)
                pause = 1.0
            finally:
                self._applying.release()
            if pause is not None:
                await self._sleep(pause)

    async def _sleep(self, seconds: float) -> None:
        assert self._wakeup is not None
        if self._closing:
            return
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)

    def status(self, window_s: float = 300.0) -> dict[str, Any]:
        """Where the consumer is and how it does. ``lag_ms`` is measured over the batches
        committed in the last ``window_s`` seconds by whichever process applies the log."""
        cursor = self.cursors.get(CONSUMER)
        head = self.collect.head_seq()
        since = to_ms(self.clock.now()) - int(window_s * 1000)
        lags = self.cursors.lags_since(CONSUMER, since)

        def pct(p: float) -> int | None:
            return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None

        return {
            "consumer": CONSUMER,
            "leader": self.leader,
            "position": cursor.position,
            "head": head,
            "backlog": self.collect.count_after(cursor.position) if head > cursor.position else 0,
            "epoch": cursor.epoch,
            **self.stats.snapshot(),
            "window_s": window_s,
            "window_events": len(lags),
            "lag_ms": {"p50": pct(0.50), "p99": pct(0.99), "max": lags[-1] if lags else None},
        }
