"""The product apps: what each shows, for whom, and how it is drawn and encoded."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image
from pydantic import ValidationError

from tests.golden.cases import PRODUCTS
from tidings.content.render import (
    GIF,
    JPEG,
    PNG,
    CartItemsApp,
    CartItemsConfig,
    Fonts,
    LastOrderApp,
    LastOrderConfig,
    Layout,
    RecentlyViewedApp,
    RecentlyViewedConfig,
    RecommendedApp,
    RecommendedConfig,
    RenderCaches,
    RenderContext,
    Rendered,
    RenderProfile,
    Tile,
    build_app,
    compose,
)
from tidings.content.render.products import from_feed
from tidings.content.render.testing import InMemoryCatalog, InMemoryImages, sample_products
from tidings.profiles.ecommerce import normalize
from tidings.profiles.state import ProfileState

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def ctx(
    profile: RenderProfile,
    *,
    products: list[dict[str, Any]] | None = None,
    images: InMemoryImages | None = None,
    caches: RenderCaches | None = None,
) -> RenderContext:
    return RenderContext(
        profile,
        InMemoryCatalog(PRODUCTS if products is None else products),
        images or InMemoryImages(),
        NOW,
        caches or RenderCaches(),
    )


def views(*indexes: int, products: list[dict[str, Any]] = PRODUCTS) -> list[dict[str, Any]]:
    """Views of ``products[i]``, the first the most recent."""
    return [{**products[i], "viewed_at_ms": 1_000_000 - n * 1000} for n, i in enumerate(indexes)]


def shown(rendered: Rendered) -> list[str | None]:
    return [slot.product_id for slot in rendered.slots]


def decode(rendered: Rendered) -> Image.Image:
    return Image.open(io.BytesIO(rendered.data)).convert("RGB")


# -- recently viewed ---------------------------------------------------------------------------


def test_recently_viewed_shows_the_latest_distinct_products_up_to_the_grid() -> None:
    viewed = views(3, 1, 3, 0, 5, 6, 7, 8, 9)
    rendered = RecentlyViewedApp().render(ctx(RenderProfile(recently_viewed=viewed)))
    assert not rendered.empty
    assert rendered.content_type == PNG
    assert shown(rendered) == ["sku-4", "sku-2", "sku-1", "sku-6", "sku-7", "sku-8"]
    assert [slot.url for slot in rendered.slots][:2] == [
        "https://shop.example/p/sku-4",
        "https://shop.example/p/sku-2",
    ]
    image = decode(rendered)
    assert image.size == (rendered.width, rendered.height) == (600, rendered.height)


def test_recently_viewed_leaves_out_what_was_bought_after_it_was_viewed() -> None:
    viewed = views(0, 1, 2)  # viewed at 1_000_000, 999_000, 998_000
    purchased = {"sku-1": 1_000_500, "sku-2": 500}  # sku-1 bought since; sku-2 long before
    profile = RenderProfile(recently_viewed=viewed, purchased_at_ms=purchased)
    assert shown(RecentlyViewedApp().render(ctx(profile))) == ["sku-2", "sku-3"]
    assert profile.purchased_ids == {"sku-1", "sku-2"}


def test_recently_viewed_from_a_profile_state() -> None:
    def track(mid: str, event: str, ts: int, **properties: Any) -> tuple[dict[str, Any], int]:
        message = {"type": "track", "messageId": mid, "userId": "ada", "event": event}
        return {**message, "properties": properties}, ts

    def view(mid: str, product: dict[str, Any], ts: int) -> tuple[dict[str, Any], int]:
        return track(mid, "Product Viewed", ts, **{k: v for k, v in product.items() if v})

    identify = {
        "type": "identify",
        "messageId": "m0",
        "userId": "ada",
        "traits": {"locale": "de-DE", "timezone": "Europe/Berlin", "first_name": "Ada"},
    }
    events = [
        (identify, 1),
        view("m1", PRODUCTS[0], 10),
        view("m2", PRODUCTS[1], 20),
        view("m3", PRODUCTS[2], 30),
        track("m4", "Order Completed", 40, order_id="o1", total=66.5, products=[PRODUCTS[1]]),
    ]
    state = ProfileState.empty()
    for message, ts in events:
        state.apply(message, normalize(message), ts)
    profile = RenderProfile.from_state(state)
    assert profile.locale == "de_DE"
    assert profile.timezone == "Europe/Berlin"
    assert profile.last_order is not None and profile.last_order["order_id"] == "o1"
    assert "sku-2" in profile.purchased_ids
    assert shown(RecentlyViewedApp().render(ctx(profile))) == ["sku-3", "sku-1"]


def test_sold_out_products_are_skipped_unless_configured_otherwise() -> None:
    products = [dict(p) for p in PRODUCTS]
    products[1]["in_stock"] = False
    profile = RenderProfile(recently_viewed=views(0, 1, 2))
    skipping = RecentlyViewedApp().render(ctx(profile, products=products))
    keeping = RecentlyViewedApp(RecentlyViewedConfig(skip_out_of_stock=False)).render(
        ctx(profile, products=products)
    )
    assert shown(skipping) == ["sku-1", "sku-3"]
    assert shown(keeping) == ["sku-1", "sku-2", "sku-3"]


def test_products_in_the_cart_can_be_left_out() -> None:
    cart = {"items": [{**PRODUCTS[1], "quantity": 1}], "quantity": 1, "value": 1.0}
    profile = RenderProfile(recently_viewed=views(0, 1, 2), cart=cart)
    app = RecentlyViewedApp(RecentlyViewedConfig(exclude_in_cart=True))
    assert shown(app.render(ctx(profile))) == ["sku-1", "sku-3"]


def test_the_feed_completes_and_overrides_what_the_event_said() -> None:
    event = {"product_id": "sku-1", "name": "Old name", "price": 10.0, "sale_price": 5.0}
    feed = InMemoryCatalog([{"product_id": "sku-1", "name": "New name", "price": 20.0}])
    assert from_feed(event, feed) == {
        "product_id": "sku-1",
        "name": "New name",
        "price": 20.0,
        "sale_price": None,
    }
    # For an order, what was paid stands; the feed only fills gaps.
    paid = from_feed({"product_id": "sku-1", "price": 10.0}, feed, feed_wins=False)
    assert paid == {"product_id": "sku-1", "name": "New name", "price": 10.0}
    unknown = {"product_id": "sku-404", "name": "Only in events"}
    assert from_feed(unknown, feed) == unknown


# -- empty input, minimum, missing images ------------------------------------------------------


@pytest.mark.parametrize(
    "app",
    [RecentlyViewedApp(), CartItemsApp(), LastOrderApp(), RecommendedApp()],
    ids=lambda app: type(app).__name__,
)
def test_nothing_to_show_gives_an_empty_render(app: Any) -> None:
    rendered = app.render(ctx(RenderProfile()))
    assert rendered.empty
    assert rendered.slots == ()
    assert rendered.content_type == GIF
    assert Image.open(io.BytesIO(rendered.data)).size == (1, 1)
    assert app.render_slot(ctx(RenderProfile()), 0).empty


def test_fewer_products_than_the_minimum_give_an_empty_render() -> None:
    profile = RenderProfile(recently_viewed=views(0, 1))
    assert RecentlyViewedApp(RecentlyViewedConfig(min_products=3)).render(ctx(profile)).empty
    assert not RecentlyViewedApp(RecentlyViewedConfig(min_products=2)).render(ctx(profile)).empty


def test_a_missing_image_is_drawn_as_a_placeholder() -> None:
    layout = Layout(columns=3, rows=1, placeholder_color="#00ff00", padding=0, gap=0)
    images = InMemoryImages(missing={PRODUCTS[1]["image_url"]})
    rendered = RecentlyViewedApp(RecentlyViewedConfig(layout=layout)).render(
        ctx(RenderProfile(recently_viewed=views(0, 1, 2)), images=images)
    )
    assert shown(rendered) == ["sku-1", "sku-2", "sku-3"]
    x, y, w, _ = rendered.slots[1].box
    assert decode(rendered).getpixel((x + w // 2, y + w // 2)) == (0, 255, 0)
    assert decode(rendered).getpixel((w // 2, w // 2)) != (0, 255, 0)


def test_a_missing_image_can_be_skipped_and_the_next_product_moves_up() -> None:
    layout = Layout(columns=2, rows=1, missing_image="skip")
    images = InMemoryImages(missing={PRODUCTS[1]["image_url"]})
    app = RecentlyViewedApp(RecentlyViewedConfig(layout=layout))
    profile = RenderProfile(recently_viewed=views(0, 1, 2, 3))
    assert shown(app.render(ctx(profile, images=images))) == ["sku-1", "sku-3"]
    assert app.render_slot(ctx(profile, images=images), 1).slots[0].product_id == "sku-3"


# -- drawing -----------------------------------------------------------------------------------


def _runs(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 40) -> int:
    """The longest horizontal run of pixels near ``colour``."""
    longest = 0
    for y in range(image.height):
        run = 0
        for x in range(image.width):
            pixel = image.getpixel((x, y))
            assert isinstance(pixel, tuple)
            if max(abs(a - b) for a, b in zip(pixel, colour, strict=True)) <= tolerance:
                run += 1
                longest = max(longest, run)
            else:
                run = 0
    return longest


def test_a_sale_shows_the_sale_price_and_strikes_through_the_original() -> None:
    layout = Layout(
        columns=1,
        rows=1,
        width=240,
        show_name=False,
        sale_color="#ff0000",
        original_price_color="#0000ff",
        price_size=16,
    )
    on_sale = {**PRODUCTS[2], "price": 130.5, "sale_price": 91.35}
    regular = {**PRODUCTS[2], "price": 130.5, "sale_price": None}
    app = RecentlyViewedApp(RecentlyViewedConfig(layout=layout))

    def draw(product: dict[str, Any]) -> Image.Image:
        profile = RenderProfile(recently_viewed=[{**product, "viewed_at_ms": 1}])
        rendered = app.render(ctx(profile, products=[product]))
        price_area = decode(rendered).crop((0, rendered.height - 40, 240, rendered.height))
        return price_area

    sale = draw(on_sale)
    assert _runs(sale, (255, 0, 0), tolerance=60) >= 3  # the sale price, in red
    assert _runs(sale, (0, 0, 255), tolerance=60) >= 40  # the line through the original
    plain = draw(regular)
    assert _runs(plain, (255, 0, 0), tolerance=60) == 0
    assert _runs(plain, (0, 0, 255), tolerance=60) == 0


def test_prices_are_written_for_the_recipients_locale() -> None:
    products = sample_products(3, currency="EUR")
    cart = {"items": [{**products[0], "price": 49.5, "quantity": 1}], "currency": "EUR"}
    feed = [{**products[0], "price": 49.5}]
    app = CartItemsApp()
    german = ctx(RenderProfile.from_traits({"locale": "de-DE"}, cart=cart), products=feed)
    american = ctx(RenderProfile.from_traits({"locale": "en_US"}, cart=cart), products=feed)
    assert app.footer(german) == "Cart total: 49,50\xa0€"
    assert app.footer(american) == "Cart total: €49.50"
    assert german.caches.prices.format(1234.5, "USD", "de_DE") == "1.234,50\xa0$"
    assert german.caches.prices.format(1234.6, "JPY", "ja_JP") == "￥1,235"
    assert german.caches.prices.format(3, "USD", "xx_NOWHERE") == "$3.00"
    assert decode(app.render(german)) != decode(app.render(american))


def test_retina_renders_twice_the_pixels_for_the_same_display_size() -> None:
    profile = RenderProfile(recently_viewed=views(0, 1, 2, 3, 4, 5))
    single = RecentlyViewedApp().render(ctx(profile))
    double = RecentlyViewedApp(RecentlyViewedConfig(layout=Layout(scale=2))).render(ctx(profile))
    assert (double.width, double.height) == (2 * single.width, 2 * single.height)
    assert (double.display_width, double.display_height) == (single.width, single.height)
    assert decode(double).size == (1200, 2 * single.height)
    assert [slot.box for slot in double.slots] == [slot.box for slot in single.slots]


@pytest.mark.parametrize("format", ["png", "jpeg"])
@pytest.mark.parametrize("scale", [1, 2])
def test_images_stay_under_100_kb(format: str, scale: int) -> None:
    layout = Layout(title="Still thinking about these?", button_text="Shop now", format=format)
    layout = layout.model_copy(update={"scale": scale})
    app = RecentlyViewedApp(RecentlyViewedConfig(layout=layout))
    profile = RenderProfile(recently_viewed=views(0, 1, 2, 3, 4, 5))
    rendered = app.render(ctx(profile, images=InMemoryImages(photographic=True)))
    assert len(rendered.data) < 100_000
    assert rendered.content_type in (PNG, JPEG)
    if scale == 1:
        assert rendered.content_type == (PNG if format == "png" else JPEG)
    assert decode(rendered).size == (600 * scale, rendered.height)


def test_a_png_keeps_the_background_colour_exactly() -> None:
    layout = Layout(background="#ffffff")
    profile = RenderProfile(recently_viewed=views(0, 1, 2))
    rendered = RecentlyViewedApp(RecentlyViewedConfig(layout=layout)).render(
        ctx(profile, images=InMemoryImages(photographic=True))
    )
    image = decode(rendered)
    corners = [(0, 0), (image.width - 1, 0), (0, image.height - 1)]
    assert {image.getpixel(corner) for corner in corners} == {(255, 255, 255)}


def test_a_slot_alone_is_the_product_shown_in_that_slot_of_the_grid() -> None:
    profile = RenderProfile(recently_viewed=views(0, 1, 2, 3))
    app = RecentlyViewedApp()
    grid = app.render(ctx(profile))
    for k, slot in enumerate(grid.slots):
        alone = app.render_slot(ctx(profile), k)
        assert alone.slots == (alone.slots[0],)
        assert (alone.slots[0].index, alone.slots[0].product_id) == (k, slot.product_id)
        assert alone.slots[0].url == slot.url
        assert decode(alone).size == (slot.box[2] + 32, alone.height)
    assert app.render_slot(ctx(profile), 4).empty
    assert app.render_slot(ctx(profile), -1).empty


def test_empty_rows_can_collapse() -> None:
    profile = RenderProfile(recently_viewed=views(0, 1))
    fixed = RecentlyViewedApp().render(ctx(profile))
    collapsed = RecentlyViewedApp(
        RecentlyViewedConfig(layout=Layout(collapse_empty_rows=True))
    ).render(ctx(profile))
    assert collapsed.height < fixed.height
    full = RecentlyViewedApp().render(ctx(RenderProfile(recently_viewed=views(0, 1, 2, 3))))
    assert fixed.height == full.height  # the tag's height does not depend on the person


def test_renders_without_dejavu_using_pillows_font() -> None:
    caches = RenderCaches(Fonts(directories=()))
    profile = RenderProfile(recently_viewed=views(0, 1, 2))
    rendered = RecentlyViewedApp(RecentlyViewedConfig(layout=Layout(title="Hi"))).render(
        ctx(profile, caches=caches)
    )
    assert not rendered.empty
    assert decode(rendered).width == 600


# -- cart, last order, recommended -------------------------------------------------------------


def test_cart_items_show_quantities_and_the_total_at_todays_prices() -> None:
    items = [{**PRODUCTS[0], "quantity": 2}, {**PRODUCTS[2], "quantity": 1}, {**PRODUCTS[3]}]
    cart = {"items": items, "quantity": 3, "value": 1.0, "currency": "USD"}
    feed = [dict(p) for p in PRODUCTS]
    feed[0]["price"] = 10.0
    app = CartItemsApp(CartItemsConfig(total_label="{count} items: {total}"))
    context = ctx(RenderProfile(cart=cart), products=feed)
    rendered = app.render(context)
    assert shown(rendered) == ["sku-1", "sku-3", "sku-4"]
    # 2 × 10.00 + 1 × the sale price of sku-3 + 1 × sku-4
    sku3 = PRODUCTS[2]["sale_price"]
    sku4 = PRODUCTS[3]["price"]
    assert app.footer(context) == f"4 items: ${20 + sku3 + sku4:,.2f}"
    assert app._caption({"quantity": 2}) == "Qty 2"
    hidden = CartItemsApp(CartItemsConfig(quantity_label=None, total_label=None))
    assert hidden.footer(context) is None
    assert hidden.render(context).height < rendered.height


def test_an_unknown_price_falls_back_to_the_carts_own_value() -> None:
    cart = {"items": [{"product_id": "x", "quantity": 1}], "value": 12.5, "currency": "USD"}
    assert CartItemsApp().footer(ctx(RenderProfile(cart=cart))) == "Cart total: $12.50"


def test_last_order_shows_what_was_bought_and_the_order_total() -> None:
    order = {
        "order_id": "A-1",
        "total": 99.0,
        "currency": "EUR",
        "products": [{**PRODUCTS[5], "quantity": 1}, {**PRODUCTS[6], "quantity": 3}],
    }
    context = ctx(RenderProfile.from_traits({"locale": "fr_FR"}, last_order=order))
    app = LastOrderApp(LastOrderConfig(total_label="Commande {order_id} : {total}"))
    assert shown(app.render(context)) == ["sku-6", "sku-7"]
    assert app.footer(context) == "Commande A-1 : 99,00\xa0€"


def test_recommended_draws_from_viewed_categories_and_leaves_out_what_they_know() -> None:
    products = sample_products(30)  # ten categories, three products each: sku-n, n+10, n+20
    profile = RenderProfile(
        recently_viewed=views(0, 1, products=products),  # Shoes, Bags
        cart={"items": [{"product_id": "sku-11", "quantity": 1}]},
        purchased_at_ms={"sku-21": 5},
    )
    app = RecommendedApp()
    assert app.categories(ctx(profile, products=products)) == ["Shoes", "Bags"]
    assert shown(app.render(ctx(profile, products=products))) == ["sku-12", "sku-22"]


def test_recommended_falls_back_to_the_last_order_then_to_bestsellers() -> None:
    products = sample_products(30)
    order = {"order_id": "o", "products": [{**products[2], "quantity": 1}]}  # Outerwear
    profile = RenderProfile(last_order=order, purchased_at_ms={"sku-3": 1})
    assert shown(RecommendedApp().render(ctx(profile, products=products))) == ["sku-13", "sku-23"]
    nobody = RenderProfile()
    assert RecommendedApp().render(ctx(nobody, products=products)).empty
    bestsellers = RecommendedApp(RecommendedConfig(bestsellers_fallback=True))
    assert shown(bestsellers.render(ctx(nobody, products=products))) == [
        f"sku-{n}" for n in range(1, 7)
    ]


# -- the bare composition, layouts, apps by kind -----------------------------------------------


def test_a_grid_reads_the_feed_for_its_products_at_once() -> None:
    context = ctx(RenderProfile(recently_viewed=views(0, 1, 2, 3)))
    rendered = RecentlyViewedApp().render(context)
    assert shown(rendered) == ["sku-1", "sku-2", "sku-3", "sku-4"]
    assert context.catalog.lookups == 1  # type: ignore[attr-defined]


def test_compose_draws_given_tiles_without_lookups() -> None:
    tiles = [Tile.from_product(p) for p in PRODUCTS[:8]]
    images = InMemoryImages()
    rendered = compose(Layout(), [t for t in tiles if t], images, caches=RenderCaches())
    assert shown(rendered) == [f"sku-{n}" for n in range(1, 7)]
    assert len(images.requests) == 6  # only what the grid holds is fetched
    assert images.requests[0][1:] == (181, 181)


def test_tiles_read_prices_as_feeds_write_them() -> None:
    tile = Tile.from_product({"product_id": 7, "price": "1,299.00", "sale_price": "nan"})
    assert tile is not None
    assert (tile.product_id, tile.price, tile.sale_price) == ("7", 1299.0, None)
    assert Tile.from_product({"name": "no id"}) is None
    assert Tile.from_product({"product_id": "a", "currency": "eur"}) == Tile("a", currency="EUR")
    assert Tile("a", price=10, sale_price=12).on_sale is False


def test_layouts_are_validated_and_hashable() -> None:
    with pytest.raises(ValidationError, match="narrower"):
        Layout(width=200, columns=6)
    with pytest.raises(ValidationError):
        Layout(background="white")
    with pytest.raises(ValidationError):
        Layout(colums=3)
    assert hash(Layout(title="x")) == hash(Layout(title="x"))
    assert Layout(rows=2, columns=3).capacity == 6


def test_apps_are_built_by_kind_from_json() -> None:
    app = build_app("recently_viewed", {"layout": {"columns": 2, "rows": 1}, "min_products": 2})
    assert isinstance(app, RecentlyViewedApp)
    assert app.config.layout.capacity == 2
    with pytest.raises(KeyError):
        build_app("horoscope", {})
    with pytest.raises(ValidationError):
        build_app("cart_items", {"layout": {"scale": 3}})


def test_apps_reuse_a_grid_showing_exactly_the_same_things() -> None:
    caches = RenderCaches()
    images = InMemoryImages(missing={PRODUCTS[0]["image_url"]})
    app = RecentlyViewedApp()
    ada = RenderProfile(recently_viewed=views(0, 1, 2))
    grace = RenderProfile(recently_viewed=views(0, 1, 2), traits={"first_name": "Grace"})
    first = app.render(ctx(ada, images=images, caches=caches))
    assert app.render(ctx(grace, images=images, caches=caches)).data is first.data
    german = RenderProfile(recently_viewed=views(0, 1, 2), locale="de_DE")
    assert app.render(ctx(german, images=images, caches=caches)).data != first.data
    # The missing image arrives: the grid is drawn again, with it.
    arrived = app.render(ctx(ada, images=InMemoryImages(), caches=caches))
    assert arrived.data != first.data
    # The bare composition never reuses.
    tiles = [Tile("sku-1", image_url="u")]
    one = compose(Layout(), tiles, images, caches=caches)
    assert compose(Layout(), tiles, images, caches=caches).data is not one.data
