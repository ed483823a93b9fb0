"""The email source's events by campaign: a campaign's report reads its own events only.

An index on an expression of the payload (the campaign id of the event's properties), partial
to the email source, per dialect: SQLAlchemy's metadata cannot declare it for both, so it is
created here only (``collect/store.py``: ``INDEXES_OUTSIDE_METADATA``).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from tidings.collect.store import CAMPAIGN_INDEX, campaign_index_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(campaign_index_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {CAMPAIGN_INDEX}")
