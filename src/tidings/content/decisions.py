"""Render decisions: what each open was shown, recorded off the request path.

A render calls :meth:`DecisionLog.record` and returns at once; the decision is kept in memory
(the latest per (block, recipient, send) and per (block, recipient), bounded) so a click right
after the open finds it, and queued for the writer task. The writer lingers ``flush_s`` to
gather a batch, then commits it in one transaction on the database's writer thread, the same
single thread (on SQLite) that ingest and the pipeline take turns on: the executor runs tasks
in order, so a decision batch waits behind an ingest commit and never starves it, and one
batch per ``flush_s`` at most costs one fsync. The queue is bounded: when it is full the
oldest decisions are dropped and counted (renders never wait for the database).

First-open locks and merge-tag alarms travel in the same batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from tidings.core.db import Database

from .store import AlarmRow, ContentStore, LockRow, WriteBatch

log = logging.getLogger("tidings.content")

ANY_SEND = "\x00any"  # the in-memory key of a recipient's latest decision whatever the send


@dataclass(frozen=True, slots=True)
class Shown:
    """One thing an image showed, and where a click on it leads."""

    index: int
    product_id: str | None
    name: str | None
    url: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "product_id": self.product_id,
            "name": self.name,
            "url": self.url,
        }


def shown_json(shown: Sequence[Shown]) -> str:
    return orjson.dumps([s.as_dict() for s in shown]).decode()


def shown_from_json(text: str) -> tuple[Shown, ...]:
    return tuple(
        Shown(int(s["index"]), s.get("product_id"), s.get("name"), s.get("url"))
        for s in orjson.loads(text)
    )


@dataclass(frozen=True, slots=True)
class Decision:
    """One render: for whom, what it served (``render``, ``locked`` or ``fallback``, and
    why), which slots it showed, and who fetched it."""

    block_id: str
    block_version: int
    variant: str | None
    recipient: str
    recipient_key: str
    send_id: str
    profile_id: str | None
    served: str
    reason: str
    slot: int | None
    shown: tuple[Shown, ...]
    at_ms: int
    user_agent: str | None
    ip_class: str
    machine: bool
    fetch_kind: str
    duration_ms: float
    rules_ms: float = 0.0  # of duration_ms, evaluating the waterfall's rules
    waterfall: str = ""  # each variant tried and its outcome: "cart:no_match viewed:chosen"
    seq: int = 0  # this process's order of records (ties of at_ms)

    def url_of(self, index: int) -> str | None:
        for item in self.shown:
            if item.index == index:
                return item.url
        return None

    def row(self) -> tuple[Any, ...]:
        return (
            self.block_id,
            self.block_version,
            self.variant,
            self.recipient,
            self.recipient_key,
            self.send_id,
            self.profile_id,
            self.served,
            self.reason,
            self.slot,
            shown_json(self.shown),
            self.at_ms,
            self.user_agent,
            self.ip_class,
            self.machine,
            self.fetch_kind,
            round(self.duration_ms, 3),
            round(self.rules_ms, 3),
            self.waterfall,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Decision:
        return cls(
            row["block_id"],
            row["block_version"],
            row["variant"],
            row["recipient"],
            row["recipient_key"],
            row["send_id"],
            row["profile_id"],
            row["served"],
            row["reason"],
            row["slot"],
            shown_from_json(row["shown"]),
            row["at"],
            row["user_agent"],
            row["ip_class"],
            bool(row["machine"]),
            row["fetch_kind"],
            float(row["duration_ms"]),
            float(row["rules_ms"]),
            row["waterfall"],
            seq=int(row["id"]),
        )


def _later(a: Decision | None, b: Decision | None) -> Decision | None:
    """The one a click should follow: a person's open before a machine's, then the newest."""
    if a is None or b is None:
        return a or b
    return a if (not a.machine, a.at_ms) >= (not b.machine, b.at_ms) else b


class _Latest:
    """The latest decisions per (block, recipient, send) in memory, least recently used first
    out. Under a key: the latest whole-block decision and the latest per slot, person's and
    machine's apart."""

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._data: OrderedDict[tuple[str, str, str], dict[tuple[bool, int | None], Decision]]
        self._data = OrderedDict()
        self._lock = threading.Lock()

    def put(self, decision: Decision) -> None:
        which = (decision.machine, decision.slot)
        with self._lock:
            for send in {decision.send_id, ANY_SEND}:
                key = (decision.block_id, decision.recipient_key, send)
                entry = self._data.setdefault(key, {})
                entry[which] = decision
                self._data.move_to_end(key)
            while len(self._data) > self.max_keys:
                self._data.popitem(last=False)

    def get(self, block_id: str, recipient_key: str, send_id: str, slot: int) -> Decision | None:
        with self._lock:
            entry = self._data.get((block_id, recipient_key, send_id))
            if entry is None:
                return None
            found: Decision | None = None
            for machine in (False, True):
                for which in ((machine, None), (machine, slot)):
                    candidate = entry.get(which)
                    if candidate is not None and (
                        found is None or (candidate.at_ms, candidate.seq) > (found.at_ms, found.seq)
                    ):
                        found = candidate
                if found is not None:
                    return found
            return found

    def forget(self, profile_id: str, keys: Sequence[str]) -> None:
        wanted = set(keys)
        with self._lock:
            for key in [
                k
                for k, entry in self._data.items()
                if k[1] in wanted or any(d.profile_id == profile_id for d in entry.values())
            ]:
                del self._data[key]

    def drop_block(self, block_id: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == block_id]:
                del self._data[key]


