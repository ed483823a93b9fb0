"""Sources, admin tokens, the events log and rejections.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only makes INTEGER PRIMARY KEY an alias of rowid (auto-increment, fast appends).
Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("write_key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("write_key_hint", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("rotated_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hint", sa.String(20), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("seq", Seq, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(40), nullable=False),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("event", sa.String(500), nullable=True),
        sa.Column("user_id", sa.String(500), nullable=True),
        sa.Column("anonymous_id", sa.String(500), nullable=True),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.UniqueConstraint("source_id", "message_id", name="uq_events_source_message"),
    )
    op.create_index("ix_events_source_seq", "events", ["source_id", "seq"])
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_table(
        "rejections",
        sa.Column("id", Seq, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(40), nullable=True),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("endpoint", sa.String(100), nullable=False),
        sa.Column("batch_index", sa.Integer, nullable=True),
        sa.Column("code", sa.String(60), nullable=False),
        sa.Column("field", sa.String(200), nullable=True),
        sa.Column("message", sa.String(1000), nullable=False),
        sa.Column("payload", sa.Text, nullable=True),
    )
    op.create_index("ix_rejections_source_id", "rejections", ["source_id", "id"])


def downgrade() -> None:
    op.drop_table("rejections")
    op.drop_table("events")
    op.drop_table("api_tokens")
    op.drop_table("sources")
