"""A palette image assembled from parts quantised one by one, so that the parts can be kept.

Quantising a whole grid (finding a palette for it and mapping every pixel to it) was most of
the cost of a render, although most of a grid is the same from render to render: a product's
tile (its image, name, price and button) looks the same in every grid of a layout that shows
it. So each tile is drawn and quantised on its own, once, and kept
(:attr:`RenderCaches.tiles <.caches.RenderCaches.tiles>`); a grid is its pieces put side by
side: each :class:`Piece`'s indices shifted to its own run of the grid's palette (one look-up
table per piece, :meth:`Image.point`) and pasted onto an index canvas. What is left to do
per grid is that assembly (a fraction of a millisecond) and the deflate.

The grid's palette (at most 256 entries) is, in order:

- entry 0, the background, exactly;
- the :class:`TextPalette`: every text colour of the layout over what it is drawn on, in
  :data:`LEVELS` steps of coverage (the last one the colour itself, exactly), shared by every
  piece: text is mapped to it, never quantised, so it is the same in every tile and its
  colours are exact;
- each piece's own entries, for its product image (an octree palette of that image alone).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageStat

from .encode import Colour

LEVELS = 8
"""Steps of antialiasing coverage per text colour (the last one full coverage)."""
PIECE_OVERHEAD = 400  # bytes a kept piece costs besides its pixels (object, palette, key)

_IDENTITY = list(range(256))
_ZERO_ONLY = [255] + [0] * 255


@dataclass(frozen=True, slots=True, eq=False)
class TextPalette:
    """The background and the text colours' ramps: the head of every grid's palette."""

    colours: tuple[Colour, ...]  # the background first
    image: Image.Image  # a 1 x 1 ``P`` image with that palette, to map text to

    @property
    def size(self) -> int:
        return len(self.colours)


def text_palette(background: Colour, inks: Iterable[tuple[Colour, Colour]]) -> TextPalette:
    """The background, then each ``(ink, under)`` pair's blends from ``under`` to ``ink`` in
    :data:`LEVELS` steps (``under`` itself too, when it is not the background); a colour
    that two ramps share is listed once."""
    found: dict[Colour, None] = {background: None}
    for ink, under in inks:
        found.setdefault(under, None)
        for level in range(1, LEVELS + 1):
            t = level / LEVELS
            blend = tuple(round(u + (i - u) * t) for i, u in zip(ink, under, strict=True))
            found.setdefault((blend[0], blend[1], blend[2]), None)
    colours = tuple(found)
    image = Image.new("P", (1, 1), 0)
    image.putpalette(bytes(channel for colour in colours for channel in colour))
    return TextPalette(colours, image)


@dataclass(frozen=True, slots=True, eq=False)
class Piece:
    """A part of a grid, quantised: ``indices`` (mode ``L``) are entries of the
    :class:`TextPalette` it was drawn with (0 the background), then ``1…n`` past its end
    the entries of ``palette`` (3 bytes each), the piece's own. ``source`` is the product
    image drawn in it (a weak reference: the piece does not keep it alive), so that a kept
    piece is used for that very image only."""

    indices: Image.Image
    palette: bytes = b""
    source: weakref.ref[Image.Image] | None = None

    @property
    def colours(self) -> int:
        return len(self.palette) // 3

    def drawn_from(self, image: Image.Image | None) -> bool:
        if self.source is None:
            return image is None
        return image is not None and self.source() is image

    @property
    def weight(self) -> int:
        """About what it holds in memory, in bytes."""
        return self.indices.width * self.indices.height + len(self.palette) + PIECE_OVERHEAD


def piece(
    canvas: Image.Image,
    text: TextPalette,
    photo: tuple[int, int, int, int] | None = None,
    colours: int = 0,
    source: Image.Image | None = None,
) -> Piece:
    """``canvas`` (RGB, drawn on the background) as a :class:`Piece`: the ``photo`` box
    quantised to at most ``colours`` entries of its own, everything else (the background,
    text, a button) mapped to the text palette. ``canvas`` is drawn over (the photo box
    filled with the background).

    The photo's pixels that are exactly the background colour become the background (a
    product shot on white stays seamless on a white email); the others keep their own
    colours, so that a near-white backdrop does not turn white with it."""
    own = b""
    photo_indices = None
    if photo is not None and colours > 0:
        shot = canvas.crop(photo)
        canvas.paste(text.colours[0], photo)
        indexed = shot.quantize(colours, method=Image.Quantize.FASTOCTREE)
        flat = indexed.getpalette() or []
        count = len(flat) // 3
        own = bytes(flat[: 3 * count])
        lut = [0] * 256
        lut[:count] = range(text.size, text.size + count)
        photo_indices = indexed.point(lut, "L")
        if _may_hold(shot, text.colours[0]):
            background = Image.new("RGB", shot.size, text.colours[0])
            distance = ImageChops.difference(shot, background).split()
            off = ImageChops.lighter(ImageChops.lighter(distance[0], distance[1]), distance[2])
            is_background = off.point(_ZERO_ONLY)
            if is_background.getbbox() is not None:
                own = _without_background(shot, indexed, is_background, own)
                photo_indices.paste(0, None, is_background)
    indices = canvas.quantize(palette=text.image, dither=Image.Dither.NONE).point(_IDENTITY, "L")
    if photo is not None and photo_indices is not None:
        indices.paste(photo_indices, photo[:2])
    ref = weakref.ref(source) if source is not None else None
    return Piece(indices, own, ref)


def _may_hold(image: Image.Image, colour: Colour) -> bool:
    """Whether ``image`` may have pixels of ``colour``: each channel's range holds it (a
    quick test that spares most product shots on a coloured backdrop the exact one)."""
    for band, value in zip(image.getextrema(), colour, strict=True):
        if isinstance(band, tuple) and not band[0] <= value <= band[1]:
            return False
    return True


def _without_background(
    shot: Image.Image, indexed: Image.Image, is_background: Image.Image, own: bytes
) -> bytes:
    """``own`` (the octree's palette of ``shot``) with the entry that the background's pixels
    fell in set to the average of its other pixels: the octree averages close colours, so a
    backdrop a shade off white would otherwise be drawn a shade closer to white."""
    counts = indexed.histogram(mask=is_background)
    entry = max(range(len(counts)), key=counts.__getitem__)
    lut = [0] * 256
    lut[entry] = 255
    others = ImageChops.subtract(indexed.point(lut, "L"), is_background)
    if others.getbbox() is None:
        return own
    mean = ImageStat.Stat(shot, others).mean
    palette = bytearray(own)
    palette[3 * entry : 3 * entry + 3] = bytes(round(v) for v in mean)
    return bytes(palette)


def assemble(
    size: tuple[int, int],
    text: TextPalette,
    placed: Sequence[tuple[Piece, tuple[int, int]]],
) -> Image.Image:
    """The palette image of ``size`` showing each piece at its place (later ones over
    earlier ones), the background elsewhere: its palette is the text palette, then each
    piece's own entries in turn."""
    canvas = Image.new("L", size, 0)
    palette = bytearray(channel for colour in text.colours for channel in colour)
    head = text.size
    for part, at in placed:
        base = len(palette) // 3
        if not part.colours:
            canvas.paste(part.indices, at)
            continue
        lut = [*range(head), *range(base, base + part.colours)]
        lut.extend([0] * (256 - len(lut)))
        canvas.paste(part.indices.point(lut) if base > head else part.indices, at)
        palette += part.palette
    if len(palette) > 3 * 256:
        raise ValueError("the pieces have more than 256 colours between them")
    canvas.putpalette(bytes(palette))
    return canvas
