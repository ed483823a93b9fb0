"""The pipeline and the Profile API over HTTP, on SQLite and PostgreSQL.

The app runs without its in-process pipeline here; each test applies the log itself
(``apply``) so what it reads is deterministic. ``test_in_process_pipeline_*`` covers the loop.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials


@pytest.fixture
def quiet_settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data", pipeline_in_process=False)


@pytest.fixture
def app_client(
    quiet_settings: Settings, creds: Credentials, clock: FrozenClock
) -> Iterator[TestClient]:
    with TestClient(create_app(quiet_settings, clock)) as test_client:
        yield test_client


def auth(creds: Credentials) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{creds.write_key}:".encode()).decode()}


def send(client: TestClient, creds: Credentials, *events: dict[str, Any]) -> None:
    r = client.post("/v1/batch", json={"batch": list(events)}, headers=auth(creds))
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True


def apply(client: TestClient) -> int:
    return int(client.app.state.container.pipeline.drain())  # type: ignore[attr-defined]


def get(client: TestClient, admin: dict[str, str], path: str, status: int = 200) -> Any:
    r = client.get(path, headers=admin)
    assert r.status_code == status, r.text
    return r.json()


def at(minute: int) -> str:
    return f"2026-11-20T10:{minute:02d}:00.000Z"


def viewed(anon: str, sku: str, minute: int, **extra: Any) -> dict[str, Any]:
    props = {
        "product_id": sku,
        "name": f"Shoe {sku}",
        "price": "$49.50",
        "url": f"https://shop.example/p/{sku}",
        **extra,
    }
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": anon,
        "messageId": f"view-{anon}-{sku}-{minute}",
        "timestamp": at(minute),
        "properties": props,
    }


def identify(
    minute: int, *, anon: str | None = None, user: str | None = None, **traits: Any
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "identify",
        "messageId": f"id-{user}-{anon}-{minute}",
        "timestamp": at(minute),
        "traits": traits,
    }
    if anon:
        msg["anonymousId"] = anon
    if user:
        msg["userId"] = user
    return msg


def track(
    event: str,
    minute: int,
    props: dict[str, Any],
    *,
    anon: str | None = None,
    user: str | None = None,
    mid: str | None = None,
) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "type": "track",
        "event": event,
        "timestamp": at(minute),
        "properties": props,
        "messageId": mid or f"{event}-{anon}-{user}-{minute}",
    }
    if anon:
        msg["anonymousId"] = anon
    if user:
        msg["userId"] = user
    return msg


def test_anonymous_browsing_then_sign_in_is_one_profile(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(
        app_client,
        creds,
        viewed("anon-1", "SKU-1", 1),
        viewed("anon-1", "SKU-2", 2),
        viewed("anon-1", "SKU-1", 3),
        identify(4, anon="anon-1", user="u-1", email="Ada@Example.com", first_name="Ada"),
    )
    assert apply(app_client) == 4

    by_user = get(app_client, admin, "/v1/profiles/user_id:u-1")
    by_anon = get(app_client, admin, "/v1/profiles/anonymous_id:anon-1")
    by_email = get(app_client, admin, "/v1/profiles/email:ada@example.com")
    assert by_user["profile_id"] == by_anon["profile_id"] == by_email["profile_id"]
    by_id = get(app_client, admin, f"/v1/profiles/profile_id:{by_user['profile_id']}")
    assert by_id == by_user
    get(app_client, admin, "/v1/profiles/profile_id:prof_unknown", status=404)
    assert by_user["traits"]["first_name"] == "Ada"
    assert by_user["event_count"] == 4

    ids = get(app_client, admin, "/v1/profiles/user_id:u-1/identities")["data"]
    assert {(i["type"], i["value"]) for i in ids} == {
        ("user_id", "u-1"),
        ("anonymous_id", "anon-1"),
        ("email", "ada@example.com"),
    }

    viewed_now = get(app_client, admin, "/v1/profiles/user_id:u-1/recently-viewed")["data"]
    assert [p["product_id"] for p in viewed_now] == ["SKU-1", "SKU-2"]
    assert viewed_now[0]["price"] == 49.5  # "$49.50" normalized

    merges = get(app_client, admin, "/v1/profiles/user_id:u-1/merges")
    assert merges["merges"], merges
    assert all(m["message_id"] == "id-u-1-anon-1-4" for m in merges["merges"])
    assert merges["conflicts"] == []


def test_first_seen_is_the_earliest_event_carrying_the_identifier(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    """A phone that synced late: its events arrive after the sign-in but happened before,
    and each identifier's first_seen moves back to them."""
    send(app_client, creds, identify(30, anon="anon-7", user="u-7", email="g@example.com"))
    apply(app_client)
    send(app_client, creds, viewed("anon-7", "SKU-1", 12), viewed("anon-7", "SKU-2", 20))
    apply(app_client)
    send(
        app_client, creds, identify(5, user="u-7"), identify(40, user="u-7", email="g@example.com")
    )
    apply(app_client)

    ids = get(app_client, admin, "/v1/profiles/email:g@example.com/identities")["data"]
    assert {(i["type"], i["value"]): i["first_seen"] for i in ids} == {
        ("user_id", "u-7"): at(5),
        ("anonymous_id", "anon-7"): at(12),
        ("email", "g@example.com"): at(30),
    }


