"""Feed imports started from the admin UI: a background task per upload, progress polled.

The progress is the catalog's own: the feed is parsed first (the total of readable rows is then
known), and rows count as written only once their chunk's transaction has committed, so the bar
never runs ahead of the database. Jobs live in the process that received the upload (the page
polls that process's memory): the most recent ``max_jobs`` are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from tidings.catalog.feed import FeedFormat
from tidings.catalog.service import CatalogService
from tidings.core.clock import Clock, iso
from tidings.core.errors import TidingsError
from tidings.core.ids import new_id

log = logging.getLogger("tidings.web")

Status = Literal["parsing", "writing", "done", "failed"]


@dataclass(slots=True)
class ImportJob:
    id: str
    filename: str
    format: FeedFormat
    size: int
    started_at: str
    status: Status = "parsing"
    total: int | None = None
    written: int = 0
    summary: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def percent(self) -> int | None:
        if self.status == "done":
            return 100
        if self.total is None:
            return None
        return 100 if self.total == 0 else min(100, self.written * 100 // self.total)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "format": self.format,
            "size": self.size,
            "started_at": self.started_at,
            "status": self.status,
            "total": self.total,
            "written": self.written,
            "percent": self.percent,
            "summary": self.summary,
            "error": self.error,
        }


class ImportJobs:
    def __init__(self, catalog: CatalogService, clock: Clock, max_jobs: int = 20) -> None:
        self.catalog = catalog
        self.clock = clock
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, ImportJob] = OrderedDict()

    def start(self, data: bytes, fmt: FeedFormat, filename: str) -> ImportJob:
        """Begin importing ``data`` in the background; must be called on the event loop."""
        job = ImportJob(new_id("imp"), filename, fmt, len(data), iso(self.clock.now()))
        self._jobs[job.id] = job
        while len(self._jobs) > self.max_jobs:
            oldest = next(iter(self._jobs.values()))
            if oldest.status in ("parsing", "writing"):
                break  # never forget a running job
            self._jobs.popitem(last=False)
        job.task = asyncio.get_running_loop().create_task(self._run(job, data))
        return job

    def get(self, job_id: str) -> ImportJob | None:
        return self._jobs.get(job_id)

    def recent(self) -> list[ImportJob]:
        return list(reversed(self._jobs.values()))

    async def _run(self, job: ImportJob, data: bytes) -> None:
        def progress(written: int, total: int) -> None:
            job.status, job.written, job.total = "writing", written, total

        try:
            summary = await self.catalog.import_feed(data, job.format, progress)
        except TidingsError as exc:
            job.status, job.error = "failed", exc.body()
        except Exception:
            log.exception("feed import %s failed", job.id)
            job.status = "failed"
            job.error = {"code": "import_failed", "message": "the import failed; see the log"}
        else:
            job.status, job.summary = "done", summary.as_dict()
            job.written = job.total or 0

    async def wait(self, job_id: str) -> None:
        """Until the job has finished (tests and shutdown)."""
        job = self._jobs.get(job_id)
        if job is not None and job.task is not None:
            await asyncio.shield(job.task)

    async def stop(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
