"""Setting text in a box: wrap at word boundaries into at most so many lines, and end what does
not fit with an ellipsis, measured with the font that will draw it (never by counting
characters, which is wrong for every proportional font)."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageDraw

from .caches import Lru
from .fonts import Font

ELLIPSIS = "…"


def ellipsize(text: str, font: Font, width: float) -> str:
    """``text`` if it fits in ``width`` pixels, else its longest prefix that fits with ``…``."""
    if font.getlength(text) <= width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits lies in [low, high)
    while low < high:
        middle = (low + high + 1) // 2
        if font.getlength(text[:middle].rstrip() + ELLIPSIS) <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + ELLIPSIS if low else ""


def wrap(text: str, font: Font, width: float, max_lines: int) -> tuple[str, ...]:
    """``text`` in at most ``max_lines`` lines of at most ``width`` pixels; a word longer than a
    line is cut, and the last line ends with ``…`` when text is left over."""
    words = text.split()
    lines: list[str] = []
    current = ""
    index = 0
    while index < len(words):
        word = words[index]
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            index += 1
            continue
        if not current:  # one word wider than the line: it takes the line alone, cut
            current = word
            index += 1
        lines.append(current)
        current = ""
        if len(lines) == max_lines:
            break
    if current:
        lines.append(current)
    if lines and index < len(words):  # out of lines: the last one ends with what fits, and …
        lines[-1] = ellipsize(" ".join([lines[-1], *words[index:]]), font, width)
    return tuple(ellipsize(line, font, width) for line in lines)


def wrap_cached(
    cache: Lru[tuple[object, ...], tuple[str, ...]],
    text: str,
    font: Font,
    width: float,
    max_lines: int,
) -> tuple[str, ...]:
    """:func:`wrap`, remembered: the same product names come back in render after render."""
    key = (text, font, width, max_lines)
    return cache.get_or_make(key, lambda: wrap(text, font, width, max_lines))


@dataclass(frozen=True, slots=True)
class Stamp:
    """A line of text set once: its coverage ``mask``, where the mask goes relative to the
    point the text is drawn at (``left``, ``top``; the point is on the ascender line) and the
    pen ``advance`` (what centring measures)."""

    mask: Image.Image
    left: int
    top: int
    advance: float

    def paint(self, canvas: Image.Image, x: float, y: float, colour: tuple[int, int, int]) -> None:
        """Ink ``canvas`` with ``colour`` through the mask, the text's origin at ``(x, y)``."""
        if self.mask.width and self.mask.height:
            canvas.paste(colour, (round(x) + self.left, round(y) + self.top), self.mask)


def stamp(text: str, font: Font) -> Stamp:
    left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor="la"))
    mask = Image.new("L", (max(0, right - left), max(0, bottom - top)), 0)
    if mask.width and mask.height:
        ImageDraw.Draw(mask).text((-left, -top), text, font=font, fill=255, anchor="la")
    return Stamp(mask, left, top, font.getlength(text))


def stamp_cached(cache: Lru[tuple[object, ...], Stamp], text: str, font: Font) -> Stamp:
    """:func:`stamp`, remembered: drawing a cached line is a paste, several times cheaper than
    setting it again, and names and prices repeat across renders."""
    return cache.get_or_make((text, font), lambda: stamp(text, font))
