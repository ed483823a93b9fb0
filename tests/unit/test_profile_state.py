"""A profile's derived state: the same events give the same state, whatever their order."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.profiles.ecommerce import normalize
from tidings.profiles.state import (
    MAX_EVENT_NAMES,
    MAX_VIEWED,
    ProfileState,
    TraitChange,
)

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Event = tuple[dict[str, Any], int]  # (stored message, timestamp in ms)


def msg(type_: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": type_,
        "messageId": message_id,
        "userId": "ada",
        "timestamp": "2026-01-01T00:00:00Z",
        **fields,
    }


def track(event: str, message_id: str, **properties: Any) -> dict[str, Any]:
    return msg("track", message_id, event=event, properties=properties)


def product(pid: str, price: float | None = None, **fields: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"product_id": pid, "url": f"https://shop.example/{pid}", **fields}
    if price is not None:
        found["price"] = price
    return found


def viewed(mid: str, pid: str, **fields: Any) -> dict[str, Any]:
    return track("Product Viewed", mid, **product(pid, **fields))


def added(mid: str, pid: str, quantity: int = 1, **fields: Any) -> dict[str, Any]:
    return track("Product Added", mid, quantity=quantity, **product(pid, **fields))


def removed(mid: str, pid: str, quantity: int = 1) -> dict[str, Any]:
    return track("Product Removed", mid, product_id=pid, quantity=quantity)


def cart_viewed(mid: str, *items: dict[str, Any]) -> dict[str, Any]:
    return track("Cart Viewed", mid, products=list(items))


def order(mid: str, *items: dict[str, Any], **properties: Any) -> dict[str, Any]:
    return track("Order Completed", mid, products=list(items), **properties)


def identify(mid: str, traits: Any = None, context_traits: Any = None) -> dict[str, Any]:
    message = msg("identify", mid)
    if traits is not None:
        message["traits"] = traits
    if context_traits is not None:
        message["context"] = {"traits": context_traits}
    return message


def fold(events: Iterable[Event], state: ProfileState | None = None) -> ProfileState:
    state = state if state is not None else ProfileState.empty()
    for message, ts in events:
        state.apply(message, normalize(message), ts)
    return state


def apply(state: ProfileState, message: dict[str, Any], ts: int) -> list[TraitChange]:
    return state.apply(message, normalize(message), ts)


def cart_lines(state: ProfileState) -> list[tuple[str, int]]:
    return [(item["product_id"], item["quantity"]) for item in state.cart()["items"]]


# -- counts -----------------------------------------------------------------------------------


def test_an_empty_state() -> None:
    state = ProfileState.empty()
    assert state.event_count == 0
    assert state.first_seen_ms is None and state.last_order is None
    assert state.cart() == {
        "items": [],
        "quantity": 0,
        "value": 0.0,
        "currency": None,
        "updated_at_ms": None,
    }
    assert state.recently_viewed() == []
    assert state.columns() == {
        "first_seen_ms": None,
        "last_seen_ms": None,
        "event_count": 0,
        "order_count": 0,
        "revenue": 0.0,
        "last_order_ms": None,
        "cart_quantity": 0,
        "cart_value": 0.0,
    }


def test_seen_times_and_counts_per_event_name() -> None:
    state = fold(
        [
            (viewed("m1", "a"), 300),
            (track("Viewed Product", "m2", product_id="b", url="u"), 100),
            (msg("page", "m3", name="Home"), 200),
            (identify("m4", {"plan": "pro"}), 250),
            (track("Signed Up", "m5"), 400),
        ]
    )
    assert (state.first_seen_ms, state.last_seen_ms, state.event_count) == (100, 400, 5)
    assert state.counts == {"Product Viewed": 2, "page": 1, "identify": 1, "Signed Up": 1}


def test_counts_keep_at_most_a_capped_number_of_names() -> None:
    state = fold((track(f"Event {i}", f"m{i}"), i) for i in range(MAX_EVENT_NAMES + 10))
    assert len(state.counts) == MAX_EVENT_NAMES
    assert state.event_count == MAX_EVENT_NAMES + 10
    apply(state, track("Event 0", "again"), 1)
    assert state.counts["Event 0"] == 2


# -- traits -----------------------------------------------------------------------------------


def test_traits_last_write_wins_by_event_time_not_arrival() -> None:
    state = ProfileState.empty()
    assert apply(state, identify("m2", {"plan": "pro", "name": "Ada"}), 200) == [
        TraitChange("plan", "pro", 200, "m2"),
        TraitChange("name", "Ada", 200, "m2"),
    ]
    # An older identify arriving late loses where it overlaps and adds what is new.
    assert apply(state, identify("m1", {"plan": "free", "city": "Paris"}), 100) == [
        TraitChange("city", "Paris", 100, "m1")
    ]
    assert state.traits == {"plan": "pro", "name": "Ada", "city": "Paris"}
    assert apply(state, identify("m3", {"plan": "team"}), 300) == [
        TraitChange("plan", "team", 300, "m3")
    ]
    assert state.traits["plan"] == "team"


def test_trait_ties_are_broken_by_message_id() -> None:
    one = fold([(identify("b", {"plan": "b"}), 100), (identify("a", {"plan": "a"}), 100)])
    other = fold([(identify("a", {"plan": "a"}), 100), (identify("b", {"plan": "b"}), 100)])
    assert one.traits == other.traits == {"plan": "b"}


def test_the_same_identify_twice_changes_nothing_the_second_time() -> None:
    state = ProfileState.empty()
    message = identify("m1", {"plan": "pro"})
    assert apply(state, message, 100) == [TraitChange("plan", "pro", 100, "m1")]
    assert apply(state, message, 100) == []


def test_a_later_null_is_kept() -> None:
    state = fold([(identify("m1", {"plan": "pro"}), 100), (identify("m2", {"plan": None}), 200)])
    assert state.traits == {"plan": None}


def test_context_traits_count_and_traits_take_precedence() -> None:
    state = ProfileState.empty()
    changes = apply(state, identify("m1", {"plan": "pro"}, {"plan": "free", "lang": "fr"}), 100)
    assert state.traits == {"plan": "pro", "lang": "fr"}
    assert {c.key: c.value for c in changes} == {"plan": "pro", "lang": "fr"}


def test_traits_of_other_events_are_ignored() -> None:
    message = track("Signed Up", "m1")
    message["traits"] = {"plan": "pro"}
    message["context"] = {"traits": {"plan": "pro"}}
    state = ProfileState.empty()
    assert apply(state, message, 100) == []
    assert apply(state, identify("m2", ["not", "traits"]), 100) == []
    assert state.traits == {}


# -- recently viewed --------------------------------------------------------------------------


def test_recently_viewed_is_most_recent_first_one_per_product() -> None:
    state = fold(
        [
            (viewed("m1", "a", price=1.0), 100),
            (viewed("m2", "b"), 200),
            (viewed("m3", "a", price=2.0), 300),
            (viewed("m4", "c"), 50),
            (viewed("m5", "b", price=9.0), 150),  # older than b's latest view: its info loses
        ]
    )
    found = state.recently_viewed()
    assert [(p["product_id"], p["viewed_at_ms"]) for p in found] == [
        ("a", 300),
        ("b", 200),
        ("c", 50),
    ]
    assert found[0] == {
        "product_id": "a",
        "price": 2.0,
        "url": "https://shop.example/a",
        "viewed_at_ms": 300,
    }
    assert "price" not in found[1]
    assert [p["product_id"] for p in state.recently_viewed(2)] == ["a", "b"]
    assert state.recently_viewed(0) == []


def test_recently_viewed_keeps_the_latest_products_only() -> None:
    events = [(viewed(f"m{i}", f"p{i}"), i) for i in range(MAX_VIEWED + 5)]
    state = fold(reversed(events))
    found = state.recently_viewed(limit=1000)
    assert len(found) == MAX_VIEWED
    assert found[0]["product_id"] == f"p{MAX_VIEWED + 4}"
    assert found[-1]["product_id"] == "p5"
    assert state == fold(events)


def test_recently_viewed_can_leave_out_products_bought_after_their_last_view() -> None:
    state = fold(
        [
            (viewed("m1", "a"), 100),
            (viewed("m2", "b"), 110),
            (viewed("m3", "c"), 120),
            (order("m4", product("a", 5.0), product("c", 5.0), total=10), 200),
            (viewed("m5", "c"), 300),  # viewed again after buying it
            (order("m6", product("b", 1.0), total=1), 50),  # bought before it was viewed
        ]
    )
    assert [p["product_id"] for p in state.recently_viewed()] == ["c", "b", "a"]
    assert [p["product_id"] for p in state.recently_viewed(exclude_purchased=True)] == ["c", "b"]


def test_views_without_a_product_id_are_not_kept() -> None:
    state = fold([(track("Product Viewed", "m1", name="shoe"), 100)])
    assert state.recently_viewed() == []
    assert state.counts == {"Product Viewed": 1}


# -- cart -------------------------------------------------------------------------------------


def test_cart_adds_and_removes() -> None:
    state = fold(
        [
            (added("m1", "a", 2, price=10.0, currency="usd"), 100),
            (added("m2", "b", 1, price=0.1), 200),
            (added("m3", "b", 2, price=0.1), 250),
            (removed("m4", "a", 1), 300),
            (removed("m5", "c", 1), 310),
        ]
    )
    cart = state.cart()
    assert cart_lines(state) == [("b", 3), ("a", 1)]
    assert cart["items"][0]["added_at_ms"] == 250
    assert cart["items"][1] == {
        "product_id": "a",
        "price": 10.0,
        "currency": "USD",
        "url": "https://shop.example/a",
        "quantity": 1,
        "added_at_ms": 100,
    }
    assert (cart["quantity"], cart["value"], cart["currency"]) == (4, 10.3, "USD")
    assert cart["updated_at_ms"] == 310


def test_removing_more_than_is_in_the_cart_stops_at_zero() -> None:
    state = fold(
        [
            (removed("m1", "a", 3), 100),  # nothing to remove yet
            (added("m2", "a", 1), 200),
            (added("m3", "b", 1), 300),
            (removed("m4", "b", 5), 400),
            (added("m5", "b", 2), 500),
        ]
    )
    assert cart_lines(state) == [("b", 2), ("a", 1)]


def test_a_cart_snapshot_replaces_what_came_before_it() -> None:
    state = fold(
        [
            (added("m1", "a", 1), 100),
            (added("m2", "b", 1), 150),
            (cart_viewed("m3", product("b", 4.0, quantity=2), product("c", 1.0)), 200),
            (added("m4", "c", 1), 300),
            (removed("m5", "b", 1), 310),
            (added("m6", "a", 5), 120),  # late, and before the snapshot: no longer matters
        ]
    )
    assert cart_lines(state) == [("c", 2), ("b", 1)]
    assert state.cart()["value"] == 6.0


def test_checkout_started_is_a_snapshot_too_but_only_with_products() -> None:
    state = fold(
        [
            (added("m1", "a", 1), 100),
            (track("Checkout Started", "m2", order_id="o"), 200),
        ]
    )
    assert cart_lines(state) == [("a", 1)]
    apply(state, track("Checkout Started", "m3", products=[product("z")]), 300)
    assert cart_lines(state) == [("z", 1)]
    apply(state, cart_viewed("m4"), 400)
    assert cart_lines(state) == []


def test_an_order_empties_the_cart() -> None:
    state = fold(
        [
            (added("m1", "a", 1), 100),
            (order("m2", product("a", 3.0)), 200),
            (added("m3", "b", 1), 300),
        ]
    )
    assert cart_lines(state) == [("b", 1)]
    assert state.cart()["updated_at_ms"] == 300


def test_the_same_product_twice_in_a_snapshot_adds_up() -> None:
    state = fold([(cart_viewed("m1", product("a", quantity=1), product("a", quantity=2)), 1)])
    assert cart_lines(state) == [("a", 3)]


# -- orders -----------------------------------------------------------------------------------


def test_orders_count_revenue_and_the_last_order() -> None:
    state = fold(
        [
            (order("m2", product("b", 0.1, quantity=3), order_id="o2", total=0.3), 200),
            (order("m1", product("a", 10.0), order_id="o1", total="$10.10", currency="eur"), 100),
            (order("m3", product("c", 0.2), order_id="o3", total=0.2), 150),
        ]
    )
    assert state.order_count == 3
    assert state.revenue == 10.6
    assert state.revenue_cents == 1060
    assert state.last_order == {
        "order_id": "o2",
        "total": 0.3,
        "currency": None,
        "products": [
            {"product_id": "b", "price": 0.1, "quantity": 3, "url": "https://shop.example/b"}
        ],
        "timestamp_ms": 200,
    }
    assert state.columns()["last_order_ms"] == 200


def test_an_order_without_a_total_is_worth_its_products() -> None:
    state = fold([(order("m1", product("a", 2.5, quantity=2), product("b")), 100)])
    assert state.revenue == 5.0
    assert state.last_order is not None and state.last_order["total"] == 5.0
    bare = fold([(order("m1", product("b")), 100)])
    assert bare.order_count == 1 and bare.revenue == 0.0
    assert bare.last_order is not None and bare.last_order["total"] is None


def test_refunds_take_revenue_off() -> None:
    state = fold(
        [
            (order("m1", product("a", 30.0), total=30), 100),
            (track("Order Refunded", "m2", total=-12.5), 200),
            (track("Order Refunded", "m3", products=[product("a", 2.0)]), 300),
            (track("Order Refunded", "m4", order_id="o"), 400),
        ]
    )
    assert state.order_count == 1
    assert state.revenue == 15.5


def test_columns_summarise_the_state() -> None:
    state = fold(
        [
            (viewed("m1", "a"), 100),
            (order("m2", product("a", 19.99), total=19.99), 200),
            (added("m3", "b", 3, price=1.1), 300),
        ]
    )
    assert state.columns() == {
        "first_seen_ms": 100,
        "last_seen_ms": 300,
        "event_count": 3,
        "order_count": 1,
        "revenue": 19.99,
        "last_order_ms": 200,
        "cart_quantity": 3,
        "cart_value": 3.3,
    }


# -- storing and merging ----------------------------------------------------------------------

SHOP: list[Event] = [
    (viewed("m1", "a", price=1.5, name="Shoe"), 100),
    (identify("m2", {"plan": "pro", "tags": ["a", "b"], "nested": {"x": 1.5}}), 110),
    (added("m3", "a", 2, price=1.5), 120),
    (cart_viewed("m4", product("a", 1.5, quantity=2), product("b", 2.0)), 130),
    (removed("m5", "b"), 140),
    (order("m6", product("a", 1.5, quantity=2), order_id="o1", total=3), 150),
    (added("m7", "c", 1, price=7.0), 160),
    (msg("page", "m8"), 170),
]


def test_json_round_trips_exactly() -> None:
    state = fold(SHOP)
    text = state.to_json()
    assert "\n" not in text and ": " not in text
    again = ProfileState.from_json(text)
    assert again == state
    assert again.to_json() == text
    assert again.cart() == state.cart()
    assert again.recently_viewed() == state.recently_viewed()
    assert ProfileState.from_json(ProfileState.empty().to_json()) == ProfileState.empty()
    # The state keeps working after a round trip.
    apply(again, added("m9", "c", 1), 180)
    assert cart_lines(again) == [("c", 2)]


def test_from_json_refuses_unknown_versions() -> None:
    with pytest.raises(ValueError, match="version"):
        ProfileState.from_json('{"v": 99}')
    with pytest.raises(ValueError, match="version"):
        ProfileState.from_json("[]")


def test_merge_returns_a_new_state_and_leaves_both_alone() -> None:
    a, b = fold(SHOP[:4]), fold(SHOP[4:])
    before = (a.to_json(), b.to_json())
    merged = a.merge(b)
    assert merged == fold(SHOP)
    assert (a.to_json(), b.to_json()) == before
    apply(merged, added("m9", "z"), 500)
    assert (a.to_json(), b.to_json()) == before


def test_states_compare_by_content() -> None:
    assert fold(SHOP) == fold(reversed(SHOP))
    assert fold(SHOP) != fold(SHOP[1:])
    assert ProfileState.empty() != "state"


# -- order independence -----------------------------------------------------------------------

PIDS = ["p1", "p2", "p3"]
prices = st.sampled_from([0.1, 0.2, 9.99, 19.95, "$1,299.00", "19,99 €", 3])
items = st.fixed_dictionaries(
    {"product_id": st.sampled_from(PIDS)},
    optional={
        "price": prices,
        "quantity": st.integers(0, 3),
        "name": st.sampled_from(["Shoe", "Hat"]),
        "currency": st.sampled_from(["usd", "EUR"]),
        "url": st.sampled_from(["https://x/1", "https://x/2"]),
    },
)
trait_maps = st.dictionaries(
    st.sampled_from(["plan", "name", "vip"]),
    st.none() | st.integers(0, 3) | st.sampled_from(["a", "b"]),
    max_size=3,
)
orders = st.builds(
    lambda products, total: {"products": products, **({} if total is None else {"total": total})},
    st.lists(items, max_size=3),
    st.none() | prices,
)


def _track(event: str) -> Any:
    return lambda properties: {"type": "track", "event": event, "properties": properties}


shapes = st.one_of(
    items.map(_track("Product Viewed")),
    items.map(_track("Product Added")),
    items.map(_track("Product Removed")),
    st.lists(items, max_size=3).map(lambda ps: _track("Cart Viewed")({"products": ps})),
    st.lists(items, max_size=3).map(lambda ps: _track("Checkout Started")({"products": ps})),
    orders.map(_track("Order Completed")),
    orders.map(_track("Order Refunded")),
    st.builds(
        lambda traits, context: {
            "type": "identify",
            "traits": traits,
            "context": {"traits": context},
        },
        trait_maps,
        trait_maps,
    ),
    st.just({"type": "page"}),
    st.sampled_from(["Signed Up", "Email Opened"]).map(lambda e: _track(e)({})),
)


@st.composite
def shops(draw: st.DrawFn) -> list[Event]:
    """A few events of a small shop: few products, timestamps that often collide."""
    bodies = draw(st.lists(shapes, max_size=30))
    ids = draw(
        st.lists(
            st.text("abcxyz", min_size=1, max_size=3),
            min_size=len(bodies),
            max_size=len(bodies),
            unique=True,
        )
    )
    events: list[Event] = []
    for body, message_id in zip(bodies, ids, strict=True):
        ts = draw(st.integers(0, 8))
        events.append(({**body, "messageId": message_id, "userId": "ada"}, ts))
    return events


def observed(state: ProfileState) -> tuple[Any, ...]:
    return (
        state.to_json(),
        state.cart(),
        state.recently_viewed(exclude_purchased=True),
        state.columns(),
    )


@PROPS
@given(events=shops(), data=st.data())
def test_folding_in_any_order_gives_the_same_state(
    events: list[Event], data: st.DataObject
) -> None:
    shuffled: Sequence[Event] = data.draw(st.permutations(events))
    one, other = fold(events), fold(shuffled)
    assert one == other
    assert observed(one) == observed(other)


@PROPS
@given(events=shops(), data=st.data())
def test_merging_two_folds_equals_folding_the_union(
    events: list[Event], data: st.DataObject
) -> None:
    sides = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    a = fold(e for e, side in zip(events, sides, strict=True) if side)
    b = fold(e for e, side in zip(events, sides, strict=True) if not side)
    whole = fold(events)
    assert a.merge(b) == whole
    assert b.merge(a) == whole
    assert observed(a.merge(b)) == observed(whole)


@PROPS
@given(events=shops(), data=st.data())
def test_merging_is_associative_and_empty_is_neutral(
    events: list[Event], data: st.DataObject
) -> None:
    parts = data.draw(st.lists(st.integers(0, 2), min_size=len(events), max_size=len(events)))
    a, b, c = (fold(e for e, p in zip(events, parts, strict=True) if p == k) for k in range(3))
    assert a.merge(b).merge(c) == a.merge(b.merge(c)) == fold(events)
    assert a.merge(ProfileState.empty()) == a == ProfileState.empty().merge(a)


@PROPS
@given(events=shops())
def test_json_round_trips_any_state(events: list[Event]) -> None:
    state = fold(events)
    again = ProfileState.from_json(state.to_json())
    assert again == state
    assert again.to_json() == state.to_json()
    assert observed(again) == observed(state)


@PROPS
@given(events=shops(), data=st.data())
def test_folding_onto_a_stored_state_equals_folding_everything(
    events: list[Event], data: st.DataObject
) -> None:
    cut = data.draw(st.integers(0, len(events)))
    stored = ProfileState.from_json(fold(events[:cut]).to_json())
    assert fold(events[cut:], stored) == fold(events)
