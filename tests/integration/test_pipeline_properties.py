"""Property: the profiles the pipeline builds depend on the set of events, not on the order they
arrive in nor on how the log is cut into batches (real SQLite, the real projector)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tidings.app import build_container
from tidings.collect.messages import Enricher, Limits
from tidings.core.settings import Settings
from tidings.testing import prepare_database

ANONS = ["a1", "a2", "a3", "a4"]
USERS = ["u1", "u2"]
START = datetime(2026, 11, 1, tzinfo=UTC)


@st.composite
def shop(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(min_value=2, max_value=14))
    events = []
    for i in range(n):
        kind = draw(st.sampled_from(["view", "add", "order", "identify", "alias-ish"]))
        msg: dict[str, Any] = {
            "messageId": f"m{i}",
            "timestamp": (START + timedelta(minutes=draw(st.integers(0, 30)))).isoformat(),
            "anonymousId": draw(st.sampled_from(ANONS)),
        }
        sku = draw(st.sampled_from(["A", "B", "C"]))
        if kind == "view":
            msg |= {
                "type": "track",
                "event": "Product Viewed",
                "properties": {"product_id": sku, "price": 10, "url": "u"},
            }
        elif kind == "add":
            msg |= {
                "type": "track",
                "event": "Product Added",
                "properties": {"product_id": sku, "price": 10, "quantity": 1},
            }
        elif kind == "order":
            msg |= {
                "type": "track",
                "event": "Order Completed",
                "properties": {
                    "order_id": f"o{i}",
                    "total": 10,
                    "products": [{"product_id": sku, "price": 10}],
                },
            }
        else:
            msg |= {
                "type": "identify",
                "userId": draw(st.sampled_from(USERS)),
                "traits": {"tier": draw(st.sampled_from(["a", "b"]))},
            }
            if kind == "alias-ish" and draw(st.booleans()):
                msg["traits"]["email"] = f"{msg['userId']}@example.com"
        events.append(msg)
    return events


def build(root: Path, events: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    url = f"sqlite:///{root / 'x.db'}"
    creds = prepare_database(url)
    container = build_container(
        Settings(database_url=url, data_dir=root, pipeline_batch_events=batch)
    )
    try:
        enricher = Enricher(creds.source_id, START + timedelta(days=1), Limits())
        for msg in events:  # one append per event: the arrival order is the seq order
            container.collect_store.append([enricher.enrich(dict(msg), None, False)])
        container.pipeline.drain()
        with container.db.engine.connect() as conn:
            ids = conn.execute(
                text("SELECT id_type, id_value, profile_id, first_seen FROM identities")
            ).all()
            partition: dict[str, set[tuple[str, str]]] = {}
            for t, v, p, _ in ids:
                partition.setdefault(p, set()).add((t, v))
            states = dict(conn.execute(text("SELECT profile_id, state FROM profiles")).all())
    finally:
        container.db.close()
    return {"partition": partition, "states": states, "identities": sorted(map(tuple, ids))}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=shop(), order=st.randoms(use_true_random=False), batch=st.integers(1, 5))
def test_profiles_do_not_depend_on_arrival_order_or_batches(
    events: list[dict[str, Any]], order: Any, batch: int
) -> None:
    shuffled = list(events)
    order.shuffle(shuffled)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        expected = build(Path(a), sorted(events, key=lambda m: m["timestamp"]), 1000)
        got = build(Path(b), shuffled, batch)
    assert got["partition"] == expected["partition"]
    assert got["states"] == expected["states"]
    # Every identities row too: first_seen is the earliest event carrying the identifier.
    assert got["identities"] == expected["identities"]


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(events=shop(), batch=st.integers(1, 5))
def test_identities_do_not_depend_on_batches(events: list[dict[str, Any]], batch: int) -> None:
    """The same arrival order cut into other batches: every identities row, first_seen too
    (the time of the earliest event carrying the identifier)."""
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        expected = build(Path(a), events, 1000)
        got = build(Path(b), events, batch)
    assert got["identities"] == expected["identities"]
