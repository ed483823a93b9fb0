"""The product apps: recently viewed products, the cart, the last order and recommendations.

Each is a small class over a validated, immutable config. It decides *what* to show, in order,
from the profile and the catalog, and hands that to :func:`~.compose.compose`, which draws as
many as the layout holds (passing over products without an image when the layout says
``missing_image="skip"``). A product an event described is completed by the catalog's feed:

- for what a person may still buy (viewed, in the cart, recommended) the feed wins, since it
  has today's name, image and price, and a product the feed marks ``in_stock: false`` can be
  left out;
- for the last order the event wins, since it says what they paid; the feed only fills gaps.

``render`` draws the grid; ``render_slot(ctx, k)`` draws product *k* of that same grid alone,
for emails that give each product its own image and link. Both report what they showed in
:attr:`Rendered.slots`, so a click leads to exactly that product.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .compose import Tile, compose, compose_slot
from .context import RenderContext
from .layout import Layout
from .money import normalize_currency, parse_amount
from .ports import Catalog
from .rendered import Rendered

Product = Mapping[str, Any]


def from_feed(product: Product, catalog: Catalog, *, feed_wins: bool = True) -> dict[str, Any]:
    """``product`` completed by the catalog's feed (see the module for who wins)."""
    product_id = product.get("product_id")
    feed = catalog.product(str(product_id)) if product_id is not None else None
    return with_feed(product, feed, feed_wins=feed_wins)


def completed(
    products: Iterable[Product], catalog: Catalog, at_once: int, *, feed_wins: bool = True
) -> Iterator[dict[str, Any]]:
    """Each of ``products`` completed by the feed, in order and lazily: the first ``at_once``
    are looked up in one read (what a grid is about to show), any later ones one at a time
    (only when sold-out products or missing images were passed over)."""
    rest = iter(products)
    first = list(islice(rest, at_once))
    ids = [str(p.get("product_id")) for p in first if p.get("product_id") is not None]
    feed = catalog.products(ids) if ids else {}
    for product in first:
        product_id = product.get("product_id")
        known = feed.get(str(product_id)) if product_id is not None else None
        yield with_feed(product, known, feed_wins=feed_wins)
    for product in rest:
        yield from_feed(product, catalog, feed_wins=feed_wins)


def with_feed(
    product: Product, feed: Mapping[str, Any] | None, *, feed_wins: bool = True
) -> dict[str, Any]:
    """``product`` completed by ``feed``, the feed's record of it (or ``None``)."""
    if not feed:
        return dict(product)
    known = {k: v for k, v in feed.items() if v is not None}
    if not feed_wins:
        return {**known, **{k: v for k, v in product.items() if v is not None}}
    merged = {**product, **known}
    if feed.get("price") is not None:  # the feed's price is current: so is its (lack of) sale
        merged["sale_price"] = feed.get("sale_price")
    return merged


def _in_stock(product: Product) -> bool:
    return product.get("in_stock") is not False


def _effective_price(product: Product) -> float | None:
    price, sale = parse_amount(product.get("price")), parse_amount(product.get("sale_price"))
    if sale is not None and (price is None or sale < price):
        return sale
    return price


class ProductAppConfig(BaseModel):
    """What every product app has: its ``layout`` and the fewest products worth showing
    (below ``min_products`` the block shows its fallback)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: Layout = Layout()
    min_products: int = Field(1, ge=1, le=36)


class ProductApp(ABC):
    """An app that shows products in a grid (see the module)."""

    __slots__ = ("config",)

    config: ProductAppConfig
    kind: ClassVar[str]

    def render(self, ctx: RenderContext) -> Rendered:
        """The grid for ``ctx.profile`` now; ``empty`` when there is too little to show."""
        return compose(
            self.config.layout,
            self._tiles(ctx),
            ctx.images,
            caches=ctx.caches,
            locale=ctx.profile.locale,
            footer=self.footer(ctx),
            min_products=self.config.min_products,
            reuse=True,
        )

    def render_slot(self, ctx: RenderContext, index: int) -> Rendered:
        """Product ``index`` of :meth:`render`'s grid in an image of its own; ``empty`` when
        the grid has no such product."""
        return compose_slot(
            self.config.layout,
            self._tiles(ctx),
            index,
            ctx.images,
            caches=ctx.caches,
            locale=ctx.profile.locale,
        )

    def would_show(self, ctx: RenderContext) -> bool:
        """Whether :meth:`render` has enough products to draw (without drawing them)."""
        need = max(1, self.config.min_products)
        return sum(1 for _ in islice(self._tiles(ctx), need)) >= need

    def _tiles(self, ctx: RenderContext) -> Iterator[Tile]:
        currency = self._currency(ctx)
        for product in self._products(ctx):
            tile = Tile.from_product(product, currency=currency, caption=self._caption(product))
            if tile is not None:
                yield tile

    @abstractmethod
    def _products(self, ctx: RenderContext) -> Iterator[Product]:
        """The products to show, best first, completed by the feed (consumed lazily: only as
        many as the grid needs are looked up)."""

    def _caption(self, product: Product) -> str | None:
        return None

    def _currency(self, ctx: RenderContext) -> str | None:
        """The currency of products that name none."""
        return None

    def footer(self, ctx: RenderContext) -> str | None:
        """The line under the grid (a total), or ``None``."""
        return None

    def _money(self, ctx: RenderContext, amount: float, currency: str | None) -> str:
        code = normalize_currency(currency, self.config.layout.default_currency)
        return ctx.caches.prices.format(amount, code, ctx.profile.locale)


def _fill(template: str, **values: str) -> str:
    """``template`` with ``{name}`` replaced by ``values`` (plain replacement: block authors
    write these, and ``str.format`` would let them reach attributes)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


