"""The profiles projector: applies batches of the events log to identities and profiles.

For each event, in ``seq`` order:

1. its identifiers are read (:func:`~tidings.identity.graph.extract_identifiers`); an event
   carrying a suppressed identifier (a deleted person) is deleted from the log instead;
2. the identity graph places them (merging profiles or recording a conflict);
3. the event is normalized to the e-commerce spec, flagged where it breaks a validation rule,
   and folded into its profile's derived state; the timeline indexes it under its anchor (its
   highest-priority identifier) and identify calls add to the trait history.

Merges combine the two profiles' states (the fold is order-independent, so the merged state
equals folding both event sets); a late linking event that makes the graph replay a cluster
rebuilds the cluster's profiles from their timelines. :meth:`Projector.prepare` does all of this
in memory, reading but not writing; :meth:`Projector.write` commits the result and advances the
cursor in one transaction. If the commit fails, :meth:`Projector.reset` drops the in-memory
state (the graph is reloaded from ``identity_links``) and the batch is prepared again.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy.engine import Connection

from tidings.collect.store import CollectStore, LogEvent
from tidings.core.clock import from_ms
from tidings.identity.graph import (
    Conflict,
    Identifier,
    IdentityGraph,
    IdentityRules,
    LinkEvent,
    Merge,
    extract_identifiers,
    profile_id,
)
from tidings.identity.store import IdentityStore, suppression_hash

from .ecommerce import PRODUCT_VIEWED, Product, normalize
from .state import ProfileState, identify_traits
from .store import FlagRow, ProfileStore, StateRow, TimelineRow, TraitRow

log = logging.getLogger(__name__)

CONSUMER = "profiles"


class ProductSink(Protocol):
    """Where products seen in events go (the catalog learns names, prices, images, urls)."""

    def learn(
        self,
        conn: Connection,
        products: Sequence[Product],
        at_ms: int,
        *,
        count_views: bool = True,
    ) -> None: ...


@dataclass(slots=True)
class Plan:
    """Everything one batch will write, prepared outside the transaction."""

    first_seq: int
    last_seq: int
    received_at: list[int] = field(default_factory=list)
    states: dict[str, ProfileState] = field(default_factory=dict)
    deleted_profiles: set[str] = field(default_factory=set)
    dirty: set[str] = field(default_factory=set)
    # identifier → (profile id, time, carried): ``carried`` when an event of the batch carries
    # it (the time is then the earliest such event's), else it only moved (a merge).
    identities: dict[Identifier, tuple[str, int, bool]] = field(default_factory=dict)
    links: list[LinkEvent] = field(default_factory=list)
    merges: list[Merge] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    replayed: set[Identifier] = field(default_factory=set)
    replay_merges: list[Merge] = field(default_factory=list)
    replay_conflicts: list[Conflict] = field(default_factory=list)
    state_rows: list[StateRow] = field(default_factory=list)
    viewed: list[Product] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)
    timeline: list[TimelineRow] = field(default_factory=list)
    traits: list[TraitRow] = field(default_factory=list)
    flags: list[FlagRow] = field(default_factory=list)
    suppressed: list[int] = field(default_factory=list)
    # The batch's own events by anchor, for rebuilding a profile mid-batch (as stored, not
    # parsed: a rebuild is rare, and parsed messages kept alive would cost the collector).
    applied: list[tuple[LogEvent, Identifier]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.received_at)


def _move(plan: Plan, identifier: Identifier, pid: str, at: int) -> None:
    """``identifier`` is now in profile ``pid`` (a merge or a replay moved it; the event at
    ``at`` need not carry it, so its time only stands in for a row that does not exist)."""
    pending = plan.identities.get(identifier)
    plan.identities[identifier] = (pid, at, False) if pending is None else (pid, *pending[1:])


# Later than any event: the earliest time of an identifier this process has not written.
_NEVER = 1 << 62


class Projector:
    def __init__(
        self,
        rules: IdentityRules,
        collect: CollectStore,
        identity: IdentityStore,
        profiles: ProfileStore,
        catalog: ProductSink | None = None,
        cache_size: int = 50_000,
    ) -> None:
        self.rules = rules
        self.catalog = catalog
        self.collect = collect
        self.identity = identity
        self.profiles = profiles
        self.graph = IdentityGraph(rules)
        self.suppressed: set[str] = set()
        # identifier → profile id and the earliest event time as last written to
        # ``identities`` by this process (the stored time may be earlier still), to skip
        # rewriting what would not change.
        self.known: dict[Identifier, str] = {}
        self.earliest: dict[Identifier, int] = {}
        # The earliest linking event seen for each set of identifiers: a later event with the
        # same set cannot change the partition (profiles only grow in the canonical replay,
        # so what was merged stays merged and what was refused stays refused), so it skips
        # the graph. Signed-in traffic carries userId and anonymousId on every event; without
        # this each of them would be a stored linking event.
        self.first_link: dict[frozenset[Identifier], tuple[int, str]] = {}
        # Profile states as last committed, so a batch need not re-read and re-parse them.
        # Valid only while this projector is the one advancing the cursor (reset otherwise).
        self.cache: dict[str, ProfileState] = {}
        self.cache_size = cache_size
        # The events of the last prepared batch: it may still be committing while the next
        # one is prepared, so a rebuild cannot find them in the timeline yet.
        self.inflight: list[tuple[LogEvent, Identifier]] = []
        self.loaded = False

    # -- in-memory state -----------------------------------------------------------------------
    def reset(self) -> None:
        self.loaded = False
        self.known.clear()
        self.earliest.clear()
        self.cache.clear()
        self.inflight = []

    def _remember(self, plan: Plan) -> None:
        """What ``identities`` and ``profiles`` will hold once the plan commits: the next batch
        can be prepared while this one commits. If the commit fails, :meth:`reset` drops it."""
        known, earliest = self.known, self.earliest
        for identifier, (pid, at, carried) in plan.identities.items():
            known[identifier] = pid
            if carried and at < earliest.get(identifier, _NEVER):
                earliest[identifier] = at
        self.inflight = plan.applied
        plan.state_rows = [
            ProfileStore.state_row(pid, plan.states[pid])
            for pid in plan.dirty
            if pid in plan.states
        ]
        cache = self.cache
        for pid in plan.deleted_profiles:
            cache.pop(pid, None)
        for pid in plan.dirty:
            state = plan.states.get(pid)
            if state is not None:
                cache.pop(pid, None)  # re-insert: the newest go last, the oldest are evicted
                cache[pid] = state
        excess = len(cache) - self.cache_size
        if excess > 0:
            for pid in list(itertools.islice(cache, excess)):
                del cache[pid]

    def _load(self, pids: Sequence[str]) -> dict[str, ProfileState]:
        """Committed states of ``pids`` (cache, then the table); absent ones are left out."""
        found = {pid: self.cache[pid] for pid in pids if pid in self.cache}
        missing = [pid for pid in pids if pid not in found]
        if missing:
            found.update(self.profiles.states(missing))
        return found

    def load(self) -> None:
        """Rebuild the graph from the stored linking events and read the suppressions."""
        graph = IdentityGraph(self.rules)
        self.first_link.clear()
        for message_id, ts, pairs in self.identity.links():
            ids = tuple(Identifier(t, v) for t, v in pairs)
            graph.apply(LinkEvent(message_id, from_ms(ts), ids))
            usable = frozenset(i for i in ids if not self.rules.is_blocked(i))
            self._remember_link(usable, ts, message_id)
        self.graph = graph
        self.suppressed = self.identity.suppressed_hashes()
        self.loaded = True

    # -- preparing a batch ---------------------------------------------------------------------
    def prepare(self, events: Sequence[LogEvent]) -> Plan:
        if not self.loaded:
            self.load()
        plan = Plan(first_seq=events[0].seq, last_seq=events[-1].seq)
        parsed: list[tuple[LogEvent, dict[str, Any], list[Identifier]]] = []
        for ev in events:
            plan.received_at.append(ev.received_at)
            try:
                message = orjson.loads(ev.payload)
            except orjson.JSONDecodeError:  # never stored that way; skip rather than stall
                log.error("event seq %d has an unreadable payload; skipped", ev.seq)
                continue
            ids = extract_identifiers(message, self.rules)
            if self.suppressed and any(suppression_hash(i) in self.suppressed for i in ids):
                plan.suppressed.append(ev.seq)
                continue
            parsed.append((ev, message, ids))
        self._prefetch(plan, parsed)
        for ev, message, ids in parsed:
            self._apply(plan, ev, message, ids)
        known, earliest = self.known, self.earliest
        plan.identities = {
            i: row
            for i, row in plan.identities.items()
            if known.get(i) != row[0] or (row[2] and row[1] < earliest.get(i, _NEVER))
        }
        if plan.replayed:
            replayed = plan.replayed
            plan.merges = [m for m in plan.merges if m.linked[0] not in replayed]
            plan.conflicts = [c for c in plan.conflicts if c.identifiers[0] not in replayed]
            # The replayed clusters' explanations as they now stand, taken here: the writer
            # must not read the graph while the next batch is being prepared.
            for pid in {self.graph.profile_of(i) for i in replayed} - {None}:
                plan.replay_merges.extend(self.graph.merges_of(str(pid)))
            plan.replay_conflicts = [
                c for c in self.graph.conflicts if c.identifiers[0] in replayed
            ]
        self._remember(plan)
        return plan

    def _prefetch(
        self, plan: Plan, parsed: list[tuple[LogEvent, dict[str, Any], list[Identifier]]]
    ) -> None:
        # Every identifier's current profile: the anchor's, and any a merge may pull in.
        wanted: set[str] = set()
        profile_of = self.graph.profile_of
        for _, _, ids in parsed:
            for identifier in ids:
                wanted.add(profile_of(identifier) or profile_id(identifier))
        loaded = self._load(sorted(wanted))
        for pid in wanted:
            plan.states[pid] = loaded.get(pid) or ProfileState.empty()

    def _state(self, plan: Plan, pid: str) -> ProfileState:
        state = plan.states.get(pid)
        if state is None:
            if pid in plan.deleted_profiles:
                state = ProfileState.empty()
            else:
                state = self._load([pid]).get(pid) or ProfileState.empty()
            plan.states[pid] = state
        return state

    def _apply(
        self, plan: Plan, ev: LogEvent, message: dict[str, Any], ids: list[Identifier]
    ) -> None:
        normalized = normalize(message)
        for flag in normalized.flags:
            plan.flags.append((ev.seq, ev.source_id, flag.code, flag.field, flag.message))
        if normalized.product is not None:
            if normalized.event == PRODUCT_VIEWED:
                plan.viewed.append(normalized.product)
            else:
                plan.products.append(normalized.product)
        elif normalized.products:
            plan.products.extend(normalized.products)
        usable = [i for i in ids if not self.rules.is_blocked(i)]
        if not usable:
            return
        anchor = usable[0]
        pid = self.graph.profile_of(anchor)
        if len(usable) > 1 and pid is not None:
            link_ids = frozenset(usable)
            first = self.first_link.get(link_ids)
            if first is None or (ev.timestamp, ev.message_id) < first:
                pid = None  # a new or earlier link: the graph must see it
        if pid is None:
            if len(usable) == 1:
                # A new identifier alone (a first visit): a profile of its own, nothing to link.
                pid = self.graph.place(anchor)
            else:
                pid = self._resolve(plan, ev, ids, usable)
        # (Else the common case: identifiers the graph already knows; nothing to resolve.)
        # Every identifier the event carries, with the event's time if it is the earliest
        # yet: ``first_seen`` is the earliest event carrying it, in whatever order they came.
        ts = ev.timestamp
        identities = plan.identities
        single = len(usable) == 1
        for identifier in usable:
            pending = identities.get(identifier)
            if pending is None or not pending[2] or ts < pending[1]:
                owner = pid if single else self.graph.profile_of(identifier) or pid
                identities[identifier] = (owner, ts, True)
        state = self._state(plan, pid)
        plan.dirty.add(pid)
        state.apply(message, normalized, ev.timestamp)
        if message.get("type") == "identify":
            # The history keeps every write, late ones included; the state keeps the winner.
            for key, value in identify_traits(message).items():
                plan.traits.append((ev.seq, key[:200], orjson.dumps(value).decode(), ev.timestamp))
        plan.timeline.append((anchor.type, anchor.value, ev.seq))
        plan.applied.append((ev, anchor))

    def _resolve(
        self, plan: Plan, ev: LogEvent, ids: list[Identifier], usable: list[Identifier]
    ) -> str:
        """Place the event's identifiers in the graph; returns its profile id."""
        link = LinkEvent(ev.message_id, from_ms(ev.timestamp), tuple(ids))
        if len(usable) > 1:
            self._remember_link(frozenset(usable), ev.timestamp, ev.message_id)
        old: dict[Identifier, str] = {}
        if len(usable) >= 2:
            for identifier in usable:
                known = self.graph.profile_of(identifier)
                if known is not None:
                    old[identifier] = known
        resolution = self.graph.apply(link)
        pid = resolution.profile_id
        assert pid is not None  # usable is not empty
        if len(usable) >= 2 and not resolution.duplicate:
            plan.links.append(link)
        if resolution.replayed:
            self._rebuild(plan, resolution.affected, ev.timestamp)
        else:
            for merge in resolution.merges:
                a, b = merge.profiles
                merged = self._state(plan, a).merge(self._state(plan, b))
                for gone in (a, b):
                    if gone != merge.into:
                        plan.states.pop(gone, None)
                        plan.deleted_profiles.add(gone)
                plan.states[merge.into] = merged
                plan.dirty.add(merge.into)
                plan.deleted_profiles.discard(merge.into)
            plan.merges.extend(resolution.merges)
            plan.conflicts.extend(resolution.conflicts)
        for identifier in resolution.affected:
            now_in = self.graph.profile_of(identifier)
            if now_in is not None and old.get(identifier) != now_in:
                _move(plan, identifier, now_in, ev.timestamp)
        return pid

    def _remember_link(self, key: frozenset[Identifier], ts: int, message_id: str) -> None:
        first = self.first_link.get(key)
        if first is None or (ts, message_id) < first:
            self.first_link[key] = (ts, message_id)

    def _current(self, plan: Plan, ids: Sequence[Identifier]) -> dict[Identifier, str]:
        """Where identifiers were before this step: this batch's writes, else the table."""
        found: dict[Identifier, str] = {}
        missing = []
        for identifier in ids:
            pending = plan.identities.get(identifier)
            if pending is not None:
                found[identifier] = pending[0]
            elif identifier in self.known:
                found[identifier] = self.known[identifier]
            else:
                missing.append(identifier)
        if missing:
            found.update(self.identity.profiles_of(missing))
        return found

    def _rebuild(self, plan: Plan, cluster: frozenset[Identifier], at: int) -> None:
        """The graph replayed ``cluster`` (a late linking event): bring its profiles in line.

        Usually the replay changes nothing (the late event linked identifiers already
        together) or only merges whole profiles; their states are then merged, which is exact.
        Only a split (an identifier leaving its old profile) refolds the new profiles from
        their timelines.
        """
        plan.replayed |= cluster
        before = self._current(plan, sorted(cluster))
        after: dict[Identifier, str] = {}
        for identifier in cluster:
            pid = self.graph.profile_of(identifier)
            if pid is not None:
                after[identifier] = pid
                if before.get(identifier) != pid:
                    _move(plan, identifier, pid, at)
        old_to_new: dict[str, set[str]] = {}
        new_to_old: dict[str, set[str]] = {}
        for identifier, new in after.items():
            old = before.get(identifier)
            if old is not None:
                old_to_new.setdefault(old, set()).add(new)
                new_to_old.setdefault(new, set()).add(old)
        split = any(len(news) > 1 for news in old_to_new.values())
        # Read every old state before writing any new one (an id can be both).
        old_states = {} if split else {old: self._state(plan, old) for old in old_to_new}
        for gone in set(old_to_new) - set(new_to_old):
            plan.states.pop(gone, None)
            plan.deleted_profiles.add(gone)
        for new, olds in new_to_old.items():
            if olds == {new} and not split:
                continue
            if split:
                state = self._fold(plan, {i for i, p in after.items() if p == new})
            else:
                parts = [old_states[old] for old in sorted(olds)]
                state = parts[0]
                for part in parts[1:]:
                    state = state.merge(part)
            plan.states[new] = state
            plan.dirty.add(new)
            plan.deleted_profiles.discard(new)

    def _fold(self, plan: Plan, members: set[Identifier]) -> ProfileState:
        """Fold every event anchored on ``members``: committed ones, the previous batch's
        (which may still be committing) and this batch's so far; each event once."""
        events: dict[int, tuple[dict[str, Any], int]] = {}
        for ev in self.collect.get_events(self.profiles.timeline_seqs(sorted(members))):
            events[ev.seq] = (orjson.loads(ev.payload), ev.timestamp)
        for applied in (self.inflight, plan.applied):
            for ev, anchor in applied:
                if anchor in members and ev.seq not in events:
                    events[ev.seq] = (orjson.loads(ev.payload), ev.timestamp)
        state = ProfileState.empty()
        for message, ts in events.values():
            state.apply(message, normalize(message), ts)
        return state

    # -- writing a batch -----------------------------------------------------------------------
    def write(self, conn: Connection, plan: Plan, at: int) -> None:
        """Commit ``plan`` (the caller's transaction also advances the cursor)."""
        if plan.suppressed:
            self.collect.delete_events_in(conn, plan.suppressed)
        if plan.identities:
            self.identity.set_profiles(
                conn, [row for row in plan.identities.items() if row[1][2]], earliest=True
            )
            self.identity.set_profiles(
                conn, [row for row in plan.identities.items() if not row[1][2]], earliest=False
            )
        if plan.links:
            self.identity.add_links(conn, plan.links)
        if plan.replayed:
            self.identity.replace_explanations(
                conn, sorted(plan.replayed), plan.replay_merges, plan.replay_conflicts
            )
        self.identity.add_explanations(conn, plan.merges, plan.conflicts)
        if plan.deleted_profiles:
            self.profiles.delete_states(conn, sorted(plan.deleted_profiles))
        self.profiles.save_states(conn, plan.state_rows, at)
        self.profiles.add_rows(conn, plan.timeline, plan.traits, plan.flags)
        if self.catalog is not None:
            if plan.products:
                self.catalog.learn(conn, plan.products, at, count_views=False)
            if plan.viewed:
                self.catalog.learn(conn, plan.viewed, at)
