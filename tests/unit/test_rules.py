"""Targeting rules: validation, every operator and edge, the trace, the text and the waterfall."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tidings.profiles.ecommerce import normalize
from tidings.profiles.state import ProfileState
from tidings.rules import (
    EventFact,
    OpenContext,
    ProfileFacts,
    bucket,
    describe,
    evaluate,
    parse_rule,
    rule_json,
    run_waterfall,
)
from tidings.rules.model import parse_duration

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)  # a Monday
NOW_MS = int(NOW.timestamp() * 1000)
HOUR_MS = 3_600_000
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def state_of(*events: tuple[dict[str, Any], int]) -> ProfileState:
    state = ProfileState.empty()
    for i, (message, ts) in enumerate(events):
        message = {"messageId": f"m{i}", "userId": "ada", **message}
        state.apply(message, normalize(message), ts)
    return state


def identify(ts: int = NOW_MS - HOUR_MS, **traits: Any) -> tuple[dict[str, Any], int]:
    return {"type": "identify", "traits": traits}, ts


def track(event: str, ts: int, **properties: Any) -> tuple[dict[str, Any], int]:
    return {"type": "track", "event": event, "properties": properties}, ts


class Log:
    """An events loader over a fixed list, as the content service's indexed query answers."""

    def __init__(self, events: Sequence[tuple[str, int, dict[str, Any]]]) -> None:
        self.events = events
        self.calls: list[tuple[str, int | None]] = []

    def __call__(self, name: str, since_ms: int | None) -> list[EventFact]:
        self.calls.append((name, since_ms))
        found = [
            EventFact(ts, props)
            for n, ts, props in self.events
            if n == name and (since_ms is None or ts >= since_ms)
        ]
        return sorted(found, key=lambda e: e.timestamp_ms, reverse=True)


def facts(state: ProfileState | None = None, log: Log | None = None, **kw: Any) -> ProfileFacts:
    return ProfileFacts(state, NOW_MS, events=log, **kw)


def ctx(**kw: Any) -> OpenContext:
    return OpenContext(**{"now": NOW, "recipient": "ada@example.com", "block_id": "b1", **kw})


def holds(
    rule: dict[str, Any], f: ProfileFacts | None = None, c: OpenContext | None = None
) -> bool:
    return evaluate(parse_rule(rule), f or facts(), c or ctx()).result


