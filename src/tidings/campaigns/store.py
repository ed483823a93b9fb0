"""SQL for the campaigns context: campaigns, the messages of their sends, and send jobs.

``campaign_messages`` is what makes a send idempotent: one row per (campaign, recipient), claimed
(``sending``) in a committed transaction *before* the SMTP conversation and given its outcome
after. A re-send skips every recipient that has a row, except those known not to have gone out
(``failed``: a connection error or a 4xx deferral); a row left ``sending`` by a crash is marked
``unknown`` and never sent again (at most once: SMTP has no idempotency key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Engine

from tidings.core.db import chunks, metadata, upsert

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("spec", Text, nullable=False),  # subject, from, html, recipients, window (JSON)
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

campaign_messages = Table(
    "campaign_messages",
    metadata,
    Column("campaign_id", String(40), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("email_id", String(40), nullable=False, unique=True),
    Column("profile_id", String(40), nullable=True),
    Column("reply_token", String(40), nullable=False, unique=True),
    Column("message_id", String(200), nullable=False),
    Column("status", String(12), nullable=False),  # sending sent bounced failed unknown
    Column("smtp_code", Integer, nullable=True),
    Column("error", String(500), nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("claimed_at", BigInteger, nullable=False),
    Column("done_at", BigInteger, nullable=True),
    PrimaryKeyConstraint("campaign_id", "recipient", name="pk_campaign_messages"),
    Index("ix_campaign_messages_message_id", "message_id"),
)

campaign_sends = Table(
    "campaign_sends",
    metadata,
    Column("campaign_id", String(40), primary_key=True),
    Column("status", String(12), nullable=False),  # queued sending done failed
    Column("total", Integer, nullable=False),
    Column("sent", Integer, nullable=False),
    Column("bounced", Integer, nullable=False),
    Column("failed", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("error", String(500), nullable=True),
    Column("log_seq", BigInteger, nullable=False),  # the events log's head when sending began
    Column("rate", Float, nullable=False),
    Column("started_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=True),
)

SEND_COUNTS = ("total", "sent", "bounced", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class CampaignRow:
    id: str
    name: str
    spec: dict[str, Any]
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class MessageRow:
    campaign_id: str
    recipient: str
    email_id: str
    profile_id: str | None
    reply_token: str
    message_id: str
    status: str
    smtp_code: int | None
    error: str | None
    attempts: int
    claimed_at: int
    done_at: int | None


def _campaign(row: Any) -> CampaignRow:
    return CampaignRow(
        row.id, row.name, orjson.loads(row.spec), int(row.created_at), int(row.updated_at)
    )


def _message(row: Any) -> MessageRow:
    return MessageRow(**{c: getattr(row, c) for c in MessageRow.__slots__})


class CampaignStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- campaigns ------------------------------------------------------------------------------
    def insert(self, row: CampaignRow) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                campaigns.insert().values(
                    id=row.id,
                    name=row.name,
                    spec=orjson.dumps(row.spec).decode(),
                    created_at=row.created_at,
                    updated_at=row.updated_at,
                )
            )

    def update(self, campaign_id: str, name: str, spec: dict[str, Any], at: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(campaigns)
                .where(campaigns.c.id == campaign_id)
                .values(name=name, spec=orjson.dumps(spec).decode(), updated_at=at)
            )
            return result.rowcount == 1

    def get(self, campaign_id: str) -> CampaignRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.id == campaign_id)).first()
        return _campaign(row) if row else None

    def recent(self, limit: int) -> list[CampaignRow]:
        query = select(campaigns).order_by(campaigns.c.created_at.desc(), campaigns.c.id)
        with self.engine.connect() as conn:
            return [_campaign(r) for r in conn.execute(query.limit(limit))]

    def delete(self, campaign_id: str) -> bool:
        with self.engine.begin() as conn:
            for table in (campaign_messages, campaign_sends):
                conn.execute(delete(table).where(table.c.campaign_id == campaign_id))
            return (
                conn.execute(delete(campaigns).where(campaigns.c.id == campaign_id)).rowcount == 1
            )

    # -- messages -------------------------------------------------------------------------------
    def messages_of(self, campaign_id: str, recipients: Sequence[str]) -> dict[str, MessageRow]:
        found: dict[str, MessageRow] = {}
        c = campaign_messages.c
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(recipients)), 500):
                query = select(campaign_messages).where(
                    c.campaign_id == campaign_id, c.recipient.in_(part)
                )
                found.update((r.recipient, _message(r)) for r in conn.execute(query))
        return found

    def all_messages(self, campaign_id: str) -> list[MessageRow]:
        columns = [campaign_messages.c[name] for name in MessageRow.__slots__]
        query = select(*columns).where(campaign_messages.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [MessageRow(*r) for r in conn.execute(query)]

    def claim(self, rows: Sequence[MessageRow]) -> None:
        """Mark these messages ``sending`` (new rows, or ``failed`` ones tried again), in one
        committed transaction before any of them is handed to SMTP."""
        values = [{f: getattr(r, f) for f in MessageRow.__slots__} for r in rows]
        with self.engine.begin() as conn:
            upsert(conn, campaign_messages, values, ["campaign_id", "recipient"])

    def record(self, rows: Sequence[MessageRow]) -> None:
        """The outcome of each claimed message."""
        if not rows:
            return
        c = campaign_messages.c
        query = (
            update(campaign_messages)
            .where(c.campaign_id == bindparam("b_campaign"), c.recipient == bindparam("b_rcpt"))
            .values(
                status=bindparam("b_status"),
                smtp_code=bindparam("b_code"),
                error=bindparam("b_error"),
                done_at=bindparam("b_done"),
            )
        )
        values = [
            {
                "b_campaign": r.campaign_id,
                "b_rcpt": r.recipient,
                "b_status": r.status,
                "b_code": r.smtp_code,
                "b_error": r.error,
                "b_done": r.done_at,
            }
            for r in rows
        ]
        with self.engine.begin() as conn:
            conn.execute(query, values)  # one executemany

    def abandon_claims(self, campaign_id: str, at: int) -> int:
        """Claims a crashed send left behind: ``unknown``, so they are never sent twice."""
        c = campaign_messages.c
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    update(campaign_messages)
                    .where(c.campaign_id == campaign_id, c.status == "sending")
                    .values(status="unknown", done_at=at, error="the send stopped mid-message")
                ).rowcount
            )

    def status_counts(self, campaign_id: str) -> dict[str, int]:
        c = campaign_messages.c
        query = (
            select(c.status, func.count()).where(c.campaign_id == campaign_id).group_by(c.status)
        )
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def by_reply_token(self, token: str) -> MessageRow | None:
        query = select(campaign_messages).where(campaign_messages.c.reply_token == token)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _message(row) if row else None

    def by_message_id(self, message_id: str) -> MessageRow | None:
        query = select(campaign_messages).where(campaign_messages.c.message_id == message_id)
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return _message(row) if row else None

    def by_email_ids(self, email_ids: Sequence[str]) -> dict[str, MessageRow]:
        found: dict[str, MessageRow] = {}
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(email_ids)), 500):
                query = select(campaign_messages).where(campaign_messages.c.email_id.in_(part))
                found.update((r.email_id, _message(r)) for r in conn.execute(query))
        return found

    # -- send jobs ------------------------------------------------------------------------------
    def get_send(self, campaign_id: str) -> dict[str, Any] | None:
        query = select(campaign_sends).where(campaign_sends.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def put_send(self, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            upsert(conn, campaign_sends, [values], ["campaign_id"])

    def update_send(self, campaign_id: str, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(campaign_sends)
                .where(campaign_sends.c.campaign_id == campaign_id)
                .values(**values)
            )
