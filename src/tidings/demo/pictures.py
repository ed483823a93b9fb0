"""Product pictures for the simulated shop, drawn with Pillow: no internet, no stock photos.

Each picture is a function of the product's id, name and category only, so every process and
every run draws the same one: a soft background in the category's colour, a rounded card, and
the product's noun ("Ankle Boot") set large with its colour word below.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
from collections import OrderedDict
from threading import Lock
from typing import Final

from PIL import Image, ImageDraw

from tidings.content.render.fonts import Fonts

SIZE: Final = 480
CATEGORY_HUES: Final = {
    "Shoes": 0.03,
    "Bags": 0.09,
    "Outerwear": 0.58,
    "Dresses": 0.92,
    "Knitwear": 0.12,
    "Denim": 0.62,
    "Activewear": 0.36,
    "Accessories": 0.78,
    "Beauty": 0.96,
    "Home": 0.16,
}

# The simulated shop's colour words, as the swatch drawn on the card.
SWATCHES: Final = {
    "black": (34, 34, 38),
    "ivory": (246, 240, 222),
    "navy": (32, 45, 92),
    "camel": (193, 154, 107),
    "olive": (110, 112, 52),
    "rust": (170, 72, 40),
    "sage": (156, 175, 136),
    "charcoal": (64, 66, 72),
    "cobalt": (0, 71, 171),
    "blush": (222, 170, 170),
    "cream": (245, 235, 210),
    "burgundy": (118, 28, 52),
    "forest": (34, 85, 52),
    "sand": (212, 190, 152),
    "white": (250, 250, 250),
    "grey": (150, 150, 156),
}


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return round(r * 255), round(g * 255), round(b * 255)


def _fit(draw: ImageDraw.ImageDraw, fonts: Fonts, text: str, width: int, start: int) -> int:
    size = start
    while size > 12:
        box = draw.textbbox((0, 0), text, font=fonts.get("dejavu-sans", size, bold=True))
        if box[2] - box[0] <= width:
            break
        size -= 2
    return size


def draw_product(product_id: str, name: str, category: str, fonts: Fonts) -> bytes:
    """A PNG of ``SIZE`` × ``SIZE`` pixels for this product."""
    seed = hashlib.blake2b(product_id.encode(), digest_size=4).digest()
    hue = CATEGORY_HUES.get(category, seed[0] / 255) + (seed[1] - 128) / 2000
    image = Image.new("RGB", (SIZE, SIZE), _rgb(hue, 0.10, 0.98))
    draw = ImageDraw.Draw(image)
    pad = 36
    draw.rounded_rectangle(
        (pad, pad, SIZE - pad, SIZE - pad), radius=36, fill=_rgb(hue, 0.45, 0.88)
    )
    words = name.split(" in ")
    noun = words[0].split(" ", 1)[-1] if " " in words[0] else words[0]
    colour = words[1] if len(words) > 1 else category
    swatch = SWATCHES.get(colour.strip().lower(), _rgb(hue + 0.04, 0.55, 0.70))
    cx, cy, r = SIZE // 2, SIZE // 2 - 40, 92 + seed[2] % 24
    draw.ellipse(
        (cx - r, cy - r, cx + r, cy + r), fill=swatch, outline=_rgb(hue, 0.3, 0.98), width=6
    )
    size = _fit(draw, fonts, noun, SIZE - 2 * pad - 40, 52)
    ink = _rgb(hue, 0.6, 0.25)
    draw.text(
        (cx, SIZE - 150),
        noun,
        font=fonts.get("dejavu-sans", size, bold=True),
        fill=ink,
        anchor="mm",
    )
    draw.text((cx, SIZE - 100), colour, font=fonts.get("dejavu-sans", 26), fill=ink, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


class Pictures:
    """Drawn pictures, kept (a bounded LRU): a demo catalog has a few hundred products."""

    def __init__(self, fonts: Fonts | None = None, max_items: int = 512) -> None:
        self._fonts = fonts or Fonts()
        self._max = max_items
        self._kept: OrderedDict[str, bytes] = OrderedDict()
        self._lock = Lock()

    def get(self, product_id: str, name: str, category: str) -> bytes:
        key = f"{product_id}\x00{name}\x00{category}"
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        png = draw_product(product_id, name, category, self._fonts)
        with self._lock:
            self._kept[key] = png
            while len(self._kept) > self._max:
                self._kept.popitem(last=False)
        return png
