"""Content blocks, render decisions, first-open locks and merge-tag alarms.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "content_blocks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "render_decisions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("block_id", sa.String(40), nullable=False),
        sa.Column("block_version", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(40), nullable=True),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("recipient_key", sa.String(320), nullable=False),
        sa.Column("send_id", sa.String(200), nullable=False),
        sa.Column("profile_id", sa.String(40), nullable=True),
        sa.Column("served", sa.String(10), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("slot", sa.Integer, nullable=True),
        sa.Column("shown", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("user_agent", sa.String(500), nullable=True),
        sa.Column("ip_class", sa.String(12), nullable=False),
        sa.Column("machine", sa.Boolean, nullable=False),
        sa.Column("fetch_kind", sa.String(40), nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("rules_ms", sa.Float, nullable=False),
        sa.Column("waterfall", sa.String(400), nullable=False),
    )
    op.create_index(
        "ix_render_decisions_recipient", "render_decisions", ["block_id", "recipient_key", "at"]
    )
    op.create_index("ix_render_decisions_profile", "render_decisions", ["profile_id"])
    op.create_table(
        "content_locks",
        sa.Column("block_id", sa.String(40), primary_key=True),
        sa.Column("recipient_key", sa.String(320), primary_key=True),
        sa.Column("send_id", sa.String(200), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("profile_id", sa.String(40), nullable=True),
        sa.Column("content_type", sa.String(20), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("shown", sa.Text, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_content_locks_profile", "content_locks", ["profile_id"])
    op.create_table(
        "content_alarms",
        sa.Column("block_id", sa.String(40), primary_key=True),
        sa.Column("code", sa.String(40), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
        sa.Column("example", sa.String(200), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("content_alarms")
    op.drop_table("content_locks")
    op.drop_table("render_decisions")
    op.drop_table("content_blocks")
