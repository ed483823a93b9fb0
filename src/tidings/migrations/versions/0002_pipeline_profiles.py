"""The pipeline cursor, identities, profiles, the timeline, trait history and flags.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Serial = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pipeline_cursors",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("id_type", sa.String(40), nullable=False),
        sa.Column("id_value", sa.String(500), nullable=False),
        sa.Column("profile_id", sa.String(40), nullable=False),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id_type", "id_value", name="pk_identities"),
    )
    op.create_index("ix_identities_profile", "identities", ["profile_id"])
    op.create_table(
        "identity_links",
        sa.Column("link_key", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("identifiers", sa.Text, nullable=False),
    )
    op.create_table(
        "identity_link_members",
        sa.Column("id_type", sa.String(40), nullable=False),
        sa.Column("id_value", sa.String(500), nullable=False),
        sa.Column("link_key", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id_type", "id_value", "link_key", name="pk_identity_link_members"),
    )
    op.create_table(
        "identity_merges",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("anchor_type", sa.String(40), nullable=False),
        sa.Column("anchor_value", sa.String(500), nullable=False),
        sa.Column("linked_type", sa.String(40), nullable=False),
        sa.Column("linked_value", sa.String(500), nullable=False),
        sa.Column("profile_a", sa.String(40), nullable=False),
        sa.Column("profile_b", sa.String(40), nullable=False),
        sa.Column("into_profile", sa.String(40), nullable=False),
    )
    op.create_index("ix_identity_merges_anchor", "identity_merges", ["anchor_type", "anchor_value"])
    op.create_index("ix_identity_merges_linked", "identity_merges", ["linked_type", "linked_value"])
    op.create_table(
        "identity_conflicts",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(200), nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.Column("anchor_type", sa.String(40), nullable=False),
        sa.Column("anchor_value", sa.String(500), nullable=False),
        sa.Column("other_type", sa.String(40), nullable=False),
        sa.Column("other_value", sa.String(500), nullable=False),
        sa.Column("profile_a", sa.String(40), nullable=False),
        sa.Column("profile_b", sa.String(40), nullable=False),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("limit_type", sa.String(40), nullable=False),
        sa.Column("limit_value", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_identity_conflicts_anchor", "identity_conflicts", ["anchor_type", "anchor_value"]
    )
    op.create_index(
        "ix_identity_conflicts_other", "identity_conflicts", ["other_type", "other_value"]
    )
    op.create_table(
        "suppressions",
        sa.Column("value_hash", sa.String(64), primary_key=True),
        sa.Column("id_type", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
    )
    op.create_table(
        "profiles",
        sa.Column("profile_id", sa.String(40), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("first_seen_ms", sa.BigInteger, nullable=True),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
        sa.Column("event_count", sa.Integer, nullable=False),
        sa.Column("order_count", sa.Integer, nullable=False),
        sa.Column("revenue", sa.Float, nullable=False),
        sa.Column("last_order_ms", sa.BigInteger, nullable=True),
        sa.Column("cart_quantity", sa.Integer, nullable=False),
        sa.Column("cart_value", sa.Float, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_profiles_last_seen", "profiles", ["last_seen_ms"])
    op.create_table(
        "timeline",
        sa.Column("id_type", sa.String(40), nullable=False),
        sa.Column("id_value", sa.String(500), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id_type", "id_value", "seq", name="pk_timeline"),
    )
    op.create_index("ix_timeline_seq", "timeline", ["seq"])
    op.create_table(
        "trait_history",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("timestamp", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", "key", name="pk_trait_history"),
    )
    op.create_table(
        "event_flags",
        sa.Column("id", Serial, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("source_id", sa.String(40), nullable=False),
        sa.Column("code", sa.String(60), nullable=False),
        sa.Column("field", sa.String(200), nullable=False),
        sa.Column("message", sa.String(1000), nullable=False),
    )
    op.create_index("ix_event_flags_seq", "event_flags", ["seq"])
    op.create_index("ix_event_flags_source", "event_flags", ["source_id", "code"])


def downgrade() -> None:
    for table in (
        "event_flags",
        "trait_history",
        "timeline",
        "profiles",
        "suppressions",
        "identity_conflicts",
        "identity_merges",
        "identity_link_members",
        "identity_links",
        "identities",
        "pipeline_cursors",
    ):
        op.drop_table(table)
