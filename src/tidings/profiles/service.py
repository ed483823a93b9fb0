"""Reading profiles, deleting a person, and expiring old events: the profiles context's API.

A profile is addressed as ``{id_type}:{value}`` like Segment's Profile API (``user_id:u_42``,
``anonymous_id:…``, ``email:ada@example.com``, a configured external id type, or
``profile_id:prof_…``); the value is everything after the first colon.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from tidings.collect.store import CollectStore
from tidings.core.clock import Clock, from_ms, iso, to_ms
from tidings.core.db import Database, chunks
from tidings.core.errors import NotFound, TidingsError
from tidings.identity.graph import (
    ANONYMOUS_ID,
    EMAIL,
    USER_ID,
    Identifier,
    IdentityRules,
    normalize_email,
)
from tidings.identity.store import IdentityStore, suppression_hash
from tidings.pipeline.store import CursorStore

from .projector import CONSUMER
from .state import ProfileState
from .store import ProfileStore

PROFILE_ID = "profile_id"
MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class ProfileRef:
    profile_id: str
    identifiers: tuple[Identifier, ...]


def _ms(value: int | None) -> str | None:
    return iso(from_ms(value)) if value is not None else None


class ProfileService:
    def __init__(
        self,
        db: Database,
        rules: IdentityRules,
        collect: CollectStore,
        identity: IdentityStore,
        profiles: ProfileStore,
        cursors: CursorStore,
        clock: Clock,
    ) -> None:
        self.db = db
        self.rules = rules
        self.collect = collect
        self.identity = identity
        self.profiles = profiles
        self.cursors = cursors
        self.clock = clock
        # Called with the deleted profile id and its identifiers (caches elsewhere drop them).
        self.on_delete: list[Callable[[str, Sequence[Identifier]], None]] = []
        # Called inside a rebuild's transaction: state derived from the log elsewhere (the
        # catalog's view counts) is reset with the profiles.
        self.on_reset: list[Callable[[Connection], None]] = []

    # -- addressing -----------------------------------------------------------------------------
    def id_types(self) -> list[str]:
        return [USER_ID, ANONYMOUS_ID, EMAIL, *(f.type for f in self.rules.external), PROFILE_ID]

    def parse(self, ref: str) -> Identifier:
        id_type, sep, value = ref.partition(":")
        if not sep or not value:
            raise TidingsError(
                "invalid_profile_id",
                f"address a profile as '{{id_type}}:{{value}}', e.g. 'user_id:u_42'; got {ref!r}",
                field="id",
            )
        if id_type not in self.id_types():
            raise TidingsError(
                "unknown_id_type",
                f"unknown id type {id_type!r}; use one of {', '.join(self.id_types())}",
                field="id",
            )
        if id_type == EMAIL:
            value = normalize_email(value)
        for spec in self.rules.external:
            if spec.type == id_type and spec.lowercase:
                value = value.strip().lower()
        return Identifier(id_type, value)

    def resolve(self, ref: str) -> ProfileRef:
        identifier = self.parse(ref)
        if identifier.type == PROFILE_ID:
            pid: str | None = identifier.value
        else:
            pid = self.identity.profile_of(identifier)
        rows = self.identity.identities_of(pid) if pid is not None else []
        if not rows:
            raise NotFound(
                "profile_not_found",
                f"no profile holds {identifier.type} {identifier.value!r} (events may still be "
                "on their way through the pipeline; see GET /v1/pipeline/status)",
                field="id",
            )
        assert pid is not None
        return ProfileRef(pid, tuple(Identifier(r["id_type"], r["id_value"]) for r in rows))

    def find_recipient(self, value: str) -> tuple[str, ProfileState] | None:
        """The profile an email's recipient value names, and its derived state, or ``None``.

        ``value`` is read as an email address (normalized) when it holds an ``@``, else as a
        user id, then as each configured external id type, in that order; the first that a
        profile holds wins. One identities read and one profiles read, for open-time renders.
        """
        value = value.strip()
        candidates: list[Identifier] = []
        if "@" in value:
            candidates.append(Identifier(EMAIL, normalize_email(value)))
        candidates.append(Identifier(USER_ID, value))
        for spec in self.rules.external:
            candidates.append(Identifier(spec.type, value.lower() if spec.lowercase else value))
        pid = self.identity.first_profile(candidates)
        if pid is None:
            return None
        state = self.profiles.state(pid)
        return (pid, state) if state is not None else None

    def _state(self, ref: ProfileRef) -> tuple[ProfileState, dict[str, Any]]:
        row = self.profiles.row(ref.profile_id)
        if row is None:
            raise NotFound("profile_not_found", "the profile has no events yet", field="id")
        return ProfileState.from_json(row["state"]), row

    # -- reading --------------------------------------------------------------------------------
    def summary(self, ref: ProfileRef) -> dict[str, Any]:
        state, row = self._state(ref)
        return {
            "profile_id": ref.profile_id,
            "identities": [{"type": i.type, "value": i.value} for i in ref.identifiers],
            "traits": state.traits,
            "first_seen": _ms(row["first_seen_ms"]),
            "last_seen": _ms(row["last_seen_ms"]),
            "event_count": row["event_count"],
            "order_count": row["order_count"],
            "revenue": row["revenue"],
            "last_order": state.last_order,
            "cart": state.cart(),
            "counts": state.counts,
        }

    def traits(
        self, ref: ProfileRef, include: Sequence[str] = (), history: bool = False
    ) -> dict[str, Any]:
        state, _ = self._state(ref)
        traits = state.traits
        if include:
            traits = {k: v for k, v in traits.items() if k in include}
        body: dict[str, Any] = {"profile_id": ref.profile_id, "traits": traits}
        if history:
            seqs = self.profiles.timeline_seqs(ref.identifiers)
            body["history"] = [
                {"key": h["key"], "value": h["value"], "timestamp": _ms(h["timestamp"])}
                for h in self.profiles.trait_history(seqs)
                if not include or h["key"] in include
            ]
        return body

    @staticmethod
    def events_cursor(next_: str | None) -> int | None:
        """The ``before`` of :meth:`events` from a page's ``cursor.next``; a 400 if malformed."""
        if next_ is None:
            return None
        if not next_.isdigit() or len(next_) > 18:
            raise TidingsError("invalid_cursor", "next must be a cursor.next value", "next")
        return int(next_)

    def events(self, ref: ProfileRef, limit: int, before: int | None) -> dict[str, Any]:
        limit = max(1, min(limit, MAX_PAGE))
        seqs = self.profiles.timeline_seqs(ref.identifiers, before_seq=before, limit=limit + 1)
        more = len(seqs) > limit
        seqs = seqs[:limit]
        stored = sorted(self.collect.get_events(seqs), key=lambda e: -e.seq)
        flags = self.profiles.flags_of(seqs)
        data = []
        for ev in stored:
            message = orjson.loads(ev.payload)
            data.append(
                {
                    "seq": ev.seq,
                    "source_id": ev.source_id,
                    "message_id": ev.message_id,
                    "type": message.get("type"),
                    "event": message.get("event"),
                    "timestamp": _ms(ev.timestamp),
                    "flags": flags.get(ev.seq, []),
                    "message": message,
                }
            )
        next_before = seqs[-1] if more and seqs else None
        return {
            "data": data,
            "cursor": {"has_more": more, "next": str(next_before) if next_before else None},
        }

    def behaviour(
        self, profile_id: str, name: str, since_ms: int | None, limit: int = 1000
    ) -> list[tuple[int, dict[str, Any]]]:
        """``(timestamp_ms, properties)`` of the person's ``name`` track events at or after
        ``since_ms``, newest first, at most ``limit`` (events older than the retention window
        are gone). Indexed reads: the profile's identifiers, their timeline, the events."""
        ids = [
            Identifier(r["id_type"], r["id_value"]) for r in self.identity.identities_of(profile_id)
        ]
        seqs = self.profiles.timeline_seqs(ids)
        out: list[tuple[int, dict[str, Any]]] = []
        for ts, payload in self.collect.events_named(seqs, name, since_ms, limit):
            props = orjson.loads(payload).get("properties")
            out.append((ts, props if isinstance(props, dict) else {}))
        return out

    def sample(self, limit: int | None, seed: int = 0) -> list[tuple[str, str, ProfileState]]:
        """Up to ``limit`` of the profiles an email can reach (those holding an email address
        or a user id; all when ``None``), a seeded random sample in id order:
        ``(profile_id, recipient, state)``, the recipient being the first email address, else
        the user id (what a creative tag's ``u`` would carry)."""
        ids = self.identity.profiles_holding([EMAIL, USER_ID])
        if limit is not None and limit < len(ids):
            ids = sorted(random.Random(seed).sample(ids, limit))
        out: list[tuple[str, str, ProfileState]] = []
        for part in chunks(ids, 500):
            states = self.profiles.states(part)
            identifiers = self.identity.identities_of_many(part)
            for pid in part:
                state = states.get(pid)
                if state is None:
                    continue
                out.append((pid, _recipient_of(identifiers.get(pid, [])) or pid, state))
        return out

    def recipient(self, ref: ProfileRef) -> str | None:
        """What a creative tag's ``u`` carries for this profile: its first email address,
        else its first user id; ``None`` when an email cannot reach it."""
        return _recipient_of(ref.identifiers)

    def recent_recipients(self, limit: int) -> list[str]:
        """What a creative tag's ``u`` would carry (the first email address, else the user id)
        for the profiles seen last that an email can reach, newest first."""
        ids = self.profiles.recently_seen(limit)
        held = self.identity.identities_of_many(ids)
        out = []
        for pid in ids:
            recipient = _recipient_of(held.get(pid, []))
            if recipient is not None:
                out.append(recipient)
        return out

    # -- many people at once (campaigns) --------------------------------------------------------
    def with_email(self) -> list[tuple[str, str]]:
        """``(profile_id, email)`` of every profile holding an email address (its first)."""
        ids = self.identity.profiles_holding([EMAIL])
        out: list[tuple[str, str]] = []
        for part in chunks(ids, 500):
            held = self.identity.identities_of_many(part)
            for pid in part:
                email = next((i.value for i in held.get(pid, []) if i.type == EMAIL), None)
                if email is not None:
                    out.append((pid, email))
        return out

    def profiles_for(self, values: Sequence[str]) -> dict[str, str]:
        """The profile each recipient value names (an email address when it holds an ``@``,
        else a user id), for those that name one: ``{value: profile_id}``."""
        wanted: dict[Identifier, list[str]] = {}
        for value in values:
            v = value.strip()
            identifier = (
                Identifier(EMAIL, normalize_email(v)) if "@" in v else Identifier(USER_ID, v)
            )
            wanted.setdefault(identifier, []).append(value)
        found = self.identity.profiles_of(list(wanted))
        return {value: pid for i, pid in found.items() for value in wanted[i]}

    def email_of(self, profile_ids: Sequence[str]) -> dict[str, str]:
        """Each profile's first email address, for those holding one."""
        out: dict[str, str] = {}
        for pid, held in self.identity.identities_of_many(profile_ids).items():
            email = next((i.value for i in held if i.type == EMAIL), None)
            if email is not None:
                out[pid] = email
        return out

    def states_of(self, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        """The derived state of each of these profiles that has one."""
        return self.profiles.states(profile_ids)

    def suppressed(self, values: Sequence[str]) -> set[str]:
        """Which of these recipient values (email addresses or user ids) belong to a deleted,
        suppressed person."""
        hashes = self.identity.suppressed_hashes()
        if not hashes:
            return set()
        out: set[str] = set()
        for value in values:
            v = value.strip()
            candidates = [Identifier(USER_ID, v)]
            if "@" in v:
                candidates.append(Identifier(EMAIL, normalize_email(v)))
            if any(suppression_hash(i) in hashes for i in candidates):
                out.add(value)
        return out

    def events_of_many(
        self, profile_ids: Sequence[str], names: Sequence[str], since_ms: int, until_ms: int
    ) -> dict[str, list[tuple[int, int, str, dict[str, Any]]]]:
        """``{profile_id: [(timestamp_ms, seq, event, message)]}`` of these people's track
        events called one of ``names`` in ``[since_ms, until_ms)``, oldest first. Indexed
        reads in chunks: their identifiers, their timeline rows, then the events by key."""
        held = self.identity.identities_of_many(profile_ids)
        owner = {i: pid for pid, ids in held.items() for i in ids}
        seq_owner: dict[int, str] = {}
        for identifier, seq in self.profiles.timeline_of_many(list(owner)):
            seq_owner[seq] = owner[identifier]
        out: dict[str, list[tuple[int, int, str, dict[str, Any]]]] = {}
        for seq, ts, event, payload in self.collect.events_named_in(
            list(seq_owner), names, since_ms, until_ms
        ):
            message = orjson.loads(payload)
            out.setdefault(seq_owner[seq], []).append((ts, seq, event, message))
        for rows in out.values():
            rows.sort(key=lambda r: (r[0], r[1]))
        return out

    def identities(self, ref: ProfileRef) -> dict[str, Any]:
        rows = self.identity.identities_of(ref.profile_id)
        return {
            "profile_id": ref.profile_id,
            "data": [
                {"type": r["id_type"], "value": r["id_value"], "first_seen": _ms(r["first_seen"])}
                for r in rows
            ],
        }

    def recently_viewed(
        self, ref: ProfileRef, limit: int, exclude_purchased: bool
    ) -> dict[str, Any]:
        state, _ = self._state(ref)
        items = state.recently_viewed(
            max(1, min(limit, MAX_PAGE)), exclude_purchased=exclude_purchased
        )
        return {"profile_id": ref.profile_id, "data": [_with_iso(p) for p in items]}

    def cart(self, ref: ProfileRef) -> dict[str, Any]:
        state, _ = self._state(ref)
        cart = state.cart()
        cart["items"] = [_with_iso(p) for p in cart.get("items", [])]
        return {"profile_id": ref.profile_id, **_with_iso(cart)}

    def merges(self, ref: ProfileRef) -> dict[str, Any]:
        return {
            "profile_id": ref.profile_id,
            "merges": [
                {
                    "message_id": m["message_id"],
                    "timestamp": _ms(m["timestamp"]),
                    "identifier": {"type": m["anchor_type"], "value": m["anchor_value"]},
                    "linked": {"type": m["linked_type"], "value": m["linked_value"]},
                    "profiles": [m["profile_a"], m["profile_b"]],
                    "into": m["into_profile"],
                    "explanation": (
                        f"event {m['message_id']} carried {m['anchor_type']} "
                        f"{m['anchor_value']!r} and {m['linked_type']} {m['linked_value']!r}, "
                        "so their profiles were merged"
                    ),
                }
                for m in self.identity.merges_of(ref.identifiers)
            ],
            "conflicts": [
                {
                    "message_id": c["message_id"],
                    "timestamp": _ms(c["timestamp"]),
                    "identifier": {"type": c["anchor_type"], "value": c["anchor_value"]},
                    "other": {"type": c["other_type"], "value": c["other_value"]},
                    "profiles": [c["profile_a"], c["profile_b"]],
                    "code": c["code"],
                    "reason": (
                        f"a profile may hold at most {c['limit_value']} {c['limit_type']} "
                        f"value(s); merging would give it {c['count']}"
                    ),
                }
                for c in self.identity.conflicts_of(ref.identifiers)
            ],
        }

    # -- rebuilding ------------------------------------------------------------------------------
    def reset_derived(self) -> None:
        """Forget identities and profiles and rewind the pipeline to the start of the log."""
        at = to_ms(self.clock.now())
        with self.db.engine.begin() as conn:
            self.cursors.bump_epoch(conn, CONSUMER, at, position=0)
            self.identity.clear(conn)
            self.profiles.clear(conn)
            for reset in self.on_reset:
                reset(conn)

    # -- deleting a person ----------------------------------------------------------------------
    async def delete(self, ref: ProfileRef, reason: str) -> dict[str, Any]:
        """Remove the person everywhere and suppress their identifiers (GDPR/CCPA)."""
        counts = await self.db.run_write(self._delete, ref, reason)
        for listener in self.on_delete:
            listener(ref.profile_id, ref.identifiers)
        return {
            "profile_id": ref.profile_id,
            "deleted": counts,
            "suppressed": [{"type": i.type} for i in ref.identifiers],
        }

    def _delete(self, ref: ProfileRef, reason: str) -> dict[str, int]:
        at = to_ms(self.clock.now())
        ids = list(ref.identifiers)
        with self.db.engine.begin() as conn:
            # First a write (SQLite takes the write lock now); the epoch makes a running
            # consumer drop its in-memory graph and re-read the suppressions.
            self.cursors.bump_epoch(conn, CONSUMER, at)
            seqs = self.profiles.timeline_seqs(ids)
            self.profiles.forget_events(conn, seqs)
            events = self.collect.delete_events_in(conn, seqs)
            position = self.cursors.get(CONSUMER, conn).position
            events += self.collect.delete_pending_of(
                conn,
                position,
                [i.value for i in ids if i.type == USER_ID],
                [i.value for i in ids if i.type == ANONYMOUS_ID],
            )
            rejections = self.collect.delete_rejections_mentioning(conn, [i.value for i in ids])
            forgotten = self.identity.forget(conn, ids)
            self.profiles.delete_states(conn, [ref.profile_id])
            self.identity.suppress(conn, ids, at, reason)
        return {"events": events, "rejections": rejections, **forgotten}


def _with_iso(item: dict[str, Any]) -> dict[str, Any]:
    """Add an ISO-8601 twin for every ``*_at_ms`` / ``*_ms`` field (the API shows both)."""
    out = dict(item)
    for key, value in item.items():
        if key.endswith("_ms") and isinstance(value, int):
            out[key[: -len("_ms")]] = iso(from_ms(value))
    return out


def _recipient_of(held: Sequence[Identifier]) -> str | None:
    """The first email address a profile holds, else its first user id (what a creative tag's
    ``u`` would carry)."""
    by_type = {i.type: i.value for i in reversed(held)}
    return by_type.get(EMAIL) or by_type.get(USER_ID)
