"""The pieces under the apps: setting text, encoding within a budget, the GIF writer, fonts."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image, ImageDraw

from tidings.content.render import JPEG, PNG, Fonts, Layout, Rendered
from tidings.content.render.caches import Lru
from tidings.content.render.encode import encode
from tidings.content.render.fonts import DEJAVU_DIR
from tidings.content.render.gif import Frame, animation, image_block
from tidings.content.render.layout import grid, rgb
from tidings.content.render.testing import product_shot
from tidings.content.render.typesetting import ELLIPSIS, ellipsize, stamp, wrap

FONT = Fonts().get("dejavu-sans", 14)


def test_wrap_breaks_at_words_and_ends_what_does_not_fit_with_an_ellipsis() -> None:
    assert wrap("Trail Runner Sneaker", FONT, 1000, 2) == ("Trail Runner Sneaker",)
    lines = wrap("Northwind Trail Runner Sneaker in Forest Green", FONT, 120, 2)
    assert len(lines) == 2
    assert all(FONT.getlength(line) <= 120 for line in lines)
    assert lines[0] == "Northwind Trail"
    assert lines[1].endswith(ELLIPSIS)
    assert wrap("Supercalifragilisticexpialidocious", FONT, 60, 2)[0].endswith(ELLIPSIS)
    assert wrap("", FONT, 100, 2) == ()
    assert wrap("   ", FONT, 100, 2) == ()


def test_ellipsize_keeps_what_fits() -> None:
    assert ellipsize("Tote", FONT, 100) == "Tote"
    cut = ellipsize("Leather Weekender Bag", FONT, 80)
    assert cut.endswith(ELLIPSIS) and FONT.getlength(cut) <= 80
    assert ellipsize("Leather", FONT, 2) == ""


def test_a_stamp_draws_like_draw_text() -> None:
    drawn = Image.new("RGB", (200, 40), "white")
    ImageDraw.Draw(drawn).text((10, 8), "$129.00 Tote", font=FONT, fill=(20, 20, 20))
    stamped = Image.new("RGB", (200, 40), "white")
    stamp("$129.00 Tote", FONT).paint(stamped, 10, 8, (20, 20, 20))
    assert drawn.tobytes() == stamped.tobytes()
    assert stamp("", FONT).advance == 0


def test_png_within_budget_else_fewer_colours_else_jpeg() -> None:
    flat = Image.new("RGB", (600, 300), rgb("#fff"))
    data, content_type = encode(flat, "png")
    assert content_type == PNG and len(data) < 2000
    photo = product_shot("x", 600, 600, photographic=True)
    data, content_type = encode(photo, "png", max_bytes=60_000)
    assert content_type == JPEG and len(data) <= 60_000
    data, content_type = encode(photo, "jpeg", quality=95, max_bytes=40_000)
    assert content_type == JPEG and len(data) <= 40_000
    # Noise cannot be made small: the smallest attempt is what comes back.
    noise = Image.frombytes("RGB", (600, 400), random.Random(1).randbytes(600 * 400 * 3))
    data, content_type = encode(noise, "png", max_bytes=50_000)
    assert content_type == JPEG and len(data) > 50_000


def test_png_keeps_exact_colours_it_uses_and_leaves_others_alone() -> None:
    image = product_shot("x", 300, 300, photographic=True)
    ImageDraw.Draw(image).rectangle((0, 0, 299, 20), fill=(250, 250, 250))
    data, _ = encode(image, "png", exact=[(250, 250, 250), (255, 0, 0)])
    decoded = Image.open(io.BytesIO(data)).convert("RGB")
    assert decoded.getpixel((5, 5)) == (250, 250, 250)
    assert (255, 0, 0) not in {decoded.getpixel((x, 150)) for x in range(300)}


def test_the_gif_writer_makes_an_animation_pillow_reads() -> None:
    palette = [0, 0, 0, 255, 255, 255, 255, 0, 0]
    base = Image.new("P", (40, 20), 0)
    base.putpalette(palette)
    patch = Image.new("P", (10, 10), 2)
    patch.putpalette(palette)
    frames = [Frame(image_block(base, 0, 0), 100), Frame(image_block(patch, 5, 5), 250)]
    data = animation((40, 20), palette, frames, loop=True)
    image = Image.open(io.BytesIO(data))
    assert (image.n_frames, image.info["loop"], image.info["duration"]) == (2, 0, 1000)
    image.seek(1)
    assert image.info["duration"] == 2500
    second = image.convert("RGB")
    assert second.getpixel((6, 6)) == (255, 0, 0)
    assert second.getpixel((30, 2)) == (0, 0, 0)
    assert (
        "loop" not in Image.open(io.BytesIO(animation((40, 20), palette, frames, loop=False))).info
    )


def test_fonts_fall_back_to_pillows_own() -> None:
    fallback = Fonts(directories=()).get("dejavu-serif", 20, bold=True)
    assert fallback.getlength("Sale") > 0
    assert not Fonts(directories=()).available("dejavu-sans")
    fonts = Fonts()
    assert fonts.get("dejavu-sans", 14) is fonts.get("dejavu-sans", 14)
    if (DEJAVU_DIR / "DejaVuSans-Bold.ttf").is_file():
        assert fonts.path("dejavu-sans", bold=True) == DEJAVU_DIR / "DejaVuSans-Bold.ttf"


def test_the_grid_height_depends_on_the_layout_only() -> None:
    fonts = Fonts()
    plain = grid(Layout(), fonts)
    assert plain.tile_width == (600 - 32 - 24) // 3
    assert grid(Layout(title="Hi"), fonts).height > plain.height
    assert grid(Layout(button_text="Buy"), fonts).height > plain.height
    assert grid(Layout(), fonts, caption=True, footer=True).height > plain.height
    assert grid(Layout(scale=2), fonts).height == 2 * plain.height


def test_an_lru_forgets_the_least_recently_used() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)
    assert (cache.get("b"), cache.get("a"), cache.get("c")) == (None, 1, 3)
    assert len(cache) == 2
    with pytest.raises(ValueError):
        Lru(0)


def test_a_weighed_lru_keeps_within_its_weight() -> None:
    cache: Lru[str, bytes] = Lru(100, weigh=len, max_weight=10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    cache.put("c", b"90ab")  # 12 > 10: the least recently used goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, b"5678", b"90ab")
    assert cache.weight == 8
    cache.put("b", b"x")  # replacing an entry re-weighs it
    assert cache.weight == 5
    cache.put("big", b"x" * 11)  # heavier than the whole cache: not kept, nothing dropped
    assert cache.get("big") is None and len(cache) == 2


def test_an_empty_render_is_a_transparent_pixel() -> None:
    nothing = Rendered.nothing()
    image = Image.open(io.BytesIO(nothing.data))
    assert image.size == (1, 1) and nothing.empty and nothing.slot(0) is None
    assert image.convert("RGBA").getpixel((0, 0))[3] == 0  # type: ignore[index]
