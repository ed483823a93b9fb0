"""A retailer's catalog, generated from a seed: categories, brands, names, prices, popularity.

Everything here is pure and deterministic: the same seed, size and base URL give the same
products. Popularity follows a Zipf-like law (the product of rank ``r`` is chosen with weight
``1 / r**ZIPF_EXPONENT``), as real shops' views are: a few products take most of the attention.
Product images are paths on tidings itself (``/demo/products/<product_id>.png`` under
``base_url``), where the server renders placeholder images, so the demo needs no internet.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

ZIPF_EXPONENT = 1.07
CURRENCY = "USD"
SHOP_URL = "https://shop.example"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class Category:
    """A category with the nouns its products are called and its price range in dollars."""

    name: str
    code: str
    nouns: tuple[str, ...]
    low: int
    high: int


CATEGORIES: tuple[Category, ...] = (
    Category(
        "Shoes", "SHO", ("Sneaker", "Loafer", "Ankle Boot", "Runner", "Sandal", "Mule"), 45, 220
    ),
    Category("Bags", "BAG", ("Tote", "Crossbody", "Backpack", "Clutch", "Weekender"), 35, 320),
    Category(
        "Outerwear", "OUT", ("Parka", "Trench", "Puffer", "Wool Coat", "Rain Jacket"), 90, 420
    ),
    Category("Dresses", "DRS", ("Midi Dress", "Wrap Dress", "Slip Dress", "Shirt Dress"), 40, 210),
    Category("Knitwear", "KNT", ("Cardigan", "Crewneck", "Turtleneck", "Vest"), 35, 180),
    Category(
        "Denim", "DEN", ("Straight Jean", "Wide-Leg Jean", "Denim Jacket", "Skinny Jean"), 40, 160
    ),
    Category(
        "Activewear", "ACT", ("Legging", "Sports Bra", "Track Jacket", "Running Short"), 20, 120
    ),
    Category("Accessories", "ACC", ("Scarf", "Beanie", "Belt", "Sunglasses", "Wallet"), 12, 140),
    Category("Beauty", "BTY", ("Serum", "Lip Balm", "Eau de Parfum", "Face Cream"), 9, 95),
    Category("Home", "HOM", ("Candle", "Throw", "Vase", "Linen Set", "Mug Set"), 15, 180),
)

BRANDS: tuple[str, ...] = (
    "Northwind",
    "Alder & Ash",
    "Maison Lune",
    "Fieldstone",
    "Kestrel",
    "Ostara",
    "Juniper Row",
    "Halcyon",
    "Tidewater",
    "Marlow",
    "Quill",
    "Sable & Co",
)

ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Everyday",
    "Relaxed",
    "Cropped",
    "Oversized",
    "Tailored",
    "Lightweight",
    "Recycled",
    "Organic",
    "Vintage",
    "Essential",
    "Signature",
)

COLORS: tuple[str, ...] = (
    "Black",
    "Ivory",
    "Navy",
    "Camel",
    "Olive",
    "Rust",
    "Sage",
    "Charcoal",
    "Blush",
    "Cobalt",
)


@dataclass(frozen=True, slots=True)
class CatalogProduct:
    """One product as Segment's e-commerce spec v2 describes it, plus shop facts.

    ``price`` is the list price; ``sale_price`` is set when the product is on sale, and then
    is what shoppers pay (:attr:`current_price`). ``popularity`` is the product's Zipf weight
    (higher is more viewed), normalised so all products' weights sum to 1.
    """

    product_id: str
    sku: str
    name: str
    brand: str
    category: str
    price: float
    sale_price: float | None
    currency: str
    slug: str
    url: str
    image_url: str
    in_stock: bool
    popularity: float

    @property
    def current_price(self) -> float:
        return self.sale_price if self.sale_price is not None else self.price

    @property
    def on_sale(self) -> bool:
        return self.sale_price is not None

    def segment_properties(self) -> dict[str, object]:
        """The product's properties as a ``Product Viewed`` event carries them."""
        return {
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "price": self.current_price,
            "category": self.category,
            "brand": self.brand,
            "url": self.url,
            "image_url": self.image_url,
            "currency": self.currency,
        }


def slugify(text: str) -> str:
    """``"Wide-Leg Jean & Co"`` → ``"wide-leg-jean-co"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _price(rng: random.Random, low: int, high: int) -> float:
    """A shop-like price: log-uniform in the range, ending in .00, .50, .95 or .99."""
    raw = low * (high / low) ** rng.random()
    cents = rng.choice((0.0, 0.5, 0.95, 0.99, 0.99, 0.0))
    return round(max(int(raw), 1) + cents, 2)


def generate_catalog(
    seed: int,
    n_products: int = 240,
    *,
    base_url: str = DEFAULT_BASE_URL,
    sale_share: float = 0.2,
    out_of_stock_share: float = 0.04,
) -> list[CatalogProduct]:
    """A catalog of ``n_products`` spread over :data:`CATEGORIES`, in product id order.

    ``base_url`` is where tidings is reached; image URLs are ``{base_url}/demo/products/…``.
    About ``sale_share`` of products are on sale (15-50 % off), ``out_of_stock_share`` are out
    of stock. Popularity ranks are a random permutation, so popular products are spread over
    categories and brands.
    """
    if n_products < len(CATEGORIES):
        raise ValueError(f"a catalog needs at least {len(CATEGORIES)} products, one per category")
    rng = random.Random(f"tidings-catalog-{seed}")
    base = base_url.rstrip("/")
    ranks = list(range(1, n_products + 1))
    rng.shuffle(ranks)
    weights = [1.0 / r**ZIPF_EXPONENT for r in ranks]
    total = sum(weights)
    products: list[CatalogProduct] = []
    seen_names: set[str] = set()
    for i in range(n_products):
        category = CATEGORIES[i % len(CATEGORIES)]  # every category gets its share
        brand = rng.choice(BRANDS)
        name = ""
        for _ in range(20):
            name = f"{rng.choice(ADJECTIVES)} {rng.choice(category.nouns)} in {rng.choice(COLORS)}"
            if name not in seen_names:
                break
        seen_names.add(name)
        number = f"{i + 1:05d}"
        product_id = f"prod-{number}"
        slug = f"{slugify(name)}-{number}"
        price = _price(rng, category.low, category.high)
        sale_price = None
        if rng.random() < sale_share:
            sale_price = round(price * (1 - rng.uniform(0.15, 0.5)), 2)
            sale_price = float(int(sale_price)) + 0.99 if sale_price >= 2 else sale_price
            sale_price = min(sale_price, round(price - 0.01, 2))
        products.append(
            CatalogProduct(
                product_id=product_id,
                sku=f"{category.code}-{number}-{COLORS.index(name.rsplit(' ', 1)[1]):02d}",
                name=name,
                brand=brand,
                category=category.name,
                price=price,
                sale_price=sale_price,
                currency=CURRENCY,
                slug=slug,
                url=f"{SHOP_URL}/p/{slug}",
                image_url=f"{base}/demo/products/{product_id}.png",
                in_stock=rng.random() >= out_of_stock_share,
                popularity=weights[i] / total,
            )
        )
    return products
