"""The identity graph: who is who, decided by rules, whatever order the events arrive in."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.identity.graph import (
    BLOCKED_VALUE,
    LIMIT_EXCEEDED,
    ExternalIdField,
    Identifier,
    IdentityGraph,
    IdentityRules,
    LinkEvent,
    Merge,
    extract_identifiers,
    profile_id,
    replay,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RULES = IdentityRules()


def uid(value: str) -> Identifier:
    return Identifier("user_id", value)


def anon(value: str) -> Identifier:
    return Identifier("anonymous_id", value)


def email(value: str) -> Identifier:
    return Identifier("email", value)


def event(message_id: str, minute: int, *identifiers: Identifier) -> LinkEvent:
    return LinkEvent(message_id, T0 + timedelta(minutes=minute), tuple(identifiers))


def message(type_: str, minute: int, message_id: str, **fields: Any) -> dict[str, Any]:
    stamp = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {"type": type_, "messageId": message_id, "timestamp": stamp, **fields}


def all_merges(graph: IdentityGraph) -> set[Merge]:
    return {m for members in graph.partition() for m in graph.merges_of(_pid(graph, members))}


def _pid(graph: IdentityGraph, members: frozenset[Identifier]) -> str:
    found = graph.profile_of(next(iter(members)))
    assert found is not None
    return found


# -- the stories ----------------------------------------------------------------------------------


def test_anonymous_browsing_then_identify_merges() -> None:
    graph = IdentityGraph()
    for i in range(3):
        page = graph.apply_message(message("page", i, f"p{i}", anonymousId="a1"))
        assert page.profile_id == profile_id(anon("a1"))
        assert page.merges == ()
    assert graph.linking_events() == ()  # single-identifier events are not kept

    done = graph.apply_message(
        message("identify", 5, "i1", anonymousId="a1", userId="u1", traits={"email": "a@x.io"})
    )
    assert done.profile_id == profile_id(uid("u1"))  # named after its user id from now on
    assert graph.identifiers_of(done.profile_id) == {uid("u1"), anon("a1"), email("a@x.io")}
    assert graph.profile_of(anon("a1")) == done.profile_id
    assert graph.identifiers_of(profile_id(anon("a1"))) == frozenset()  # merged away
    assert done.affected == {uid("u1"), anon("a1"), email("a@x.io")}
    assert done.conflicts == ()


def test_same_person_on_two_devices_via_user_id() -> None:
    graph = IdentityGraph()
    graph.apply_message(message("identify", 1, "m1", anonymousId="laptop", userId="u1"))
    graph.apply_message(message("track", 2, "m2", anonymousId="phone", event="Opened"))
    graph.apply_message(message("identify", 3, "m3", anonymousId="phone", userId="u1"))
    assert graph.partition() == {frozenset({uid("u1"), anon("laptop"), anon("phone")})}


def test_email_links_profiles_and_is_normalized() -> None:
    graph = IdentityGraph()
    graph.apply_message(
        message("identify", 1, "m1", anonymousId="a1", traits={"email": "  Ada@Example.COM "})
    )
    graph.apply_message(
        message("track", 2, "m2", anonymousId="a2", event="X",
                context={"traits": {"email": "ada@example.com"}})
    )  # fmt: skip
    assert graph.partition() == {frozenset({anon("a1"), anon("a2"), email("ada@example.com")})}
    # No user id yet: the profile is named after its highest-priority identifier, the email.
    assert graph.profile_of(anon("a1")) == profile_id(email("ada@example.com"))


def test_email_extraction_reads_traits_and_context_traits() -> None:
    msg = message(
        "track", 0, "m", userId="u1", event="X",
        traits={"email": "ONE@x.io"}, context={"traits": {"email": " two@X.io"}},
    )  # fmt: skip
    assert extract_identifiers(msg, RULES) == [uid("u1"), email("one@x.io"), email("two@x.io")]


def test_alias_links_previous_id_with_user_id() -> None:
    graph = IdentityGraph()
    graph.apply_message(message("page", 1, "m1", anonymousId="a1"))
    done = graph.apply_message(message("alias", 2, "m2", userId="u1", previousId="a1"))
    assert done.profile_id == profile_id(uid("u1"))
    assert graph.profile_of(anon("a1")) == done.profile_id
    assert [m.linked for m in done.merges] == [(uid("u1"), anon("a1"))]


def test_alias_previous_id_type_is_configurable() -> None:
    rules = IdentityRules(previous_id_type="user_id", limits={"user_id": 2})
    msg = message("alias", 0, "m", userId="new", previousId="old")
    assert extract_identifiers(msg, rules) == [uid("new"), uid("old")]
    graph = IdentityGraph(rules)
    graph.apply_message(msg)
    assert graph.partition() == {frozenset({uid("new"), uid("old")})}


def test_two_user_ids_never_merge_even_through_a_shared_device() -> None:
    graph = IdentityGraph()
    graph.apply(event("m1", 1, uid("u1"), anon("shared")))
    done = graph.apply(event("m2", 2, uid("u2"), anon("shared"), anon("own")))

    assert graph.partition() == {
        frozenset({uid("u1"), anon("shared")}),
        frozenset({uid("u2"), anon("own")}),
    }
    assert done.profile_id == profile_id(uid("u2"))
    (conflict,) = done.conflicts
    assert conflict.message_id == "m2"
    assert conflict.timestamp == T0 + timedelta(minutes=2)
    assert conflict.identifiers == (uid("u2"), anon("shared"))
    assert conflict.profiles == (profile_id(uid("u2")), profile_id(uid("u1")))
    assert (conflict.code, conflict.type, conflict.limit, conflict.count) == (
        LIMIT_EXCEEDED, "user_id", 1, 2,
    )  # fmt: skip
    assert "at most 1 user_id" in conflict.reason
    assert graph.conflicts == (conflict,)


def test_two_user_ids_never_merge_through_a_shared_email() -> None:
    graph = IdentityGraph()
    graph.apply(event("m1", 1, uid("u1"), email("team@x.io")))
    graph.apply(event("m2", 2, uid("u2"), email("team@x.io")))
    graph.apply(event("m3", 3, email("team@x.io"), anon("a9")))
    assert graph.profile_of(uid("u1")) != graph.profile_of(uid("u2"))
    assert graph.profile_of(anon("a9")) == graph.profile_of(uid("u1"))
    assert [c.message_id for c in graph.conflicts] == ["m2"]


def test_the_sixth_anonymous_id_is_refused() -> None:
    graph = IdentityGraph()
    for i in range(1, 6):
        assert graph.apply(event(f"m{i}", i, uid("u1"), anon(f"a{i}"))).conflicts == ()
    done = graph.apply(event("m6", 6, uid("u1"), anon("a6")))

    assert graph.identifiers_of(profile_id(uid("u1"))) == {uid("u1")} | {
        anon(f"a{i}") for i in range(1, 6)
    }
    assert graph.profile_of(anon("a6")) == profile_id(anon("a6"))
    (conflict,) = done.conflicts
    assert (conflict.type, conflict.limit, conflict.count) == ("anonymous_id", 5, 6)
    assert conflict.identifiers == (uid("u1"), anon("a6"))


def test_limits_are_configurable() -> None:
    graph = IdentityGraph(IdentityRules(limits={"user_id": 2, "anonymous_id": 1}))
    graph.apply(event("m1", 1, uid("u1"), anon("a1")))
    graph.apply(event("m2", 2, uid("u2"), anon("a1")))  # a second user id is now allowed
    done = graph.apply(event("m3", 3, uid("u2"), anon("a2")))  # a second anonymous id is not
    assert graph.profile_of(uid("u2")) == graph.profile_of(uid("u1"))
    assert [c.type for c in done.conflicts] == ["anonymous_id"]
    with pytest.raises(ValueError, match="at least 1"):
        IdentityRules(limits={"email": 0})


@pytest.mark.parametrize(
    "blocked", ["anonymous", "0", "null", "", "-1", "undefined", "NULL", " Anonymous ", "Undefined"]
)
def test_blocked_values_never_merge(blocked: str) -> None:
    graph = IdentityGraph()
    first = graph.apply_message(
        message("identify", 1, "m1", anonymousId="a1", userId=blocked, traits={"email": blocked})
    )
    graph.apply_message(
        message("identify", 2, "m2", anonymousId="a2", userId=blocked, traits={"email": blocked})
    )
    assert graph.partition() == {frozenset({anon("a1")}), frozenset({anon("a2")})}
    assert first.profile_id == profile_id(anon("a1"))
    assert {(i.identifier.type, i.code) for i in first.ignored} == {
        ("user_id", BLOCKED_VALUE),
        ("email", BLOCKED_VALUE),
    }
    assert graph.profile_of(uid(blocked)) is None
    assert graph.conflicts == ()


def test_an_event_with_only_blocked_values_belongs_to_no_profile() -> None:
    graph = IdentityGraph()
    done = graph.apply(event("m1", 1, uid("null"), anon("0")))
    assert done.profile_id is None
    assert len(done.ignored) == 2
    assert graph.partition() == frozenset()


def test_blocked_values_are_configurable() -> None:
    graph = IdentityGraph(IdentityRules(blocked=frozenset({"Guest"})))
    graph.apply(event("m1", 1, uid("guest"), anon("a1")))
    graph.apply(event("m2", 2, uid("null"), anon("a2")))  # no longer blocked with these rules
    assert graph.partition() == {frozenset({anon("a1")}), frozenset({uid("null"), anon("a2")})}


def test_external_ids_from_traits_and_context_external_ids() -> None:
    rules = IdentityRules(
        external=(
            ExternalIdField("phone", traits=("phone",)),
            ExternalIdField("ga_client_id", external_ids=("ga_client_id",), lowercase=True),
        )
    )
    assert rules.priority == ("user_id", "email", "phone", "ga_client_id", "anonymous_id")
    first = message(
        "identify", 1, "m1", anonymousId="a1", traits={"phone": "+33612345678"},
        context={"externalIds": [
            {"id": " GA1.2.3 ", "type": "ga_client_id", "collection": "users", "encoding": "none"},
            {"id": "ignored", "type": "not_configured"},
            "not an object",
        ]},
    )  # fmt: skip
    assert extract_identifiers(first, rules) == [
        Identifier("phone", "+33612345678"),
        Identifier("ga_client_id", "ga1.2.3"),
        anon("a1"),
    ]
    assert extract_identifiers(first, RULES) == [anon("a1")]  # not configured: not read

    graph = IdentityGraph(rules)
    graph.apply_message(first)
    graph.apply_message(
        message("track", 2, "m2", anonymousId="a2", event="X",
                context={"traits": {"phone": "+33612345678"}})
    )  # fmt: skip
    graph.apply_message(
        message("track", 3, "m3", anonymousId="a3", event="X",
                context={"externalIds": [{"id": "ga1.2.3", "type": "ga_client_id"}]})
    )  # fmt: skip
    assert len(graph.partition()) == 1
    assert graph.profile_of(anon("a3")) == profile_id(Identifier("phone", "+33612345678"))


def test_extraction_skips_wrong_shapes_and_reads_numeric_ids() -> None:
    msg = {"type": "identify", "userId": 42, "anonymousId": True, "traits": ["x"], "context": 3}
    assert extract_identifiers(msg, RULES) == [uid("42")]


def test_every_merge_is_explained() -> None:
    graph = IdentityGraph()
    graph.apply(event("m1", 1, anon("a1"), email("e@x.io")))
    done = graph.apply(event("m2", 2, uid("u1"), email("e@x.io"), anon("a2")))

    first, second = done.merges
    assert first == Merge(
        message_id="m2",
        timestamp=T0 + timedelta(minutes=2),
        linked=(uid("u1"), email("e@x.io")),
        profiles=(profile_id(uid("u1")), profile_id(email("e@x.io"))),
        into=profile_id(uid("u1")),
    )
    assert second.linked == (uid("u1"), anon("a2"))
    assert second.profiles == (profile_id(uid("u1")), profile_id(anon("a2")))
    history = graph.merges_of(profile_id(uid("u1")))
    assert [(m.message_id, m.linked[1]) for m in history] == [
        ("m1", anon("a1")),
        ("m2", email("e@x.io")),
        ("m2", anon("a2")),
    ]
    assert graph.merges_of("prof_unknown") == ()


def test_a_late_event_is_placed_in_canonical_order() -> None:
    # In arrival order u2 would be refused; but the late event happened first, so u2 wins a1
    # and the later link of u1 with a1 is the refused one.
    graph = IdentityGraph()
    graph.apply(event("m2", 2, uid("u1"), anon("a1")))
    late = graph.apply(event("m1", 1, uid("u2"), anon("a1")))

    assert late.replayed
    assert late.affected == {uid("u1"), uid("u2"), anon("a1")}
    assert graph.partition() == {frozenset({uid("u2"), anon("a1")}), frozenset({uid("u1")})}
    assert [c.message_id for c in graph.conflicts] == ["m2"]
    assert late.conflicts == ()
    assert [m.message_id for m in late.merges] == ["m1"]


def test_replaying_an_event_changes_nothing() -> None:
    graph = IdentityGraph()
    graph.apply(event("m1", 1, uid("u1"), anon("a1")))
    again = graph.apply(event("m1", 1, anon("a1"), uid("u1")))  # same event, ids in any order
    assert again.duplicate
    assert again.merges == ()
    assert again.profile_id == profile_id(uid("u1"))
    assert len(graph.linking_events()) == 1


def test_from_message_reads_time_and_id() -> None:
    linked = LinkEvent.from_message(
        message("identify", 3, "m9", userId="u", anonymousId="a"), RULES
    )
    assert linked.message_id == "m9"
    assert linked.timestamp == T0 + timedelta(minutes=3)
    assert linked.identifiers == (uid("u"), anon("a"))
    with pytest.raises(ValueError, match="timezone-aware"):
        LinkEvent("m", datetime(2026, 1, 1), ())


# -- order independence ---------------------------------------------------------------------------

PEOPLE = 4
POOL = (
    [uid(f"u{i}") for i in range(PEOPLE)]
    + [anon(f"device{i}") for i in range(6)]  # fewer devices than pairs: devices get shared
    + [email(f"p{i}@x.io") for i in range(3)]
    + [email("team@x.io"), uid("null"), anon("anonymous"), Identifier("phone", "+100")]
)

linking_events = st.builds(
    lambda mid, minute, ids: event(mid, minute, *ids),
    st.sampled_from([f"m{i}" for i in range(8)]),  # clashing messageIds and timestamps too
    st.integers(min_value=0, max_value=6),
    st.lists(st.sampled_from(POOL), min_size=1, max_size=4),
)
rule_sets = st.sampled_from(
    [
        IdentityRules(),
        IdentityRules(limits={"user_id": 1, "anonymous_id": 2, "email": 1, "phone": 1}),
        IdentityRules(limits={"user_id": 2, "anonymous_id": 1}, priority=("email", "user_id")),
    ]
)


def snapshot(graph: IdentityGraph) -> tuple[Any, ...]:
    ids = {i for members in graph.partition() for i in members}
    return (
        graph.partition(),
        frozenset(graph.conflicts),
        {i: graph.profile_of(i) for i in ids},
        {pid: graph.merges_of(pid) for pid in {graph.profile_of(i) for i in ids} if pid},
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_sets, data=st.data())
def test_arrival_order_does_not_matter(rules: IdentityRules, data: st.DataObject) -> None:
    events = data.draw(st.lists(linking_events, max_size=14), label="events")
    arrival = data.draw(st.permutations(events), label="arrival")

    canonical = replay(events, rules)
    graph = IdentityGraph(rules)
    for e in arrival:
        graph.apply(e)
    assert snapshot(graph) == snapshot(canonical)

    # Applying everything again, in yet another order, is a no-op.
    before = snapshot(graph)
    for e in reversed(arrival):
        again = graph.apply(e)
        assert again.merges == () and again.conflicts == () and not again.replayed
    assert snapshot(graph) == before

    # And the outcome obeys the rules.
    seen = {i for e in events for i in e.identifiers if not rules.is_blocked(i)}
    assert {i for members in graph.partition() for i in members} == seen
    for members in graph.partition():
        counts = Counter(i.type for i in members)
        assert all(counts[t] <= limit for t, limit in rules.limits.items())
    for conflict in graph.conflicts:
        assert graph.profile_of(conflict.identifiers[0]) != graph.profile_of(
            conflict.identifiers[1]
        )
    for merge in all_merges(graph):
        assert graph.profile_of(merge.linked[0]) == graph.profile_of(merge.linked[1])
