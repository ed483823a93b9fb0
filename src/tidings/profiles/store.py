"""SQL for the profiles context: derived state per profile, the timeline index, trait history
and validation flags.

The timeline and the trait history are keyed by an event's *anchor identifier* (its
highest-priority identifier) and its ``seq``, not by profile id: a profile's timeline is the
union over its identifiers, so merging two profiles rewrites nothing here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine

from tidings.core.db import (
    Serial,
    chunks,
    driver_rows,
    driver_rows_in,
    insert_rows,
    metadata,
    pairs_in,
    placeholder,
    values_in,
)
from tidings.identity.graph import Identifier

from .state import ProfileState

profiles = Table(
    "profiles",
    metadata,
    Column("profile_id", String(40), primary_key=True),
    Column("state", Text, nullable=False),
    Column("first_seen_ms", BigInteger, nullable=True),
    Column("last_seen_ms", BigInteger, nullable=True),
    Column("event_count", Integer, nullable=False),
    Column("order_count", Integer, nullable=False),
    Column("revenue", Float, nullable=False),
    Column("last_order_ms", BigInteger, nullable=True),
    Column("cart_quantity", Integer, nullable=False),
    Column("cart_value", Float, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_profiles_last_seen", "last_seen_ms"),
)

timeline = Table(
    "timeline",
    metadata,
    Column("id_type", String(40), nullable=False),
    Column("id_value", String(500), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("id_type", "id_value", "seq", name="pk_timeline"),
    Index("ix_timeline_seq", "seq"),
)

trait_history = Table(
    "trait_history",
    metadata,
    Column("seq", BigInteger, nullable=False),
    Column("key", String(200), nullable=False),
    Column("value", Text, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    PrimaryKeyConstraint("seq", "key", name="pk_trait_history"),
)

event_flags = Table(
    "event_flags",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("source_id", String(40), nullable=False),
    Column("code", String(60), nullable=False),
    Column("field", String(200), nullable=False),
    Column("message", String(1000), nullable=False),
    Index("ix_event_flags_seq", "seq"),
    Index("ix_event_flags_source", "source_id", "code"),
)

# Columns written per profile beside the JSON state, for queries that must not parse JSON.
SUMMARY_COLUMNS = (
    "first_seen_ms",
    "last_seen_ms",
    "event_count",
    "order_count",
    "revenue",
    "last_order_ms",
    "cart_quantity",
    "cart_value",
)

TimelineRow = tuple[str, str, int]  # (id_type, id_value, seq)
TraitRow = tuple[int, str, str, int]  # (seq, key, value as JSON, timestamp ms)
FlagRow = tuple[int, str, str, str, str]  # (seq, source_id, code, field, message)
StateRow = tuple[Any, ...]  # (profile_id, state JSON, *SUMMARY_COLUMNS)


def _pairs(ids: Sequence[Identifier]) -> list[tuple[str, str]]:
    return [(i.type, i.value) for i in ids]


class ProfileStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reading ----------------------------------------------------------------------------
    def states(self, profile_ids: Sequence[str]) -> dict[str, ProfileState]:
        """The stored states of these profiles (absent ones are left out); the pipeline asks
        for a batch's worth at a time."""
        rows = driver_rows_in(
            self.engine,
            "SELECT profile_id, state FROM profiles",
            "profile_id",
            sorted(set(profile_ids)),
        )
        return {pid: ProfileState.from_json(text) for pid, text in rows}

    def state(self, profile_id: str) -> ProfileState | None:
        """One profile's state (an open's read), through the driver like
        ``IdentityStore.first_profile``."""
        sql = f"SELECT state FROM profiles WHERE profile_id = {placeholder(self.engine)}"
        rows = driver_rows(self.engine, sql, [profile_id])
        return ProfileState.from_json(rows[0][0]) if rows else None

    def row(self, profile_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(profiles).where(profiles.c.profile_id == profile_id)).first()
        return dict(row._mapping) if row else None

    def recently_seen(self, limit: int) -> list[str]:
        """The ids of the ``limit`` profiles seen last, newest first (a top-N sort of the
        profiles table: for the admin UI's suggestions, not for the open path)."""
        query = (
            select(profiles.c.profile_id)
            .where(profiles.c.last_seen_ms.is_not(None))
            .order_by(profiles.c.last_seen_ms.desc(), profiles.c.profile_id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [pid for (pid,) in conn.execute(query)]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(profiles)).scalar_one())

    def timeline_seqs(
        self, ids: Sequence[Identifier], *, before_seq: int | None = None, limit: int | None = None
    ) -> list[int]:
        """The ``seq`` of the events anchored on ``ids``, newest first."""
        pairs = _pairs(ids)
        if not pairs:
            return []
        query = (
            select(timeline.c.seq)
            .where(pairs_in(timeline.c.id_type, timeline.c.id_value, pairs, self.engine))
            .order_by(timeline.c.seq.desc())
        )
        if before_seq is not None:
            query = query.where(timeline.c.seq < before_seq)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [int(s) for (s,) in conn.execute(query)]

    def timeline_of_many(self, ids: Sequence[Identifier]) -> list[tuple[Identifier, int]]:
        """``(identifier, seq)`` of every event anchored on one of ``ids`` (primary key reads,
        in chunks)."""
        found: list[tuple[Identifier, int]] = []
        with self.engine.connect() as conn:
            for part in chunks(_pairs(ids), 300):
                query = select(timeline.c.id_type, timeline.c.id_value, timeline.c.seq).where(
                    pairs_in(timeline.c.id_type, timeline.c.id_value, part, self.engine)
                )
                found.extend((Identifier(t, v), int(s)) for t, v, s in conn.execute(query))
        return found

    def trait_history(self, seqs: Sequence[int]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(seqs)), 500):
                query = select(trait_history).where(
                    values_in(self.engine, trait_history.c.seq, part)
                )
                for row in conn.execute(query):
                    entry = dict(row._mapping)
                    entry["value"] = orjson.loads(entry["value"])
                    found.append(entry)
        found.sort(key=lambda e: (e["timestamp"], e["seq"], e["key"]))
        return found

    def flags_of(self, seqs: Sequence[int]) -> dict[int, list[dict[str, str]]]:
        found: dict[int, list[dict[str, str]]] = {}
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(seqs)), 500):
                query = select(
                    event_flags.c.seq,
                    event_flags.c.code,
                    event_flags.c.field,
                    event_flags.c.message,
                ).where(values_in(self.engine, event_flags.c.seq, part))
                for seq, code, field, message in conn.execute(query.order_by(event_flags.c.id)):
                    found.setdefault(int(seq), []).append(
                        {"code": code, "field": field, "message": message}
                    )
        return found

    def flag_counts(self, source_id: str) -> dict[str, int]:
        query = (
            select(event_flags.c.code, func.count())
            .where(event_flags.c.source_id == source_id)
            .group_by(event_flags.c.code)
        )
        with self.engine.connect() as conn:
            return {code: int(n) for code, n in conn.execute(query)}

    # -- writing (inside the caller's transaction) ---------------------------------------------
    @staticmethod
    def state_row(profile_id: str, state: ProfileState) -> StateRow:
        """A profile's row as it stands now (taken when a batch is prepared: the state object
        goes on changing as the next batch is prepared while this one commits)."""
        summary = state.columns()
        return (profile_id, state.to_json(), *(summary[c] for c in SUMMARY_COLUMNS))

    def save_states(self, conn: Connection, rows: Sequence[StateRow], at: int) -> None:
        columns = ("profile_id", "state", *SUMMARY_COLUMNS, "updated_at")
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        insert_rows(
            conn,
            profiles,
            columns,
            [(*row, at) for row in rows],
            f"ON CONFLICT (profile_id) DO UPDATE SET {updates}",
            distinct_keys=True,  # one row per profile
        )

    def delete_states(self, conn: Connection, profile_ids: Sequence[str]) -> int:
        deleted = 0
        for part in chunks(sorted(set(profile_ids)), 500):
            deleted += conn.execute(
                delete(profiles).where(profiles.c.profile_id.in_(part))
            ).rowcount
        return deleted

    def add_rows(
        self,
        conn: Connection,
        timeline_rows: Sequence[TimelineRow],
        trait_rows: Sequence[TraitRow],
        flag_rows: Sequence[FlagRow],
    ) -> None:
        # Keyed by the event's seq: the pipeline applies each event once (the cursor moves in
        # the same transaction), so the conflict clause is only a safety net.
        insert_rows(
            conn,
            timeline,
            ("id_type", "id_value", "seq"),
            timeline_rows,
            "ON CONFLICT DO NOTHING",
            new_keys=True,
        )
        insert_rows(
            conn,
            trait_history,
            ("seq", "key", "value", "timestamp"),
            trait_rows,
            "ON CONFLICT DO NOTHING",
            new_keys=True,
        )
        insert_rows(conn, event_flags, ("seq", "source_id", "code", "field", "message"), flag_rows)

    def forget_events(self, conn: Connection, seqs: Sequence[int]) -> None:
        """Drop the timeline, history and flags of these events (deleted or expired)."""
        for part in chunks(sorted(set(seqs)), 500):
            for table in (timeline, trait_history, event_flags):
                conn.execute(delete(table).where(table.c.seq.in_(part)))

    def clear(self, conn: Connection) -> None:
        for table in (profiles, timeline, trait_history, event_flags):
            conn.execute(delete(table))