# -- recently viewed ---------------------------------------------------------------------------


class RecentlyViewedConfig(ProductAppConfig):
    """``skip_out_of_stock``: leave out what the feed says is sold out. ``exclude_in_cart``:
    leave out what is in the cart (when the email shows the cart elsewhere)."""

    skip_out_of_stock: bool = True
    exclude_in_cart: bool = False


class RecentlyViewedApp(ProductApp):
    """The last distinct products the person viewed, most recent first, leaving out those
    bought since they were viewed."""

    __slots__ = ()

    kind = "recently_viewed"
    config: RecentlyViewedConfig

    def __init__(self, config: RecentlyViewedConfig | None = None) -> None:
        self.config = config or RecentlyViewedConfig()

    def _products(self, ctx: RenderContext) -> Iterator[Product]:
        at_once = 2 * self.config.layout.capacity  # room for some sold out or without image
        for product in completed(self._viewed(ctx), ctx.catalog, at_once):
            if self.config.skip_out_of_stock and not _in_stock(product):
                continue
            yield product

    def _viewed(self, ctx: RenderContext) -> Iterator[Product]:
        """The distinct products viewed, latest first, without those bought since."""
        profile = ctx.profile
        skip: set[str] = set()
        if self.config.exclude_in_cart:
            skip.update(str(item.get("product_id")) for item in profile.cart.get("items", ()))
        for viewed in profile.recently_viewed:
            product_id = viewed.get("product_id")
            if product_id is None or str(product_id) in skip:
                continue
            skip.add(str(product_id))
            bought = profile.purchased_at_ms.get(str(product_id))
            seen = viewed.get("viewed_at_ms")
            if bought is not None and (not isinstance(seen, int) or bought >= seen):
                continue
            yield viewed


# -- cart --------------------------------------------------------------------------------------


class CartItemsConfig(ProductAppConfig):
    """``quantity_label`` is the line under each price (``{quantity}`` is replaced, ``None``
    hides it); ``total_label`` the line under the grid (``{total}`` and ``{count}``, the
    number of units, are replaced; ``None`` hides it)."""

    quantity_label: str | None = Field("Qty {quantity}", max_length=60)
    total_label: str | None = Field("Cart total: {total}", max_length=100)


class CartItemsApp(ProductApp):
    """What is in the cart now, most recently added first, with quantities and the total."""

    __slots__ = ()

    kind = "cart_items"
    config: CartItemsConfig

    def __init__(self, config: CartItemsConfig | None = None) -> None:
        self.config = config or CartItemsConfig()

    def _items(self, ctx: RenderContext) -> list[Product]:
        items = ctx.profile.cart.get("items") or ()
        return [item for item in items if isinstance(item, Mapping)]

    def _products(self, ctx: RenderContext) -> Iterator[Product]:
        items = self._items(ctx)
        for item, product in zip(items, completed(items, ctx.catalog, len(items)), strict=True):
            product["quantity"] = item.get("quantity", 1)
            yield product

    def _caption(self, product: Product) -> str | None:
        label = self.config.quantity_label
        return None if label is None else _fill(label, quantity=str(product.get("quantity", 1)))

    def _currency(self, ctx: RenderContext) -> str | None:
        currency = ctx.profile.cart.get("currency")
        return normalize_currency(currency, "") or None

    def footer(self, ctx: RenderContext) -> str | None:
        """The total of every item (not only those shown) at today's prices, or the cart's
        own value when a price is unknown."""
        label = self.config.total_label
        items = self._items(ctx)
        if label is None or not items:
            return None
        total = 0.0
        units = 0
        for item, product in zip(items, completed(items, ctx.catalog, len(items)), strict=True):
            quantity = item.get("quantity", 1)
            quantity = quantity if isinstance(quantity, int) and quantity > 0 else 1
            units += quantity
            price = _effective_price(product)
            if price is None:
                value = parse_amount(ctx.profile.cart.get("value"))
                total = value if value is not None else 0.0
                break
            total += round(price * 100) * quantity / 100
        else:
            total = round(total, 2)
        amount = self._money(ctx, total, self._currency(ctx))
        return _fill(label, total=amount, count=str(units))


