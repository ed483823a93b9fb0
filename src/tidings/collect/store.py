"""SQL for the collect context: sources, the append-only events log and rejections."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from tidings.core.db import Serial, chunks, driver_rows, metadata, placeholder, values_in

sources = Table(
    "sources",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("write_key_hash", String(64), nullable=False, unique=True),
    Column("write_key_hint", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("rotated_at", BigInteger, nullable=True),
)

# The events log: the source of truth every other context is rebuilt from. ``seq`` orders it.
events = Table(
    "events",
    metadata,
    Column("seq", Serial, primary_key=True, autoincrement=True),
    Column("source_id", String(40), nullable=False),
    Column("message_id", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("event", String(500), nullable=True),
    Column("user_id", String(500), nullable=True),
    Column("anonymous_id", String(500), nullable=True),
    Column("timestamp", BigInteger, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("source_id", "message_id", name="uq_events_source_message"),
    Index("ix_events_source_seq", "source_id", "seq"),
    Index("ix_events_received_at", "received_at"),
)

rejections = Table(
    "rejections",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("source_id", String(40), nullable=True),
    Column("received_at", BigInteger, nullable=False),
    Column("endpoint", String(100), nullable=False),
    Column("batch_index", Integer, nullable=True),
    Column("code", String(60), nullable=False),
    Column("field", String(200), nullable=True),
    Column("message", String(1000), nullable=False),
    Column("payload", Text, nullable=True),
    Index("ix_rejections_source_id", "source_id", "id"),
)

# The email source's events by campaign (``properties.campaign_id``), in log order: what a
# campaign's report and the campaigns' overview read, instead of every email event since the
# send. An expression index, partial to the email source (tracking's ``EMAIL_SOURCE_ID``),
# written per dialect in migration 0009; the queries below repeat the expression and the
# source literally, which is how both databases match a query to such an index.
CAMPAIGN_INDEX = "ix_events_email_campaign"
CAMPAIGN_INDEX_SOURCE = "src_email"
CAMPAIGN_OF = {
    "sqlite": "json_extract(payload, '$.properties.campaign_id')",
    "postgresql": "(((payload)::jsonb -> 'properties') ->> 'campaign_id')",
}
INDEXES_OUTSIDE_METADATA = frozenset({CAMPAIGN_INDEX})


def campaign_index_sql(dialect: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {CAMPAIGN_INDEX} ON events ({CAMPAIGN_OF[dialect]}, seq) "
        f"WHERE source_id = '{CAMPAIGN_INDEX_SOURCE}'"
    )


EVENT_COLUMNS = (
    "source_id",
    "message_id",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "timestamp",
    "received_at",
    "payload",
)
EventRow = tuple[str, str, str, str | None, str | None, str | None, int, int, str]
RejectionRow = tuple[str | None, int, str, int | None, str, str | None, str, str | None]
REJECTION_COLUMNS = (
    "source_id",
    "received_at",
    "endpoint",
    "batch_index",
    "code",
    "field",
    "message",
    "payload",
)


# On PostgreSQL every append takes this transaction-level advisory lock first, so appends
# commit in ``seq`` order even from several processes: a consumer reading ``seq > cursor``
# can never miss a row that commits later with a smaller ``seq``. (SQLite has one writer.)
LOG_APPEND_LOCK = 0x7469_6469_6E67  # "tiding"


class LogEvent(NamedTuple):
    """One committed event as the pipeline reads it (a tuple: the pipeline makes one per
    event it reads, and a frozen dataclass costs several times more to build)."""

    seq: int
    source_id: str
    message_id: str
    timestamp: int
    received_at: int
    payload: str


@dataclass(frozen=True, slots=True)
class SourceRecord:
    id: str
    name: str
    write_key_hash: str
    write_key_hint: str
    created_at: int
    rotated_at: int | None


def _insert_sql(
    engine: Engine, table: str, columns: Sequence[str], ignore_dupes: bool, rows: int = 1
) -> str:
    marks = ", ".join([placeholder(engine)] * len(columns))
    values = ", ".join([f"({marks})"] * rows)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"
    return sql + (" ON CONFLICT DO NOTHING" if ignore_dupes else "")


# Rows per multi-row INSERT on SQLite: 9 parameters each, within SQLite's variable limit
# (32766 since 3.32, 999 before).
SQLITE_ROWS_PER_INSERT = 512 if sqlite3.sqlite_version_info >= (3, 32, 0) else 64


class CollectStore:
    """The collect context's SQL. Hot inserts go through the DBAPI cursor directly.

    On SQLite, events go in as multi-row ``INSERT``s rather than ``executemany``: pysqlite
    releases the GIL around every ``sqlite3_step``, so ``executemany`` must win the GIL back
    once per row, and while the event loop is busy each of those waits can last the whole
    switch interval (5 ms). One statement per up to 512 rows waits once per statement.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        # The single-row statement, as ``executemany`` uses it (and the raw-store benchmark).
        self.insert_events_sql = _insert_sql(engine, "events", EVENT_COLUMNS, ignore_dupes=True)
        self._insert_rejections = _insert_sql(
            engine, "rejections", REJECTION_COLUMNS, ignore_dupes=False
        )
        # Multi-row statements by row count: powers of two, so at most ten distinct ones,
        # which stay in the driver's statement cache.
        self._multi_row_sql: dict[int, str] = {}

    # -- the log ------------------------------------------------------------------------------
    def append(self, rows: Sequence[EventRow], rejected: Sequence[RejectionRow] = ()) -> None:
        """Commit events and rejections in one transaction. Duplicate messageIds are skipped."""
        with self.engine.begin() as conn:
            self.append_in(conn, rows, rejected)

    def append_groups(
        self,
        row_groups: Sequence[Sequence[EventRow]],
        rejected_groups: Sequence[Sequence[RejectionRow]] = (),
    ) -> None:
        """``append`` for many requests' rows at once (group commit), without copying them."""
        with self.engine.begin() as conn:
            self._executemany(conn, row_groups, rejected_groups)

    def append_in(
        self, conn: Connection, rows: Sequence[EventRow], rejected: Sequence[RejectionRow] = ()
    ) -> None:
        self._executemany(conn, (rows,) if rows else (), (rejected,) if rejected else ())

    def _executemany(
        self,
        conn: Connection,
        row_groups: Sequence[Sequence[EventRow]],
        rejected_groups: Sequence[Sequence[RejectionRow]],
    ) -> None:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if row_groups and not self.is_sqlite:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (LOG_APPEND_LOCK,))
            if row_groups and self.is_sqlite:
                self._insert_multi_row(cursor, row_groups)
            elif row_groups:
                cursor.executemany(self.insert_events_sql, _chain(row_groups))
            if rejected_groups:
                cursor.executemany(self._insert_rejections, _chain(rejected_groups))
        finally:
            cursor.close()

    def _insert_multi_row(self, cursor: Any, row_groups: Sequence[Sequence[EventRow]]) -> None:
        """Insert in order, in statements of 512, 256, ... 1 rows; same effect as executemany."""
        rows = row_groups[0] if len(row_groups) == 1 else list(_chain(row_groups))
        total = len(rows)
        start = 0
        while start < total:
            size = min(SQLITE_ROWS_PER_INSERT, 1 << ((total - start).bit_length() - 1))
            sql = self._multi_row_sql.get(size)
            if sql is None:
                sql = self._multi_row_sql[size] = _insert_sql(
                    self.engine, "events", EVENT_COLUMNS, ignore_dupes=True, rows=size
                )
            cursor.execute(sql, [value for row in rows[start : start + size] for value in row])
            start += size

    # -- reading the log (the pipeline) --------------------------------------------------------
    def read_log(self, after_seq: int, limit: int) -> list[LogEvent]:
        """Committed events with ``seq > after_seq``, in ``seq`` order (through the driver:
        the pipeline reads every event once, and per-row result processing would cost more
        than the query)."""
        mark = placeholder(self.engine)
        sql = (
            "SELECT seq, source_id, message_id, timestamp, received_at, payload FROM events "
            f"WHERE seq > {mark} ORDER BY seq LIMIT {mark}"
        )
        rows = driver_rows(self.engine, sql, (after_seq, limit))
        # tuple.__new__ builds each LogEvent in C (``_make`` is a Python call per row).
        return list(map(tuple.__new__, itertools.repeat(LogEvent), rows))

    def get_events(self, seqs: Sequence[int]) -> list[LogEvent]:
        """The events with these ``seq`` (those still stored), in ``seq`` order."""
        found: list[LogEvent] = []
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(seqs)), 500):
                query = select(
                    events.c.seq,
                    events.c.source_id,
                    events.c.message_id,
                    events.c.timestamp,
                    events.c.received_at,
                    events.c.payload,
                ).where(values_in(self.engine, events.c.seq, part))
                found.extend(LogEvent(*row) for row in conn.execute(query))
        return sorted(found, key=lambda e: e.seq)

    def events_named(
        self, seqs: Sequence[int], name: str, since_ms: int | None, limit: int
    ) -> list[tuple[int, str]]:
        """``(timestamp, payload)`` of the track events called ``name`` among ``seqs`` (at or
        after ``since_ms``), newest first, at most ``limit``: what a behaviour condition of a
        targeting rule counts, by primary key and never a scan."""
        found: list[tuple[int, str]] = []
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(seqs)), 500):
                query = select(events.c.timestamp, events.c.payload).where(
                    values_in(self.engine, events.c.seq, part),
                    events.c.event == name,
                    events.c.type == "track",
                )
                if since_ms is not None:
                    query = query.where(events.c.timestamp >= since_ms)
                found.extend((int(ts), payload) for ts, payload in conn.execute(query))
        found.sort(key=lambda row: row[0], reverse=True)
        return found[:limit]

    def events_named_in(
        self, seqs: Sequence[int], names: Sequence[str], since_ms: int, until_ms: int
    ) -> list[tuple[int, int, str, str]]:
        """``(seq, timestamp, event, payload)`` of the track events called one of ``names``
        among ``seqs`` with ``since_ms <= timestamp < until_ms`` (primary key reads)."""
        found: list[tuple[int, int, str, str]] = []
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(seqs)), 500):
                query = select(
                    events.c.seq, events.c.timestamp, events.c.event, events.c.payload
                ).where(
                    values_in(self.engine, events.c.seq, part),
                    events.c.type == "track",
                    events.c.event.in_(list(names)),
                    events.c.timestamp >= since_ms,
                    events.c.timestamp < until_ms,
                )
                found.extend((int(q), int(t), e, p) for q, t, e, p in conn.execute(query))
        return found

    def source_events_named(
        self, source_id: str, names: Sequence[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """``(seq, timestamp, event, payload)`` of one source's track events called one of
        ``names`` with ``seq > after_seq``, in seq order, at most ``limit``: a range of
        ``ix_events_source_seq``."""
        query = (
            select(events.c.seq, events.c.timestamp, events.c.event, events.c.payload)
            .where(
                events.c.source_id == source_id,
                events.c.seq > after_seq,
                events.c.type == "track",
                events.c.event.in_(list(names)),
            )
            .order_by(events.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(q), int(t), e, p) for q, t, e, p in conn.execute(query)]

    def campaign_events_named(
        self, source_id: str, campaign_id: str, names: Sequence[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """Like :meth:`source_events_named`, only the events whose ``properties.campaign_id``
        is ``campaign_id``: a range of the campaign index (only the email source has one)."""
        if source_id != CAMPAIGN_INDEX_SOURCE:
            raise ValueError(f"no campaign index for source {source_id!r}")
        if not names:
            return []
        mark = placeholder(self.engine)
        names = list(names)
        sql = (
            "SELECT seq, timestamp, event, payload FROM events "
            f"WHERE source_id = '{CAMPAIGN_INDEX_SOURCE}' "
            f"AND {CAMPAIGN_OF[self.engine.dialect.name]} = {mark} AND seq > {mark} "
            f"AND type = 'track' AND event IN ({', '.join([mark] * len(names))}) "
            f"ORDER BY seq LIMIT {mark}"
        )
        rows = driver_rows(self.engine, sql, (campaign_id, after_seq, *names, limit))
        return [(int(q), int(t), e, p) for q, t, e, p in rows]

    def first_seq_since(self, received_ms: int) -> int | None:
        """The ``seq`` of the first event received at or after ``received_ms`` (one row of
        ``ix_events_received_at``); None when nothing was received since."""
        query = (
            select(events.c.seq)
            .where(events.c.received_at >= received_ms)
            .order_by(events.c.received_at, events.c.seq)
            .limit(1)
        )
        with self.engine.connect() as conn:
            seq = conn.execute(query).scalar()
        return None if seq is None else int(seq)

    def head_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(events.c.seq))).scalar() or 0)

    def count_after(self, after_seq: int) -> int:
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(events).where(events.c.seq > after_seq)
            return int(conn.execute(query).scalar_one())

    # -- deleting (privacy requests, retention) ------------------------------------------------
    def delete_events_in(self, conn: Connection, seqs: Sequence[int]) -> int:
        deleted = 0
        for part in chunks(sorted(set(seqs)), 500):
            deleted += conn.execute(delete(events).where(events.c.seq.in_(part))).rowcount
        return deleted

    def delete_pending_of(
        self,
        conn: Connection,
        after_seq: int,
        user_ids: Sequence[str],
        anonymous_ids: Sequence[str],
    ) -> int:
        """Delete not-yet-processed events (``seq > after_seq``) carrying these ids."""
        ids = or_(
            events.c.user_id.in_(list(user_ids)), events.c.anonymous_id.in_(list(anonymous_ids))
        )
        query = delete(events).where(events.c.seq > after_seq, ids)
        return int(conn.execute(query).rowcount)

    def delete_rejections_mentioning(self, conn: Connection, values: Sequence[str]) -> int:
        """Delete rejected payloads that contain one of ``values`` as a JSON string."""
        deleted = 0
        for value in values:
            needle = orjson.dumps(value).decode()
            needle = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = delete(rejections).where(rejections.c.payload.like(f"%{needle}%", escape="\\"))
            deleted += conn.execute(query).rowcount
        return deleted

    def expired_seqs(self, received_before: int, max_seq: int, limit: int) -> list[int]:
        """Up to ``limit`` events received before the cutoff and already processed."""
        query = (
            select(events.c.seq)
            .where(events.c.received_at < received_before, events.c.seq <= max_seq)
            .order_by(events.c.received_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [int(seq) for (seq,) in conn.execute(query)]

    def purge_rejections(self, conn: Connection, received_before: int) -> int:
        query = delete(rejections).where(rejections.c.received_at < received_before)
        return int(conn.execute(query).rowcount)

    def count_events(self, source_id: str | None = None) -> int:
        query = select(func.count()).select_from(events)
        if source_id is not None:
            query = query.where(events.c.source_id == source_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def recent_events(
        self, source_id: str, limit: int, after_seq: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, or oldest first after ``after_seq`` (for streaming)."""
        return self._recent(events, events.c.seq, source_id, limit, after_seq)

    def recent_rejections(
        self, source_id: str, limit: int, after_id: int | None = None
    ) -> list[dict[str, Any]]:
        return self._recent(rejections, rejections.c.id, source_id, limit, after_id)

    def _recent(
        self, table: Table, key: Column[int], source_id: str, limit: int, after: int | None
    ) -> list[dict[str, Any]]:
        query = select(table).where(table.c.source_id == source_id)
        if after is not None:
            query = query.where(key > after).order_by(key.asc())
        else:
            query = query.order_by(key.desc())
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query.limit(limit))]

    def max_ids(self, source_id: str) -> tuple[int, int]:
        with self.engine.connect() as conn:
            seq = conn.execute(
                select(func.max(events.c.seq)).where(events.c.source_id == source_id)
            ).scalar()
            rid = conn.execute(
                select(func.max(rejections.c.id)).where(rejections.c.source_id == source_id)
            ).scalar()
        return int(seq or 0), int(rid or 0)

    def rejection_counts(self, source_id: str) -> dict[str, int]:
        query = (
            select(rejections.c.code, func.count())
            .where(rejections.c.source_id == source_id)
            .group_by(rejections.c.code)
        )
        with self.engine.connect() as conn:
            return {code: int(n) for code, n in conn.execute(query)}

    # -- activity across sources (the admin dashboard) ----------------------------------------
    def events_per_minute(self, since_ms: int) -> list[tuple[str, int, int]]:
        """``(source_id, minute, events)`` for events received at or after ``since_ms``;
        ``minute`` is epoch milliseconds // 60,000 (a range scan of ``ix_events_received_at``)."""
        # A literal divisor: PostgreSQL matches the GROUP BY to the SELECT only if they are the
        # same expression, and two bound parameters are not.
        minute = events.c.received_at // literal_column("60000", BigInteger)
        query = (
            select(events.c.source_id, minute.label("minute"), func.count())
            .where(events.c.received_at >= since_ms)
            .group_by(events.c.source_id, minute)
        )
        with self.engine.connect() as conn:
            return [(s, int(m), int(n)) for s, m, n in conn.execute(query)]

    def latest_rejections(self, limit: int) -> list[dict[str, Any]]:
        """The newest rejections of every source (and those with no source), newest first."""
        query = select(rejections).order_by(rejections.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def rejection_counts_since(self, since_ms: int) -> dict[str, int]:
        query = (
            select(rejections.c.code, func.count())
            .where(rejections.c.received_at >= since_ms)
            .group_by(rejections.c.code)
        )
        with self.engine.connect() as conn:
            return {code: int(n) for code, n in conn.execute(query)}

    # -- sources ------------------------------------------------------------------------------
    def insert_source(self, record: SourceRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(sources.insert().values(**_asdict(record)))

    def insert_source_if_absent(self, record: SourceRecord) -> bool:
        """Insert unless a source with this id exists; True when this call inserted it."""
        with self.engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            query = insert(sources).values(**_asdict(record)).on_conflict_do_nothing()
            return bool(conn.execute(query).rowcount)

    def update_write_key(self, source_id: str, key_hash: str, hint: str, at: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(sources)
                .where(sources.c.id == source_id)
                .values(write_key_hash=key_hash, write_key_hint=hint, rotated_at=at)
            )
            return result.rowcount == 1

    def get_source(self, source_id: str) -> SourceRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sources).where(sources.c.id == source_id)).first()
        return SourceRecord(**row._mapping) if row else None

    def source_by_key_hash(self, key_hash: str) -> SourceRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(sources).where(sources.c.write_key_hash == key_hash)).first()
        return SourceRecord(**row._mapping) if row else None

    def list_sources(self) -> list[SourceRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(sources).order_by(sources.c.created_at))
            return [SourceRecord(**r._mapping) for r in rows]


def _chain(groups: Sequence[Sequence[Any]]) -> Sequence[Any] | Iterator[Any]:
    return groups[0] if len(groups) == 1 else itertools.chain.from_iterable(groups)


def _asdict(record: SourceRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in record.__slots__}
