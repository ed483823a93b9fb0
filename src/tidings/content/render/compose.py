"""Composing a product grid: the Pillow drawing and the encoding, and nothing else.

:func:`compose` takes the products to show as :class:`Tile` values, in order, and the image
source; it looks nothing up in a profile or a catalog. That makes it the floor of a render's
work, which the render benchmark measures on its own. Apps (:mod:`.products`) decide *what* to
show and call it.

The work per image is kept small: product images come pre-sized from :class:`~.ports.Images`
and are pasted (no resampling here), fonts come from the caches, and every line of text is set
once and then pasted from the caches. A PNG grid is assembled from pieces (:mod:`.pieces`):
each product's tile (image, name, price, button) is drawn and quantised on its own, once, and
kept in ``caches.tiles`` for every grid of the layout that shows that product, in both modes
of :func:`compose` (it is part of the normal work, like the cached text); the grid is those
pieces pasted on an index canvas, then deflated. A JPEG grid, or a PNG whose tiles would
get fewer than :data:`MIN_TILE_COLOURS` colours of their own (a small ``colors``, many
tiles), is drawn on one RGB canvas and encoded whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from PIL import Image, ImageDraw, ImageOps

from .caches import RenderCaches
from .encode import encode
from .fonts import Font
from .layout import Grid, Layout, grid, rgb
from .money import normalize_currency, parse_amount
from .pieces import Piece, TextPalette, assemble, piece, text_palette
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

    __slots__ = ("caches", "canvas", "dy", "grid", "layout", "locale", "s")

    def __init__(
        self,
        layout: Layout,
        grid_: Grid,
        caches: RenderCaches,
        locale: str,
        size: tuple[int, int] | None = None,
        dy: int = 0,
    ) -> None:
        """A canvas of ``size`` (default: the whole grid's); the title and footer are drawn
        ``dy`` pixels higher than the grid places them (on a canvas of a strip of it)."""
        self.layout = layout
        self.grid = grid_
        self.caches = caches
        self.locale = locale
        self.s = layout.scale
        self.dy = dy
        size = size or (grid_.width, grid_.height)
        self.canvas = Image.new("RGB", size, rgb(layout.background))

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
        top = self.grid.title_top - self.dy
        self.line(text, font, self.layout.title_color, pad, inner, top)

    def footer(self, text: str) -> None:
        pad = self.layout.padding * self.s
        font = self.font(self.layout.price_size, bold=True)
        inner = self.grid.width - 2 * pad
        top = self.grid.footer_top - self.dy
        self.line(text, font, self.layout.price_color, pad, inner, top)

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
    assembles and encodes: the bare work, which the render benchmark measures as its floor
    (products' tiles already drawn and quantised are taken from ``caches.tiles`` either way;
    see the module)."""
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
    s = layout.scale
    centre = layout.align == "center"
    origins = [
        g.tile_origin(i, layout.columns, len(picked), centre=centre) for i in range(len(picked))
    ]
    slots = tuple(
        Slot(
            index,
            tile.url,
            tile.product_id,
            tile.name or None,
            (x // s, y // s, g.tile_width // s, g.tile_height // s),
        )
        for index, ((tile, _), (x, y)) in enumerate(zip(picked, origins, strict=True))
    )
    text = _text_palette(layout, caches)
    colours = _tile_colours(layout, text)
    if colours is None:  # a JPEG, or too many tiles to share a palette: one canvas
        painter = _Painter(layout, g, caches, locale)
        if layout.title:
            painter.title(layout.title)
        for (tile, image), (x, y) in zip(picked, origins, strict=True):
            painter.tile(tile, image, x, y)
        if footer is not None:
            painter.footer(footer)
        return _encoded(layout, painter.canvas, slots)
    placed: list[tuple[Piece, tuple[int, int]]] = []
    if layout.title:
        placed.append((_title_piece(layout, g, caches, locale, text), (0, 0)))
    margin = _margin(g)
    for (tile, image), (x, y) in zip(picked, origins, strict=True):
        cell = _tile_piece(layout, g, caches, locale, text, tile, image, colours)
        placed.append((cell, (x - margin, y - margin)))
    if footer is not None:
        top = _footer_top(g)
        placed.append((_footer_piece(layout, g, caches, locale, text, footer), (0, top)))
    canvas = assemble((g.width, g.height), text, placed)
    return _encoded(layout, canvas, slots)


MIN_TILE_COLOURS = 24
"""The fewest palette entries a tile's image may have of its own; a layout whose tiles would
get fewer (a small ``colors``, many tiles) draws and quantises its whole canvas instead, as a
JPEG layout does."""


def _text_palette(layout: Layout, caches: RenderCaches) -> TextPalette:
    """The background and the ramps of every colour text is drawn in, over what it is drawn
    on: the head of each of the layout's palettes."""
    background = rgb(layout.background)

    def make() -> TextPalette:
        inks = [
            (rgb(colour), background)
            for colour in (
                layout.title_color,
                layout.text_color,
                layout.price_color,
                layout.sale_color,
                layout.original_price_color,
            )
        ]
        if layout.button_text:
            inks.append((rgb(layout.button_text_color), rgb(layout.button_color)))
        return text_palette(background, inks)

    return caches.palettes.get_or_make(layout, make)


def _tile_colours(layout: Layout, text: TextPalette) -> int | None:
    """How many palette entries each tile's image gets of its own, or ``None`` when the
    layout is drawn on one canvas: every tile the same share of the layout's ``colors``,
    after the text palette."""
    if layout.format != "png":
        return None
    colours = (layout.colors - text.size) // layout.capacity
    return colours if colours >= MIN_TILE_COLOURS else None


def _margin(g: Grid) -> int:
    """Room around a tile's piece for glyphs that reach past the tile (at most half the gap,
    so that neighbours' pieces do not overlap)."""
    return min(g.gap // 2, 4 * g.scale)


def _footer_top(g: Grid) -> int:
    return g.footer_top - 10 * g.scale  # where the grid ends (see :func:`.layout.grid`)


def _exact(layout: Layout) -> list[tuple[int, int, int]]:
    """The colours a PNG keeps exactly: the background first, then the text's."""
    return [
        rgb(colour)
        for colour in (
            layout.background,
            layout.text_color,
            layout.title_color,
            layout.price_color,
            layout.sale_color,
        )
    ]


def _tile_piece(
    layout: Layout,
    g: Grid,
    caches: RenderCaches,
    locale: str,
    text: TextPalette,
    tile: Tile,
    image: Image.Image | None,
    colours: int,
) -> Piece:
    """``tile`` drawn (image, name, price, caption, button) with a margin around it and
    quantised on its own: kept in ``caches.tiles``, since a product looks the same in every
    grid of the layout that shows it."""
    margin = _margin(g)
    geometry = (g.scale, g.tile_width, g.tile_height, g.image_height, g.name_top, g.name_line,
                g.price_top, g.caption_top, g.button_top, g.button_height, g.gap)  # fmt: skip
    key = ("tile", layout, geometry, tile, locale, colours, None if image is None else id(image))
    found = caches.tiles.get(key)
    if found is not None and found.drawn_from(image):
        return found
    size = (g.tile_width + 2 * margin, g.tile_height + 2 * margin)
    painter = _Painter(layout, g, caches, locale, size)
    painter.tile(tile, image, margin, margin)
    photo = (margin, margin, margin + g.tile_width, margin + g.image_height)
    made = piece(painter.canvas, text, photo, colours, source=image)
    caches.tiles.put(key, made)
    return made


def _title_piece(
    layout: Layout, g: Grid, caches: RenderCaches, locale: str, text: TextPalette
) -> Piece:
    """The strip above the grid with the layout's title, kept in ``caches.tiles``."""
    key = ("title", layout, g.width, g.top)
    found = caches.tiles.get(key)
    if found is None:
        painter = _Painter(layout, g, caches, locale, (g.width, g.top))
        painter.title(layout.title or "")
        found = piece(painter.canvas, text)
        caches.tiles.put(key, found)
    return found


def _footer_piece(
    layout: Layout, g: Grid, caches: RenderCaches, locale: str, text: TextPalette, footer: str
) -> Piece:
    """The strip under the grid with ``footer``, kept in ``caches.tiles`` (a cart's total
    comes back in other carts)."""
    top = _footer_top(g)
    key = ("footer", layout, g.width, g.height - top, g.footer_top - top, footer)
    found = caches.tiles.get(key)
    if found is None:
        painter = _Painter(layout, g, caches, locale, (g.width, g.height - top), dy=top)
        painter.footer(footer)
        found = piece(painter.canvas, text)
        caches.tiles.put(key, found)
    return found


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
    tile, image = picked[index]
    if image is not None and image.size != (g.tile_width, g.image_height):
        image = ImageOps.fit(image, (g.tile_width, g.image_height))
    rendered = _draw_grid(single, [(tile, image)], g, caches, locale, None, caption)
    return replace(rendered, slots=(replace(rendered.slots[0], index=index),))


def _encoded(layout: Layout, canvas: Image.Image, slots: tuple[Slot, ...]) -> Rendered:
    data, content_type = encode(
        canvas,
        layout.format,
        quality=layout.quality,
        colors=layout.colors,
        max_bytes=layout.max_bytes,
        exact=_exact(layout),
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