def test_cart_follows_adds_removes_and_is_emptied_by_an_order(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    product = {"product_id": "P-1", "price": 20, "name": "Tote", "url": "https://s.example/1"}
    send(
        app_client,
        creds,
        track("Product Added", 1, {**product, "quantity": 2}, user="u-2"),
        track(
            "Added Product",
            2,
            {"sku": "P-2", "price": "5.00", "url": "https://s.example/2"},
            user="u-2",
        ),
        track("Product Removed", 3, {"product_id": "P-1", "quantity": 1}, user="u-2"),
    )
    apply(app_client)
    cart = get(app_client, admin, "/v1/profiles/user_id:u-2/cart")
    assert {i["product_id"]: i["quantity"] for i in cart["items"]} == {"P-1": 1, "P-2": 1}
    assert cart["value"] == 25.0

    send(
        app_client,
        creds,
        track(
            "Order Completed",
            4,
            {
                "order_id": "O-1",
                "total": 25.0,
                "currency": "USD",
                "products": [{"product_id": "P-1", "price": 20}, {"sku": "P-2", "price": 5}],
            },
            user="u-2",
        ),
    )
    apply(app_client)
    assert get(app_client, admin, "/v1/profiles/user_id:u-2/cart")["items"] == []
    summary = get(app_client, admin, "/v1/profiles/user_id:u-2")
    assert summary["order_count"] == 1
    assert summary["revenue"] == 25.0
    assert summary["last_order"]["order_id"] == "O-1"


def test_a_second_user_id_on_a_device_is_a_conflict_not_a_merge(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(
        app_client,
        creds,
        identify(1, anon="shared-device", user="alice"),
        identify(2, anon="shared-device", user="bob"),
    )
    apply(app_client)
    alice = get(app_client, admin, "/v1/profiles/user_id:alice")
    bob = get(app_client, admin, "/v1/profiles/user_id:bob")
    assert alice["profile_id"] != bob["profile_id"]
    conflicts = get(app_client, admin, "/v1/profiles/user_id:bob/merges")["conflicts"]
    assert [c["code"] for c in conflicts] == ["limit_exceeded"]
    assert "user_id" in conflicts[0]["reason"]


def test_traits_last_write_by_timestamp_wins_and_history_keeps_both(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(app_client, creds, identify(5, user="u-3", plan="gold", city="Paris"))
    send(app_client, creds, identify(2, user="u-3", plan="silver"))  # arrives late, older
    apply(app_client)
    body = get(app_client, admin, "/v1/profiles/user_id:u-3/traits?history=true")
    assert body["traits"] == {"plan": "gold", "city": "Paris"}
    # The history is every write in event-time order, the late one included.
    assert [(h["key"], h["value"]) for h in body["history"] if h["key"] == "plan"] == [
        ("plan", "silver"),
        ("plan", "gold"),
    ]
    only = get(app_client, admin, "/v1/profiles/user_id:u-3/traits?include=city")
    assert only["traits"] == {"city": "Paris"}


def test_events_are_paginated_newest_first_with_validation_flags(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    events = [viewed("anon-p", f"S-{i}", i) for i in range(24)]
    events.append(track("Product Viewed", 30, {"name": "no id, no url"}, anon="anon-p", mid="bad"))
    send(app_client, creds, *events)
    apply(app_client)

    seen: list[str] = []
    path = "/v1/profiles/anonymous_id:anon-p/events?limit=10"
    pages = 0
    while True:
        page = get(app_client, admin, path)
        pages += 1
        seen.extend(e["message_id"] for e in page["data"])
        if not page["cursor"]["has_more"]:
            break
        path = f"/v1/profiles/anonymous_id:anon-p/events?limit=10&next={page['cursor']['next']}"
    assert pages == 3
    assert len(seen) == len(set(seen)) == 25
    assert seen[0] == "bad"
    first = get(app_client, admin, "/v1/profiles/anonymous_id:anon-p/events?limit=1")["data"][0]
    assert {f["code"] for f in first["flags"]} >= {"missing_product_id", "missing_url"}

    debugger = get(app_client, admin, f"/v1/sources/{creds.source_id}/events?limit=5")
    assert debugger["flag_counts"]["missing_url"] == 1
    bad = next(e for e in debugger["events"] if e["messageId"] == "bad")
    assert any(f["field"] == "properties.url" for f in bad["flags"])


def test_unknown_and_malformed_profile_ids_get_reasons(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    r = app_client.get("/v1/profiles/user_id:nobody", headers=admin)
    assert r.status_code == 404
    assert r.json()["code"] == "profile_not_found"
    r = app_client.get("/v1/profiles/nocolon", headers=admin)
    assert r.status_code == 400
    assert r.json()["field"] == "id"
    r = app_client.get("/v1/profiles/shoe_size:42/traits", headers=admin)
    assert r.status_code == 400
    assert r.json()["code"] == "unknown_id_type"
    assert app_client.get("/v1/profiles/user_id:x").status_code == 401


def test_delete_removes_the_person_everywhere_and_suppresses_them(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(
        app_client,
        creds,
        viewed("anon-d", "SKU-9", 1),
        identify(2, anon="anon-d", user="u-del", email="del@example.com"),
        viewed("anon-other", "SKU-9", 3),
    )
    apply(app_client)
    r = app_client.delete("/v1/profiles/email:del@example.com", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["deleted"]["events"] == 2

    for ref in ("user_id:u-del", "anonymous_id:anon-d", "email:del@example.com"):
        assert app_client.get(f"/v1/profiles/{ref}", headers=admin).status_code == 404
    debugger = get(app_client, admin, f"/v1/sources/{creds.source_id}/events?limit=50")
    assert [e["messageId"] for e in debugger["events"]] == ["view-anon-other-SKU-9-3"]

    # The same person comes back: their events are dropped, no profile is re-created.
    send(app_client, creds, viewed("anon-d", "SKU-1", 5), identify(6, user="u-del", plan="x"))
    apply(app_client)
    assert app_client.get("/v1/profiles/user_id:u-del", headers=admin).status_code == 404
    assert app_client.get("/v1/profiles/anonymous_id:anon-d", headers=admin).status_code == 404
    debugger = get(app_client, admin, f"/v1/sources/{creds.source_id}/events?limit=50")
    assert [e["messageId"] for e in debugger["events"]] == ["view-anon-other-SKU-9-3"]
    # Others are untouched.
    assert get(app_client, admin, "/v1/profiles/anonymous_id:anon-other")["event_count"] == 1


def test_retention_purges_old_events_and_keeps_derived_state(
    app_client: TestClient, creds: Credentials, admin: dict[str, str], clock: FrozenClock
) -> None:
    send(app_client, creds, viewed("anon-r", "OLD", 1), identify(2, anon="anon-r", user="u-r"))
    clock.advance(timedelta(days=31))
    send(app_client, creds, viewed("anon-r", "NEW", 3))
    apply(app_client)
    container = app_client.app.state.container  # type: ignore[attr-defined]
    result = container.retention.run()
    assert result.events == 2
    events = get(app_client, admin, "/v1/profiles/user_id:u-r/events")["data"]
    assert [e["message_id"] for e in events] == ["view-anon-r-NEW-3"]
    viewed_now = get(app_client, admin, "/v1/profiles/user_id:u-r/recently-viewed")["data"]
    assert [p["product_id"] for p in viewed_now] == ["NEW", "OLD"]
    assert get(app_client, admin, "/v1/profiles/user_id:u-r")["event_count"] == 3


def _snapshot(client: TestClient, admin: dict[str, str], refs: list[str]) -> dict[str, Any]:
    out = {}
    for ref in refs:
        body = get(client, admin, f"/v1/profiles/{ref}")
        body["identities"] = sorted((i["type"], i["value"]) for i in body["identities"])
        out[ref] = body
    return out


SCENARIO = [
    viewed("a1", "X", 1),
    viewed("a2", "Y", 2),
    track("Product Added", 3, {"product_id": "X", "price": 10, "url": "u"}, anon="a1"),
    identify(4, anon="a1", user="carol", email="carol@example.com", tier="new"),
    identify(5, anon="a2", user="carol"),
    viewed("a3", "Z", 6),
    identify(7, anon="a3", user="dave"),
    identify(8, anon="a3", user="carol"),  # conflict: a3 already belongs to dave
    track(
        "Order Completed",
        9,
        {"order_id": "o", "total": 10, "products": [{"product_id": "X", "price": 10}]},
        user="carol",
    ),
    identify(10, user="carol", tier="vip"),
]
REFS = ["user_id:carol", "user_id:dave", "anonymous_id:a2", "email:carol@example.com"]


def test_rebuilding_from_the_log_gives_the_same_profiles(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(app_client, creds, *SCENARIO)
    apply(app_client)
    before = _snapshot(app_client, admin, REFS)
    container = app_client.app.state.container  # type: ignore[attr-defined]
    container.profiles.reset_derived()
    assert app_client.get("/v1/profiles/user_id:carol", headers=admin).status_code == 404
    container.pipeline.batch_events = 3  # other batch boundaries, same result
    assert apply(app_client) == len(SCENARIO)
    assert _snapshot(app_client, admin, REFS) == before
    assert before["user_id:carol"]["traits"]["tier"] == "vip"
    assert before["user_id:carol"]["order_count"] == 1


@pytest.mark.parametrize("order", [[9, 8, 7, 6, 5, 4, 3, 2, 1, 0], [4, 0, 9, 2, 7, 1, 8, 3, 6, 5]])
def test_arrival_order_does_not_change_the_profiles(
    db_url: str,
    tmp_path: Path,
    clock: FrozenClock,
    admin: dict[str, str],
    app_client: TestClient,
    creds: Credentials,
    order: list[int],
) -> None:
    send(app_client, creds, *SCENARIO)
    apply(app_client)
    expected = _snapshot(app_client, admin, REFS)
    container = app_client.app.state.container  # type: ignore[attr-defined]
    container.profiles.reset_derived()
    # Same events, other arrival order, one per batch: seq order is now ``order``.
    with container.db.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events")
    for i in order:
        send(app_client, creds, SCENARIO[i])
        apply(app_client)
    got = _snapshot(app_client, admin, REFS)
    for ref in REFS:
        for key in (
            "event_count",
            "order_count",
            "revenue",
            "traits",
            "identities",
            "cart",
            "last_order",
            "first_seen",
            "last_seen",
        ):
            assert got[ref][key] == expected[ref][key], (ref, key)


def test_in_process_pipeline_applies_events_soon_after_ingest(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(client, creds, identify(1, anon="live", user="u-live", first_name="Lin"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = client.get("/v1/profiles/user_id:u-live/traits", headers=admin)
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text
    assert r.json()["traits"] == {"first_name": "Lin"}
    status = get(client, admin, "/v1/pipeline/status")
    assert status["position"] == status["head"]
    assert status["backlog"] == 0
    assert status["applied_events"] == 1
    assert status["lag_ms"]["p99"] is not None


def test_the_catalog_learns_products_from_applied_events(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    send(app_client, creds, viewed("anon-c", "SKU-77", 1), viewed("anon-d", "SKU-77", 2))
    apply(app_client)
    product = get(app_client, admin, "/v1/catalog/products/SKU-77")
    assert product["name"] == "Shoe SKU-77"
    assert product["price"] == 49.5
    assert product["url"] == "https://shop.example/p/SKU-77"
