"""SQL for the catalog: one ``products`` row per product id, from the feed and from events.

**Which value wins.** Each field (``name``, ``price``, ``image_url``, …) remembers where its value
came from in ``feed_fields``, a bit per field (:data:`~tidings.catalog.feed.FIELD_BITS`): set
when the feed (or an admin through the API) gave the value, clear when an event did. So:

- an event never overwrites a field the feed defined; it fills in the fields the feed left
  empty (and updates the ones events set before: the latest event wins there);
- a feed import overwrites whatever events learned, for every field it gives a value;
- a field the feed defined before but now leaves empty is cleared and handed back to events
  (the feed retracted it: a sale that ended drops ``sale_price``).

Both writes are single ``INSERT … ON CONFLICT DO UPDATE`` statements whose ``CASE`` expressions
apply these rules in the database, so a feed import and the pipeline may write concurrently.

**Popularity.** ``views`` counts the product's appearances in the events the pipeline learns
from; ``(category, views)`` is indexed, so the most popular products of a few categories are
one index range scan each (:meth:`CatalogStore.top_in_categories`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row

from tidings.core.db import chunks, insert_rows, metadata
from tidings.profiles.ecommerce import Product

from .feed import (
    FIELD_BITS,
    MAX_ID,
    MAX_TEXT,
    MAX_URL,
    PRODUCT_FIELDS,
    ProductRecord,
    link_url,
)

FEED: Final = "feed"
EVENTS: Final = "events"
Origin = Literal["feed", "events"]

products = Table(
    "products",
    metadata,
    Column("product_id", String(MAX_ID), primary_key=True),
    Column("sku", String(MAX_TEXT["sku"]), nullable=True),
    Column("name", String(MAX_TEXT["name"]), nullable=True),
    Column("price", Float, nullable=True),
    Column("sale_price", Float, nullable=True),
    Column("currency", String(3), nullable=True),
    Column("image_url", String(MAX_URL), nullable=True),
    Column("url", String(MAX_URL), nullable=True),
    Column("category", String(MAX_TEXT["category"]), nullable=True),
    Column("brand", String(MAX_TEXT["brand"]), nullable=True),
    Column("in_stock", Boolean, nullable=True),
    Column("extra", Text, nullable=True),
    Column("source", String(10), nullable=False),
    Column("feed_fields", Integer, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Index("ix_products_category_views", "category", "views"),
    Index("ix_products_views", "views"),
)

# ``learn`` takes a parameter named ``products`` (the events' products): its name for the table.
_TABLE: Final = products
# Built once: open-time renders read their products with it, and building an IN clause from a
# list of values (coercing each) cost more than running it.
_BY_IDS: Final = select(products).where(products.c.product_id.in_(bindparam("ids", expanding=True)))

_FEED_COLUMNS: Final = (
    "product_id",
    *PRODUCT_FIELDS,
    "extra",
    "source",
    "feed_fields",
    "views",
    "created_at",
    "updated_at",
)
# What events may teach (``in_stock`` only ever comes from the feed).
LEARNED_FIELDS: Final = tuple(f for f in PRODUCT_FIELDS if f != "in_stock")
_LEARN_COLUMNS: Final = (
    "product_id",
    *LEARNED_FIELDS,
    "source",
    "feed_fields",
    "views",
    "created_at",
    "updated_at",
)


def _feed_conflict() -> str:
    sets = [
        f"{f} = CASE WHEN excluded.{f} IS NOT NULL THEN excluded.{f} "
        f"WHEN (products.feed_fields & {FIELD_BITS[f]}) <> 0 THEN NULL ELSE products.{f} END"
        for f in PRODUCT_FIELDS
        if f != "in_stock"
    ]
    sets += [
        f"{c} = excluded.{c}" for c in ("in_stock", "extra", "source", "feed_fields", "updated_at")
    ]
    return "ON CONFLICT (product_id) DO UPDATE SET " + ", ".join(sets)


def _learn_conflict() -> str:
    sets = [
        f"{f} = CASE WHEN (products.feed_fields & {FIELD_BITS[f]}) <> 0 THEN products.{f} "
        f"ELSE COALESCE(excluded.{f}, products.{f}) END"
        for f in LEARNED_FIELDS
    ]
    sets += ["views = products.views + excluded.views", "updated_at = excluded.updated_at"]
    return "ON CONFLICT (product_id) DO UPDATE SET " + ", ".join(sets)


FEED_CONFLICT: Final = _feed_conflict()
LEARN_CONFLICT: Final = _learn_conflict()


@dataclass(frozen=True, slots=True)
class CatalogProduct:
    """A product as stored: the winning value of each field, and where each came from."""

    product_id: str
    sku: str | None
    name: str | None
    price: float | None
    sale_price: float | None
    currency: str | None
    image_url: str | None
    url: str | None
    category: str | None
    brand: str | None
    in_stock: bool | None
    source: Origin
    feed_fields: int
    views: int
    extra: Mapping[str, Any]
    created_at: int
    updated_at: int

    def origin(self, field: str) -> Origin | None:
        """Where the field's value came from (``None`` when it has none)."""
        if getattr(self, field) is None:
            return None
        return FEED if self.feed_fields & FIELD_BITS[field] else EVENTS

    def origins(self) -> dict[str, Origin]:
        """Each field that has a value → ``"feed"`` or ``"events"``."""
        found: dict[str, Origin] = {}
        for name in PRODUCT_FIELDS:
            origin = self.origin(name)
            if origin is not None:
                found[name] = origin
        return found

    @property
    def on_sale(self) -> bool:
        return (
            self.sale_price is not None and self.price is not None and self.sale_price < self.price
        )


