"""Composing a product grid: the Pillow drawing and the encoding, and nothing else.

:func:`compose` takes the products to show as :class:`Tile` values, in order, and the image
source; it looks nothing up in a profile or a catalog. That makes it the floor of a render's
work, which the render benchmark measures on its own. Apps (:mod:`.products`) decide *what* to
show and call it.

The work per image is kept small: product images come pre-sized from :class:`~.ports.Images`
and are pasted (no resampling here), fonts come from the caches, every line of text is set
once and then pasted from the caches, the canvas is one RGB image, and the encoder quantises
once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from .caches import RenderCaches
from .encode import encode
from .fonts import Font
from .layout import Grid, Layout, grid, rgb
from .money import normalize_currency, parse_amount
from .ports import Images
from .rendered import Rendered, Slot
from .typesetting import Stamp, ellipsize, stamp_cached, wrap_cached


def _text(value: object) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


@dataclass(frozen=True, slots=True)
class Tile:
    """One product as a grid shows it. ``caption`` is an extra line under the price (a cart's
    ``Qty 2``); ``currency`` ``None`` means the layout's default."""

    product_id: str
    name: str = ""
    url: str | None = None
    image_url: str | None = None
    price: float | None = None
    sale_price: float | None = None
    currency: str | None = None
    caption: str | None = None

    @classmethod
    def from_product(
        cls,
        product: Mapping[str, Any],
        *,
        currency: str | None = None,
        caption: str | None = None,
    ) -> Tile | None:
        """The tile of a product dict (an event's or the feed's), or ``None`` without an id.
        ``currency`` is used when the product names none."""
        product_id = product.get("product_id")
        if not isinstance(product_id, str | int) or isinstance(product_id, bool):
            return None
        own = normalize_currency(product.get("currency"), "")
        return cls(
            product_id=str(product_id),
            name=_text(product.get("name")) or "",
            url=_text(product.get("url")),
            image_url=_text(product.get("image_url")),
            price=parse_amount(product.get("price")),
            sale_price=parse_amount(product.get("sale_price")),
            currency=own or currency,
            caption=caption,
        )

    @property
    def on_sale(self) -> bool:
        return (
            self.sale_price is not None and self.price is not None and self.sale_price < self.price
        )


_Picked = tuple[Tile, Image.Image | None]


def _pick(layout: Layout, tiles: Iterable[Tile], images: Images, grid_: Grid) -> list[_Picked]:
    """The first ``layout.capacity`` tiles that can be shown, each with its image (``None``:
    draw a placeholder). With ``missing_image="skip"``, tiles without an image are passed over
    and later ones take their place."""
    picked: list[_Picked] = []
    size = (grid_.tile_width, grid_.image_height)
    for tile in tiles:
        image = images.get(tile.image_url, *size) if tile.image_url else None
        if image is None and layout.missing_image == "skip":
            continue
        if image is not None and image.size != size:  # a source that did not size it
            image = ImageOps.fit(image, size)
        picked.append((tile, image))
        if len(picked) >= layout.capacity:
            break
    return picked


