"""The golden renders: every app drawn for fixed people, products and times.

Each case returns the decoded image (RGB; for a countdown, the frame asked for) so that tests
compare pixels, never bytes. Regenerate the reference PNGs after an intended change with
``.venv/bin/python -m tests.golden.regenerate`` and look at them before committing.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from tidings.content.render import (
    CartItemsApp,
    CartItemsConfig,
    CountdownApp,
    CountdownConfig,
    CountdownStyle,
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
    TextApp,
    TextConfig,
    TextStyle,
)
from tidings.content.render.testing import InMemoryCatalog, InMemoryImages, sample_products

GOLDEN_DIR = Path(__file__).resolve().parent
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
PRODUCTS = sample_products(24)
EURO_PRODUCTS = sample_products(24, currency="EUR")
MISSING_IMAGE = PRODUCTS[4]["image_url"]


def decoded(rendered: Rendered, frame: int = 0) -> Image.Image:
    image = Image.open(io.BytesIO(rendered.data))
    image.seek(frame)
    return image.convert("RGB")


def context(
    profile: RenderProfile, *, now: datetime = NOW, products: list[dict[str, Any]] = PRODUCTS
) -> RenderContext:
    return RenderContext(
        profile,
        InMemoryCatalog(products),
        InMemoryImages(missing={MISSING_IMAGE}),
        now,
        RenderCaches(),
    )


def viewer(locale: str = "en_US", **traits: Any) -> RenderProfile:
    viewed = [
        {**product, "viewed_at_ms": 1_700_000_000_000 - i * 60_000}
        for i, product in enumerate(PRODUCTS[:8])
    ]
    return RenderProfile.from_traits({"locale": locale, **traits}, recently_viewed=viewed)


def shopper(locale: str = "de_DE") -> RenderProfile:
    items = [{**EURO_PRODUCTS[2], "quantity": 2}, {**EURO_PRODUCTS[1], "quantity": 1}]
    cart = {"items": items, "quantity": 3, "value": 0.0, "currency": "EUR"}
    order = {
        "order_id": "A-1042",
        "total": 212.85,
        "currency": "USD",
        "products": [{**PRODUCTS[6], "quantity": 1}, {**PRODUCTS[7], "quantity": 2}],
        "timestamp_ms": 1_690_000_000_000,
    }
    return RenderProfile.from_traits(
        {"locale": locale, "first_name": "Ada", "timezone": "Europe/Berlin"},
        cart=cart,
        last_order=order,
    )


def recently_viewed() -> Image.Image:
    layout = Layout(title="Still thinking about these?")
    app = RecentlyViewedApp(RecentlyViewedConfig(layout=layout))
    return decoded(app.render(context(viewer())))


def recently_viewed_slot_2x() -> Image.Image:
    layout = Layout(title="Still thinking about these?", scale=2)
    app = RecentlyViewedApp(RecentlyViewedConfig(layout=layout))
    return decoded(app.render_slot(context(viewer()), 2))


def cart_items_de() -> Image.Image:
    layout = Layout(
        title="Dein Warenkorb wartet", columns=2, rows=1, image_aspect=0.75, button_text="Zur Kasse"
    )
    config = CartItemsConfig(
        layout=layout, quantity_label="Menge {quantity}", total_label="Summe: {total}"
    )
    return decoded(CartItemsApp(config).render(context(shopper(), products=EURO_PRODUCTS)))


def last_order_jpeg() -> Image.Image:
    layout = Layout(
        title="Your last order",
        columns=4,
        rows=1,
        format="jpeg",
        background="#f6f3ee",
        font_family="dejavu-serif",
    )
    app = LastOrderApp(LastOrderConfig(layout=layout, quantity_label="x{quantity}"))
    return decoded(app.render(context(shopper(locale="en_GB"))))


def recommended_skip_missing() -> Image.Image:
    layout = Layout(title="Picked for you", columns=3, rows=1, missing_image="skip", align="left")
    # Knitwear and shoes viewed: the most popular other knitwear has no image and is passed over.
    viewed = [{**PRODUCTS[14], "viewed_at_ms": 2}, {**PRODUCTS[0], "viewed_at_ms": 1}]
    profile = RenderProfile.from_traits({}, recently_viewed=viewed)
    return decoded(RecommendedApp(RecommendedConfig(layout=layout)).render(context(profile)))


def countdown_first_frame() -> Image.Image:
    config = CountdownConfig(deadline=datetime(2026, 11, 25, 23, 59, 59), timezone="Etc/UTC")
    return decoded(CountdownApp(config).render(context(shopper())), frame=0)


def countdown_light_hours() -> Image.Image:
    style = CountdownStyle(
        show_days=False, box_color=None, background="#ffffff", digit_color="#c62828"
    )
    config = CountdownConfig(deadline=datetime(2026, 11, 24, 18, 30), style=style)
    return decoded(CountdownApp(config).render(context(viewer())), frame=0)


def countdown_ended() -> Image.Image:
    config = CountdownConfig(deadline=datetime(2026, 11, 1, tzinfo=UTC))
    return decoded(CountdownApp(config).render(context(viewer())))


def text_headline() -> Image.Image:
    config = TextConfig(
        template="Still thinking about it, {{ first_name | default('there') }}?",
        default_text="Still thinking about it?",
        style=TextStyle(background="#fff4e5", color="#5d2e00"),
    )
    return decoded(TextApp(config).render(context(shopper())))


CASES: dict[str, Callable[[], Image.Image]] = {
    "recently_viewed": recently_viewed,
    "recently_viewed_slot_2x": recently_viewed_slot_2x,
    "cart_items_de": cart_items_de,
    "last_order_jpeg": last_order_jpeg,
    "recommended_skip_missing": recommended_skip_missing,
    "countdown_first_frame": countdown_first_frame,
    "countdown_light_hours": countdown_light_hours,
    "countdown_ended": countdown_ended,
    "text_headline": text_headline,
}


def path(name: str) -> Path:
    return GOLDEN_DIR / f"{name}.png"
