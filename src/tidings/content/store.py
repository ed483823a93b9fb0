"""SQL for content: blocks, render decisions, locked first-open images and merge-tag alarms.

A block's definition is one JSON document (``spec``) with a ``version`` bumped on every save,
so targeting rules can grow inside it without a migration. Decisions are append-only and
written in batches by :class:`~tidings.content.decisions.DecisionLog`; a click reads the latest
one for (block, recipient[, send]) through ``ix_render_decisions_recipient``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
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

from tidings.core.db import Serial, insert_rows, metadata

MAX_RECIPIENT = 320
MAX_SEND = 200
MAX_AGENT = 500
MAX_WATERFALL = 400

content_blocks = Table(
    "content_blocks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("spec", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

render_decisions = Table(
    "render_decisions",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("block_id", String(40), nullable=False),
    Column("block_version", Integer, nullable=False),
    Column("variant", String(40), nullable=True),
    Column("recipient", String(MAX_RECIPIENT), nullable=False),
    Column("recipient_key", String(MAX_RECIPIENT), nullable=False),
    Column("send_id", String(MAX_SEND), nullable=False),
    Column("profile_id", String(40), nullable=True),
    Column("served", String(10), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("slot", Integer, nullable=True),
    Column("shown", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("user_agent", String(MAX_AGENT), nullable=True),
    Column("ip_class", String(12), nullable=False),
    Column("machine", Boolean, nullable=False),
    Column("fetch_kind", String(40), nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("rules_ms", Float, nullable=False),
    Column("waterfall", String(MAX_WATERFALL), nullable=False),
)
Index(
    "ix_render_decisions_recipient",
    render_decisions.c.block_id,
    render_decisions.c.recipient_key,
    render_decisions.c.at,
)
Index("ix_render_decisions_profile", render_decisions.c.profile_id)
# A campaign report reads which variant each recipient of one send saw.
Index("ix_render_decisions_send", render_decisions.c.send_id, render_decisions.c.recipient_key)
# The dashboard counts the last hour's renders per minute: a range of this index.
Index("ix_render_decisions_at", render_decisions.c.at)

content_locks = Table(
    "content_locks",
    metadata,
    Column("block_id", String(40), primary_key=True),
    Column("recipient_key", String(MAX_RECIPIENT), primary_key=True),
    Column("send_id", String(MAX_SEND), primary_key=True),
    Column("slot", Integer, primary_key=True),  # -1: the whole block's image
    Column("profile_id", String(40), nullable=True),
    Column("content_type", String(20), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("shown", Text, nullable=False),
    Column("at", BigInteger, nullable=False),
)
Index("ix_content_locks_profile", content_locks.c.profile_id)

content_alarms = Table(
    "content_alarms",
    metadata,
    Column("block_id", String(40), primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
    Column("example", String(200), nullable=False),
)

DECISION_COLUMNS = (
    "block_id",
    "block_version",
    "variant",
    "recipient",
    "recipient_key",
    "send_id",
    "profile_id",
    "served",
    "reason",
    "slot",
    "shown",
    "at",
    "user_agent",
    "ip_class",
    "machine",
    "fetch_kind",
    "duration_ms",
    "rules_ms",
    "waterfall",
)


@dataclass(frozen=True, slots=True)
class BlockRow:
    id: str
    name: str
    version: int
    spec: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class LockRow:
    block_id: str
    recipient_key: str
    send_id: str
    slot: int
    profile_id: str | None
    content_type: str
    data: bytes
    shown: str  # JSON
    at: int


@dataclass(frozen=True, slots=True)
class AlarmRow:
    block_id: str
    code: str
    count: int
    first_seen: int
    last_seen: int
    example: str


@dataclass(slots=True)
class WriteBatch:
    """What one transaction of the decision writer stores."""

    decisions: list[tuple[Any, ...]]
    locks: list[LockRow]
    alarms: list[AlarmRow]
    forget: list[tuple[str, list[str]]]  # (profile id, its recipient keys)


def _block(row: Any) -> BlockRow:
    return BlockRow(
        row["id"],
        row["name"],
        row["version"],
        orjson.loads(row["spec"]),
        row["created_at"],
        row["updated_at"],
    )


class ContentStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- blocks ---------------------------------------------------------------------------------
    def get_block(self, block_id: str) -> BlockRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(content_blocks).where(content_blocks.c.id == block_id))
            found = row.mappings().first()
        return _block(found) if found else None

    def list_blocks(self) -> list[BlockRow]:
        query = select(content_blocks).order_by(content_blocks.c.created_at, content_blocks.c.id)
        with self.engine.connect() as conn:
            return [_block(r) for r in conn.execute(query).mappings()]

    def insert_block(self, row: BlockRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                content_blocks.insert().values(
                    id=row.id,
                    name=row.name,
                    version=row.version,
                    spec=orjson.dumps(row.spec).decode(),
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                )
            )

    def update_block(self, block_id: str, name: str, spec: dict[str, Any], at: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(content_blocks)
                .where(content_blocks.c.id == block_id)
                .values(
                    name=name,
                    spec=orjson.dumps(spec).decode(),
                    version=content_blocks.c.version + 1,
                    updated_at=at,
                )
            )
        return result.rowcount == 1

    def delete_block(self, block_id: str) -> bool:
        """The block, its decisions, locks and alarms, in one transaction."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(content_blocks).where(content_blocks.c.id == block_id))
            for table in (render_decisions, content_locks, content_alarms):
                conn.execute(delete(table).where(table.c.block_id == block_id))
        return result.rowcount == 1

    # -- decisions, locks, alarms ----------------------------------------------------------------
    def write(self, batch: WriteBatch) -> None:
        """One transaction: the batch's decisions, first-open locks (the first one stored for
        a key wins), alarm counts, then the forgetting of deleted people."""
        with self.engine.begin() as conn:
            insert_rows(conn, render_decisions, DECISION_COLUMNS, batch.decisions)
            self._put_locks(conn, batch.locks)
            self._count_alarms(conn, batch.alarms)
            for profile_id, keys in batch.forget:
                self._forget(conn, profile_id, keys)

    def _insert(self, conn: Connection) -> Any:
        return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert

    def _put_locks(self, conn: Connection, locks: Sequence[LockRow]) -> None:
        if not locks:
            return
        stmt = self._insert(conn)(content_locks).on_conflict_do_nothing(
            index_elements=["block_id", "recipient_key", "send_id", "slot"]
        )
        conn.execute(
            stmt,
            [
                {
                    "block_id": lock.block_id,
                    "recipient_key": lock.recipient_key,
                    "send_id": lock.send_id,
                    "slot": lock.slot,
                    "profile_id": lock.profile_id,
                    "content_type": lock.content_type,
                    "data": lock.data,
                    "shown": lock.shown,
                    "at": lock.at,
                }
                for lock in locks
            ],
        )

    def _count_alarms(self, conn: Connection, alarms: Sequence[AlarmRow]) -> None:
        for alarm in alarms:
            stmt = self._insert(conn)(content_alarms).values(
                block_id=alarm.block_id,
                code=alarm.code,
                count=alarm.count,
                first_seen=alarm.first_seen,
                last_seen=alarm.last_seen,
                example=alarm.example,
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["block_id", "code"],
                set_={
                    "count": content_alarms.c.count + stmt.excluded.count,
                    "last_seen": func.max(content_alarms.c.last_seen, stmt.excluded.last_seen)
                    if conn.dialect.name == "sqlite"
                    else func.greatest(content_alarms.c.last_seen, stmt.excluded.last_seen),
                    "example": stmt.excluded.example,
                },
            )
            conn.execute(stmt)

    def _forget(self, conn: Connection, profile_id: str, keys: Sequence[str]) -> None:
        for table in (render_decisions, content_locks):
            condition = table.c.profile_id == profile_id
            if keys:
                condition = or_(condition, table.c.recipient_key.in_(list(keys)))
            conn.execute(delete(table).where(condition))

    def decisions(
        self, block_id: str, recipient_key: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The block's latest decisions (of one recipient), newest first."""
        query = select(render_decisions).where(render_decisions.c.block_id == block_id)
        if recipient_key is not None:
            query = query.where(render_decisions.c.recipient_key == recipient_key)
        query = query.order_by(render_decisions.c.at.desc(), render_decisions.c.id.desc())
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.limit(limit)).mappings()]

    def renders_per_minute(self, since_ms: int) -> list[tuple[int, bool, int]]:
        """``(minute, machine, renders)`` of the decisions at or after ``since_ms``; ``minute``
        is epoch milliseconds // 60,000 (a range scan of ``ix_render_decisions_at``)."""
        c = render_decisions.c
        # A literal divisor, as in the events' per-minute count: PostgreSQL matches the GROUP BY
        # to the SELECT only when both are the same expression.
        minute = c.at // literal_column("60000", BigInteger)
        query = (
            select(minute.label("minute"), c.machine, func.count())
            .where(c.at >= since_ms)
            .group_by(minute, c.machine)
        )
        with self.engine.connect() as conn:
            return [(int(m), bool(machine), int(n)) for m, machine, n in conn.execute(query)]

    def variants_of_send(
        self, send_id: str, after_id: int, limit: int
    ) -> list[tuple[int, str, str, str | None, bool, int]]:
        """``(id, recipient_key, block_id, variant, machine, at)`` of one send's decisions
        with ``id > after_id``, in id order, at most ``limit`` (``ix_render_decisions_send``)."""
        c = render_decisions.c
        query = (
            select(c.id, c.recipient_key, c.block_id, c.variant, c.machine, c.at)
            .where(c.send_id == send_id, c.id > after_id)
            .order_by(c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(i), k, b, v, bool(m), int(a)) for i, k, b, v, m, a in conn.execute(query)]

    def latest(
        self, block_id: str, recipient_key: str, send_id: str | None, slot: int
    ) -> dict[str, Any] | None:
        """The latest decision of (block, recipient[, send]) that showed slot ``slot`` or the
        whole block; people's opens before machines'."""
        c = render_decisions.c
        query = select(render_decisions).where(
            c.block_id == block_id,
            c.recipient_key == recipient_key,
            or_(c.slot.is_(None), c.slot == slot),
        )
        if send_id is not None:
            query = query.where(c.send_id == send_id)
        query = query.order_by(c.machine, c.at.desc(), c.id.desc()).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def get_lock(
        self, block_id: str, recipient_key: str, send_id: str, slot: int
    ) -> LockRow | None:
        c = content_locks.c
        query = select(content_locks).where(
            c.block_id == block_id,
            c.recipient_key == recipient_key,
            c.send_id == send_id,
            c.slot == slot,
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return LockRow(
            row["block_id"],
            row["recipient_key"],
            row["send_id"],
            row["slot"],
            row["profile_id"],
            row["content_type"],
            bytes(row["data"]),
            row["shown"],
            row["at"],
        )

    def alarms(self, block_id: str) -> list[AlarmRow]:
        query = (
            select(content_alarms)
            .where(content_alarms.c.block_id == block_id)
            .order_by(content_alarms.c.code)
        )
        with self.engine.connect() as conn:
            return [
                AlarmRow(
                    r["block_id"],
                    r["code"],
                    r["count"],
                    r["first_seen"],
                    r["last_seen"],
                    r["example"],
                )
                for r in conn.execute(query).mappings()
            ]
