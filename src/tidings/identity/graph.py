"""The identity graph: which identifiers belong to one person, decided by rules, as pure logic.

An identifier is a pair ``(type, value)`` such as ``("user_id", "u_42")``,
``("anonymous_id", "3f2a…")`` or ``("email", "ada@example.com")``. A profile is a set of
identifiers; every identifier ever seen belongs to exactly one profile. An event that carries
two or more identifiers (an ``identify`` after anonymous browsing, an ``alias``, a ``track``
with both ids) is a *linking event*: it asks for their profiles to be merged. The rules, as in
Segment Unify, can refuse:

- **limits**: a profile holds at most ``limits[type]`` distinct values of a type (by default one
  ``user_id``, five ``anonymous_id`` and five ``email`` values). A merge that would exceed a limit
  is not done; a :class:`Conflict` says which event, which identifiers and why.
- **blocked values** (``null``, ``undefined``, ``anonymous``, ``0``, ``-1``, the empty string;
  compared trimmed and case-insensitively) are never identifiers: the event goes on without
  them and its :class:`Resolution` lists them as ignored.
- **priority**: an event's identifiers are considered highest-priority first; the first is the
  *anchor*, and each following one is merged into the anchor's profile if the limits allow.
  So ``identify(userId=u2)`` on a device already merged with ``u1`` gives ``u2`` a profile of
  its own (with the device's ids that still fit) and records the conflict with ``u1``'s.

**Order independence.** Events arrive late, out of order and more than once, yet the result
(the partition of identifiers into profiles, the merges and the conflicts) is a function of the
*set* of events, not of their arrival order. Merges are decided greedily in a canonical order
of linking events: by event timestamp, then messageId, then the identifiers themselves (a total
order, so ties cannot depend on arrival). Linking events, the refused ones included, connect
identifiers into *clusters*; events of different clusters share no identifier, so their
decisions never interact and the canonical replay of each cluster can be done alone. The graph
keeps every cluster's linking events (sorted; events with a single identifier change nothing
and are not kept) and applies a new linking event as follows:

- if it sorts after every event of the clusters it touches (the usual case), one greedy step
  on the current state is exactly what the canonical replay would do next;
- otherwise (a late event) the touched clusters are joined and replayed from singletons in
  canonical order, which recomputes their profiles, merges and conflicts;
- an event already applied (same timestamp, messageId and identifiers) changes nothing.

A cluster can be larger than a profile (a refused merge still joins clusters, because undoing
an earlier merge can make it acceptable), so a late event costs a replay of its cluster.

**Profile ids** are a function of the profile's identifiers: ``prof_`` and a hash of its
highest-priority identifier (see :func:`profile_id`), so a replay gives the same ids and a
profile holding a ``user_id`` is named after it for good. When profiles merge, the merged one
takes the id of the better top identifier; :class:`Merge` records the ids before and after.

**Persisting** maps onto three tables plus the linking events: identifiers → profile id (and
cluster), merges and conflicts keyed by the event (messageId, timestamp). After :meth:`apply`,
``Resolution.affected`` lists the identifiers whose rows may have changed.
"""

from __future__ import annotations

import functools
import hashlib
from bisect import insort
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"

DEFAULT_LIMITS: Mapping[str, int] = MappingProxyType({USER_ID: 1, ANONYMOUS_ID: 5, EMAIL: 5})
DEFAULT_BLOCKED: frozenset[str] = frozenset({"null", "undefined", "anonymous", "0", "-1", ""})

LIMIT_EXCEEDED = "limit_exceeded"
BLOCKED_VALUE = "blocked_value"


class Identifier(NamedTuple):
    """One way to recognise a person: ``("email", "ada@example.com")``."""

    type: str
    value: str


