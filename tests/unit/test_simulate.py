"""The shopper simulator: deterministic, time-ordered, valid Segment, true to its ground truth."""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from tidings.collect.messages import Enricher, Limits, enrich_many
from tidings.core.clock import from_ms, iso
from tidings.simulate import (
    GroundTruth,
    ShopperModel,
    SimEvent,
    generate_catalog,
    read_ground_truth,
    simulate,
    write_ground_truth,
)
from tidings.simulate.catalog import CATEGORIES
from tidings.simulate.shoppers import APPLE_PROXY_USER_AGENT

START = datetime(2026, 3, 2, tzinfo=UTC)
PRODUCT_EVENTS = ("Product Viewed", "Product Added", "Product Removed")


@dataclass
class Run:
    events: list[SimEvent]
    truth: GroundTruth

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e.message for e in self.events if e.message.get("event") == name]


def _run(seed: int, shoppers: int, days: int, **model: Any) -> Run:
    catalog = generate_catalog(seed, base_url="http://tidings.test")
    sim = simulate(seed, shoppers, days, START, catalog, model=ShopperModel(**model))
    events = list(sim)
    return Run(events, sim.ground_truth)


@pytest.fixture(scope="module")
def shop() -> Run:
    """A month of a 2,000-shopper shop: enough for every behaviour to show up."""
    return _run(11, 2000, 30)


# -- the catalog ---------------------------------------------------------------------------------
def test_the_catalog_is_a_deterministic_shop_with_skewed_popularity() -> None:
    catalog = generate_catalog(5, 200, base_url="http://tidings.test/")
    assert catalog == generate_catalog(5, 200, base_url="http://tidings.test/")
    assert catalog != generate_catalog(6, 200, base_url="http://tidings.test/")
    assert len(catalog) == 200
    assert len({p.product_id for p in catalog}) == 200
    assert len({p.sku for p in catalog}) == 200
    assert {p.category for p in catalog} == {c.name for c in CATEGORIES}
    assert len({p.brand for p in catalog}) > 5
    for p in catalog:
        assert p.currency == "USD"
        assert p.url == f"https://shop.example/p/{p.slug}"
        assert p.image_url == f"http://tidings.test/demo/products/{p.product_id}.png"
        assert p.price > 0
        if p.sale_price is not None:
            assert 0 < p.sale_price < p.price
            assert p.current_price == p.sale_price
    assert 0.05 < sum(p.on_sale for p in catalog) / len(catalog) < 0.4
    assert any(not p.in_stock for p in generate_catalog(5, 1000))
    weights = sorted((p.popularity for p in catalog), reverse=True)
    assert sum(weights) == pytest.approx(1.0)
    assert sum(weights[:20]) > 0.4  # the top tenth of products draws the bulk of attention


def test_a_catalog_needs_a_product_per_category() -> None:
    with pytest.raises(ValueError, match="at least"):
        generate_catalog(1, len(CATEGORIES) - 1)


# -- the stream ----------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_stream_and_another_seed_another() -> None:
    first, again, other = _run(3, 150, 10), _run(3, 150, 10), _run(4, 150, 10)

    def dump(run: Run) -> list[bytes]:
        return [orjson.dumps([e.message, e.person_id, e.timestamp_ms]) for e in run.events]

    assert dump(first) == dump(again)
    assert first.truth == again.truth
    assert dump(first) != dump(other)


def test_events_come_in_timestamp_order_with_unique_ids_from_the_seed(shop: Run) -> None:
    stamps = [e.timestamp_ms for e in shop.events]
    assert stamps == sorted(stamps)
    keys = [(e.timestamp_ms, e.seq) for e in shop.events]
    assert keys == sorted(keys)
    assert len({e.seq for e in shop.events}) == len(shop.events)
    assert START.timestamp() * 1000 <= stamps[0]
    for n, e in enumerate(shop.events):
        assert e.message["messageId"] == f"sim-11-{n}"
        text = e.message["timestamp"]
        assert text.endswith("Z")
        assert text == iso(from_ms(e.timestamp_ms))
    assert shop.truth.events == len(shop.events)


def test_every_message_passes_the_collection_validation_unchanged(shop: Run) -> None:
    messages = [copy.deepcopy(e.message) for e in shop.events]
    received = datetime(2026, 11, 1, tzinfo=UTC)
    outcome = enrich_many(Enricher("src_test", received, Limits()), messages, None, True)
    assert outcome.rejected == []
    assert len(outcome.rows) == len(shop.events)
    for row, e in zip(outcome.rows, shop.events, strict=True):
        _, message_id, type_, event, user_id, anonymous_id, timestamp, _, payload = row
        msg = e.message
        assert message_id == msg["messageId"]
        assert type_ == msg["type"]
        assert event == msg.get("event")
        assert user_id == msg.get("userId")
        assert anonymous_id == msg.get("anonymousId")
        assert timestamp == e.timestamp_ms  # no sentAt: the message's own time is kept
        stored = orjson.loads(payload)
        assert stored["properties" if "properties" in msg else "traits"] == msg.get(
            "properties", msg.get("traits")
        )


