"""Applied pipeline batches: when each range of the log reached the profiles.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_batches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("consumer", sa.String(60), nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("committed_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pipeline_batches_committed", "pipeline_batches", ["committed_at"])


def downgrade() -> None:
    op.drop_table("pipeline_batches")
