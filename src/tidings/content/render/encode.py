"""Encoding a composed image for email, within a byte budget.

PNG is written as an 8-bit palette image (adaptive, fast octree quantisation): product photos
in full colour make a 600 px grid weigh 250 KB or more, a palette brings it near 45 KB, and the
quantisation costs less than the deflate it saves. Deflate runs at level 3: levels above it
cost twice the time for a few percent. JPEG keeps full chroma resolution (4:4:4), so that red
sale prices and thin text stay sharp.

Every image must stay under the layout's ``max_bytes`` (100 KB by default). When one does not,
PNG retries with fewer colours, then JPEG; JPEG retries at lower qualities with half the
chroma resolution. The content type
returned says what was written.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Literal

from PIL import Image

from .rendered import JPEG, PNG

PNG_COMPRESS_LEVEL = 3
PALETTE_SAMPLE = 30_000
_FEWER_COLOURS = (128, 64)
_LOWER_QUALITIES = (70, 55, 40, 30)

Colour = tuple[int, int, int]
_NEAR = 16  # how far (per channel) a palette entry may be from a colour it stands for


def quantize(image: Image.Image, colors: int, exact: Sequence[Colour] = ()) -> Image.Image:
    """``image`` in an adaptive palette of ``colors``, the ``exact`` colours kept exactly.

    The palette is found on a reduced copy of the image (fast octree: a fraction of the cost,
    the same colours) and every pixel mapped to it. Quantisation averages each bucket of
    colours, so a white background would come out ``#fcfcfc`` and show as a grey box in a
    white email: the entries the ``exact`` colours map to are set to those colours (the
    pixels sharing an entry were that close to it already; the first of two colours sharing
    an entry wins).
    """
    # The palette is found on every factor-th pixel of every factor-th row, about
    # PALETTE_SAMPLE pixels: the octree's time grows with the pixels it reads, and a sample
    # of the image's own colours (not averages of neighbours) keeps text colours exact.
    factor = max(1, round(math.sqrt(image.width * image.height / PALETTE_SAMPLE)))
    small = (
        image.resize((image.width // factor, image.height // factor), Image.Resampling.NEAREST)
        if factor > 1
        else image
    )
    palette = small.quantize(colors, method=Image.Quantize.FASTOCTREE)
    indexed = image.quantize(palette=palette, dither=Image.Dither.NONE)
    if exact:
        channels = bytes(channel for colour in exact for channel in colour)
        probe = Image.frombytes("RGB", (len(exact), 1), channels)
        entries = probe.quantize(palette=palette, dither=Image.Dither.NONE).tobytes()
        flat = indexed.getpalette() or []
        snapped: set[int] = set()
        for index, colour in zip(entries, exact, strict=True):
            current = flat[3 * index : 3 * index + 3]
            # Only an entry that already stands for the colour: one the image does not use
            # maps to some other shade, which must keep its own colour.
            near = max(abs(a - b) for a, b in zip(current, colour, strict=True)) <= _NEAR
            if index not in snapped and near:
                flat[3 * index : 3 * index + 3] = colour
                snapped.add(index)
        indexed.putpalette(flat)
    return indexed


def encode_png(image: Image.Image, colors: int = 256, *, exact: Sequence[Colour] = ()) -> bytes:
    """``image`` as a palette PNG of at most ``colors`` colours (a ``P`` image keeps its palette
    when it has no more entries than that), the ``exact`` colours (background first) kept
    exactly."""
    if image.mode == "P" and len(image.getpalette() or ()) > 3 * colors:
        image = image.convert("RGB")
    if image.mode != "P":
        image = quantize(image, colors, exact)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", optimize=False, compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int, *, full_chroma: bool = True) -> bytes:
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    subsampling = 0 if full_chroma else 2  # 4:4:4, or 4:2:0 to save room
    image.save(buffer, "JPEG", quality=quality, subsampling=subsampling, optimize=False)
    return buffer.getvalue()


def encode(
    image: Image.Image,
    format: Literal["png", "jpeg"],
    *,
    quality: int = 82,
    colors: int = 256,
    max_bytes: int = 100_000,
    exact: Sequence[Colour] = (),
) -> tuple[bytes, str]:
    """``image`` encoded as ``format`` within ``max_bytes`` if at all possible: the bytes and
    their content type (which is JPEG when a PNG could not be made small enough). A PNG keeps
    the ``exact`` colours (background first, then text colours) exactly."""
    if format == "png":
        data = encode_png(image, colors, exact=exact)
        if len(data) <= max_bytes:
            return data, PNG
        # Fewer colours save a fifth or so: worth a try only when that would do.
        for fewer in _FEWER_COLOURS if len(data) < max_bytes * 1.3 else ():
            if fewer < colors:
                data = encode_png(image, fewer, exact=exact)
                if len(data) <= max_bytes:
                    return data, PNG
        quality = min(quality, 82)
    data = encode_jpeg(image, quality)
    for lower in _LOWER_QUALITIES:
        if len(data) <= max_bytes:
            break
        data = encode_jpeg(image, min(lower, quality), full_chroma=False)
    return data, JPEG
