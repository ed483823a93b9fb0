"""``/v1/pipeline/status``'s delays, read from the batches the pipeline recorded."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from tidings.app import build_container
from tidings.collect.messages import Enricher, Limits
from tidings.core.clock import FrozenClock
from tidings.core.deps import Container
from tidings.core.settings import Settings
from tidings.pipeline.store import LAGS_SQL
from tidings.testing import prepare_database


def _track(n: int) -> dict[str, object]:
    return {
        "type": "track",
        "event": "Page Viewed",
        "messageId": f"m-{n}",
        "anonymousId": f"a-{n % 7}",
        "timestamp": "2026-11-23T11:00:00Z",
    }


def _append(container: Container, source_id: str, received: datetime, ns: Iterable[int]) -> None:
    """Tracks numbered ``ns``, received at ``received``, committed to the log."""
    enricher = Enricher(source_id, received, Limits())
    container.collect_store.append([enricher.enrich(_track(n), None, False) for n in ns])


def test_each_applied_event_has_its_delay_from_receipt_to_commit(
    db_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    creds = prepare_database(db_url)
    settings = Settings(database_url=db_url, data_dir=tmp_path, pipeline_batch_events=4)
    container = build_container(settings, clock)
    try:
        # Received one second apart; applied at once, ten seconds after the first.
        for n in range(10):
            _append(container, creds.source_id, clock.now() + timedelta(seconds=n), [n])
        clock.advance(timedelta(seconds=10))
        assert container.pipeline.drain() == 10
        lags = container.pipeline.cursors.lags_since("profiles", 0)
        status = container.pipeline.status()
    finally:
        container.db.close()
    assert lags == [s * 1000 for s in range(1, 11)]
    assert status["window_events"] == 10
    assert status["lag_ms"]["max"] == 10_000
    # Three batches were prepared and committed: both sides' time is counted.
    assert status["batches"] == 3
    assert status["preparing_s"] > 0
    assert status["committing_s"] > 0


def test_time_preparing_and_committing_adds_up_over_batches(
    sqlite_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    """The counters are cumulative: a second drain adds to the first's figures."""
    creds = prepare_database(sqlite_url)
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path, pipeline_batch_events=50)
    container = build_container(settings, clock)
    try:
        _append(container, creds.source_id, clock.now(), range(50))
        assert container.pipeline.drain() == 50
        first = container.pipeline.stats.snapshot()
        assert container.pipeline.drain() == 0  # nothing new: nothing prepared or committed
        idle = container.pipeline.stats.snapshot()
        _append(container, creds.source_id, clock.now(), range(50, 100))
        assert container.pipeline.drain() == 50
        second = container.pipeline.stats.snapshot()
    finally:
        container.db.close()
    assert first["preparing_s"] > 0 and first["committing_s"] > 0
    assert idle["preparing_s"] == first["preparing_s"]
    assert idle["committing_s"] == first["committing_s"]
    assert second["preparing_s"] > first["preparing_s"]
    assert second["committing_s"] > first["committing_s"]


def test_sqlite_reads_the_delays_batch_by_batch(sqlite_url: str, tmp_path: Path) -> None:
    """Not every event against every batch: the plan starts from the window's batches and
    reaches each batch's events by ``seq`` (with a plain join SQLite scanned all events)."""
    prepare_database(sqlite_url)
    container = build_container(Settings(database_url=sqlite_url, data_dir=tmp_path))
    try:
        with container.db.engine.connect() as conn:
            plan = [
                row[-1]
                for row in conn.execute(
                    text(f"EXPLAIN QUERY PLAN {LAGS_SQL}"), {"name": "p", "since": 0, "limit": 1}
                )
            ]
    finally:
        container.db.close()
    assert plan[0].startswith("SEARCH b"), plan
    assert plan[1].startswith("SEARCH e USING INTEGER PRIMARY KEY"), plan
