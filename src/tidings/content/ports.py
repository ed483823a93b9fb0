"""The catalog as renders read it: :class:`CatalogService`'s cached reads, shaped as the render
library's :class:`~tidings.content.render.ports.Catalog` port."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from tidings.catalog.service import CatalogService
from tidings.catalog.store import CatalogProduct


def _as_render(product: CatalogProduct) -> dict[str, Any]:
    return {
        "product_id": product.product_id,
        "name": product.name,
        "price": product.price,
        "sale_price": product.sale_price,
        "currency": product.currency,
        "image_url": product.image_url,
        "url": product.url,
        "category": product.category,
        "brand": product.brand,
        "in_stock": product.in_stock,
    }


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