class _Painter:
    """Draws tiles for one layout onto one canvas; every line of text is a cached stamp."""

    __slots__ = ("caches", "canvas", "grid", "layout", "locale", "s")

    def __init__(self, layout: Layout, grid_: Grid, caches: RenderCaches, locale: str) -> None:
        self.layout = layout
        self.grid = grid_
        self.caches = caches
        self.locale = locale
        self.s = layout.scale
        self.canvas = Image.new("RGB", (grid_.width, grid_.height), rgb(layout.background))

    def font(self, size: int, *, bold: bool = False) -> Font:
        return self.caches.fonts.get(self.layout.font_family, size * self.s, bold=bold)

    def stamp(self, text: str, font: Font) -> Stamp:
        return stamp_cached(self.caches.stamps, text, font)

    def line(
        self, text: str, font: Font, colour: str, left: float, width: float, top: float
    ) -> None:
        """``text`` on one line within ``width`` (cut with … if need be), aligned."""
        mark = self.stamp(text, font)
        if mark.advance > width:
            mark = self.stamp(ellipsize(text, font, width), font)
        x = left + (width - mark.advance) / 2 if self.layout.align == "center" else left
        mark.paint(self.canvas, x, top, rgb(colour))

    def title(self, text: str) -> None:
        pad = self.layout.padding * self.s
        font = self.font(self.layout.title_size, bold=True)
        inner = self.grid.width - 2 * pad
        self.line(text, font, self.layout.title_color, pad, inner, self.grid.title_top)

    def footer(self, text: str) -> None:
        pad = self.layout.padding * self.s
        font = self.font(self.layout.price_size, bold=True)
        inner = self.grid.width - 2 * pad
        self.line(text, font, self.layout.price_color, pad, inner, self.grid.footer_top)

    def tile(self, tile: Tile, image: Image.Image | None, x: int, y: int) -> None:
        layout, g = self.layout, self.grid
        if image is None:
            box = (x, y, x + g.tile_width - 1, y + g.image_height - 1)
            self.canvas.paste(rgb(layout.placeholder_color), box)
        elif image.mode == "RGBA":
            self.canvas.paste(image, (x, y), image)
        else:
            self.canvas.paste(image if image.mode == "RGB" else image.convert("RGB"), (x, y))
        if layout.show_name and tile.name:
            font = self.font(layout.name_size)
            lines = wrap_cached(self.caches.lines, tile.name, font, g.tile_width, layout.name_lines)
            for i, text in enumerate(lines):
                top = y + g.name_top + i * g.name_line
                self.line(text, font, layout.text_color, x, g.tile_width, top)
        if layout.show_price:
            self.price(tile, x, y + g.price_top)
        if tile.caption:
            font = self.font(layout.name_size)
            top = y + g.caption_top
            self.line(tile.caption, font, layout.original_price_color, x, g.tile_width, top)
        if layout.button_text:
            self.button(layout.button_text, x, y + g.button_top)

    def money(self, tile: Tile, amount: float) -> str:
        currency = tile.currency or self.layout.default_currency
        return self.caches.prices.format(amount, currency, self.locale)

    def price(self, tile: Tile, x: int, top: int) -> None:
        """The price; on sale, the sale price in the sale colour and the original struck
        through beside it (when both fit)."""
        layout, width = self.layout, self.grid.tile_width
        shown = tile.sale_price if tile.on_sale or tile.price is None else tile.price
        if shown is None:
            return
        bold = self.font(layout.price_size, bold=True)
        main = self.stamp(self.money(tile, shown), bold)
        colour = layout.sale_color if tile.on_sale else layout.price_color
        original = None
        if tile.on_sale and layout.strike_original and tile.price is not None:
            regular = self.font(layout.price_size)
            original = self.stamp(self.money(tile, tile.price), regular)
            space = regular.getlength("  ")
            total = main.advance + space + original.advance
        if original is None or total > width:  # no room for both: the price they pay wins
            self.line(self.money(tile, shown), bold, colour, x, width, top)
            return
        left = x + (width - total) / 2 if layout.align == "center" else x
        main.paint(self.canvas, left, top, rgb(colour))
        start = left + main.advance + space
        muted = rgb(layout.original_price_color)
        original.paint(self.canvas, start, top, muted)
        # Through the middle of the digits, however the font draws them.
        _, digit_top, _, digit_bottom = regular.getbbox("0", anchor="la")
        middle = round(top + (digit_top + digit_bottom) / 2)
        thickness = max(1, self.s)
        end = round(start + original.advance)
        self.canvas.paste(muted, (round(start), middle, end, middle + thickness))

    def button(self, text: str, x: int, top: int) -> None:
        g, layout = self.grid, self.layout
        box = (x, top, x + g.tile_width - 1, top + g.button_height - 1)
        ImageDraw.Draw(self.canvas).rounded_rectangle(
            box, radius=4 * self.s, fill=rgb(layout.button_color)
        )
        font = self.font(layout.name_size, bold=True)
        ascent, descent = font.getmetrics()
        label_top = top + (g.button_height - ascent - descent) / 2
        inset = 4 * self.s
        width = g.tile_width - 2 * inset
        mark = self.stamp(text, font)
        if mark.advance > width:
            mark = self.stamp(ellipsize(text, font, width), font)
        left = x + (g.tile_width - mark.advance) / 2
        mark.paint(self.canvas, left, label_top, rgb(layout.button_text_color))