def test_messages_are_shaped_as_segment_libraries_send_them(shop: Run) -> None:
    types = Counter(e.message["type"] for e in shop.events)
    assert set(types) == {"page", "track", "identify"}
    for e in shop.events:
        msg = e.message
        assert msg.get("userId") or msg.get("anonymousId")
        if msg["type"] == "page":
            page = msg["context"]["page"]
            assert msg["properties"]["url"] == page["url"]
            assert page["url"].startswith("https://shop.example/")
            assert msg["context"]["userAgent"]
        if msg["type"] == "identify":
            traits = msg["traits"]
            assert {"email", "first_name", "last_name"} <= traits.keys()
            assert msg["userId"] and msg["anonymousId"]
    for order in shop.named("Order Completed"):
        props = order["properties"]
        assert props["currency"] == "USD"
        assert props["order_id"].startswith("ord-")
        assert props["total"] >= props["revenue"] > 0
        assert props["products"]
        assert all(p["quantity"] >= 1 for p in props["products"])
    viewed = [m["properties"] for m in shop.named("Product Viewed")]
    clean = [p for p in viewed if isinstance(p.get("price"), float) and "product_id" in p]
    for props in clean[:500]:
        assert {"product_id", "sku", "name", "price", "category", "brand"} <= props.keys()
        assert props["image_url"].startswith("http://tidings.test/demo/products/")
    traits = [e.message["traits"] for e in shop.events if e.message["type"] == "identify"]
    assert any("timezone" in t for t in traits)
    assert any("timezone" not in t for t in traits)


def test_a_share_of_product_events_is_as_imperfect_as_real_sites_send_them(shop: Run) -> None:
    props = [p for name in PRODUCT_EVENTS for p in (m["properties"] for m in shop.named(name))]
    string_price = [p for p in props if isinstance(p.get("price"), str)]
    sku_only = [p for p in props if "product_id" not in p]
    no_url = [p for p in props if "url" not in p]
    flawed = len(string_price) + len(sku_only) + len(no_url)
    assert 0.005 < flawed / len(props) < 0.05
    assert all(p["price"].startswith("$") for p in string_price)
    assert string_price and sku_only and no_url
    assert all(p["sku"] for p in sku_only)

    tidy = _run(3, 150, 10, messy_rate=0.0)
    for name in PRODUCT_EVENTS:
        for msg in tidy.named(name):
            assert isinstance(msg["properties"]["price"], float)
            assert {"product_id", "url"} <= msg["properties"].keys()


# -- ground truth --------------------------------------------------------------------------------
def test_each_persons_ids_are_in_their_events_and_only_theirs(shop: Run) -> None:
    truth = shop.truth.by_person()
    assert len(truth) == 2000
    seen_anon: dict[str, set[str]] = defaultdict(set)
    seen_users: dict[str, set[str]] = defaultdict(set)
    for e in shop.events:
        person = truth[e.person_id]
        msg = e.message
        if "anonymousId" in msg:
            assert msg["anonymousId"] in person.anonymous_ids
            seen_anon[e.person_id].add(msg["anonymousId"])
        if "userId" in msg:
            assert msg["userId"] == person.user_id
            seen_users[e.person_id].add(msg["userId"])
    owners = shop.truth.person_of()
    for person in shop.truth:
        assert person.anonymous_ids, "every shopper visits at least once"
        assert set(person.anonymous_ids) == seen_anon[person.person_id]
        assert set(person.linked_anonymous_ids) <= set(person.anonymous_ids)
        if person.user_id is None:
            assert not person.linked_anonymous_ids
            assert person.email is None
            assert not seen_users[person.person_id]
        for value in (*person.anonymous_ids, person.user_id, person.email):
            if value is not None:
                assert owners[value] == person.person_id
    assert len(owners) == sum(
        len(p.anonymous_ids) + (p.user_id is not None) + (p.email is not None) for p in shop.truth
    ), "no id is shared by two people"


def test_identify_calls_link_exactly_the_linked_devices(shop: Run) -> None:
    truth = shop.truth.by_person()
    linked: dict[str, set[str]] = defaultdict(set)
    for e in shop.events:
        msg = e.message
        if msg["type"] == "identify":
            linked[e.person_id].add(msg["anonymousId"])
            assert msg["userId"] == truth[e.person_id].user_id
            assert msg["traits"]["email"] == truth[e.person_id].email
    for person in shop.truth:
        assert set(person.linked_anonymous_ids) == linked[person.person_id]


def test_conversions_and_orders_match_the_order_events(shop: Run) -> None:
    orders = Counter(
        e.person_id for e in shop.events if e.message.get("event") == "Order Completed"
    )
    for person in shop.truth:
        assert person.orders == orders[person.person_id]
        assert person.converted == (orders[person.person_id] > 0)
        if person.converted:
            assert person.user_id is not None  # checkout identifies


