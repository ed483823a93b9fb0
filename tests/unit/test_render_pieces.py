"""PNG grids assembled from product tiles quantised one by one and kept (render/pieces.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tidings.content.render import PNG, Layout, RenderCaches, Rendered, Tile, compose
from tidings.content.render.testing import (
    InMemoryImages,
    block_difference,
    pixel_difference,
    sample_products,
)

PRODUCTS = sample_products(24)
TILES = [
    Tile(
        str(p["product_id"]),
        name=str(p["name"]),
        image_url=str(p["image_url"]),
        price=p["price"],
        sale_price=p["sale_price"],
        currency="USD",
    )
    for p in PRODUCTS
]
WHITE = (255, 255, 255)


def decode(rendered: Rendered) -> Image.Image:
    return Image.open(io.BytesIO(rendered.data))


def colours(image: Image.Image) -> set[tuple[int, int, int]]:
    found = image.convert("RGB").getcolors(1 << 20) or []
    return {colour for _, colour in found}  # type: ignore[misc]


@pytest.mark.parametrize(
    "layout",
    [
        Layout(),
        Layout(title="Still thinking about these?", button_text="Shop now", align="left"),
        Layout(columns=2, rows=1, image_aspect=0.75, scale=2),
        Layout(rows=3, collapse_empty_rows=True, padding=0, gap=0),
    ],
    ids=["default", "title-button-left", "retina", "collapsed-no-gaps"],
)
def test_a_grid_of_pieces_looks_like_the_grid_quantised_as_one_canvas(layout: Layout) -> None:
    # 64 colours leave too few per tile for pieces: that layout quantises its whole canvas.
    whole = layout.model_copy(update={"colors": 64})
    tiles = TILES[:4]
    pieces = compose(layout, tiles, InMemoryImages(), caches=RenderCaches(), footer="Total: 9")
    canvas = compose(whole, tiles, InMemoryImages(), caches=RenderCaches(), footer="Total: 9")
    assert pieces.content_type == canvas.content_type == PNG
    assert pieces.slots == canvas.slots
    a, b = decode(pieces).convert("RGB"), decode(canvas).convert("RGB")
    assert a.size == b.size
    assert pixel_difference(a, b) < 1.5
    assert block_difference(a, b) < 24


def test_text_and_background_colours_are_exact() -> None:
    layout = Layout(title="Picked for you", button_text="Shop", button_color="#0b5fff")
    rendered = compose(layout, TILES[:6], InMemoryImages(), caches=RenderCaches(), footer="x")
    image = decode(rendered)
    assert image.mode == "P"
    found = colours(image)
    for colour in ("#111111", "#333333", "#c62828", "#8a8a8a", "#0b5fff"):
        digits = colour[1:]
        assert tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4)) in found, colour
    rgb = image.convert("RGB")
    between = (16 + 181 + 6, 200)  # in the gap between the first two tiles
    corners = [(0, 0), (rgb.width - 1, 0), (0, rgb.height - 1), between]
    assert {rgb.getpixel(xy) for xy in corners} == {WHITE}


def test_a_near_white_backdrop_keeps_its_colour_and_a_white_one_stays_white() -> None:
    shot = Image.new("RGB", (181, 181), (245, 250, 246))  # in an octree bucket with white
    shot.paste(WHITE, (0, 0, 60, 60))
    shot.paste((120, 40, 70), (80, 80, 150, 150))
    images = InMemoryImages({"near-white": shot})
    tiles = [Tile("a", name="Bag", image_url="near-white", price=10.0)]
    image = decode(compose(Layout(), tiles, images, caches=RenderCaches())).convert("RGB")
    x, y = 209, 16  # the centred tile's image
    assert image.getpixel((x + 100, y + 10)) == (245, 250, 246)
    assert image.getpixel((x + 10, y + 10)) == WHITE
    assert image.getpixel((x + 100, y + 100)) == (120, 40, 70)


def test_a_products_tile_is_drawn_once_for_every_grid_that_shows_it() -> None:
    caches, images = RenderCaches(), InMemoryImages()
    compose(Layout(), TILES[0:6], images, caches=caches)
    assert (caches.tiles.hits, caches.tiles.misses) == (0, 6)
    second = compose(Layout(), TILES[3:9], images, caches=caches)  # no grid reuse
    assert (caches.tiles.hits, caches.tiles.misses) == (3, 9)
    fresh = compose(Layout(), TILES[3:9], images, caches=RenderCaches())
    assert second.data == fresh.data
    # Another image for the same URL (re-fetched): its tile is drawn again.
    other = InMemoryImages({TILES[3].image_url or "": Image.new("RGB", (181, 181), "navy")})
    again = compose(Layout(), TILES[3:9], other, caches=caches)
    assert caches.tiles.misses > 9
    assert again.data != second.data


def test_the_tile_cache_stays_within_its_byte_budget() -> None:
    caches, images = RenderCaches(tile_bytes=200_000), InMemoryImages()
    for start in range(0, 18, 6):
        compose(Layout(), TILES[start : start + 6], images, caches=caches)
    assert 0 < caches.tiles.weight <= 200_000
    assert len(caches.tiles) < 18
    none = RenderCaches(tile_bytes=0)
    kept = compose(Layout(), TILES[12:18], images, caches=caches)
    assert compose(Layout(), TILES[12:18], images, caches=none).data == kept.data
    assert len(none.tiles) == 0


@pytest.mark.parametrize("colors", [256, 200])
def test_a_grid_has_no_more_colours_than_its_layout_allows(colors: int) -> None:
    layout = Layout(
        columns=3, rows=3, title="Cart", button_text="Buy", colors=colors, max_bytes=1_000_000
    )
    tiles = [Tile(t.product_id, t.name, None, t.image_url, t.price, None, "USD", "Qty 2")
             for t in TILES[:9]]  # fmt: skip
    images = InMemoryImages(photographic=True)
    rendered = compose(layout, tiles, images, caches=RenderCaches(), footer="Total: $9")
    image = decode(rendered)
    assert rendered.content_type == PNG and image.mode == "P"
    assert len(image.getpalette() or []) <= 3 * colors


def test_layouts_with_too_many_tiles_for_pieces_are_quantised_whole() -> None:
    layout = Layout(width=1200, columns=6, rows=6)
    caches = RenderCaches()
    rendered = compose(layout, TILES[:24], InMemoryImages(), caches=caches)
    assert rendered.content_type == PNG
    assert len(caches.tiles) == 0
    assert decode(rendered).convert("RGB").getpixel((0, 0)) == WHITE
