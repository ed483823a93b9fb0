"""A worker killed with SIGKILL in the middle of the log loses and double-applies nothing.

The same events go into two databases. In one, ``tidings worker`` is killed mid-way (several
times), then a new worker finishes the log; in the other, the pipeline applies the log in one
clean pass. Every derived table must come out identical: identities, profiles (state and
counters), the timeline, trait history and validation flags.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tidings.app import build_container
from tidings.collect.messages import Enricher, Limits
from tidings.collect.store import CollectStore, EventRow
from tidings.core.db import Database
from tidings.core.settings import Settings
from tidings.pipeline.store import CursorStore
from tidings.profiles.projector import CONSUMER
from tidings.testing import prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEOPLE = 400


def shop_events(seed: int) -> list[dict[str, Any]]:
    """Browsing, sign-ins on two devices, carts and orders, in a shuffled arrival order."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[dict[str, Any]] = []
    for p in range(PEOPLE):
        devices = [f"anon-{p}-{d}" for d in range(rng.choice((1, 1, 2)))]
        t = start + timedelta(minutes=rng.randrange(20_000))
        user = f"user-{p}" if rng.random() < 0.6 else None
        for n in range(rng.randrange(5, 40)):
            t += timedelta(seconds=rng.randrange(1, 600))
            anon = rng.choice(devices)
            sku = f"SKU-{rng.randrange(60)}"
            kind = rng.random()
            msg: dict[str, Any] = {
                "anonymousId": anon,
                "timestamp": t.isoformat(),
                "messageId": f"m-{p}-{n}",
            }
            if user and n > 3 and rng.random() < 0.5:
                msg["userId"] = user
            if kind < 0.55:
                msg |= {
                    "type": "track",
                    "event": "Product Viewed",
                    "properties": {
                        "product_id": sku,
                        "price": rng.randrange(5, 200),
                        "url": f"https://shop.example/{sku}",
                    },
                }
            elif kind < 0.75:
                msg |= {
                    "type": "track",
                    "event": "Product Added",
                    "properties": {"sku": sku, "price": "$12.00", "quantity": 1},
                }
            elif kind < 0.82:
                msg |= {
                    "type": "track",
                    "event": "Order Completed",
                    "properties": {
                        "order_id": f"o-{p}-{n}",
                        "total": 30,
                        "products": [{"product_id": sku, "price": 30}],
                    },
                }
            elif kind < 0.92 and user:
                msg |= {
                    "type": "identify",
                    "userId": user,
                    "traits": {"email": f"p{p}@example.com", "visits": n},
                }
            else:
                msg |= {"type": "page", "name": "Home"}
            out.append(msg)
    rng.shuffle(out)
    return out


def rows_for(source_id: str, messages: list[dict[str, Any]]) -> list[EventRow]:
    enricher = Enricher(source_id, datetime(2026, 11, 23, tzinfo=UTC), Limits())
    return [enricher.enrich(dict(m), None, False) for m in messages]


def load(url: str, messages: list[dict[str, Any]]) -> None:
    creds = prepare_database(url)
    db = Database.from_url(url)
    try:
        store = CollectStore(db.engine)
        rows = rows_for(creds.source_id, messages)
        # Same source id in both databases, so the events (and flags) are identical.
        rows = [("src_same", *r[1:]) for r in rows]
        for i in range(0, len(rows), 1000):
            store.append(rows[i : i + 1000])
    finally:
        db.close()


DERIVED = {
    "identities": "SELECT id_type, id_value, profile_id FROM identities",
    "profiles": "SELECT profile_id, state, event_count, order_count, revenue, cart_quantity "
    "FROM profiles",
    "timeline": "SELECT id_type, id_value, seq FROM timeline",
    "trait_history": "SELECT seq, key, value, timestamp FROM trait_history",
    "flags": "SELECT seq, code, field FROM event_flags",
    "merges": "SELECT message_id, anchor_value, linked_value, into_profile FROM identity_merges",
}


def derived(url: str) -> dict[str, list[tuple[Any, ...]]]:
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            return {
                name: sorted(tuple(r) for r in conn.execute(text(q))) for name, q in DERIVED.items()
            }
    finally:
        db.close()


def position(url: str) -> tuple[int, int]:
    db = Database.from_url(url)
    try:
        cursor = CursorStore(db.engine).get(CONSUMER)
        head = CollectStore(db.engine).head_seq()
        return cursor.position, head
    finally:
        db.close()


def worker(url: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": url, "TIDINGS_PIPELINE_BATCH_EVENTS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "tidings", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_killing_the_worker_mid_log_loses_and_repeats_nothing(db_url: str, tmp_path: Path) -> None:
    messages = shop_events(seed=7)
    reference = f"sqlite:///{tmp_path / 'reference.db'}"
    load(reference, messages)
    load(db_url, messages)

    container = build_container(Settings(database_url=reference, data_dir=tmp_path))
    try:
        applied = container.pipeline.drain()
    finally:
        container.db.close()
    assert applied == len(messages)

    kills = 0
    last = -1
    while kills < 3:
        proc = worker(db_url)
        # Kill it once it has made progress since the last kill, but before it is done.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, head = position(db_url)
            if done > last and done < head:
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
        kills += 1
        done, head = position(db_url)
        assert done < head, "the worker finished before it could be killed; use more events"
        last = done

    finisher = worker(db_url, "--once")
    _, err = finisher.communicate(timeout=120)
    assert finisher.returncode == 0, err.decode()
    done, head = position(db_url)
    assert done == head

    got, expected = derived(db_url), derived(reference)
    for name in DERIVED:
        assert got[name] == expected[name], name
    assert len(expected["profiles"]) > PEOPLE // 2
    assert expected["merges"], "the stream should merge devices into users"


def test_a_standing_worker_applies_the_log_without_a_failed_batch(db_url: str) -> None:
    """``tidings worker`` (no ``--once``) reports each batch and never fails one: a failure is
    retried after a second's pause, which would hold every batch back by that second."""
    messages = shop_events(seed=3)
    load(db_url, messages)
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_PIPELINE_BATCH_EVENTS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tidings", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done, head = position(db_url)
            if done == head:
                break
            assert proc.poll() is None
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert done == head, "the worker did not catch up within a minute"
    assert proc.returncode == 0, err.decode()
    assert "failed" not in err.decode(), err.decode()
    assert f"applied {len(messages):,}" in out.decode()
