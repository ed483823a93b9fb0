"""The catalog: products from the feed and from events.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(200), primary_key=True),
        sa.Column("sku", sa.String(200), nullable=True),
        sa.Column("name", sa.String(500), nullable=True),
        sa.Column("price", sa.Float, nullable=True),
        sa.Column("sale_price", sa.Float, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("image_url", sa.String(2048), nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("category", sa.String(500), nullable=True),
        sa.Column("brand", sa.String(200), nullable=True),
        sa.Column("in_stock", sa.Boolean, nullable=True),
        sa.Column("extra", sa.Text, nullable=True),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("feed_fields", sa.Integer, nullable=False),
        sa.Column("views", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_products_category_views", "products", ["category", "views"])
    op.create_index("ix_products_views", "products", ["views"])


def downgrade() -> None:
    op.drop_table("products")
