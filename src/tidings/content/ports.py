"""The catalog as renders read it: :class:`CatalogService`'s cached reads, shaped as the render
library's :class:`~tidings.content.render.ports.Catalog` port."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from tidings.catalog.service import CatalogService
from tidings.catalog.store import CatalogProduct

# What renders read of a product (the rest of the row is the catalog's bookkeeping).
RENDER_FIELDS: Final = (
    "product_id", "name", "price", "sale_price", "currency", "image_url", "url",
    "category", "brand", "in_stock",
)  # fmt: skip


def _as_render(product: CatalogProduct) -> dict[str, Any]:
    return {name: getattr(product, name) for name in RENDER_FIELDS}


class RenderCatalog:
    """Products for renders, through the catalog service's TTL cache."""

    __slots__ = ("catalog",)

    def __init__(self, catalog: CatalogService) -> None:
        self.catalog = catalog

    def product(self, product_id: str) -> Mapping[str, Any] | None:
        found = self.catalog.products([product_id]).get(product_id)
        return _as_render(found) if found is not None else None

    def top_in_categories(
        self, categories: Sequence[str], exclude_ids: Collection[str], limit: int
    ) -> list[Mapping[str, Any]]:
        popular = self.catalog.popular(list(categories), list(exclude_ids), limit)
        return [_as_render(p) for p in popular]
