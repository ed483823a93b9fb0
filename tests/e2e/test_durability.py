"""kill -9 under load: every acknowledged event is on disk, and SDK retries never duplicate.

Several clients send batches and single tracks with unique messageIds and remember which
requests got a 2xx. The server is SIGKILLed mid-load; then the database is opened directly.
A 2xx is a promise that the events are committed, so every acknowledged messageId must be there.
Requests without an answer may or may not have made it (that count is only logged). Then a new
server on the same database receives everything again, as SDK retries would resend it, and each
messageId must still be stored exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tidings.core.db import create_engine
from tidings.testing import Credentials, ServerProcess, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
log = logging.getLogger(__name__)

WORKERS = 6
BATCH_SIZE = 25
ACKED_BEFORE_KILL = 1500  # events acknowledged before the kill, so it lands mid-load


@dataclass
class Request:
    path: str
    body: dict[str, Any]
    message_ids: list[str]


@dataclass
class Load:
    """What the clients sent and which of it the server acknowledged."""

    sent: list[Request] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def _event(message_id: str, worker: int) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": message_id,
        "userId": f"user-{worker}",
        "event": "Load Test",
        "properties": {"worker": worker, "padding": "x" * 200},
        "timestamp": "2026-11-23T12:00:00.000Z",
    }


def _requests_of(worker: int) -> Iterator[Request]:
    n = 0
    while True:
        n += 1
        if n % 3:
            ids = [f"w{worker}-r{n}-e{i}" for i in range(BATCH_SIZE)]
            body = {"batch": [_event(m, worker) for m in ids], "sentAt": "2026-11-23T12:00:01Z"}
            yield Request("/v1/batch", body, ids)
        else:
            message_id = f"w{worker}-r{n}-single"
            yield Request("/v1/track", _event(message_id, worker), [message_id])


def _drive(base_url: str, creds: Credentials, worker: int, load: Load) -> None:
    with httpx.Client(base_url=base_url, auth=(creds.write_key, ""), timeout=30) as client:
        for request in _requests_of(worker):
            if load.stop.is_set():
                return
            with load.lock:
                load.sent.append(request)
            try:
                res = client.post(request.path, json=request.body)
            except httpx.HTTPError:
                return  # the server is gone
            if res.is_success:
                with load.lock:
                    load.acked.update(request.message_ids)
            elif res.status_code != 429:
                with load.lock:
                    load.failures.append(f"{res.status_code} {res.text[:200]}")
                return


def _stored(url: str, source_id: str) -> dict[str, int]:
    """messageId -> how many rows hold it, read straight from the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT message_id, COUNT(*) FROM events WHERE source_id = :s "
                    "GROUP BY message_id"
                ),
                {"s": source_id},
            )
            return {str(m): int(n) for m, n in rows}
    finally:
        engine.dispose()


def _resend(base_url: str, creds: Credentials, requests: list[Request]) -> None:
    """Everything again, as SDK retries would: 429 is waited out, anything else but 2xx fails."""
    with httpx.Client(base_url=base_url, auth=(creds.write_key, ""), timeout=30) as client:
        for request in requests:
            deadline = time.monotonic() + 30
            while True:
                res = client.post(request.path, json=request.body)
                if res.status_code == 429 and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                assert res.is_success, (request.path, res.status_code, res.text)
                if request.path == "/v1/batch":
                    assert res.json()["accepted"] == len(request.message_ids)
                break


@pytest.fixture
def database(db_url: str) -> tuple[str, Credentials]:
    return db_url, prepare_database(db_url)


@pytest.mark.parametrize("processes", [1, 2], ids=["one-process", "two-processes"])
def test_sigkill_loses_no_acknowledged_event_and_retries_do_not_duplicate(
    database: tuple[str, Credentials], tmp_path: Path, processes: int
) -> None:
    """With two server processes (``--workers 2``) both commit to the same database, taking
    turns through the writers' lock on SQLite; every process is killed at once."""
    url, creds = database
    args = ["--workers", str(processes)] if processes > 1 else []
    server = ServerProcess(url, log_path=tmp_path / "server-1.log", args=args).start()
    load = Load()
    threads = [
        threading.Thread(target=_drive, args=(server.url, creds, w, load), daemon=True)
        for w in range(WORKERS)
    ]
    try:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while load.acked_count < ACKED_BEFORE_KILL and not load.failures:
            assert time.monotonic() < deadline, f"only {load.acked_count} events acknowledged"
            assert any(t.is_alive() for t in threads), "every client stopped before the kill"
            time.sleep(0.05)
        assert not load.failures, load.failures[:5]
        server.kill()  # SIGKILL while the clients are still sending
    finally:
        load.stop.set()
        server.kill()
        for thread in threads:
            thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not load.failures, load.failures[:5]

    sent_ids = {m for r in load.sent for m in r.message_ids}
    stored = _stored(url, creds.source_id)
    lost = load.acked - stored.keys()
    assert not lost, f"{len(lost)} acknowledged events are not stored, e.g. {sorted(lost)[:5]}"
    assert stored.keys() <= sent_ids, "rows that no client sent"
    assert set(stored.values()) == {1}
    unacked_stored = len(stored.keys() - load.acked)
    log.warning(
        "kill -9 on %s: %d requests sent, %d events acknowledged, %d stored; %d of the %d "
        "unacknowledged events made it anyway",
        url.split(":", 1)[0],
        len(load.sent),
        len(load.acked),
        len(stored),
        unacked_stored,
        len(sent_ids - load.acked),
    )

    restarted = ServerProcess(url, log_path=tmp_path / "server-2.log").start()
    try:
        _resend(restarted.url, creds, load.sent)
    finally:
        restarted.stop()
    stored = _stored(url, creds.source_id)
    duplicated = {m: n for m, n in stored.items() if n != 1}
    assert not duplicated, f"duplicated messageIds: {list(duplicated.items())[:5]}"
    assert stored.keys() == sent_ids
