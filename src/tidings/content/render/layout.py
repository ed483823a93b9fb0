"""How a block of products looks: a grid of tiles, each a product image with its name and price
under it, optionally a title above the grid and a line (a cart's total) below it.

A :class:`Layout` is validated once, when the block is saved, and is immutable and hashable so
that it can key caches. Sizes are in display pixels (CSS pixels in the email); ``scale=2``
renders every pixel size twice over, for retina screens, and the email's ``<img width>`` stays
``width``. The canvas height follows from the layout alone (never from the products shown), so
the ``<img height>`` of a block is known when the block is saved: see :func:`grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .fonts import FontFamily, Fonts

Colour = Annotated[str, StringConstraints(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}$")]
"""A ``#rgb`` or ``#rrggbb`` colour."""

MAX_BYTES = 100_000
"""What an email image may weigh: Gmail and Outlook users wait for anything much larger."""

MIN_TILE_WIDTH = 48


def rgb(colour: str) -> tuple[int, int, int]:
    """``#rgb``/``#rrggbb`` as a tuple (the layout validated the text)."""
    digits = colour[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return (int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16))


class Layout(BaseModel):
    """The look of a product grid; every field has a default suited to a 600 px email."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(600, ge=100, le=1200, description="display width in pixels")
    columns: int = Field(3, ge=1, le=6)
    rows: int = Field(2, ge=1, le=6)
    image_aspect: float = Field(1.0, ge=0.25, le=4.0, description="image height / width")
    padding: int = Field(16, ge=0, le=100, description="around the whole block")
    gap: int = Field(12, ge=0, le=100, description="between tiles")
    background: Colour = "#ffffff"
    title_color: Colour = "#111111"
    text_color: Colour = "#333333"
    price_color: Colour = "#111111"
    sale_color: Colour = "#c62828"
    original_price_color: Colour = "#8a8a8a"
    placeholder_color: Colour = "#eeeeee"
    button_color: Colour = "#111111"
    button_text_color: Colour = "#ffffff"
    font_family: FontFamily = "dejavu-sans"
    title_size: int = Field(22, ge=8, le=72)
    name_size: int = Field(14, ge=6, le=48)
    price_size: int = Field(14, ge=6, le=48)
    title: str | None = Field(None, max_length=200)
    align: Literal["left", "center"] = "center"
    show_name: bool = True
    name_lines: int = Field(2, ge=1, le=4, description="lines a name may take, then …")
    show_price: bool = True
    strike_original: bool = Field(True, description="show a sale's original price, struck")
    button_text: str | None = Field(None, max_length=40, description="a button under each tile")
    missing_image: Literal["placeholder", "skip"] = "placeholder"
    collapse_empty_rows: bool = Field(False, description="drop rows nothing is shown in")
    scale: Literal[1, 2] = 1
    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(82, ge=30, le=95, description="JPEG quality")
    colors: int = Field(256, ge=16, le=256, description="PNG palette size")
    max_bytes: int = Field(MAX_BYTES, ge=10_000, le=1_000_000)
    default_currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"

    @model_validator(mode="after")
    def _tiles_fit(self) -> Layout:
        inner = self.width - 2 * self.padding - (self.columns - 1) * self.gap
        if inner // self.columns < MIN_TILE_WIDTH:
            raise ValueError(
                f"{self.columns} columns leave tiles narrower than {MIN_TILE_WIDTH} px at "
                f"width {self.width}; use fewer columns, less padding or a wider block"
            )
        return self

    @property
    def capacity(self) -> int:
        """The most products one image shows."""
        return self.columns * self.rows


@dataclass(frozen=True, slots=True)
class Grid:
    """Where everything goes, in image pixels (display pixels × scale)."""

    scale: int
    width: int
    height: int
    left: int  # x of the first column
    top: int  # y of the first row
    tile_width: int
    tile_height: int
    gap: int
    image_height: int
    name_top: int  # within a tile
    name_line: int  # height of a line of the name
    price_top: int
    caption_top: int
    button_top: int
    button_height: int
    title_top: int
    footer_top: int
    rows: int

    def tile_origin(
        self, index: int, columns: int, shown: int, *, centre: bool = True
    ) -> tuple[int, int]:
        """The top-left corner of tile ``index``; a last row that is not full is centred
        (with ``centre``) or starts at the left."""
        row, column = divmod(index, columns)
        in_row = min(columns, shown - row * columns)
        offset = (columns - in_row) * (self.tile_width + self.gap) // 2 if centre else 0
        x = self.left + offset + column * (self.tile_width + self.gap)
        y = self.top + row * (self.tile_height + self.gap)
        return x, y


def line_height(font_size: int, fonts: Fonts, family: FontFamily, *, bold: bool = False) -> int:
    ascent, descent = fonts.get(family, font_size, bold=bold).getmetrics()
    return ascent + descent


def grid(
    layout: Layout,
    fonts: Fonts,
    *,
    rows: int | None = None,
    caption: bool = False,
    footer: bool = False,
) -> Grid:
    """The geometry of ``layout`` with ``rows`` rows (default: all of them), reserving a line
    under each price for a ``caption`` (a quantity) and one under the grid for a ``footer``.

    It is worked out in display pixels, then multiplied by the scale, so that a retina image
    is exactly twice the size of the plain one (fonts at twice the size are not exactly twice
    as tall)."""
    family = layout.font_family
    pad, gap = layout.padding, layout.gap
    rows = layout.rows if rows is None else rows
    columns = layout.columns
    inner = layout.width - 2 * pad - (columns - 1) * gap
    tile_width = inner // columns
    left = pad + (inner - tile_width * columns) // 2
    image_height = round(tile_width * layout.image_aspect)

    top = pad
    if layout.title:
        top += line_height(layout.title_size, fonts, family, bold=True) + 12

    y = image_height + 8
    name_top = y
    name_line = line_height(layout.name_size, fonts, family)
    if layout.show_name:
        y += layout.name_lines * name_line + 2
    price_top = y
    if layout.show_price:
        y += line_height(layout.price_size, fonts, family, bold=True) + 2
    caption_top = y
    if caption:
        y += name_line + 2
    button_top = y + 4
    button_height = 0
    if layout.button_text:
        button_height = line_height(layout.name_size, fonts, family, bold=True) + 14
        y = button_top + button_height
    tile_height = y

    grid_bottom = top + rows * tile_height + (rows - 1) * gap
    footer_top = grid_bottom + 10
    height = grid_bottom + pad
    if footer:
        height = footer_top + line_height(layout.price_size, fonts, family, bold=True) + pad
    s = layout.scale
    return Grid(
        scale=s,
        width=layout.width * s,
        height=max(height, 1) * s,
        left=left * s,
        top=top * s,
        tile_width=tile_width * s,
        tile_height=tile_height * s,
        gap=gap * s,
        image_height=image_height * s,
        name_top=name_top * s,
        name_line=name_line * s,
        price_top=price_top * s,
        caption_top=caption_top * s,
        button_top=button_top * s,
        button_height=button_height * s,
        title_top=pad * s,
        footer_top=footer_top * s,
        rows=rows,
    )
