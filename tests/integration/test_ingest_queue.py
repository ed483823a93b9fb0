"""The ingest queue on a real database: group commit, back-pressure, failure answers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from tidings.collect.ingest import IngestQueue
from tidings.collect.store import CollectStore, EventRow
from tidings.core import migrate
from tidings.core.db import Database
from tidings.core.errors import ServiceUnavailable, TooManyRequests


def row(n: int) -> EventRow:
    return ("src_1", f"m-{n}", "track", "E", "u", None, 0, 0, "{}")


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.from_url(db_url, busy_timeout_ms=30_000)
    migrate.upgrade(db.engine)
    yield db
    db.close()


def count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def test_concurrent_requests_share_commits_and_all_are_stored(database: Database) -> None:
    store = CollectStore(database.engine)

    async def scenario() -> IngestQueue:
        queue = IngestQueue(database, store, max_events=100_000, commit_max_events=10_000)
        queue.start()
        await asyncio.gather(*(queue.submit([row(n)]) for n in range(500)))
        await queue.stop()
        return queue

    queue = asyncio.run(scenario())
    assert count(database) == 500
    assert queue.stats.committed_events == 500
    # 500 requests arriving together do not cost 500 transactions.
    assert queue.stats.commits < 50


def test_commits_are_capped_in_size(database: Database) -> None:
    store = CollectStore(database.engine)

    async def scenario() -> IngestQueue:
        queue = IngestQueue(database, store, max_events=100_000, commit_max_events=100)
        queue.start()
        await asyncio.gather(
            *(queue.submit([row(n * 10 + i) for i in range(10)]) for n in range(50))
        )
        await queue.stop()
        return queue

    queue = asyncio.run(scenario())
    assert count(database) == 500
    assert queue.stats.commits >= 5


def test_full_queue_answers_429_with_retry_after(database: Database) -> None:
    store = CollectStore(database.engine)

    async def scenario() -> None:
        queue = IngestQueue(database, store, max_events=10, commit_max_events=5, retry_after_s=3)
        queue.start()
        # Another connection holds the write lock, so the writer cannot commit.
        locker = database.engine.connect()
        if database.is_sqlite:
            # Any write inside an open transaction takes SQLite's database-wide write lock.
            locker.exec_driver_sql("INSERT INTO sources VALUES ('s', 'n', 'h', 'k', 0, NULL)")
        else:
            locker.exec_driver_sql("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        first = asyncio.create_task(queue.submit([row(n) for n in range(6)]))
        await asyncio.sleep(0.2)
        assert not first.done()
        with pytest.raises(TooManyRequests) as excinfo:
            await queue.submit([row(n) for n in range(100, 105)])
        assert excinfo.value.status == 429
        assert excinfo.value.headers["Retry-After"] == "3"
        assert queue.stats.rejected_full == 1
        # Something that fits still queues, and everything lands once the lock is gone.
        second = asyncio.create_task(queue.submit([row(200)]))
        await asyncio.sleep(0.1)
        locker.rollback()
        locker.close()
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        await queue.stop()

    asyncio.run(scenario())
    assert count(database) == 7


def test_a_failed_commit_is_503_not_an_acknowledgement(database: Database) -> None:
    store = CollectStore(database.engine)
    with database.engine.begin() as conn:
        conn.execute(text("DROP TABLE events"))

    async def scenario() -> None:
        queue = IngestQueue(database, store, max_events=100, commit_max_events=100)
        queue.start()
        with pytest.raises(ServiceUnavailable) as excinfo:
            await queue.submit([row(1)])
        assert excinfo.value.status == 503
        assert "Retry-After" in excinfo.value.headers
        await queue.stop()

    asyncio.run(scenario())


def test_submit_after_stop_is_refused(database: Database) -> None:
    store = CollectStore(database.engine)

    async def scenario() -> None:
        queue = IngestQueue(database, store, max_events=100, commit_max_events=100)
        queue.start()
        await queue.stop()
        with pytest.raises(TooManyRequests):
            await queue.submit([row(1)])

    asyncio.run(scenario())


def test_two_writers_on_one_sqlite_file_take_turns_without_busy_errors(tmp_path: Path) -> None:
    """Two server processes on one file: the second waits on the writers' lock for as long as
    the first writes (far past SQLite's busy timeout) and commits the moment it is released."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    first = Database.from_url(url, busy_timeout_ms=50)
    second = Database.from_url(url, busy_timeout_ms=50)
    migrate.upgrade(first.engine)
    store = CollectStore(second.engine)
    try:
        with first.writers_lock(), first.engine.begin() as conn:
            CollectStore(first.engine).append_in(conn, [row(1)])

            async def write_second() -> None:
                await second.run_write(store.append_groups, [[row(2)]], [])

            waiter = threading.Thread(target=asyncio.run, args=(write_second(),))
            waiter.start()
            waiter.join(timeout=0.5)  # ten busy timeouts: the second writer is still waiting
            assert waiter.is_alive()
        waiter.join(timeout=10)
        assert not waiter.is_alive()
        assert count(first) == 2
    finally:
        first.close()
        second.close()
