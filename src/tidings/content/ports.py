"""The catalog and its images as renders read them: :class:`CatalogService`'s cached reads and
:class:`ImageCache`'s sized images, shaped as the render library's
:class:`~tidings.content.render.ports.Catalog` and :class:`~tidings.content.render.ports.Images`
ports."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from PIL import Image

from tidings.catalog.images import ImageCache
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

    def products(self, product_ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        return {pid: _as_render(p) for pid, p in self.catalog.products(product_ids).items()}

    def top_in_categories(
        self, categories: Sequence[str], exclude_ids: Collection[str], limit: int
    ) -> list[Mapping[str, Any]]:
        popular = self.catalog.popular(list(categories), list(exclude_ids), limit)
        return [_as_render(p) for p in popular]


class RenderImages:
    """Sized product images for renders: the image cache's own objects, not copies.

    Renders only paste them, so the ~100 KB copy per tile is saved, and the same URL and size
    is the same object for as long as the cache keeps it, which is what lets
    :func:`~tidings.content.render.compose` reuse a grid it drew before (its key names each
    image by identity)."""

    __slots__ = ("cache",)

    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache

    def get(self, url: str, width: int, height: int) -> Image.Image | None:
        return self.cache.get(url, width, height, copy=False)