def trait(name: str, op: str, value: Any = None, **kw: Any) -> dict[str, Any]:
    out = {"type": "trait", "trait": name, "op": op, **kw}
    if value is not None:
        out["value"] = value
    return out


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "where", "why"),
    [
        ({"type": "trait", "trait": "x", "op": "gt", "value": "a"}, ("trait",), "needs a number"),
        ({"type": "trait", "trait": "x", "op": "in", "value": 3}, ("trait",), "needs a list"),
        ({"type": "trait", "trait": "x", "op": "regex", "value": "("}, ("trait",), "compile"),
        ({"type": "trait", "trait": "x", "op": "exists", "value": 1}, ("trait",), "no value"),
        ({"type": "trait", "trait": "x", "op": "between", "value": [5, 1]}, ("trait",), "low"),
        ({"type": "event", "event": "A", "within": "7 days"}, ("event",), "not a duration"),
        ({"type": "event", "event": "A", "min": 3, "max": 1}, ("event",), "at least min"),
        (
            {"type": "state", "field": "cart_value", "op": "regex", "value": "x"},
            ("state",),
            "a number",
        ),
        (
            {"type": "context", "field": "weekday", "op": "eq", "value": "funday"},
            ("context",),
            "weekday",
        ),
        (
            {"type": "context", "field": "date", "op": "eq", "value": "tomorrow"},
            ("context",),
            "ISO",
        ),
        ({"type": "bucket", "op": "contains", "value": "1"}, ("bucket",), "0-99"),
        ({"type": "all", "rules": []}, ("all", "rules"), "at least 1"),
        ({"type": "maybe"}, (), "does not match any of the expected tags"),
        (
            {"type": "trait", "trait": "x", "op": "eq", "value": 1, "colour": "red"},
            ("trait", "colour"),
            "Extra",
        ),
    ],
)
def test_an_invalid_rule_names_the_node_and_the_reason(
    rule: dict[str, Any], where: tuple[str, ...], why: str
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_rule(rule)
    [error] = info.value.errors()[:1]
    assert tuple(str(p) for p in error["loc"])[: len(where)] == where
    assert why.lower() in error["msg"].lower()


def test_a_bad_node_deep_in_the_tree_is_located_by_its_path() -> None:
    rule = {
        "type": "all",
        "rules": [
            {"type": "always"},
            {"type": "not", "rule": {"type": "trait", "trait": "x", "op": "gt", "value": "a"}},
        ],
    }
    with pytest.raises(ValidationError) as info:
        parse_rule(rule)
    loc = info.value.errors()[0]["loc"]
    assert loc[:5] == ("all", "rules", 1, "not", "rule")


def test_trees_too_deep_or_too_large_are_refused() -> None:
    deep: dict[str, Any] = {"type": "always"}
    for _ in range(20):
        deep = {"type": "not", "rule": deep}
    with pytest.raises(ValueError, match="nest at most"):
        parse_rule(deep)
    wide = {"type": "any", "rules": [{"type": "all", "rules": [{"type": "always"}] * 100}] * 5}
    with pytest.raises(ValueError, match="at most 400 nodes"):
        parse_rule(wide)


def test_stored_json_round_trips_and_leaves_defaults_out() -> None:
    rule = parse_rule({"type": "event", "event": "Product Added", "within": "24h", "where": []})
    stored = rule_json(rule)
    assert stored == {"type": "event", "event": "Product Added", "within": "24h"}
    assert parse_rule(stored) == rule


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("24h", 86400), ("7d", 604800), ("2w", 1209600)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


# -- traits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (trait("country", "eq", "fr"), True),  # case-insensitive by default
        (trait("country", "eq", "fr", case_sensitive=True), False),
        (trait("country", "ne", "DE"), True),
        (trait("country", "in", ["DE", "FR"]), True),
        (trait("country", "not_in", ["DE", "FR"]), False),
        (trait("email", "contains", "@EXAMPLE"), True),
        (trait("email", "ends_with", "example.com"), True),
        (trait("email", "starts_with", "bob"), False),
        (trait("email", "regex", r"^ada@.*\.com$"), True),
        (trait("plan", "exists"), True),
        (trait("nickname", "exists"), False),
        (trait("nickname", "not_exists"), True),
        (trait("ltv", "gt", 100), True),  # a numeric string compares as a number
        (trait("ltv", "between", [100, 200]), True),
        (trait("age", "gte", 30), True),
        (trait("age", "lt", 30), False),
        (trait("vip", "eq", True), True),  # "true" string vs boolean
        (trait("tags", "contains", "shoes"), True),  # list membership
        (trait("tags", "contains", "hats"), False),
        (trait("address.city", "eq", "Paris"), True),  # dotted path
        (trait("signed_up_at", "before", "2026-01-01"), True),
        (trait("signed_up_at", "after", "2025-06-01T00:00:00Z"), True),
        (trait("last_login", "within_last", "7d"), True),
        (trait("last_login", "not_within_last", "1d"), True),
        (trait("epoch_ms", "within_last", "1d"), True),  # epoch milliseconds
        (trait("epoch_s", "within_last", "1d"), True),  # epoch seconds
    ],
)
def test_trait_operators(rule: dict[str, Any], expected: bool) -> None:
    state = state_of(
        identify(
            country="FR",
            email="Ada@Example.com",
            plan="gold",
            ltv="149.90",
            age=36,
            vip="true",
            tags=["shoes", "bags"],
            address={"city": "Paris"},
            signed_up_at="2025-09-14T08:00:00Z",
            last_login=(NOW - timedelta(days=3)).isoformat(),
            epoch_ms=NOW_MS - HOUR_MS,
            epoch_s=(NOW_MS - HOUR_MS) // 1000,
        )
    )
    assert holds(rule, facts(state)) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", "FR", False),
        ("ne", "FR", True),  # someone without a country is not in France
        ("in", ["FR"], False),
        ("not_in", ["FR"], True),
        ("gt", 1, False),
        ("regex", "x", False),
        ("before", "2026-01-01", False),
        ("not_within_last", "1d", True),
    ],
)
def test_a_missing_trait_makes_only_negative_conditions_true(
    op: str, value: Any, expected: bool
) -> None:
    trace = evaluate(parse_rule(trait("country", op, value)), facts(), ctx())
    assert trace.result is expected
    assert "not set" in trace.reason


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (trait("x", "gt", 5), "not a number"),
        (trait("x", "gt", 5), {"a": 1}),
        (trait("x", "gt", 5), True),  # a boolean is not a number
        (trait("x", "before", "2026-01-01"), "someday"),
        (trait("x", "regex", "a"), {"nested": True}),
        (trait("x", "starts_with", "a"), 12),
    ],
)
def test_wrong_types_are_false_with_a_reason(rule: dict[str, Any], value: Any) -> None:
    trace = evaluate(parse_rule(rule), facts(state_of(identify(x=value))), ctx())
    assert trace.result is False
    assert "cannot compare" in trace.reason


