"""Campaigns, the messages of their sends and send jobs; render decisions by send.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "campaign_messages",
        sa.Column("campaign_id", sa.String(40), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("email_id", sa.String(40), nullable=False, unique=True),
        sa.Column("profile_id", sa.String(40), nullable=True),
        sa.Column("reply_token", sa.String(40), nullable=False, unique=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("smtp_code", sa.Integer, nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.BigInteger, nullable=False),
        sa.Column("done_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("campaign_id", "recipient", name="pk_campaign_messages"),
    )
    op.create_index("ix_campaign_messages_message_id", "campaign_messages", ["message_id"])
    op.create_table(
        "campaign_sends",
        sa.Column("campaign_id", sa.String(40), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("sent", sa.Integer, nullable=False),
        sa.Column("bounced", sa.Integer, nullable=False),
        sa.Column("failed", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("log_seq", sa.BigInteger, nullable=False),
        sa.Column("rate", sa.Float, nullable=False),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_render_decisions_send", "render_decisions", ["send_id", "recipient_key"])


def downgrade() -> None:
    op.drop_index("ix_render_decisions_send", table_name="render_decisions")
    op.drop_table("campaign_sends")
    op.drop_index("ix_campaign_messages_message_id", table_name="campaign_messages")
    op.drop_table("campaign_messages")
    op.drop_table("campaigns")