@functools.lru_cache(maxsize=1 << 14)
def profile_id(top: Identifier) -> str:
    """The id of the profile whose highest-priority identifier is ``top``: stable, opaque.
    (Memoized: the pipeline asks for a new identifier's id when it prefetches the batch's
    states and again when the graph places it.)"""
    digest = hashlib.sha256(f"{top.type}\x00{top.value}".encode()).hexdigest()
    return f"prof_{digest[:24]}"


@dataclass(frozen=True, slots=True)
class ExternalIdField:
    """Where one extra identifier type is read from a message.

    ``traits`` names keys looked up in ``traits`` and ``context.traits`` (for example
    ``("phone",)``); ``external_ids`` names the ``type`` of entries of
    ``context.externalIds`` (Segment's ``[{"id": ..., "type": ..., ...}]``), whose ``id`` is the
    value. ``lowercase`` trims and lower-cases values, for ids that are case-insensitive.
    """

    type: str
    traits: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()
    lowercase: bool = False


@dataclass(frozen=True, slots=True)
class IdentityRules:
    """What counts as an identifier and which merges are allowed.

    ``limits``: most distinct values of a type one profile may hold; types not listed have no
    limit. ``priority``: identifier types from most to least trusted; ``None`` means
    ``user_id``, ``email``, the external types in order, then ``anonymous_id``; unlisted types
    come after the listed ones, by name. ``blocked``: values that are never identifiers,
    compared trimmed and case-insensitively. ``external``: extra identifier types.
    ``previous_id_type``: the type an ``alias`` message's ``previousId`` is read as (an alias
    usually names an anonymous visitor; aliasing one user id to another needs
    ``"user_id"`` here and a ``user_id`` limit above one).
    """

    limits: Mapping[str, int] = field(default_factory=lambda: DEFAULT_LIMITS)
    priority: tuple[str, ...] | None = None
    blocked: frozenset[str] = DEFAULT_BLOCKED
    external: tuple[ExternalIdField, ...] = ()
    previous_id_type: str = ANONYMOUS_ID
    _rank: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _longest_blocked: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for type_, limit in self.limits.items():
            if limit < 1:
                raise ValueError(f"the limit for {type_!r} must be at least 1, not {limit}")
        order = self.priority
        if order is None:
            order = (USER_ID, EMAIL, *(f.type for f in self.external), ANONYMOUS_ID)
        if len(set(order)) != len(order):
            raise ValueError("priority lists a type twice")
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))
        object.__setattr__(self, "priority", tuple(order))
        object.__setattr__(self, "blocked", frozenset(_fold(v) for v in self.blocked))
        object.__setattr__(self, "_rank", MappingProxyType({t: i for i, t in enumerate(order)}))
        longest = max(map(len, self.blocked), default=0)
        object.__setattr__(self, "_longest_blocked", longest)

    def is_blocked(self, identifier: Identifier) -> bool:
        value = identifier.value
        # Folding never shortens a text (case folding maps a character to one or more), so a
        # value longer than every blocked one, with nothing to strip, cannot be blocked: the
        # common case (uuids, user ids, emails) skips the fold.
        if len(value) > self._longest_blocked and not (value[0].isspace() or value[-1].isspace()):
            return False
        return _fold(value) in self.blocked

    def rank(self, type_: str) -> tuple[int, str]:
        """Sorts types highest priority first; unlisted types after the listed, by name."""
        return (self._rank.get(type_, len(self._rank)), type_)

    def order_key(self, identifier: Identifier) -> tuple[int, str, str]:
        """Sorts identifiers highest priority first; ties by type name, then value."""
        return (*self.rank(identifier.type), identifier.value)

    def canonical(self, identifiers: Iterable[Identifier]) -> tuple[Identifier, ...]:
        """The identifiers without repeats, highest priority first."""
        return tuple(sorted(set(identifiers), key=self.order_key))


def _fold(value: str) -> str:
    return value.strip().casefold()