# -- last order --------------------------------------------------------------------------------


class LastOrderConfig(ProductAppConfig):
    """``total_label``: the line under the grid (``{total}`` and ``{order_id}`` are replaced;
    ``None`` hides it). ``quantity_label`` as for the cart; hidden by default."""

    total_label: str | None = Field("Order total: {total}", max_length=100)
    quantity_label: str | None = Field(None, max_length=60)


class LastOrderApp(ProductApp):
    """The products of the person's latest order, as they bought them."""

    __slots__ = ()

    kind = "last_order"
    config: LastOrderConfig

    def __init__(self, config: LastOrderConfig | None = None) -> None:
        self.config = config or LastOrderConfig()

    def _products(self, ctx: RenderContext) -> Iterator[Product]:
        order = ctx.profile.last_order or {}
        items = [item for item in order.get("products") or () if isinstance(item, Mapping)]
        yield from completed(items, ctx.catalog, len(items), feed_wins=False)

    def _caption(self, product: Product) -> str | None:
        label = self.config.quantity_label
        return None if label is None else _fill(label, quantity=str(product.get("quantity", 1)))

    def _currency(self, ctx: RenderContext) -> str | None:
        order = ctx.profile.last_order or {}
        return normalize_currency(order.get("currency"), "") or None

    def footer(self, ctx: RenderContext) -> str | None:
        order = ctx.profile.last_order
        label = self.config.total_label
        total = parse_amount(order.get("total")) if order else None
        if label is None or order is None or total is None:
            return None
        amount = self._money(ctx, total, self._currency(ctx))
        return _fill(label, total=amount, order_id=str(order.get("order_id") or ""))


# -- recommended -------------------------------------------------------------------------------


class RecommendedConfig(ProductAppConfig):
    """``max_categories``: how many of the person's latest viewed categories to draw from.
    ``bestsellers_fallback``: with no category to go on, show the shop's most popular
    products (else the block shows its fallback)."""

    max_categories: int = Field(3, ge=1, le=20)
    skip_out_of_stock: bool = True
    bestsellers_fallback: bool = False


class RecommendedApp(ProductApp):
    """The most popular products in the categories the person viewed lately (else those of
    their last order), leaving out what they viewed, have in their cart or bought."""

    __slots__ = ()

    kind = "recommended"
    config: RecommendedConfig

    def __init__(self, config: RecommendedConfig | None = None) -> None:
        self.config = config or RecommendedConfig()

    def categories(self, ctx: RenderContext) -> list[str]:
        """The person's categories, most recently viewed first."""
        profile = ctx.profile
        found: list[str] = []
        order = profile.last_order or {}
        for source in (profile.recently_viewed, order.get("products") or ()):
            for product in source:
                category = product.get("category") if isinstance(product, Mapping) else None
                if isinstance(category, str) and category and category not in found:
                    found.append(category)
                    if len(found) >= self.config.max_categories:
                        return found
            if found:
                return found
        return found

    def _products(self, ctx: RenderContext) -> Iterator[Product]:
        profile = ctx.profile
        categories = self.categories(ctx)
        if not categories and not self.config.bestsellers_fallback:
            return
        exclude = set(profile.purchased_at_ms)
        for source in (profile.recently_viewed, profile.cart.get("items") or ()):
            exclude.update(str(p.get("product_id")) for p in source if isinstance(p, Mapping))
        # Twice what the grid holds, so that sold-out products and missing images can be
        # passed over without a second query.
        limit = 2 * self.config.layout.capacity
        for product in ctx.catalog.top_in_categories(categories, exclude, limit):
            if str(product.get("product_id")) in exclude:
                continue
            if self.config.skip_out_of_stock and not _in_stock(product):
                continue
            yield product
