"""Animated GIFs whose frames differ from the one before in small, known rectangles.

Pillow can write animations, but it compares every frame with the last to find what changed
and matches every frame's palette to the first, about 1.5 ms a frame in Python; a countdown
knows exactly which digits changed. So each frame here is the changed rectangle alone: Pillow
encodes it (LZW, in C) as a one-frame GIF, and :func:`animation` copies its image block into
one file with one colour table, a loop extension and a delay per frame.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

_TRAILER = 0x3B
_EXTENSION = 0x21
_IMAGE = 0x2C


@dataclass(frozen=True, slots=True)
class Frame:
    """An encoded image block (:func:`image_block`) shown for ``delay`` hundredths of a second."""

    block: bytes
    delay: int


def image_block(region: Image.Image, left: int, top: int) -> bytes:
    """The GIF image block (descriptor and LZW data) of ``region``, a ``P`` image whose
    indices refer to the animation's palette, to be drawn at ``(left, top)``."""
    buffer = io.BytesIO()
    region.save(buffer, "GIF", optimize=False)  # optimize would renumber the palette
    data = buffer.getvalue()
    flags = data[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while data[i] == _EXTENSION:  # skip extensions: label, then sub-blocks up to an empty one
        i += 2
        while data[i]:
            i += data[i] + 1
        i += 1
    if data[i] != _IMAGE or data[i + 9] & 0x80 or data[-1] != _TRAILER:
        raise ValueError("Pillow wrote a GIF this writer does not understand")
    return bytes([_IMAGE]) + struct.pack("<HH", left, top) + data[i + 5 : -1]


def animation(
    size: tuple[int, int], palette: Sequence[int], frames: Sequence[Frame], *, loop: bool
) -> bytes:
    """A GIF of ``frames`` over one colour table (``palette``: flat RGB, at most 256 colours),
    each frame drawn over the last; ``loop`` repeats it forever, else it plays once."""
    table = bytes(palette[:768]).ljust(768, b"\0")
    out = bytearray(b"GIF89a")
    out += struct.pack("<HHBBB", size[0], size[1], 0xF7, 0, 0)  # 256-colour global table
    out += table
    if loop:
        out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for frame in frames:
        # graphic control: disposal 1 (leave the frame in place), the delay, no transparency
        out += b"\x21\xf9\x04\x04" + struct.pack("<H", frame.delay) + b"\x00\x00"
        out += frame.block
    out.append(_TRAILER)
    return bytes(out)