def _text(value: Any) -> str | None:
    """An id as text: strings as sent, numbers as Segment's libraries send them; else nothing."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def normalize_email(value: str) -> str:
    return value.strip().lower()


def extract_identifiers(message: Mapping[str, Any], rules: IdentityRules) -> list[Identifier]:
    """Every identifier a Segment message carries, in priority order, without repeats.

    Reads ``userId``, ``anonymousId``, an alias's ``previousId`` (as ``rules.previous_id_type``),
    ``email`` from ``traits`` or ``context.traits`` (trimmed, lower-cased) and the external ids
    of ``rules.external``. Blocked values are *included*: :meth:`IdentityGraph.apply` drops them
    and says so. Fields of the wrong shape are skipped, never an error.
    """
    # The pipeline calls this for every event: the common shapes (string ids, no external
    # ids) take the short paths.
    found: list[Identifier] = []
    user_id = message.get("userId")
    if user_id is not None:
        text = user_id if user_id.__class__ is str else _text(user_id)
        if text is not None:
            found.append(Identifier(USER_ID, text))
    anonymous_id = message.get("anonymousId")
    if anonymous_id is not None:
        text = anonymous_id if anonymous_id.__class__ is str else _text(anonymous_id)
        if text is not None:
            found.append(Identifier(ANONYMOUS_ID, text))
    if message.get("type") == "alias":
        text = _text(message.get("previousId"))
        if text is not None:
            found.append(Identifier(rules.previous_id_type, text))

    context = message.get("context")
    if context.__class__ is not dict and not isinstance(context, Mapping):
        context = {}
    trait_maps = []
    for traits in (message.get("traits"), context.get("traits")):
        if traits is not None and (traits.__class__ is dict or isinstance(traits, Mapping)):
            trait_maps.append(traits)
            email = traits.get("email")
            if email.__class__ is str:
                found.append(Identifier(EMAIL, normalize_email(email)))

    if rules.external:
        _add_external(found, context, trait_maps, rules)
    if len(found) < 2:
        return found
    if len(found) == 2 and rules.order_key(found[0]) < rules.order_key(found[1]):
        return found
    return list(rules.canonical(found))


def _add_external(
    found: list[Identifier],
    context: Mapping[str, Any],
    trait_maps: list[Mapping[str, Any]],
    rules: IdentityRules,
) -> None:
    def add(type_: str, raw: Any, lowercase: bool) -> None:
        text = _text(raw)
        if text is not None:
            found.append(Identifier(type_, text.strip().lower() if lowercase else text))

    external_ids = context.get("externalIds")
    entries = (
        [e for e in external_ids if isinstance(e, Mapping)]
        if isinstance(external_ids, list)
        else []
    )
    for spec in rules.external:
        for traits in trait_maps:
            for key in spec.traits:
                add(spec.type, traits.get(key), spec.lowercase)
        for entry in entries:
            if entry.get("type") in spec.external_ids:
                add(spec.type, entry.get("id"), spec.lowercase)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """What the graph needs of an event: its id, its time and its identifiers."""

    message_id: str
    timestamp: datetime
    identifiers: tuple[Identifier, ...]

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")

    @property
    def key(self) -> tuple[datetime, str, tuple[Identifier, ...]]:
        """The canonical order of events: timestamp, then messageId, then identifiers."""
        return (self.timestamp, self.message_id, self.identifiers)

    @classmethod
    def from_message(cls, message: Mapping[str, Any], rules: IdentityRules) -> LinkEvent:
        """The link event of a stored message (``timestamp`` as enriched at ingest)."""
        raw = message.get("timestamp") or message.get("receivedAt")
        if not isinstance(raw, str):
            raise ValueError("the message has no timestamp")
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls(
            message_id=str(message.get("messageId") or ""),
            timestamp=moment.astimezone(UTC),
            identifiers=tuple(extract_identifiers(message, rules)),
        )


@dataclass(frozen=True, slots=True)
class Merge:
    """Event ``message_id`` (at ``timestamp``) linked ``linked[0]`` (the anchor) with
    ``linked[1]``, whose profiles ``profiles`` became profile ``into``."""

    message_id: str
    timestamp: datetime
    linked: tuple[Identifier, Identifier]
    profiles: tuple[str, str]
    into: str


@dataclass(frozen=True, slots=True)
class Conflict:
    """A merge the rules refused: event ``message_id`` tried to link ``identifiers[0]`` (the
    anchor, in profile ``profiles[0]``) with ``identifiers[1]`` (in ``profiles[1]``), but the
    profile would hold ``count`` values of ``type`` where ``limit`` are allowed."""

    message_id: str
    timestamp: datetime
    identifiers: tuple[Identifier, Identifier]
    profiles: tuple[str, str]
    code: str
    type: str
    limit: int
    count: int

    @property
    def reason(self) -> str:
        return (
            f"a profile may hold at most {self.limit} {self.type} value(s); "
            f"merging would give it {self.count}"
        )


@dataclass(frozen=True, slots=True)
class Ignored:
    """An identifier an event carried that was not used, and why (``blocked_value``)."""

    identifier: Identifier
    code: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """What applying one event did.

    ``profile_id``: the profile the event belongs to (its anchor's), ``None`` when it carried
    no usable identifier. ``merges``/``conflicts``: those this event made. ``affected``: the
    identifiers whose profile may have changed (a whole cluster after a replay).
    """

    profile_id: str | None
    merges: tuple[Merge, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    ignored: tuple[Ignored, ...] = ()
    affected: frozenset[Identifier] = frozenset()
    replayed: bool = False
    duplicate: bool = False


class _Profile:
    __slots__ = ("counts", "id", "members", "top")

    def __init__(self, identifier: Identifier) -> None:
        self.top = identifier
        self.id = profile_id(identifier)
        self.members = {identifier}
        self.counts: Counter[str] = Counter({identifier.type: 1})


class _Cluster:
    """Identifiers connected by linking events, with those events (sorted) and their outcome."""

    __slots__ = ("conflicts", "event_set", "events", "identifiers", "merges")

    def __init__(self, identifier: Identifier) -> None:
        self.identifiers = {identifier}
        self.events: list[LinkEvent] = []
        self.event_set: set[LinkEvent] = set()
        self.merges: list[Merge] = []
        self.conflicts: list[Conflict] = []


class IdentityGraph:
    """Identifiers grouped into profiles by linking events under ``rules``; see the module."""

    def __init__(self, rules: IdentityRules | None = None) -> None:
        self.rules = rules or IdentityRules()
        self._profile: dict[Identifier, _Profile] = {}
        self._cluster: dict[Identifier, _Cluster] = {}
        self._by_id: dict[str, _Profile] = {}

    # -- reading ----------------------------------------------------------------------------

    def profile_of(self, identifier: Identifier) -> str | None:
        """The id of the profile holding ``identifier``, or ``None`` if it was never seen."""
        profile = self._profile.get(identifier)
        return profile.id if profile is not None else None

    def identifiers_of(self, profile_id: str) -> frozenset[Identifier]:
        """The identifiers of a profile (empty for an unknown or merged-away id)."""
        profile = self._by_id.get(profile_id)
        return frozenset(profile.members) if profile is not None else frozenset()

    def merges_of(self, profile_id: str) -> tuple[Merge, ...]:
        """How a profile came to be: its merges by timestamp, messageId, then identifiers."""
        profile = self._by_id.get(profile_id)
        if profile is None:
            return ()
        cluster = self._cluster[profile.top]
        found = [m for m in cluster.merges if m.linked[0] in profile.members]
        return tuple(sorted(found, key=self._merge_key))

    @property
    def conflicts(self) -> tuple[Conflict, ...]:
        """Every refused merge, by timestamp, messageId, then identifiers."""
        found = [c for cluster in self._clusters() for c in cluster.conflicts]
        return tuple(sorted(found, key=self._conflict_key))

    def partition(self) -> frozenset[frozenset[Identifier]]:
        """All profiles as sets of identifiers."""
        return frozenset(frozenset(p.members) for p in self._by_id.values())

    def linking_events(self) -> tuple[LinkEvent, ...]:
        """The kept events, in canonical order: replaying them rebuilds every merge."""
        return tuple(sorted((e for c in self._clusters() for e in c.events), key=_event_key))

    def _clusters(self) -> list[_Cluster]:
        return list({id(c): c for c in self._cluster.values()}.values())

    # -- writing ----------------------------------------------------------------------------

    def place(self, identifier: Identifier) -> str:
        """The id of the profile holding ``identifier`` (not blocked), which becomes a profile
        of its own if it was never seen: what :meth:`apply` does with an event carrying only
        this identifier, without building its resolution."""
        profile = self._profile.get(identifier)
        if profile is None:
            self._add_singleton(identifier)
            profile = self._profile[identifier]
        return profile.id

    def apply_message(self, message: Mapping[str, Any]) -> Resolution:
        """:meth:`apply` for a stored Segment message."""
        return self.apply(LinkEvent.from_message(message, self.rules))

    def apply(self, event: LinkEvent) -> Resolution:
        """Place the event's identifiers into profiles; merge where it links them and the
        rules allow; the outcome does not depend on the order events are applied in."""
        usable = [i for i in event.identifiers if not self.rules.is_blocked(i)]
        ignored = tuple(
            Ignored(i, BLOCKED_VALUE)
            for i in self.rules.canonical(event.identifiers)
            if self.rules.is_blocked(i)
        )
        identifiers = self.rules.canonical(usable)
        if not identifiers:
            return Resolution(None, ignored=ignored)
        new = [i for i in identifiers if i not in self._profile]
        for identifier in new:
            self._add_singleton(identifier)
        anchor = identifiers[0]
        if len(identifiers) == 1:
            return Resolution(self._profile[anchor].id, ignored=ignored, affected=frozenset(new))

        link = LinkEvent(event.message_id, event.timestamp, identifiers)
        cluster = self._join({id(c): c for c in map(self._cluster.__getitem__, identifiers)})
        if link in cluster.event_set:
            return Resolution(self._profile[anchor].id, ignored=ignored, duplicate=True)
        late = bool(cluster.events) and _event_key(link) < _event_key(cluster.events[-1])
        cluster.event_set.add(link)
        if late:
            insort(cluster.events, link, key=_event_key)
            merges, conflicts = self._replay(cluster, link)
            affected = frozenset(cluster.identifiers)
        else:
            cluster.events.append(link)
            touched = {id(self._profile[i]): self._profile[i] for i in identifiers}
            affected = frozenset(i for p in touched.values() for i in p.members)
            merges, conflicts = self._step(cluster, link)
        return Resolution(
            self._profile[anchor].id,
            merges=merges,
            conflicts=conflicts,
            ignored=ignored,
            affected=affected,
            replayed=late,
        )

    def _add_singleton(self, identifier: Identifier) -> None:
        profile = _Profile(identifier)
        self._profile[identifier] = profile
        self._by_id[profile.id] = profile
        self._cluster[identifier] = _Cluster(identifier)

    def _join(self, clusters: dict[int, _Cluster]) -> _Cluster:
        """One cluster of several: the largest absorbs the others, events stay sorted."""
        ordered = sorted(clusters.values(), key=lambda c: len(c.identifiers), reverse=True)
        into = ordered[0]
        for other in ordered[1:]:
            into.identifiers |= other.identifiers
            for identifier in other.identifiers:
                self._cluster[identifier] = into
            into.event_set |= other.event_set
            into.events = sorted(into.events + other.events, key=_event_key)
            into.merges += other.merges  # outcomes of disjoint clusters are independent
            into.conflicts += other.conflicts
        return into

    def _merge_key(self, merge: Merge) -> tuple[object, ...]:
        rank = self.rules.order_key
        return (merge.timestamp, merge.message_id, *map(rank, merge.linked))

    def _conflict_key(self, conflict: Conflict) -> tuple[object, ...]:
        rank = self.rules.order_key
        return (conflict.timestamp, conflict.message_id, *map(rank, conflict.identifiers))

    def _replay(
        self, cluster: _Cluster, watch: LinkEvent
    ) -> tuple[tuple[Merge, ...], tuple[Conflict, ...]]:
        """Recompute a cluster from singletons by its linking events in canonical order;
        returns what the event ``watch`` did in it."""
        for identifier in cluster.identifiers:
            old = self._profile[identifier]
            self._by_id.pop(old.id, None)
        for identifier in cluster.identifiers:
            profile = _Profile(identifier)
            self._profile[identifier] = profile
            self._by_id[profile.id] = profile
        cluster.merges = []
        cluster.conflicts = []
        outcome: tuple[tuple[Merge, ...], tuple[Conflict, ...]] = ((), ())
        for event in cluster.events:
            done = self._step(cluster, event)
            if event == watch:
                outcome = done
        return outcome

    def _step(
        self, cluster: _Cluster, event: LinkEvent
    ) -> tuple[tuple[Merge, ...], tuple[Conflict, ...]]:
        """One greedy decision: merge each identifier into the anchor's profile if allowed."""
        anchor, *rest = event.identifiers
        merges: list[Merge] = []
        conflicts: list[Conflict] = []
        for identifier in rest:
            target = self._profile[anchor]
            other = self._profile[identifier]
            if other is target:
                continue
            exceeded = self._exceeded(target, other)
            if exceeded is not None:
                type_, limit, count = exceeded
                conflicts.append(
                    Conflict(
                        event.message_id,
                        event.timestamp,
                        (anchor, identifier),
                        (target.id, other.id),
                        LIMIT_EXCEEDED,
                        type_,
                        limit,
                        count,
                    )
                )
                continue
            before = (target.id, other.id)
            merged = self._merge(target, other)
            merges.append(
                Merge(event.message_id, event.timestamp, (anchor, identifier), before, merged.id)
            )
        cluster.merges.extend(merges)
        cluster.conflicts.extend(conflicts)
        return tuple(merges), tuple(conflicts)

    def _exceeded(self, a: _Profile, b: _Profile) -> tuple[str, int, int] | None:
        """The highest-priority type whose limit the union of ``a`` and ``b`` would exceed."""
        over = [
            (type_, limit, a.counts[type_] + b.counts[type_])
            for type_, limit in self.rules.limits.items()
            if a.counts[type_] + b.counts[type_] > limit
        ]
        if not over:
            return None
        return min(over, key=lambda o: self.rules.rank(o[0]))

    def _merge(self, a: _Profile, b: _Profile) -> _Profile:
        """One profile of two; it keeps the better top identifier, hence that one's id."""
        big, small = (a, b) if len(a.members) >= len(b.members) else (b, a)
        self._by_id.pop(a.id, None)
        self._by_id.pop(b.id, None)
        top = min(a.top, b.top, key=self.rules.order_key)
        big.members |= small.members
        big.counts.update(small.counts)
        big.top = top
        big.id = profile_id(top)
        for identifier in small.members:
            self._profile[identifier] = big
        self._by_id[big.id] = big
        return big


def _event_key(event: LinkEvent) -> tuple[datetime, str, tuple[Identifier, ...]]:
    return event.key


def replay(events: Sequence[LinkEvent], rules: IdentityRules | None = None) -> IdentityGraph:
    """A graph built from scratch by applying ``events`` in canonical order."""
    graph = IdentityGraph(rules)
    for event in sorted(events, key=_event_key):
        graph.apply(event)
    return graph
