"""Retention: events older than the window are purged, in small transactions.

Only events the pipeline has already applied are purged, so derived state (traits, carts,
orders, counts) keeps what they contributed; the timeline, trait history and flags of a purged
event go with it. Rejections older than the window go too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from tidings.collect.store import CollectStore
from tidings.core.clock import Clock, to_ms
from tidings.core.db import Database
from tidings.pipeline.store import CursorStore

from .projector import CONSUMER
from .store import ProfileStore

log = logging.getLogger(__name__)

CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RetentionResult:
    cutoff_ms: int
    events: int
    rejections: int


class Retention:
    def __init__(
        self,
        db: Database,
        collect: CollectStore,
        profiles: ProfileStore,
        cursors: CursorStore,
        clock: Clock,
        days: int,
    ) -> None:
        self.db = db
        self.collect = collect
        self.profiles = profiles
        self.cursors = cursors
        self.clock = clock
        self.days = days

    def cutoff_ms(self) -> int:
        return to_ms(self.clock.now() - timedelta(days=self.days))

    def purge_chunk(self, cutoff: int) -> int:
        """Purge up to CHUNK expired, already-applied events; returns how many."""
        position = self.cursors.get(CONSUMER).position
        seqs = self.collect.expired_seqs(cutoff, position, CHUNK)
        if not seqs:
            return 0
        with self.db.engine.begin() as conn:
            deleted = self.collect.delete_events_in(conn, seqs)
            self.profiles.forget_events(conn, seqs)
        return deleted

    def purge_rejections(self, cutoff: int) -> int:
        with self.db.engine.begin() as conn:
            self.cursors.purge_batches(conn, cutoff)
            return self.collect.purge_rejections(conn, cutoff)

    def run(self) -> RetentionResult:
        """Purge everything expired now (synchronously; the CLI and tests)."""
        cutoff = self.cutoff_ms()
        events = 0
        while n := self.purge_chunk(cutoff):
            events += n
        return RetentionResult(cutoff, events, self.purge_rejections(cutoff))

    async def run_async(self) -> RetentionResult:
        """The same on the writer thread, one chunk at a time (ingest goes in between)."""
        cutoff = self.cutoff_ms()
        events = 0
        while n := await self.db.run_write(self.purge_chunk, cutoff):
            events += n
        rejections = await self.db.run_write(self.purge_rejections, cutoff)
        return RetentionResult(cutoff, events, rejections)

    async def schedule(self, interval_s: float) -> None:
        """Run every ``interval_s`` seconds until cancelled (a task under ``tidings serve``)."""
        while True:
            try:
                result = await self.run_async()
                if result.events or result.rejections:
                    log.info(
                        "retention purged %d events and %d rejections older than %d days",
                        result.events,
                        result.rejections,
                        self.days,
                    )
            except Exception:
                log.exception("retention run failed; retrying at the next interval")
            await asyncio.sleep(interval_s)
