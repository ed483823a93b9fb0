"""SQL for the pipeline: one cursor row per consumer.

``position`` is the last ``seq`` applied; ``epoch`` changes whenever something outside the
consumer rewrites what it derived (a privacy deletion, a rebuild), so a consumer holding
in-memory state built before the change notices, reloads and retries. A batch advances the
cursor with ``WHERE position = :old AND epoch = :epoch`` in the same transaction as its writes:
two consumers can never both apply the same batch, and a crash rolls back the cursor with
the writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine

from tidings.core.db import Serial, metadata, upsert

# Each event applied in the window with its delay. ``CROSS JOIN`` makes SQLite walk the
# window's batches first and each batch's events by ``seq``: with a plain join it chose to scan
# every event (through its ``received_at`` index) against every batch, 8 s for 100,000 events
# against 50 ms. PostgreSQL plans it as the same inner join either way.
LAGS_SQL = (
    "SELECT b.committed_at - e.received_at FROM pipeline_batches b "
    "CROSS JOIN events e "
    "WHERE b.consumer = :name AND b.committed_at >= :since "
    "AND e.seq BETWEEN b.first_seq AND b.last_seq LIMIT :limit"
)

pipeline_cursors = Table(
    "pipeline_cursors",
    metadata,
    Column("name", String(60), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)


# One row per applied batch: which events, when committed. The delay from receipt to profile
# of any event is ``committed_at`` of its batch minus its ``received_at``, whichever process
# applied it (``tidings worker`` or a server).
pipeline_batches = Table(
    "pipeline_batches",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("consumer", String(60), nullable=False),
    Column("first_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("committed_at", BigInteger, nullable=False),
    Index("ix_pipeline_batches_committed", "committed_at"),
)


class StaleCursor(Exception):
    """The cursor moved (or its epoch changed) since the batch was prepared."""


@dataclass(frozen=True, slots=True)
class Cursor:
    name: str
    position: int
    epoch: int
    updated_at: int


class CursorStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str, conn: Connection | None = None) -> Cursor:
        query = select(pipeline_cursors).where(pipeline_cursors.c.name == name)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        if row is None:
            return Cursor(name, 0, 0, 0)
        return Cursor(row.name, int(row.position), int(row.epoch), int(row.updated_at))

    def advance(self, conn: Connection, cursor: Cursor, position: int, at: int) -> None:
        """Move the cursor from ``cursor.position`` to ``position``, or raise StaleCursor."""
        if cursor.updated_at == 0 and cursor.position == 0 and cursor.epoch == 0:
            # First batch ever: create the row (a racing creator makes one of us stale).
            upsert(
                conn,
                pipeline_cursors,
                [{"name": cursor.name, "position": 0, "epoch": 0, "updated_at": 0}],
                keys=("name",),
                update=(),
            )
        result = conn.execute(
            update(pipeline_cursors)
            .where(
                pipeline_cursors.c.name == cursor.name,
                pipeline_cursors.c.position == cursor.position,
                pipeline_cursors.c.epoch == cursor.epoch,
            )
            .values(position=position, updated_at=at)
        )
        if result.rowcount != 1:
            raise StaleCursor(cursor.name)

    def bump_epoch(self, conn: Connection, name: str, at: int, position: int | None = None) -> None:
        """Tell the consumer its in-memory state is stale (optionally rewinding it)."""
        upsert(
            conn,
            pipeline_cursors,
            [{"name": name, "position": 0, "epoch": 0, "updated_at": at}],
            keys=("name",),
            update=(),
        )
        values: dict[str, object] = {
            "epoch": pipeline_cursors.c.epoch + 1,
            "updated_at": at,
        }
        if position is not None:
            values["position"] = position
        conn.execute(
            update(pipeline_cursors).where(pipeline_cursors.c.name == name).values(**values)
        )

    def record_batch(
        self, conn: Connection, name: str, first_seq: int, last_seq: int, events: int, at: int
    ) -> None:
        conn.execute(
            insert(pipeline_batches).values(
                consumer=name,
                first_seq=first_seq,
                last_seq=last_seq,
                events=events,
                committed_at=at,
            )
        )

    def lags_since(self, name: str, since_ms: int, limit: int = 200_000) -> list[int]:
        """Receipt-to-profile delays (ms) of the events applied since ``since_ms``."""
        sql = text(LAGS_SQL)
        with self.engine.connect() as conn:
            rows = conn.execute(sql, {"name": name, "since": since_ms, "limit": limit})
            return sorted(int(lag) for (lag,) in rows)

    def purge_batches(self, conn: Connection, before_ms: int) -> int:
        query = delete(pipeline_batches).where(pipeline_batches.c.committed_at < before_ms)
        return int(conn.execute(query).rowcount)