def test_ground_truth_round_trips_through_json(shop: Run, tmp_path: Path) -> None:
    path = write_ground_truth(shop.truth, tmp_path / "nested" / "truth.json")
    assert read_ground_truth(path) == shop.truth
    assert orjson.loads(path.read_bytes())["persons"][0]["person_id"] == "person-0"


# -- behaviour, roughly --------------------------------------------------------------------------
def test_the_shop_shows_every_behaviour_in_plausible_proportions(shop: Run) -> None:
    people = list(shop.truth)
    n = len(people)
    assert 5 < len(shop.events) / n < 20
    names = Counter(e.message.get("event") or e.message["type"] for e in shop.events)
    for name in (
        "page",
        "identify",
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
        "Signed Up",
        "Signed In",
        "Products Searched",
        "Email Delivered",
        "Email Opened",
        "Email Link Clicked",
    ):
        assert names[name] > 0, name
    assert names["Product Viewed"] > names["Product Added"] > names["Order Completed"]
    assert names["Checkout Started"] > names["Order Completed"]  # some checkouts abandoned

    converted = sum(p.converted for p in people)
    assert 0.02 * n < converted < 0.3 * n
    assert sum(p.orders > 1 for p in people) > 0  # repeat buyers
    assert 0.15 * n < sum(p.user_id is not None for p in people) < 0.6 * n
    assert 0.2 * n < sum(p.churned for p in people) < 0.9 * n
    two_devices = [p for p in people if len(p.anonymous_ids) > 1]
    assert 0.03 * n < len(two_devices) < 0.3 * n
    assert any(len(p.linked_anonymous_ids) == 2 for p in two_devices)  # one userId, two devices

    truth = shop.truth.by_person()
    carts = {e.person_id for e in shop.events if e.message.get("event") == "Product Added"}
    abandoned = [pid for pid in carts if not truth[pid].converted]
    assert len(abandoned) > converted * 0.3


def test_people_come_back_after_days(shop: Run) -> None:
    days: dict[str, set[int]] = defaultdict(set)
    for e in shop.events:
        if e.message["type"] == "page":
            days[e.person_id].add(e.timestamp_ms // 86_400_000)
    returning = [pid for pid, d in days.items() if len(d) > 1]
    assert 0.2 * len(days) < len(returning) < 0.9 * len(days)
    assert max(max(d) - min(d) for d in days.values()) > 14


def test_email_is_delivered_opened_by_apples_proxy_or_people_and_clicked_to_a_visit(
    shop: Run,
) -> None:
    delivered = {m["properties"]["email_id"]: m for m in shop.named("Email Delivered")}
    at = {
        e.message["properties"]["email_id"]: e.timestamp_ms
        for e in shop.events
        if e.message.get("event") == "Email Delivered"
    }
    proxy, human = [], []
    for e in shop.events:
        msg = e.message
        if msg.get("event") != "Email Opened":
            continue
        email_id = msg["properties"]["email_id"]
        assert email_id in delivered
        assert msg["userId"] == delivered[email_id]["userId"]
        delay = e.timestamp_ms - at[email_id]
        assert delay >= 0
        if msg["context"]["userAgent"] == APPLE_PROXY_USER_AGENT:
            proxy.append(delay)
            assert msg["context"]["ip"].startswith("17.")
        else:
            human.append(delay)
    assert proxy and human
    assert max(proxy) <= 120_000  # the proxy fetches within two minutes of delivery
    assert sorted(human)[len(human) // 2] > 10 * 60_000  # people read later
    apple = {p.user_id for p in shop.truth if p.apple_mail_privacy}
    assert {m["userId"] for m in shop.named("Email Opened") if m["userId"] in apple}

    clicks = shop.named("Email Link Clicked")
    assert {c["properties"]["campaign_id"] for c in clicks} >= {"cmp-abandoned-cart"}
    campaign_visits = [
        e for e in shop.events if e.message["type"] == "page" and "campaign" in e.message["context"]
    ]
    assert len(campaign_visits) >= len(clicks)
    assert all(e.message["context"]["campaign"]["medium"] == "email" for e in campaign_visits)
    via_email = [
        e
        for e in shop.events
        if e.message.get("event") == "Order Completed" and "campaign" in e.message["context"]
    ]
    assert via_email, "some emails lead to a purchase"


def test_small_and_empty_shops_work() -> None:
    assert _run(1, 0, 1).events == []
    tiny = _run(2, 5, 1)
    assert len(tiny.truth) == 5
    assert {e.person_id for e in tiny.events} == {p.person_id for p in tiny.truth}
    end = START.timestamp() * 1000 + 86_400_000
    starts = [e.timestamp_ms for e in tiny.events if e.message["type"] == "page"]
    assert all(START.timestamp() * 1000 <= t for t in starts)
    assert min(starts) < end


def test_bad_arguments_are_refused() -> None:
    catalog = generate_catalog(1, 20)
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate(1, 10, 3, datetime(2026, 1, 1), catalog)
    with pytest.raises(ValueError, match="days"):
        simulate(1, 10, 0, START, catalog)
    with pytest.raises(ValueError, match="empty"):
        simulate(1, 10, 3, START, [])