class _Locks:
    """First-open images in memory, bounded by bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._data: OrderedDict[tuple[str, str, str, int], LockRow] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str, int]) -> LockRow | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put_first(self, lock: LockRow) -> LockRow:
        """Keep ``lock`` unless one is held for its key already; returns the one kept."""
        key = (lock.block_id, lock.recipient_key, lock.send_id, lock.slot)
        with self._lock:
            held = self._data.get(key)
            if held is not None:
                return held
            self._data[key] = lock
            self._bytes += len(lock.data)
            while self._bytes > self.max_bytes and len(self._data) > 1:
                _, gone = self._data.popitem(last=False)
                self._bytes -= len(gone.data)
            return lock

    def forget(self, profile_id: str | None, keys: Sequence[str], block_id: str | None) -> None:
        wanted = set(keys)
        with self._lock:
            for key, lock in list(self._data.items()):
                if (
                    key[1] in wanted
                    or (profile_id is not None and lock.profile_id == profile_id)
                    or key[0] == block_id
                ):
                    del self._data[key]
                    self._bytes -= len(lock.data)


@dataclass(slots=True)
class DecisionStats:
    recorded: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    commits: int = 0
    pending: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "recorded": self.recorded,
            "written": self.written,
            "dropped": self.dropped,
            "failed": self.failed,
            "commits": self.commits,
            "pending": self.pending,
        }


@dataclass(slots=True)
class _Queue:
    decisions: deque[Decision] = field(default_factory=deque)
    locks: list[LockRow] = field(default_factory=list)
    alarms: dict[tuple[str, str], AlarmRow] = field(default_factory=dict)
    forget: list[tuple[str, list[str]]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.decisions or self.locks or self.alarms or self.forget)


class DecisionLog:
    """Records decisions, locks and alarms; batches them to the store (see the module).
    ``record`` and friends are thread-safe: renders run on the server's thread pool."""

    def __init__(
        self,
        db: Database,
        store: ContentStore,
        *,
        flush_s: float = 0.2,
        batch_max: int = 2000,
        queue_max: int = 50_000,
        latest_max: int = 100_000,
        lock_memory_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.db = db
        self.store = store
        self.flush_s = flush_s
        self.batch_max = batch_max
        self.queue_max = queue_max
        self.stats = DecisionStats()
        self.latest = _Latest(latest_max)
        self.locks = _Locks(lock_memory_bytes)
        self._queue = _Queue()
        self._mutex = threading.Lock()
        self._seq = 0
        self._taken = 0  # items written (or failed) so far (for flush waiters)
        self._inflight = 0  # items taken from the queue whose commit has not finished
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._hurry: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._queued = 0

    # -- recording (any thread) -------------------------------------------------------------
    def record(self, decision: Decision, lock: LockRow | None = None) -> Decision:
        """Remember ``decision`` (and a first-open ``lock``) now; write them soon."""
        with self._mutex:
            self._seq += 1
            decision = _with_seq(decision, self._seq)
            queue = self._queue
            # The writer sleeps only on an empty queue: wake it only then (waking the event
            # loop from a render thread costs a syscall and a loop iteration each time).
            wake = queue.empty()
            if len(queue.decisions) >= self.queue_max:
                queue.decisions.popleft()
                self.stats.dropped += 1
            else:
                self._queued += 1
            queue.decisions.append(decision)
            if lock is not None:
                queue.locks.append(lock)
                self._queued += 1
            self.stats.recorded += 1
        self.latest.put(decision)
        if wake:
            self._wake()
        return decision

    def alarm(self, block_id: str, code: str, example: str, at_ms: int) -> None:
        """Count one occurrence of alarm ``code`` on the block."""
        with self._mutex:
            key = (block_id, code)
            held = self._queue.alarms.get(key)
            if held is None:
                self._queue.alarms[key] = AlarmRow(block_id, code, 1, at_ms, at_ms, example[:200])
                self._queued += 1
            else:
                self._queue.alarms[key] = AlarmRow(
                    block_id,
                    code,
                    held.count + 1,
                    min(held.first_seen, at_ms),
                    max(held.last_seen, at_ms),
                    example[:200],
                )
        self._wake()

    def forget(self, profile_id: str, recipient_keys: Sequence[str]) -> None:
        """A person was deleted: drop their decisions and locks, here and in the store."""
        self.latest.forget(profile_id, recipient_keys)
        self.locks.forget(profile_id, recipient_keys, None)
        with self._mutex:
            keys = set(recipient_keys)
            queue = self._queue
            before = len(queue.decisions) + len(queue.locks)
            queue.decisions = deque(
                d
                for d in queue.decisions
                if d.profile_id != profile_id and d.recipient_key not in keys
            )
            queue.locks = [
                lock
                for lock in queue.locks
                if lock.profile_id != profile_id and lock.recipient_key not in keys
            ]
            self._queued -= before - len(queue.decisions) - len(queue.locks)
            self._queue.forget.append((profile_id, sorted(keys)))
            self._queued += 1
        self._wake()

    def drop_block(self, block_id: str) -> None:
        """The block was deleted: forget what memory holds of it."""
        self.latest.drop_block(block_id)
        self.locks.forget(None, (), block_id)

    def lock_of(self, block_id: str, recipient_key: str, send_id: str, slot: int) -> LockRow | None:
        """The first-open image held for this key: memory, else the store."""
        key = (block_id, recipient_key, send_id, slot)
        found = self.locks.get(key)
        if found is None:
            found = self.store.get_lock(*key)
            if found is not None:
                found = self.locks.put_first(found)
        return found

    def latest_for(
        self, block_id: str, recipient_key: str, send_id: str | None, slot: int
    ) -> Decision | None:
        """The decision a click on ``slot`` follows: of this send when one is given and known,
        else the recipient's latest; memory and the store, whichever is later."""
        for send in [send_id, None] if send_id else [None]:
            memory = self.latest.get(block_id, recipient_key, send or ANY_SEND, slot)
            row = self.store.latest(block_id, recipient_key, send, slot)
            found = _later(memory, Decision.from_row(row) if row is not None else None)
            if found is not None:
                return found
        return None

    # -- writing (the event loop) --------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._hurry = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="tidings-decisions")

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._closing = True
        if self._wakeup is not None and self._hurry is not None:
            self._hurry.set()
            self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._loop = None

    async def flush(self) -> None:
        """Return once everything recorded before the call is written (or failed)."""
        if self._task is None or self._loop is None or self._hurry is None:
            await self.db.run_write(self.write_pending)
            return
        with self._mutex:
            # A batch being committed right now counts too: the caller reads the store next.
            target = self._taken + self._inflight + self._queued
        if target <= self._taken:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((target, future))
        self._hurry.set()
        await future

    def write_pending(self) -> int:
        """Write everything queued here and now (no writer task: the CLI, benchmarks)."""
        written = 0
        while True:
            batch, n = self._take()
            if batch is None:
                return written
            self._write(batch, n)
            with self._mutex:
                self._taken += n
                self._inflight -= n
            written += n

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            # RuntimeError: the loop closed under us; stop() wrote the rest.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wakeup.set)

    def _take(self) -> tuple[WriteBatch | None, int]:
        with self._mutex:
            queue = self._queue
            if queue.empty():
                return None, 0
            decisions = [
                queue.decisions.popleft() for _ in range(min(self.batch_max, len(queue.decisions)))
            ]
            batch = WriteBatch(
                [d.row() for d in decisions],
                queue.locks,
                list(queue.alarms.values()),
                queue.forget,
            )
            n = len(decisions) + len(queue.locks) + len(queue.alarms) + len(queue.forget)
            queue.locks, queue.alarms, queue.forget = [], {}, []
            self._queued -= n
            self._inflight += n
            self.stats.pending = self._queued
            return batch, n

    def _write(self, batch: WriteBatch, n: int) -> None:
        try:
            self.store.write(batch)
        except Exception:
            log.exception("writing %d render decisions failed", len(batch.decisions))
            self.stats.failed += len(batch.decisions)
        else:
            self.stats.commits += 1
            self.stats.written += len(batch.decisions)

    async def _run(self) -> None:
        assert self._wakeup is not None and self._hurry is not None
        while True:
            if self._queue.empty():
                self._release_waiters()
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._hurry.is_set():
                # Linger, so the opens of the next moment share this commit (a flush or a
                # shutdown cuts it short).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), timeout=self.flush_s)
            self._hurry.clear()
            if self._closing:
                self._hurry.set()
            batch, n = self._take()
            if batch is None:
                continue
            await self.db.run_write(self._write, batch, n)
            with self._mutex:
                self._taken += n
                self._inflight -= n
            self._release_waiters()

    def _release_waiters(self) -> None:
        idle = self._queue.empty() and self._inflight == 0
        done = [w for w in self._waiters if w[0] <= self._taken or idle]
        for waiter in done:
            self._waiters.remove(waiter)
            if not waiter[1].done():
                waiter[1].set_result(None)


def _with_seq(decision: Decision, seq: int) -> Decision:
    return replace(decision, seq=seq)
