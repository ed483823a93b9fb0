"""The catalog's API: importing feeds, reading and editing products, popular products.

Other contexts use :class:`CatalogService` (never the ``products`` table):

- the **router** and the **CLI** import feeds (:meth:`~CatalogService.import_feed`,
  :meth:`~CatalogService.parse` then :meth:`~CatalogService.write`) and read, replace and delete
  products; an edit through the API counts as the feed (its values win over events');
- **open-time renders** read products by id (:meth:`~CatalogService.products`) and the most
  popular products of categories (:meth:`~CatalogService.popular`). Both are cached for
  ``TIDINGS_CATALOG_CACHE_TTL_S`` seconds, so a burst of opens costs one query; this process's
  own writes clear the cache at once, other processes' show within the TTL;
- the **pipeline** learns products from events with :meth:`CatalogStore.learn
  <tidings.catalog.store.CatalogStore.learn>` inside its own transaction.

A feed is written in chunks of a few hundred rows, each its own short transaction (on SQLite
through the writer thread when called from the API), so a large import never holds the write
lock for long; the summary counts inserted, updated and rejected rows and lists each problem.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from tidings.core.clock import Clock, from_ms, iso, to_ms
from tidings.core.db import Database, chunks
from tidings.core.errors import NotFound, TidingsError

from .feed import (
    MAX_ID,
    FeedFormat,
    FeedIssue,
    FeedRow,
    ParsedFeed,
    ProductRecord,
    parse_feed,
    read_record,
)
from .store import CatalogProduct, CatalogStore

MAX_PAGE = 200
MAX_ISSUES_SHOWN = 1000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A small thread-safe cache whose entries expire ``ttl_s`` after they were stored."""

    def __init__(
        self,
        ttl_s: float,
        max_entries: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._monotonic = monotonic
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return False, None
            if entry[0] <= self._monotonic():
                del self._entries[key]
                return False, None
            return True, entry[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (self._monotonic() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(slots=True)
class ImportSummary:
    """What an import did: rows read, inserted, updated and rejected, and every problem."""

    format: FeedFormat
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    issues: list[FeedIssue] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self, max_issues: int = MAX_ISSUES_SHOWN) -> dict[str, Any]:
        return {
            "format": self.format,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "rejected": self.rejected,
            "issue_count": len(self.issues),
            "issues": [i.as_dict() for i in self.issues[:max_issues]],
            "seconds": round(self.seconds, 3),
        }


def product_json(product: CatalogProduct) -> dict[str, Any]:
    """A product as the API shows it."""
    return {
        "product_id": product.product_id,
        "sku": product.sku,
        "name": product.name,
        "price": product.price,
        "sale_price": product.sale_price,
        "currency": product.currency,
        "image_url": product.image_url,
        "url": product.url,
        "category": product.category,
        "brand": product.brand,
        "in_stock": product.in_stock,
        "source": product.source,
        "origins": product.origins(),
        "views": product.views,
        "extra": dict(product.extra),
        "created_at": iso(from_ms(product.created_at)),
        "updated_at": iso(from_ms(product.updated_at)),
    }


def _encode_cursor(product_id: str) -> str:
    return base64.urlsafe_b64encode(product_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        if len(cursor) > 400:
            raise ValueError(cursor)
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TidingsError(
            "invalid_cursor", "cursor must be the cursor.next of a previous page", "cursor"
        ) from None


def _addressable(product_id: str) -> bool:
    """Whether a product could have this id (anything else is simply not found)."""
    return len(product_id) <= MAX_ID and "\x00" not in product_id


def _no_nul(text: str | None) -> str | None:
    return text.replace("\x00", "") if text else text


class CatalogService:
    def __init__(
        self,
        db: Database,
        store: CatalogStore,
        clock: Clock,
        *,
        cache_ttl_s: float = 5.0,
        chunk_rows: int = 500,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.store = store
        self.clock = clock
        self.chunk_rows = chunk_rows
        self._products: TTLCache[str, CatalogProduct | None] = TTLCache(
            cache_ttl_s, 50_000, monotonic
        )
        self._popular: TTLCache[tuple[frozenset[str], int, bool], list[CatalogProduct]] = TTLCache(
            cache_ttl_s, 2_000, monotonic
        )

    def _changed(self) -> None:
        self._products.clear()
        self._popular.clear()

    # -- importing --------------------------------------------------------------------------
    def parse(self, data: bytes | str, fmt: FeedFormat) -> ParsedFeed:
        """Read a feed; a file that is not a feed at all raises a 400 naming why."""
        parsed = parse_feed(data, fmt)
        if parsed.fatal is not None:
            fatal = parsed.fatal
            raise TidingsError(fatal.code, fatal.message, fatal.field, extra={"line": fatal.line})
        return parsed

    def write(
        self, parsed: ParsedFeed, progress: Callable[[int], None] | None = None
    ) -> ImportSummary:
        """Write a parsed feed in chunks (one transaction each); ``progress`` gets each chunk's
        row count after it commits."""
        started = time.monotonic()
        summary = self._summary(parsed)
        for part in chunks(parsed.rows, self.chunk_rows):
            inserted, updated = self._write_chunk(part)
            summary.inserted += inserted
            summary.updated += updated
            if progress is not None:
                progress(len(part))
        summary.seconds = time.monotonic() - started
        return summary

    async def import_feed(
        self,
        data: bytes,
        fmt: FeedFormat,
        progress: Callable[[int, int], None] | None = None,
    ) -> ImportSummary:
        """Parse (on a worker thread) and write a feed (on the database's writer thread), in
        chunks of one transaction each. ``progress(written, total)`` is called once the feed is
        parsed (``written`` 0) and after each chunk commits; ``total`` counts the readable rows."""
        started = time.monotonic()
        parsed = await asyncio.to_thread(self.parse, data, fmt)
        summary = self._summary(parsed)
        total, written = len(parsed.rows), 0
        if progress is not None:
            progress(0, total)
        for part in chunks(parsed.rows, self.chunk_rows):
            inserted, updated = await self.db.run_write(self._write_chunk, part)
            summary.inserted += inserted
            summary.updated += updated
            written += len(part)
            if progress is not None:
                progress(written, total)
        summary.seconds = time.monotonic() - started
        return summary

    def _summary(self, parsed: ParsedFeed) -> ImportSummary:
        return ImportSummary(
            parsed.format, rows=parsed.total, rejected=parsed.rejected, issues=parsed.issues
        )

    def _write_chunk(self, part: Sequence[FeedRow]) -> tuple[int, int]:
        return self._write_records([row.product for row in part])

    # -- reading ------------------------------------------------------------------------------
    def get(self, product_id: str) -> CatalogProduct:
        product = self.store.get(product_id) if _addressable(product_id) else None
        if product is None:
            raise NotFound(
                "product_not_found", f"no product has the id {product_id!r}", "product_id"
            )
        return product

    def page(
        self,
        limit: int = 50,
        cursor: str | None = None,
        category: str | None = None,
        q: str | None = None,
    ) -> dict[str, Any]:
        """A page of products in id order; ``cursor`` is the previous page's ``cursor.next``."""
        limit = max(1, min(limit, MAX_PAGE))
        after = _no_nul(_decode_cursor(cursor)) if cursor else None
        found = self.store.page(limit + 1, after, _no_nul(category) or None, _no_nul(q) or None)
        more = len(found) > limit
        found = found[:limit]
        return {
            "data": [product_json(p) for p in found],
            "cursor": {
                "has_more": more,
                "next": _encode_cursor(found[-1].product_id) if more and found else None,
            },
        }

    def count(self) -> int:
        return self.store.count()

    # -- editing --------------------------------------------------------------------------------
    async def put(self, product_id: str, values: Mapping[str, Any]) -> tuple[CatalogProduct, bool]:
        """Replace a product as the feed would (its values win over events'); returns it and
        whether it was created. Bad values raise a 422 naming the field."""
        fields = {k: v for k, v in values.items() if k != "extra"}
        record, issues = read_record(
            {**fields, "product_id": product_id}, values.get("extra") or {}
        )
        if record is None:
            first = issues[0]
            raise TidingsError(
                first.code,
                first.message,
                first.field,
                status=422,
                extra={"errors": [i.as_dict() for i in issues]},
            )
        inserted, _ = await self.db.run_write(self._write_records, [record])
        return self.get(record.product_id), inserted == 1

    def _write_records(self, records: Sequence[ProductRecord]) -> tuple[int, int]:
        at = to_ms(self.clock.now())
        try:
            with self.db.engine.begin() as conn:
                return self.store.write_feed(conn, records, at)
        finally:
            self._changed()

    async def delete(self, product_id: str) -> None:
        """Delete a product (events that mention it later will learn it again)."""
        deleted = await self.db.run_write(self._delete, product_id)
        if not deleted:
            raise NotFound(
                "product_not_found", f"no product has the id {product_id!r}", "product_id"
            )

    def _delete(self, product_id: str) -> bool:
        if not _addressable(product_id):
            return False
        try:
            with self.db.engine.begin() as conn:
                return self.store.delete(conn, product_id)
        finally:
            self._changed()

    # -- for open-time renders (cached) -------------------------------------------------------
    def products(self, product_ids: Sequence[str]) -> dict[str, CatalogProduct]:
        """The products with these ids that exist (cached, misses too)."""
        found: dict[str, CatalogProduct] = {}
        missing: list[str] = []
        for pid in product_ids:
            hit, product = self._products.get(pid)
            if not hit:
                missing.append(pid)
            elif product is not None:
                found[pid] = product
        if missing:
            loaded = self.store.get_many([p for p in missing if _addressable(p)])
            for pid in missing:
                product = loaded.get(pid)
                self._products.put(pid, product)
                if product is not None:
                    found[pid] = product
        return found

    def popular(
        self,
        categories: Sequence[str],
        exclude_ids: Sequence[str] = (),
        limit: int = 10,
        *,
        in_stock_only: bool = True,
    ) -> list[CatalogProduct]:
        """The most viewed products of these categories (of all, when none), without
        ``exclude_ids`` (cached per set of categories; the exclusion is applied after)."""
        if limit <= 0:
            return []
        excluded = set(exclude_ids)
        # Fetch a power of two at least ``limit + len(excluded)`` so few sizes get cached.
        want = max(16, 1 << (limit + len(excluded) - 1).bit_length())
        key = (frozenset(categories), want, in_stock_only)
        hit, cached = self._popular.get(key)
        if not hit or cached is None:
            cached = self.store.top_in_categories(
                sorted(key[0]), (), want, in_stock_only=in_stock_only
            )
            self._popular.put(key, cached)
        return [p for p in cached if p.product_id not in excluded][:limit]