def _product(row: Row[Any]) -> CatalogProduct:
    m = row._mapping
    extra = orjson.loads(m["extra"]) if m["extra"] else {}
    return CatalogProduct(
        product_id=m["product_id"],
        sku=m["sku"],
        name=m["name"],
        price=m["price"],
        sale_price=m["sale_price"],
        currency=m["currency"],
        image_url=m["image_url"],
        url=m["url"],
        category=m["category"],
        brand=m["brand"],
        in_stock=m["in_stock"],
        source=FEED if m["source"] == FEED else EVENTS,
        feed_fields=int(m["feed_fields"]),
        views=int(m["views"]),
        extra=extra if isinstance(extra, dict) else {},
        created_at=int(m["created_at"]),
        updated_at=int(m["updated_at"]),
    )


def _text(value: str | None, limit: int) -> str | None:
    """An event's text as a column stores it: no NUL, at most ``limit`` characters."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    value = value.strip()
    return value[:limit] if value else None


def _url(value: str | None) -> str | None:
    """An event's URL if it is one a render may link or fetch (a cut URL would be wrong)."""
    value = _text(value, MAX_URL + 1)
    if value is None or len(value) > MAX_URL:
        return None
    return link_url(value)


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    code = value.strip().upper()
    return code if len(code) == 3 and code.isascii() and code.isalpha() else None


def _amount(value: float | None) -> float | None:
    return value if value is not None and value >= 0 else None


def _learnable(product: Product) -> tuple[str, dict[str, Any]] | tuple[()]:
    """What :meth:`CatalogStore.learn` keeps of an event's product: its id and the values a
    column can hold (``()`` when its id cannot be stored)."""
    pid = _text(product.product_id, MAX_ID + 1)
    if pid is None or len(pid) > MAX_ID:
        return ()
    return pid, {
        "sku": _text(product.sku, MAX_TEXT["sku"]),
        "name": _text(product.name, MAX_TEXT["name"]),
        "price": _amount(product.price),
        "sale_price": _amount(product.sale_price),
        "currency": _currency(product.currency),
        "image_url": _url(product.image_url),
        "url": _url(product.url),
        "category": _text(product.category, MAX_TEXT["category"]),
        "brand": _text(product.brand, MAX_TEXT["brand"]),
    }


# Events repeat the same products in the same spelling: checking each spelling once saves
# most of the pipeline's catalog work. Bounded by forgetting them all when full.
_LEARNABLE_MEMO: Final = 20_000


