"""In-memory stand-ins for the catalog and the image source, synthetic product shots, sample
products and a pixel comparison, for tests and benchmarks that render without a database or a
network."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageStat

from .fonts import DEJAVU_DIR


def dejavu_missing() -> str | None:
    """Why golden images cannot be compared here (they are drawn with DejaVu), or ``None``."""
    if (DEJAVU_DIR / "DejaVuSans.ttf").is_file() and (DEJAVU_DIR / "DejaVuSans-Bold.ttf").is_file():
        return None
    return "DejaVu fonts are not installed (apt-get install fonts-dejavu-core)"


class InMemoryCatalog:
    """A feed held in a dict; popularity is the order products were given in unless
    ``popularity`` (product id → score, higher first) says otherwise."""

    def __init__(
        self,
        products: Iterable[Mapping[str, Any]] = (),
        popularity: Mapping[str, float] | None = None,
    ) -> None:
        self._products = {str(p["product_id"]): dict(p) for p in products}
        order = list(self._products)
        scores = popularity or {pid: -rank for rank, pid in enumerate(order)}
        self._ranked = sorted(order, key=lambda pid: (-scores.get(pid, float("-inf")), pid))
        self.lookups = 0

    def product(self, product_id: str) -> Mapping[str, Any] | None:
        self.lookups += 1
        return self._products.get(product_id)

    def products(self, product_ids: Sequence[str]) -> Mapping[str, Mapping[str, Any]]:
        self.lookups += 1
        return {pid: self._products[pid] for pid in product_ids if pid in self._products}

    def top_in_categories(
        self, categories: Sequence[str], exclude_ids: Collection[str], limit: int
    ) -> list[Mapping[str, Any]]:
        wanted = set(categories)
        found: list[Mapping[str, Any]] = []
        for product_id in self._ranked:
            product = self._products[product_id]
            if product_id in exclude_ids or (wanted and product.get("category") not in wanted):
                continue
            found.append(product)
            if len(found) >= limit:
                break
        return found


class InMemoryImages:
    """Product shots drawn from each URL (see :func:`product_shot`), or the ``images`` given
    for some URLs; URLs in ``missing`` have no image. Each size is drawn once and kept, as
    the real source keeps resized images; ``photographic`` shots are noisier, like photos,
    for tests of encoded sizes."""

    def __init__(
        self,
        images: Mapping[str, Image.Image] | None = None,
        *,
        missing: Collection[str] = (),
        photographic: bool = False,
    ) -> None:
        self._images = dict(images or {})
        self._missing = set(missing)
        self._photographic = photographic
        self._sized: dict[tuple[str, int, int], Image.Image] = {}
        self.requests: list[tuple[str, int, int]] = []

    def get(self, url: str, width: int, height: int) -> Image.Image | None:
        self.requests.append((url, width, height))
        if url in self._missing:
            return None
        key = (url, width, height)
        image = self._sized.get(key)
        if image is None:
            source = self._images.get(url)
            if source is not None:
                image = source.convert("RGB").resize((width, height))
            else:
                image = product_shot(url, width, height, photographic=self._photographic)
            self._sized[key] = image
        return image


def _rng(seed: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))


def product_shot(seed: str, width: int, height: int, *, photographic: bool = False) -> Image.Image:
    """A deterministic stand-in for a product photo: an object in a colour chosen by ``seed``
    on a light studio backdrop with a soft shadow. ``photographic`` adds a gradient and grain,
    which compress as badly as real photos do."""
    rng = _rng(seed)
    hue = [rng.randrange(40, 220) for _ in range(3)]
    backdrop = tuple(236 + (c % 16) for c in hue)
    image = Image.new("RGB", (width, height), backdrop)
    draw = ImageDraw.Draw(image)
    w, h = width, height
    draw.ellipse((w * 0.18, h * 0.78, w * 0.82, h * 0.90), fill=tuple(c - 40 for c in backdrop))
    shape = rng.randrange(3)
    body = (w * 0.22, h * 0.18, w * 0.78, h * 0.82)
    if shape == 0:
        draw.rounded_rectangle(body, radius=min(w, h) * 0.08, fill=tuple(hue))
    elif shape == 1:
        draw.ellipse(body, fill=tuple(hue))
    else:
        triangle = [(w * 0.5, h * 0.16), (w * 0.8, h * 0.82), (w * 0.2, h * 0.82)]
        draw.polygon(triangle, fill=tuple(hue))
    accent = tuple(min(255, c + 60) for c in hue)
    draw.rectangle((w * 0.36, h * 0.40, w * 0.64, h * 0.46), fill=accent)
    if not photographic:
        return image
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    image = Image.blend(image, gradient, 0.25).filter(ImageFilter.GaussianBlur(max(1, w // 120)))
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    return Image.blend(image, grain, 0.06)


_NAMES = (
    ("Northwind", "Trail Runner Sneaker", "Shoes"),
    ("Alder & Ash", "Leather Weekender Bag", "Bags"),
    ("Maison Lune", "Wool Wrap Coat", "Outerwear"),
    ("Fieldstone", "Linen Shirt Dress", "Dresses"),
    ("Kestrel", "Merino Crewneck Sweater", "Knitwear"),
    ("Ostara", "Wide-Leg Jean", "Denim"),
    ("Northwind", "Performance Legging", "Activewear"),
    ("Alder & Ash", "Cashmere Scarf", "Accessories"),
    ("Maison Lune", "Rose Face Serum", "Beauty"),
    ("Fieldstone", "Stoneware Mug Set of Four", "Home"),
)


def sample_products(count: int = 10, *, currency: str = "USD") -> list[dict[str, Any]]:
    """``count`` deterministic products (ids ``sku-1``…), every third one on sale."""
    products: list[dict[str, Any]] = []
    for i in range(1, count + 1):
        brand, noun, category = _NAMES[(i - 1) % len(_NAMES)]
        price = round(19.5 + (i * 37) % 180, 2)
        products.append(
            {
                "product_id": f"sku-{i}",
                "name": f"{brand} {noun}",
                "brand": brand,
                "category": category,
                "price": price,
                "sale_price": round(price * 0.7, 2) if i % 3 == 0 else None,
                "currency": currency,
                "url": f"https://shop.example/p/sku-{i}",
                "image_url": f"https://cdn.shop.example/img/sku-{i}.jpg",
                "in_stock": True,
            }
        )
    return products


def pixel_difference(a: Image.Image, b: Image.Image) -> float:
    """The mean absolute difference of two images' RGB pixels, 0 (equal) to 255; ``inf``
    when their sizes differ."""
    if a.size != b.size:
        return float("inf")
    difference = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return float(sum(ImageStat.Stat(difference).mean) / 3)


def block_difference(a: Image.Image, b: Image.Image, block: int = 16) -> float:
    """The largest mean absolute difference (of luma) over ``block``-pixel squares, 0 to 255:
    small everywhere when two renders differ only in antialiasing, large where a price or a
    name went missing. ``inf`` when their sizes differ."""
    if a.size != b.size:
        return float("inf")
    difference = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    blocks = difference.reduce(block) if min(a.size) >= block else difference
    _, high = blocks.getextrema()
    return float(high) if isinstance(high, int | float) else float("inf")