def test_a_catastrophic_pattern_times_out_as_false() -> None:
    rule = trait("x", "regex", r"^(a|aa)+$")
    trace = evaluate(parse_rule(rule), facts(state_of(identify(x="a" * 60 + "!"))), ctx())
    assert trace.result is False
    assert "timed out" in trace.reason


# -- derived state -----------------------------------------------------------------------------


def shopper() -> ProfileState:
    t = NOW_MS - 10 * 24 * HOUR_MS
    return state_of(
        identify(first_name="Ada"),
        track("Product Viewed", t, product_id="p1", url="https://s/p1", price=10),
        track(
            "Order Completed",
            t + HOUR_MS,
            order_id="o1",
            total=120.5,
            products=[{"product_id": "p1", "price": 120.5}],
        ),
        track("Product Added", NOW_MS - HOUR_MS, product_id="p2", url="https://s/p2", price=30),
        track("Product Added", NOW_MS - HOUR_MS, product_id="p3", url="https://s/p3", price=25),
    )


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("cart_quantity", "eq", 2, True),
        ("cart_items", "gte", 2, True),
        ("cart_value", "gt", 50, True),
        ("cart_value", "between", [55, 55], True),
        ("order_count", "eq", 1, True),
        ("lifetime_revenue", "gte", 120.5, True),
        ("days_since_last_order", "gt", 9, True),
        ("days_since_last_order", "lt", 9, False),
        ("days_since_first_seen", "gte", 10, True),
        ("viewed_count", "eq", 1, True),
        ("event_count", "eq", 5, True),
    ],
)
def test_derived_state(field: str, op: str, value: Any, expected: bool) -> None:
    rule = {"type": "state", "field": field, "op": op, "value": value}
    assert holds(rule, facts(shopper())) is expected


def test_an_empty_profile_has_an_empty_cart_and_no_last_order() -> None:
    empty = facts()
    assert holds({"type": "state", "field": "cart_quantity", "op": "eq", "value": 0}, empty)
    assert not holds({"type": "state", "field": "cart_value", "op": "gt", "value": 0}, empty)
    rule = {"type": "state", "field": "days_since_last_order", "op": "gt", "value": 30}
    assert not holds(rule, empty)  # never ordered: the number does not apply
    assert holds({"type": "state", "field": "days_since_last_order", "op": "not_exists"}, empty)


# -- behaviour ---------------------------------------------------------------------------------


def test_added_in_the_last_day_and_no_order_since() -> None:
    rule = {
        "type": "all",
        "rules": [
            {"type": "event", "event": "Product Added", "within": "24h"},
            {"type": "event", "event": "Order Completed", "since_last": "Product Added", "max": 0},
        ],
    }
    added = ("Product Added", NOW_MS - 2 * HOUR_MS, {"category": "Shoes"})
    abandoned = Log([added, ("Order Completed", NOW_MS - 48 * HOUR_MS, {})])
    assert holds(rule, facts(log=abandoned))
    bought = Log([added, ("Order Completed", NOW_MS - HOUR_MS, {})])
    assert not holds(rule, facts(log=bought))
    stale = Log([("Product Added", NOW_MS - 30 * HOUR_MS, {})])
    assert not holds(rule, facts(log=stale))