class CatalogStore:
    """The catalog's SQL. Writes take the caller's connection (its transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._learnable: dict[Product, tuple[str, dict[str, Any]] | tuple[()]] = {}

    # -- writing --------------------------------------------------------------------------------
    def write_feed(
        self, conn: Connection, records: Sequence[ProductRecord], at_ms: int
    ) -> tuple[int, int]:
        """Upsert feed records (the feed's values win); returns (inserted, updated)."""
        if not records:
            return 0, 0
        ordered = sorted(records, key=lambda r: r.product_id)  # one lock order for everyone
        existing: set[str] = set()
        for part in chunks([r.product_id for r in ordered], 500):
            query = select(products.c.product_id).where(products.c.product_id.in_(part))
            existing.update(pid for (pid,) in conn.execute(query))
        rows = [
            (
                r.product_id,
                *(getattr(r, f) for f in PRODUCT_FIELDS),
                orjson.dumps(r.extra).decode() if r.extra else None,
                FEED,
                r.field_mask,
                0,
                at_ms,
                at_ms,
            )
            for r in ordered
        ]
        insert_rows(conn, products, _FEED_COLUMNS, rows, FEED_CONFLICT)
        updated = sum(1 for r in ordered if r.product_id in existing)
        return len(ordered) - updated, updated

    def learn(
        self,
        conn: Connection,
        products: Sequence[Product],
        at_ms: int,
        *,
        count_views: bool = True,
    ) -> None:
        """Learn products from events, inside the caller's transaction.

        Fills the fields the feed did not define (``name``, ``price``, ``sale_price``,
        ``currency``, ``image_url``, ``url``, ``category``, ``brand``, ``sku``; a later product
        in ``products`` wins over an earlier one) and, unless ``count_views`` is false, adds
        each product's number of appearances to its ``views``. One statement per batch (per
        500 products on SQLite). Values a column cannot hold are skipped: ids over 200
        characters, URLs that are not http(s) or too long, currencies that are not ISO codes,
        negative prices; text is cut to its column's size.
        """
        merged: dict[str, dict[str, Any]] = {}
        memo = self._learnable
        for product in products:
            known = memo.get(product)
            if known is None:
                known = _learnable(product)
                if len(memo) >= _LEARNABLE_MEMO:
                    memo.clear()
                memo[product] = known
            if not known:
                continue
            pid, values = known
            entry = merged.get(pid)
            if entry is None:
                merged[pid] = {**values, "views": 1}
                continue
            entry["views"] += 1
            for key, value in values.items():
                if value is not None:
                    entry[key] = value
        if not merged:
            return
        views = 1 if count_views else 0
        rows = [
            (
                pid,
                *(entry[f] for f in LEARNED_FIELDS),
                EVENTS,
                0,
                entry["views"] * views,
                at_ms,
                at_ms,
            )
            for pid, entry in sorted(merged.items())
        ]
        insert_rows(conn, _TABLE, _LEARN_COLUMNS, rows, LEARN_CONFLICT, distinct_keys=True)

    def delete(self, conn: Connection, product_id: str) -> bool:
        result = conn.execute(delete(products).where(products.c.product_id == product_id))
        return bool(result.rowcount)

    def reset_views(self, conn: Connection) -> None:
        """Zero every view count (the pipeline re-applies the log from the start)."""
        conn.execute(update(products).where(products.c.views != 0).values(views=0))

    # -- reading --------------------------------------------------------------------------------
    def get(self, product_id: str) -> CatalogProduct | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(products).where(products.c.product_id == product_id)).first()
        return _product(row) if row is not None else None

    def get_many(self, product_ids: Sequence[str]) -> dict[str, CatalogProduct]:
        found: dict[str, CatalogProduct] = {}
        with self.engine.connect() as conn:
            for part in chunks(sorted(set(product_ids)), 500):
                for row in conn.execute(_BY_IDS, {"ids": part}):
                    product = _product(row)
                    found[product.product_id] = product
        return found

    def page(
        self,
        limit: int,
        after: str | None = None,
        category: str | None = None,
        q: str | None = None,
    ) -> list[CatalogProduct]:
        """Up to ``limit`` products in id order after ``after``; ``category`` matches exactly
        (ignoring case), ``q`` is a substring of the id, sku, name or brand (ignoring case)."""
        query = select(products).order_by(products.c.product_id).limit(limit)
        if after is not None:
            query = query.where(products.c.product_id > after)
        if category is not None:
            query = query.where(func.lower(products.c.category) == category.lower())
        if q:
            pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(
                    *(
                        products.c[c].ilike(pattern, escape="\\")
                        for c in ("product_id", "sku", "name", "brand")
                    )
                )
            )
        with self.engine.connect() as conn:
            return [_product(row) for row in conn.execute(query)]

    def top_in_categories(
        self,
        categories: Sequence[str],
        exclude_ids: Sequence[str] = (),
        limit: int = 10,
        *,
        in_stock_only: bool = True,
    ) -> list[CatalogProduct]:
        """The most viewed products of these categories (of all, when none is given), most
        viewed first, leaving out ``exclude_ids`` and, by default, products out of stock."""
        if limit <= 0:
            return []
        excluded = set(exclude_ids)
        in_sql = len(excluded) <= 500
        query = (
            select(products)
            .order_by(products.c.views.desc(), products.c.product_id)
            .limit(limit if in_sql else limit + len(excluded))
        )
        if categories:
            query = query.where(products.c.category.in_(sorted(set(categories))))
        if excluded and in_sql:
            query = query.where(products.c.product_id.not_in(sorted(excluded)))
        if in_stock_only:
            query = query.where(or_(products.c.in_stock.is_(None), products.c.in_stock.is_(True)))
        with self.engine.connect() as conn:
            found = [_product(row) for row in conn.execute(query)]
        return [p for p in found if p.product_id not in excluded][:limit]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(products)).scalar_one())
