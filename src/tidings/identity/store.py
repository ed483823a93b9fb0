"""SQL for the identity context: identifiers → profiles, linking events, merges, conflicts and
suppressed identifiers.

The in-memory :class:`~tidings.identity.graph.IdentityGraph` decides; these tables keep what it
needs to be rebuilt (``identity_links``: every linking event, keyed by a hash of its canonical
form) and what readers need without it (``identities``: which profile holds an identifier;
``identity_merges`` and ``identity_conflicts``: the explanations). Suppressions hold only a
hash of each deleted identifier, never the value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    or_,
    select,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from tidings.core.clock import to_ms
from tidings.core.db import (
    Serial,
    chunks,
    driver_rows,
    insert_rows,
    metadata,
    pairs_in,
    placeholder,
    upsert,
    values_in,
)

from .graph import Conflict, Identifier, LinkEvent, Merge

_Id = String(500)

identities = Table(
    "identities",
    metadata,
    Column("id_type", String(40), nullable=False),
    Column("id_value", _Id, nullable=False),
    Column("profile_id", String(40), nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    PrimaryKeyConstraint("id_type", "id_value", name="pk_identities"),
    Index("ix_identities_profile", "profile_id"),
)

identity_links = Table(
    "identity_links",
    metadata,
    Column("link_key", String(64), primary_key=True),
    Column("message_id", String(200), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("identifiers", Text, nullable=False),
)

identity_link_members = Table(
    "identity_link_members",
    metadata,
    Column("id_type", String(40), nullable=False),
    Column("id_value", _Id, nullable=False),
    Column("link_key", String(64), nullable=False),
    PrimaryKeyConstraint("id_type", "id_value", "link_key", name="pk_identity_link_members"),
)

identity_merges = Table(
    "identity_merges",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("anchor_type", String(40), nullable=False),
    Column("anchor_value", _Id, nullable=False),
    Column("linked_type", String(40), nullable=False),
    Column("linked_value", _Id, nullable=False),
    Column("profile_a", String(40), nullable=False),
    Column("profile_b", String(40), nullable=False),
    Column("into_profile", String(40), nullable=False),
    Index("ix_identity_merges_anchor", "anchor_type", "anchor_value"),
    Index("ix_identity_merges_linked", "linked_type", "linked_value"),
)

identity_conflicts = Table(
    "identity_conflicts",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("message_id", String(200), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("anchor_type", String(40), nullable=False),
    Column("anchor_value", _Id, nullable=False),
    Column("other_type", String(40), nullable=False),
    Column("other_value", _Id, nullable=False),
    Column("profile_a", String(40), nullable=False),
    Column("profile_b", String(40), nullable=False),
    Column("code", String(40), nullable=False),
    Column("limit_type", String(40), nullable=False),
    Column("limit_value", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Index("ix_identity_conflicts_anchor", "anchor_type", "anchor_value"),
    Index("ix_identity_conflicts_other", "other_type", "other_value"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("value_hash", String(64), primary_key=True),
    Column("id_type", String(40), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
)


def suppression_hash(identifier: Identifier) -> str:
    """How a suppressed identifier is remembered: a hash, so the value itself is gone."""
    return hashlib.sha256(f"{identifier.type}\x00{identifier.value}".encode()).hexdigest()


def link_key(event: LinkEvent) -> str:
    pairs = [list(i) for i in event.identifiers]
    text = orjson.dumps([event.message_id, event.timestamp.isoformat(), pairs])
    return hashlib.sha256(text).hexdigest()


# The leading columns merges and conflicts share (then the second identifier and the two
# profiles, see :func:`_explained`).
_EXPLAINED = ("message_id", "timestamp", "anchor_type", "anchor_value")


def _explained(
    message_id: str,
    moment: datetime,
    ids: tuple[Identifier, Identifier],
    profiles: tuple[str, str],
) -> tuple[Any, ...]:
    """The values merges and conflicts share: the event, its two identifiers, the profiles."""
    anchor, second = ids
    return (message_id, to_ms(moment), anchor.type, anchor.value, *second, *profiles)


def _pairs(ids: Iterable[Identifier]) -> list[tuple[str, str]]:
    return [(i.type, i.value) for i in ids]


def _by_type(shape: tuple[tuple[str, int], ...]) -> Select[Any]:
    """The lookup of identities whose ``(id_type, id_value)`` is among pairs of this ``shape``
    (each type and its number of values; the values are bound as ``v_<i>_<j>``), written as
    ``id_type = t AND id_value IN (…)`` per type, ORed.

    SQLite does not use the primary key for a row-value ``IN (VALUES …)`` and scans the whole
    table (an open-time recipient lookup read every identity: 20 ms at 10,000 profiles); each
    term of this form is a primary-key search on SQLite and PostgreSQL alike."""
    terms: list[ColumnElement[bool]] = []
    for i, (id_type, n) in enumerate(shape):
        values: list[BindParameter[str]] = [bindparam(f"v_{i}_{j}") for j in range(n)]
        match = identities.c.id_value == values[0] if n == 1 else identities.c.id_value.in_(values)
        terms.append(and_(identities.c.id_type == id_type, match))
    return select(identities.c.id_type, identities.c.id_value, identities.c.profile_id).where(
        or_(*terms)
    )


class IdentityStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Lookup statements by shape (see _by_type): an open builds none of its own.
        self._lookups: dict[tuple[tuple[str, int], ...], Select[Any]] = {}
        self._mark = placeholder(engine)
        self._first_sql: dict[int, str] = {}

    def first_profile(self, ids: Sequence[Identifier]) -> str | None:
        """The profile holding the first of ``ids`` that any profile holds (an open's
        recipient: a handful of candidates). One primary-key search per candidate, ORed, sent
        through the driver: SQLAlchemy's statement handling cost more than the query."""
        if not ids:
            return None
        sql = self._first_sql.get(len(ids))
        if sql is None:
            term = f"(id_type = {self._mark} AND id_value = {self._mark})"
            sql = self._first_sql[len(ids)] = (
                "SELECT id_type, id_value, profile_id FROM identities WHERE "
                + " OR ".join([term] * len(ids))
            )
        rows = driver_rows(self.engine, sql, [part for i in ids for part in i])
        found = {(t, v): pid for t, v, pid in rows}
        for identifier in ids:
            pid = found.get((identifier.type, identifier.value))
            if pid is not None:
                return str(pid)
        return None

    # -- reading ----------------------------------------------------------------------------
    def links(self) -> list[tuple[str, int, list[list[str]]]]:
        """Every stored linking event: (messageId, timestamp ms, identifiers), oldest first."""
        query = select(
            identity_links.c.message_id, identity_links.c.timestamp, identity_links.c.identifiers
        ).order_by(identity_links.c.timestamp, identity_links.c.message_id)
        with self.engine.connect() as conn:
            return [(m, int(t), orjson.loads(ids)) for m, t, ids in conn.execute(query)]

    def suppressed_hashes(self) -> set[str]:
        with self.engine.connect() as conn:
            return {h for (h,) in conn.execute(select(suppressions.c.value_hash))}

    def profile_of(self, identifier: Identifier) -> str | None:
        query = select(identities.c.profile_id).where(
            identities.c.id_type == identifier.type, identities.c.id_value == identifier.value
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def profiles_of(self, ids: Sequence[Identifier]) -> dict[Identifier, str]:
        found: dict[Identifier, str] = {}
        with self.engine.connect() as conn:
            for part in chunks(_pairs(ids), 300):
                values: dict[str, list[str]] = {}
                for id_type, value in part:
                    values.setdefault(id_type, []).append(value)
                shape = tuple((t, len(vs)) for t, vs in sorted(values.items()))
                query = self._lookups.get(shape)
                if query is None:
                    query = _by_type(shape)
                    if len(self._lookups) < 256:  # the pipeline's batches have many shapes
                        self._lookups[shape] = query
                params = {
                    f"v_{i}_{j}": v
                    for i, (_, vs) in enumerate(sorted(values.items()))
                    for j, v in enumerate(vs)
                }
                for t, v, p in conn.execute(query, params):
                    found[Identifier(t, v)] = p
        return found

    def identities_of(self, profile_id: str) -> list[dict[str, Any]]:
        query = (
            select(identities.c.id_type, identities.c.id_value, identities.c.first_seen)
            .where(identities.c.profile_id == profile_id)
            .order_by(identities.c.first_seen, identities.c.id_type, identities.c.id_value)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def profiles_holding(self, id_types: Sequence[str]) -> list[str]:
        """The ids of the profiles holding an identifier of one of ``id_types``, in order."""
        query = (
            select(identities.c.profile_id)
            .where(identities.c.id_type.in_(list(id_types)))
            .distinct()
            .order_by(identities.c.profile_id)
        )
        with self.engine.connect() as conn:
            return [pid for (pid,) in conn.execute(query)]

    def identities_of_many(self, profile_ids: Sequence[str]) -> dict[str, list[Identifier]]:
        """Each profile's identifiers, first seen first."""
        found: dict[str, list[Identifier]] = {}
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(profile_ids)), 500):
                query = (
                    select(identities.c.profile_id, identities.c.id_type, identities.c.id_value)
                    .where(values_in(self.engine, identities.c.profile_id, part))
                    .order_by(identities.c.first_seen, identities.c.id_type, identities.c.id_value)
                )
                for pid, t, v in conn.execute(query):
                    found.setdefault(pid, []).append(Identifier(t, v))
        return found

    def merges_of(self, ids: Sequence[Identifier]) -> list[dict[str, Any]]:
        return self._explanations(identity_merges, "linked", ids)

    def conflicts_of(self, ids: Sequence[Identifier]) -> list[dict[str, Any]]:
        return self._explanations(identity_conflicts, "other", ids)

    def _explanations(
        self, table: Table, other: str, ids: Sequence[Identifier]
    ) -> list[dict[str, Any]]:
        pairs = _pairs(ids)
        if not pairs:
            return []
        anchor = pairs_in(table.c.anchor_type, table.c.anchor_value, pairs, self.engine)
        second = pairs_in(table.c[f"{other}_type"], table.c[f"{other}_value"], pairs, self.engine)
        query = (
            select(table)
            .where(anchor | second)
            .order_by(table.c.timestamp, table.c.message_id, table.c.id)
        )
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # -- writing (inside the caller's transaction) ---------------------------------------------
    def set_profiles(
        self,
        conn: Connection,
        rows: Sequence[tuple[Identifier, tuple[str, int, bool]]],
        *,
        earliest: bool,
    ) -> None:
        """Identifier → ``(profile id, time, _)``. With ``earliest`` the time is that of an
        event carrying the identifier, and ``first_seen`` becomes the earlier of it and the
        stored one; otherwise the time is written only with a new row."""
        update = "profile_id = excluded.profile_id"
        if earliest:
            least = "min" if conn.dialect.name == "sqlite" else "LEAST"
            update += f", first_seen = {least}(identities.first_seen, excluded.first_seen)"
        insert_rows(
            conn,
            identities,
            ("id_type", "id_value", "profile_id", "first_seen"),
            [(i.type, i.value, pid, at) for i, (pid, at, _) in rows],
            f"ON CONFLICT (id_type, id_value) DO UPDATE SET {update}",
            distinct_keys=True,  # from a mapping: one row per identifier
        )

    def add_links(self, conn: Connection, events: Sequence[LinkEvent]) -> None:
        link_rows: list[tuple[str, str, int, str]] = []
        member_rows: list[tuple[str, str, str]] = []
        for event in events:
            key = link_key(event)
            link_rows.append(
                (
                    key,
                    event.message_id,
                    to_ms(event.timestamp),
                    orjson.dumps([list(i) for i in event.identifiers]).decode(),
                )
            )
            member_rows.extend((i.type, i.value, key) for i in event.identifiers)
        insert_rows(
            conn,
            identity_links,
            ("link_key", "message_id", "timestamp", "identifiers"),
            link_rows,
            "ON CONFLICT (link_key) DO NOTHING",
        )
        insert_rows(
            conn,
            identity_link_members,
            ("id_type", "id_value", "link_key"),
            member_rows,
            "ON CONFLICT (id_type, id_value, link_key) DO NOTHING",
        )

    def replace_explanations(
        self,
        conn: Connection,
        cluster: Sequence[Identifier],
        merges: Sequence[Merge],
        conflicts: Sequence[Conflict],
    ) -> None:
        """Forget what was recorded for a cluster's identifiers (a replay recomputed it)."""
        pairs = _pairs(cluster)
        for part in chunks(pairs, 300):
            for table in (identity_merges, identity_conflicts):
                key = pairs_in(table.c.anchor_type, table.c.anchor_value, part, self.engine)
                conn.execute(delete(table).where(key))
        self.add_explanations(conn, merges, conflicts)

    def add_explanations(
        self, conn: Connection, merges: Sequence[Merge], conflicts: Sequence[Conflict]
    ) -> None:
        insert_rows(
            conn,
            identity_merges,
            (*_EXPLAINED, "linked_type", "linked_value", "profile_a", "profile_b", "into_profile"),
            [
                (*_explained(m.message_id, m.timestamp, m.linked, m.profiles), m.into)
                for m in merges
            ],
        )
        insert_rows(
            conn,
            identity_conflicts,
            (
                *_EXPLAINED,
                "other_type",
                "other_value",
                "profile_a",
                "profile_b",
                "code",
                "limit_type",
                "limit_value",
                "count",
            ),
            [
                (
                    *_explained(c.message_id, c.timestamp, c.identifiers, c.profiles),
                    c.code,
                    c.type,
                    c.limit,
                    c.count,
                )
                for c in conflicts
            ],
        )

    def forget(self, conn: Connection, ids: Sequence[Identifier]) -> dict[str, int]:
        """Delete everything recorded about these identifiers (a privacy request)."""
        pairs = _pairs(ids)
        counts = {"identities": 0, "links": 0, "merges": 0, "conflicts": 0}
        for part in chunks(pairs, 300):
            member = pairs_in(
                identity_link_members.c.id_type, identity_link_members.c.id_value, part, self.engine
            )
            keys = [
                k
                for (k,) in conn.execute(
                    select(identity_link_members.c.link_key).where(member).distinct()
                )
            ]
            for key_part in chunks(keys, 500):
                counts["links"] += conn.execute(
                    delete(identity_links).where(identity_links.c.link_key.in_(key_part))
                ).rowcount
                conn.execute(
                    delete(identity_link_members).where(
                        identity_link_members.c.link_key.in_(key_part)
                    )
                )
            key = pairs_in(identities.c.id_type, identities.c.id_value, part, self.engine)
            counts["identities"] += conn.execute(delete(identities).where(key)).rowcount
            for table, other, name in (
                (identity_merges, "linked", "merges"),
                (identity_conflicts, "other", "conflicts"),
            ):
                a = pairs_in(table.c.anchor_type, table.c.anchor_value, part, self.engine)
                b = pairs_in(table.c[f"{other}_type"], table.c[f"{other}_value"], part, self.engine)
                counts[name] += conn.execute(delete(table).where(a | b)).rowcount
        return counts

    def suppress(self, conn: Connection, ids: Sequence[Identifier], at: int, reason: str) -> None:
        upsert(
            conn,
            suppressions,
            [
                {
                    "value_hash": suppression_hash(i),
                    "id_type": i.type,
                    "created_at": at,
                    "reason": reason,
                }
                for i in ids
            ],
            keys=("value_hash",),
            update=(),
        )

    def clear(self, conn: Connection) -> None:
        """Drop every derived row (a rebuild from the log); suppressions stay."""
        for table in (
            identities,
            identity_links,
            identity_link_members,
            identity_merges,
            identity_conflicts,
        ):
            conn.execute(delete(table))
