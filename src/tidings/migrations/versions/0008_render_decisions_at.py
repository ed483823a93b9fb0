"""Render decisions by time: the dashboard's renders per minute.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_render_decisions_at", "render_decisions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_render_decisions_at", table_name="render_decisions")