def test_counts_property_filters_and_windows() -> None:
    log = Log(
        [
            ("Product Viewed", NOW_MS - 1 * HOUR_MS, {"category": "Shoes", "price": 90}),
            ("Product Viewed", NOW_MS - 2 * HOUR_MS, {"category": "shoes", "price": 40}),
            ("Product Viewed", NOW_MS - 3 * HOUR_MS, {"category": "Hats", "price": 20}),
            ("Product Viewed", NOW_MS - 200 * HOUR_MS, {"category": "Shoes", "price": 300}),
            ("Product Viewed", NOW_MS + HOUR_MS, {"category": "Shoes"}),  # after "now"
        ]
    )
    shoes = [{"property": "category", "op": "eq", "value": "Shoes"}]
    base = {"type": "event", "event": "Product Viewed"}
    assert holds({**base, "where": shoes, "min": 3}, facts(log=log))
    assert not holds({**base, "where": shoes, "min": 4}, facts(log=log))  # the future one
    assert holds({**base, "where": shoes, "within": "7d", "min": 2, "max": 2}, facts(log=log))
    pricey = [*shoes, {"property": "price", "op": "gte", "value": 50}]
    assert holds({**base, "where": pricey, "within": "1d", "max": 1}, facts(log=log))
    assert holds({"type": "event", "event": "Email Opened", "max": 0}, facts(log=log))


def test_one_query_per_event_name_and_window_in_an_evaluation() -> None:
    log = Log([("Product Added", NOW_MS - HOUR_MS, {})])
    f = facts(log=log)
    rule = {
        "type": "any",
        "rules": [
            {"type": "event", "event": "Product Added", "within": "24h", "min": 2},
            {"type": "event", "event": "Product Added", "within": "24h", "max": 0},
            {"type": "event", "event": "Product Added", "within": "24h"},
        ],
    }
    assert holds(rule, f)
    assert len(log.calls) == 1


# -- the open's context ------------------------------------------------------------------------


def test_local_time_and_dst() -> None:
    rule = {"type": "context", "field": "hour", "op": "eq", "value": 13}
    # 12:00 UTC is 13:00 in Paris in November (CET, UTC+1) ...
    assert holds(rule, c=ctx(timezone="Europe/Paris"))
    # ... and 14:00 in July (CEST, UTC+2)
    summer = ctx(now=datetime(2026, 7, 6, 12, 0, tzinfo=UTC), timezone="Europe/Paris")
    assert not holds(rule, c=summer)
    assert holds({**rule, "value": 14}, c=summer)
    # the night the clocks go back: 00:30 UTC on 2026-10-25 is 02:30 CEST, 01:30 UTC is 02:30 CET
    for utc_hour in (0, 1):
        at = datetime(2026, 10, 25, utc_hour, 30, tzinfo=UTC)
        assert holds({**rule, "value": 2}, c=ctx(now=at, timezone="Europe/Paris"))


def test_weekday_and_date_follow_the_recipients_zone() -> None:
    # Monday 12:00 UTC is already Tuesday in Auckland (UTC+13 in November)
    weekday = {"type": "context", "field": "weekday", "op": "in", "value": ["tue", "wed"]}
    assert holds(weekday, c=ctx(timezone="Pacific/Auckland"))
    assert not holds(weekday, c=ctx(timezone="America/New_York"))
    date = {"type": "context", "field": "date", "op": "eq", "value": "2026-11-24"}
    assert holds(date, c=ctx(timezone="Pacific/Auckland"))
    before = {"type": "context", "field": "date", "op": "before", "value": "2026-11-24"}
    assert holds(before, c=ctx(timezone="America/New_York"))


def test_an_unknown_time_zone_reads_as_utc() -> None:
    rule = {"type": "context", "field": "hour", "op": "eq", "value": 12}
    assert holds(rule, c=ctx(timezone="Mars/Olympus_Mons"))
    assert holds(rule, c=ctx(timezone="../../etc/passwd"))