def compose(
    layout: Layout,
    tiles: Iterable[Tile],
    images: Images,
    *,
    caches: RenderCaches,
    locale: str = "en_US",
    footer: str | None = None,
    min_products: int = 1,
    reuse: bool = False,
) -> Rendered:
    """The grid image of the first ``layout.capacity`` showable ``tiles`` (consumed lazily),
    with the layout's title and ``footer`` under the grid; :meth:`Rendered.nothing` when fewer
    than ``min_products`` can be shown.

    With ``reuse``, a grid showing exactly what an earlier one showed (same layout, products,
    images, locale and footer) is that one, from ``caches.grids``: many people see the same
    recommendations, and re-opens show the same products. Without it (the default) every call
    draws and encodes: the bare work, which the render benchmark measures as its floor."""
    caption, remaining = _peek_caption(tiles)
    full = grid(layout, caches.fonts, caption=caption, footer=footer is not None)
    picked = _pick(layout, remaining, images, full)
    if len(picked) < max(1, min_products):
        return Rendered.nothing()
    if not reuse:
        return _draw_grid(layout, picked, full, caches, locale, footer, caption)
    key = (layout, _shown(picked), locale, footer)
    found = caches.grids.get(key)
    if found is None:
        found = _draw_grid(layout, picked, full, caches, locale, footer, caption)
        caches.grids.put(key, found)
    return found


def _shown(picked: list[_Picked]) -> tuple[tuple[Tile, int | None], ...]:
    """What a grid shows, as a cache key: each tile and which image (the source hands out the
    same image object for as long as it keeps it; a re-fetched image is a new one)."""
    return tuple((tile, None if image is None else id(image)) for tile, image in picked)


def _draw_grid(
    layout: Layout,
    picked: list[_Picked],
    full: Grid,
    caches: RenderCaches,
    locale: str,
    footer: str | None,
    caption: bool,
) -> Rendered:
    g = full
    if layout.collapse_empty_rows:
        rows = -(-len(picked) // layout.columns)
        if rows < layout.rows:
            g = grid(layout, caches.fonts, rows=rows, caption=caption, footer=footer is not None)
    painter = _Painter(layout, g, caches, locale)
    if layout.title:
        painter.title(layout.title)
    slots: list[Slot] = []
    s = layout.scale
    for index, (tile, image) in enumerate(picked):
        x, y = g.tile_origin(index, layout.columns, len(picked), centre=layout.align == "center")
        painter.tile(tile, image, x, y)
        box = (x // s, y // s, g.tile_width // s, g.tile_height // s)
        slots.append(Slot(index, tile.url, tile.product_id, tile.name or None, box))
    if footer is not None:
        painter.footer(footer)
    return _encoded(layout, painter.canvas, tuple(slots))


def compose_slot(
    layout: Layout,
    tiles: Iterable[Tile],
    index: int,
    images: Images,
    *,
    caches: RenderCaches,
    locale: str = "en_US",
) -> Rendered:
    """Tile ``index`` of what :func:`compose` would show, alone in its own image (one tile
    wide, with the layout's padding and no title), for emails that give each product its own
    image and link; :meth:`Rendered.nothing` when there is no such tile."""
    caption, remaining = _peek_caption(tiles)
    full = grid(layout, caches.fonts, caption=caption)
    picked = _pick(layout, remaining, images, full)
    if not 0 <= index < len(picked):
        return Rendered.nothing()
    single = layout.model_copy(
        update={
            "columns": 1,
            "rows": 1,
            "title": None,
            "width": full.tile_width // layout.scale + 2 * layout.padding,
        }
    )
    g = grid(single, caches.fonts, caption=caption)
    painter = _Painter(single, g, caches, locale)
    tile, image = picked[index]
    if image is not None and image.size != (g.tile_width, g.image_height):
        image = ImageOps.fit(image, (g.tile_width, g.image_height))
    x, y = g.tile_origin(0, 1, 1)
    painter.tile(tile, image, x, y)
    s = layout.scale
    box = (x // s, y // s, g.tile_width // s, g.tile_height // s)
    return _encoded(
        single, painter.canvas, (Slot(index, tile.url, tile.product_id, tile.name or None, box),)
    )


def _encoded(layout: Layout, canvas: Image.Image, slots: tuple[Slot, ...]) -> Rendered:
    data, content_type = encode(
        canvas,
        layout.format,
        quality=layout.quality,
        colors=layout.colors,
        max_bytes=layout.max_bytes,
        exact=[
            rgb(colour)
            for colour in (
                layout.background,
                layout.text_color,
                layout.title_color,
                layout.price_color,
                layout.sale_color,
            )
        ],
    )
    return Rendered(data, content_type, canvas.width, canvas.height, slots, layout.scale)


def _peek_caption(tiles: Iterable[Tile]) -> tuple[bool, Iterator[Tile]]:
    """Whether the tiles have captions (which decides the tile height before anything is
    drawn), from the first one (an app gives all its tiles a caption or none), and the tiles."""
    rest = iter(tiles)
    first = next(rest, None)
    if first is None:
        return False, rest
    return first.caption is not None, chain((first,), rest)
