"""What apps read besides the profile: the product catalog and product images.

Both are protocols; the catalog context implements them for real (feed, learned products, image
fetching and caching) and :mod:`tidings.content.render.testing` has in-memory ones for tests.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from PIL import Image


class Catalog(Protocol):
    """Products as the shop's feed describes them now."""

    def product(self, product_id: str) -> Mapping[str, Any] | None:
        """The feed's product (``name``, ``price``, ``sale_price``, ``currency``,
        ``image_url``, ``url``, ``category``, ``brand``, ``in_stock``), or ``None`` when the
        feed does not know it. Its values fill and override those an event carried; a
        ``sale_price`` of ``None`` beside a ``price`` means the product is not on sale."""
        ...

    def products(self, product_ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        """:meth:`product` of each id the feed knows, by id, read at once (a render asks for
        the products it is about to show together, rather than one query each)."""
        ...

    def top_in_categories(
        self, categories: Sequence[str], exclude_ids: Collection[str], limit: int
    ) -> list[Mapping[str, Any]]:
        """The ``limit`` most popular products (each with its ``product_id``) in any of
        ``categories`` (the whole catalog when it is empty), most popular first, leaving out
        ``exclude_ids``."""
        ...


class Images(Protocol):
    """Product images, fetched, decoded and sized once, then kept."""

    def get(self, url: str, width: int, height: int) -> Image.Image | None:
        """The image at ``url`` cropped and resized to exactly ``width`` × ``height`` pixels
        (``RGB``, or ``RGBA`` to be laid over the background), or ``None`` when it is missing,
        broken or not fetched yet. Never raises for a bad image."""
        ...