def test_device_client_country_and_machine() -> None:
    c = ctx(device="mobile", client="apple_mail", country="FR", machine=True)
    assert holds({"type": "context", "field": "device", "op": "eq", "value": "mobile"}, c=c)
    assert holds({"type": "context", "field": "client", "op": "in", "value": ["apple_mail"]}, c=c)
    assert holds({"type": "context", "field": "country", "op": "ne", "value": "DE"}, c=c)
    assert holds({"type": "context", "field": "machine", "op": "eq", "value": True}, c=c)
    assert not holds({"type": "context", "field": "country", "op": "exists"}, c=ctx())


# -- audiences and buckets ---------------------------------------------------------------------


def test_audience_membership() -> None:
    vip = facts(audiences=frozenset({"vip"}))
    assert holds({"type": "audience", "audience": "vip"}, vip)
    assert not holds({"type": "audience", "audience": "vip", "member": False}, vip)
    assert holds({"type": "audience", "audience": "vip", "member": False}, facts())


def test_buckets_are_stable_and_spread() -> None:
    assert bucket("ada@example.com", "b1") == bucket("ada@example.com", "b1")
    counts = [0] * 100
    for i in range(20_000):
        counts[bucket(f"user{i}@example.com", "b1")] += 1
    assert min(counts) > 120 and max(counts) < 290  # about 200 each
    holdout = {"type": "bucket", "op": "lt", "value": 10}
    share = sum(holds(holdout, c=ctx(recipient=f"u{i}")) for i in range(2000)) / 2000
    assert 0.07 < share < 0.13
    salted = [bucket(f"u{i}", "b1", "s") == bucket(f"u{i}", "b1") for i in range(500)]
    assert sum(salted) < 30  # another salt is another split


# -- the human-readable form and the trace -----------------------------------------------------


def test_describe() -> None:
    rule = parse_rule(
        {
            "type": "all",
            "rules": [
                {"type": "state", "field": "cart_value", "op": "gt", "value": 50},
                {"type": "not", "rule": trait("country", "eq", "FR")},
                {
                    "type": "any",
                    "rules": [
                        {"type": "event", "event": "Product Added", "within": "24h"},
                        {"type": "audience", "audience": "vip"},
                    ],
                },
            ],
        }
    )
    assert describe(rule) == (
        "cart value > 50 AND NOT (country = 'FR') AND "
        "(performed 'Product Added' in the last 24h OR in audience 'vip')"
    )
    assert describe(
        parse_rule({"type": "event", "event": "Order Completed", "max": 0, "within": "7d"})
    ) == ("did not perform 'Order Completed' in the last 7d")
    assert describe(parse_rule({"type": "bucket", "op": "between", "value": [0, 9]})) == (
        "random bucket between 0 and 9"
    )


def test_the_trace_says_which_condition_decided() -> None:
    rule = parse_rule(
        {
            "type": "all",
            "rules": [
                {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0},
                trait("first_name", "eq", "Grace"),
                trait("plan", "exists"),
            ],
        }
    )
    trace = evaluate(rule, facts(shopper()), ctx())
    assert trace.result is False
    assert trace.reason == "rules[1] is false; 1 not evaluated"
    first, second = trace.children
    assert (first.result, first.reason) == (True, "cart quantity is 2")
    assert (second.path, second.result) == ("rule.rules[1]", False)
    assert second.reason == "trait first_name is 'Ada'"
    assert trace.as_dict()["children"][1]["rule"] == "first_name = 'Grace'"


# -- the waterfall -----------------------------------------------------------------------------


def test_the_first_matching_variant_with_content_wins() -> None:
    variants = [
        ("cart", parse_rule({"type": "state", "field": "cart_quantity", "op": "gt", "value": 0})),
        ("viewed", parse_rule({"type": "event", "event": "Product Viewed", "within": "7d"})),
        ("vip", parse_rule({"type": "audience", "audience": "vip"})),
        ("all", parse_rule({"type": "always"})),
    ]
    log = Log([("Product Viewed", NOW_MS - HOUR_MS, {})])
    result = run_waterfall(variants, facts(log=log), ctx())
    assert result.chosen == 1
    assert [s.outcome for s in result.steps] == ["no_match", "chosen"]
    # the viewed variant renders nothing (say, all since bought): fall through to the next
    empty = run_waterfall(
        variants, facts(log=log), ctx(), accept=lambda i: "no products" if i == 1 else None
    )
    assert empty.chosen == 3
    assert [s.outcome for s in empty.steps] == ["no_match", "fell_through", "no_match", "chosen"]
    assert empty.steps[1].reason == "no products"
    none = run_waterfall(variants[:3], facts(), ctx())
    assert none.chosen is None
    assert none.rules_ms >= 0


