"""The simulator through a live ``tidings serve`` with Segment's client, and into the store."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tidings.cli import app
from tidings.collect.store import CollectStore, events
from tidings.core.db import Database
from tidings.simulate import generate_catalog, read_ground_truth, simulate
from tidings.simulate.send import send_direct, send_http
from tidings.simulate.shoppers import Simulation
from tidings.testing import ServerProcess, prepare_database

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

START = datetime(2026, 6, 1, tzinfo=UTC)
SHOPPERS, DAYS, SEED = 30, 3, 23  # seed 23: a signed-up shopper ends with a cart


def _shop(base_url: str = "http://127.0.0.1:8000") -> Simulation:
    return simulate(SEED, SHOPPERS, DAYS, START, generate_catalog(SEED, base_url=base_url))


def _stored(url: str, source_id: str) -> dict[str, dict[str, object]]:
    """The stored events of a source: messageId → (timestamp ms, payload)."""
    db = Database.from_url(url)
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.message_id, events.c.timestamp, events.c.payload).where(
                    events.c.source_id == source_id
                )
            )
            return {
                mid: {"timestamp": ts, "payload": orjson.loads(payload)}
                for mid, ts, payload in rows
            }
    finally:
        db.close()


def _caught_up(client: httpx.Client, admin: dict[str, str]) -> None:
    for _ in range(200):
        status = client.get("/v1/pipeline/status", headers=admin).json()
        if status["backlog"] == 0 and status["position"] == status["head"]:
            return
        time.sleep(0.1)
    pytest.fail(f"the pipeline did not catch up: {status}")


def _carts(sim: Simulation) -> dict[str, tuple[str, str]]:
    """Person → (email, product id) for the people whose latest cart event is an add of a
    product they did not buy afterwards (their cart is not empty at the end)."""
    last: dict[str, tuple[str, str | None]] = {}
    email: dict[str, str] = {}
    for event in sim:
        m = event.message
        traits = m.get("traits") or (m.get("context") or {}).get("traits") or {}
        if isinstance(traits.get("email"), str):
            email[event.person_id] = traits["email"]
        name = m.get("event")
        if name == "Product Added":
            last[event.person_id] = ("added", m["properties"].get("product_id"))
        elif name in ("Order Completed", "Product Removed", "Cart Viewed", "Checkout Started"):
            last[event.person_id] = ("other", None)
    return {
        person: (email[person], str(pid))
        for person, (kind, pid) in last.items()
        if kind == "added" and pid and person in email
    }


def test_a_small_shop_sent_with_segments_client_arrives_whole(db_url: str, tmp_path: Path) -> None:
    """Counts, identity merges against the ground truth, and a shopper who added to their
    cart sees it in the next render of a cart block."""
    creds = prepare_database(db_url)
    admin = {"Authorization": f"Bearer {creds.admin_token}"}
    live = ServerProcess(db_url, log_path=tmp_path / "server.log").start()
    try:
        expected = {e.message["messageId"]: e for e in _shop(live.url)}
        sim = _shop(live.url)
        result = send_http(sim, live.url, creds.write_key, progress=False)
        with httpx.Client(base_url=live.url, timeout=10) as client:
            _caught_up(client, admin)
            for person in sim.ground_truth:
                if person.user_id is None:
                    continue
                r = client.get(f"/v1/profiles/user_id:{person.user_id}/identities", headers=admin)
                assert r.status_code == 200, r.text
                held = {(i["type"], i["value"]) for i in r.json()["data"]}
                for anonymous_id in person.linked_anonymous_ids:
                    assert ("anonymous_id", anonymous_id) in held, person.person_id
            carts = _carts(_shop(live.url))
            assert carts, "the small shop has someone with a cart"
            body = {
                "name": "Cart",
                "variants": [{"creative": {"app": "cart_items", "config": {}}}],
                "fallback": {"kind": "collapse"},
            }
            block = client.post("/v1/blocks", json=body, headers=admin).json()["id"]
            for shopper_email, product_id in carts.values():
                r = client.get(f"/i/{block}.png", params={"u": shopper_email})
                assert r.headers["x-tidings-served"] == "render", shopper_email
                shown = client.get(
                    f"/v1/blocks/{block}/decisions", params={"u": shopper_email}, headers=admin
                ).json()["data"][0]["shown"]
                assert product_id in [s["product_id"] for s in shown]
    finally:
        live.stop()
    assert result.errors == []
    assert result.rejected == 0
    assert result.sent == sim.emitted == len(expected) > 100
    assert len(result.persons) == SHOPPERS

    db = Database.from_url(db_url)
    try:
        assert CollectStore(db.engine).count_events(creds.source_id) == len(expected)
        assert CollectStore(db.engine).recent_rejections(creds.source_id, 10) == []
    finally:
        db.close()
    stored = _stored(db_url, creds.source_id)
    assert stored.keys() == expected.keys()
    for message_id, event in expected.items():
        row = stored[message_id]
        payload = row["payload"]
        assert isinstance(payload, dict) and isinstance(row["timestamp"], int)
        sent = event.message
        for key in ("type", "event", "userId", "anonymousId", "properties", "traits", "name"):
            assert payload.get(key) == sent.get(key), (key, message_id)
        # The client sends the event's time and sentAt; the server corrects the skew, which
        # between two processes on one machine is a few milliseconds.
        assert abs(row["timestamp"] - event.timestamp_ms) < 5_000
        assert payload["context"]["library"]["name"] == "analytics-python"


def test_direct_mode_stores_the_same_events_as_http_would(db_url: str) -> None:
    creds = prepare_database(db_url)
    expected = {e.message["messageId"]: e for e in _shop()}
    sim = _shop()
    result = send_direct(sim, db_url, creds.source_id, transaction_events=100, progress=False)
    assert result.rejected == 0
    assert result.sent == result.stored == len(expected)
    stored = _stored(db_url, creds.source_id)
    assert stored.keys() == expected.keys()
    for message_id, event in expected.items():
        assert stored[message_id]["timestamp"] == event.timestamp_ms  # no skew without sentAt
        payload = stored[message_id]["payload"]
        assert isinstance(payload, dict)
        assert payload["properties" if "properties" in payload else "traits"] == event.message.get(
            "properties", event.message.get("traits")
        )

    again = send_direct(_shop(), db_url, creds.source_id, progress=False)
    assert again.sent == len(expected)
    assert again.stored == 0  # the same seed again: every messageId is already there


def test_direct_mode_refuses_an_unknown_source(sqlite_url: str) -> None:
    prepare_database(sqlite_url)
    with pytest.raises(ValueError, match="no source"):
        send_direct(_shop(), sqlite_url, "src_nope", progress=False)


def test_the_simulate_command_writes_events_and_ground_truth(
    sqlite_url: str, tmp_path: Path
) -> None:
    truth_path = tmp_path / "truth.json"
    args = [
        "simulate",
        *("--shoppers", str(SHOPPERS), "--days", str(DAYS), "--seed", str(SEED)),
        *("--db", sqlite_url, "--start", START.strftime("%Y-%m-%d")),
        *("--ground-truth", str(truth_path), "--no-progress"),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    expected = sum(1 for _ in _shop())
    assert "write key (shown only now)" in result.output
    assert "Product Viewed" in result.output
    assert f"simulated {expected:,} events via direct" in result.output

    db = Database.from_url(sqlite_url)
    try:
        store = CollectStore(db.engine)
        [source] = store.list_sources()
        assert source.name == "Simulated shop"
        assert store.count_events(source.id) == expected
    finally:
        db.close()
    truth = read_ground_truth(truth_path)
    assert (truth.seed, truth.shoppers, truth.days, truth.events) == (
        SEED,
        SHOPPERS,
        DAYS,
        expected,
    )
    assert datetime.fromisoformat(truth.start) == START

    refused = CliRunner().invoke(app, ["simulate", "--via", "http", "--no-progress"])
    assert refused.exit_code == 2
    assert "--write-key" in refused.output