# -- properties --------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
comparisons = st.sampled_from(
    [
        ("eq", "a"),
        ("eq", 3),
        ("ne", True),
        ("in", ["a", 1, None]),
        ("not_in", [2.5]),
        ("contains", "a"),
        ("not_contains", "b"),
        ("starts_with", "x"),
        ("exists", None),
        ("not_exists", None),
        ("gt", 1),
        ("lte", -3.5),
        ("between", [0, 10]),
        ("regex", "^a.*"),
        ("before", "2026-01-01"),
        ("after", "2025-01-01T10:00:00+02:00"),
        ("within_last", "7d"),
        ("not_within_last", "1h"),
    ]
)
TRAIT_NAMES = ["a", "b", "c.d"]


@st.composite
def leaves(draw: st.DrawFn) -> dict[str, Any]:
    op, value = draw(comparisons)
    kind = draw(st.sampled_from(["trait", "state", "event", "bucket", "audience", "hour"]))
    if kind == "trait":
        out: dict[str, Any] = {
            "type": "trait",
            "trait": draw(st.sampled_from(TRAIT_NAMES)),
            "op": op,
        }
        if value is not None:
            out["value"] = value
        return out
    if kind == "state":
        return {
            "type": "state",
            "field": "cart_value",
            "op": "gt",
            "value": draw(st.integers(-5, 5)),
        }
    if kind == "event":
        return {
            "type": "event",
            "event": draw(st.sampled_from(["A", "B"])),
            "min": draw(st.integers(0, 3)),
            "within": draw(st.sampled_from([None, "1h", "7d"])),
            "where": [
                {"property": "p", "op": op, **({"value": value} if value is not None else {})}
            ],
        }
    if kind == "bucket":
        return {"type": "bucket", "op": "lt", "value": draw(st.integers(0, 100))}
    if kind == "audience":
        return {"type": "audience", "audience": draw(st.sampled_from(["vip", "new"]))}
    return {"type": "context", "field": "hour", "op": "between", "value": [8, 20]}


rules = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda r: {"type": "not", "rule": r}, inner),
        st.builds(lambda rs: {"type": "all", "rules": rs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda rs: {"type": "any", "rules": rs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=8,
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[ProfileFacts, OpenContext]:
    traits = draw(st.dictionaries(st.sampled_from(["a", "b", "c"]), json_values, max_size=3))
    state = state_of(({"type": "identify", "traits": traits}, NOW_MS - HOUR_MS))
    events = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["A", "B"]),
                st.integers(NOW_MS - 30 * 24 * HOUR_MS, NOW_MS + HOUR_MS),
                st.dictionaries(st.just("p"), json_values, max_size=1),
            ),
            max_size=6,
        )
    )
    zone = draw(st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata", "nowhere", ""]))
    audiences = frozenset(draw(st.lists(st.sampled_from(["vip", "new"]), max_size=2)))
    return (
        ProfileFacts(state, NOW_MS, events=Log(events), audiences=audiences),
        ctx(timezone=zone, recipient=draw(st.text(max_size=10))),
    )


@PROPS
@given(rules, worlds())
def test_evaluation_never_raises_and_not_not_is_the_rule(
    data: dict[str, Any], world: tuple[ProfileFacts, OpenContext]
) -> None:
    f, c = world
    rule = parse_rule(data)
    result = evaluate(rule, f, c).result
    assert isinstance(result, bool)
    negated = parse_rule({"type": "not", "rule": data})
    assert evaluate(negated, f, c).result is (not result)
    double = parse_rule({"type": "not", "rule": {"type": "not", "rule": data}})
    assert evaluate(double, f, c).result is result
    assert describe(rule)  # every valid rule reads as text


@PROPS
@given(rules)
def test_stored_form_round_trips(data: dict[str, Any]) -> None:
    rule = parse_rule(data)
    assert parse_rule(rule_json(rule)) == rule
