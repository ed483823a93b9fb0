"""The Text app: a personalised headline, set as an image.

The line comes from a :mod:`headline template <.headline>` rendered with the recipient's
traits (each trait by its own name, and all of them as ``traits``), ``first_name`` (trait
``first_name``, ``firstName`` or the first word of ``name``), ``cart``, ``last_order``,
``recently_viewed``, ``last_viewed`` (the latest viewed product) and ``locale``. A trait that is
``null`` is left undefined, so ``default('there')`` applies to it. When the template fails for
this person, or renders nothing, the block's ``default_text`` is shown; when that is empty too,
the render is empty (the block's fallback).

The text is set as large as ``font_size`` allows within ``max_lines`` lines, shrinking down to
``min_font_size``, then cut with an ellipsis. Many recipients share a headline ("Still thinking
about it, there?"), so images are cached by text and style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Final, Literal

from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field

from .context import RenderContext
from .encode import encode
from .fonts import Font, FontFamily, Fonts
from .headline import (
    CURRENCY_VARIABLE,
    LOCALE_VARIABLE,
    PRICES_VARIABLE,
    HeadlineRenderError,
    HeadlineTemplate,
)
from .layout import MAX_BYTES, Colour, rgb
from .money import normalize_currency
from .profile import RenderProfile
from .rendered import Rendered, Slot
from .typesetting import ellipsize, wrap

_RESERVED: Final = frozenset(
    {"traits", "first_name", "cart", "last_order", "recently_viewed", "last_viewed", "locale"}
)


class TextStyle(BaseModel):
    """How a headline looks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(600, ge=100, le=1200)
    height: int = Field(80, ge=20, le=600)
    padding: int = Field(12, ge=0, le=100)
    background: Colour = "#ffffff"
    color: Colour = "#111111"
    font_family: FontFamily = "dejavu-sans"
    font_size: int = Field(28, ge=8, le=120)
    min_font_size: int = Field(16, ge=6, le=120)
    bold: bool = True
    align: Literal["left", "center", "right"] = "center"
    max_lines: int = Field(2, ge=1, le=6)
    scale: Literal[1, 2] = 1
    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(82, ge=30, le=95)
    max_bytes: int = Field(MAX_BYTES, ge=10_000, le=1_000_000)


class TextConfig(BaseModel):
    """A headline: its ``template``, the ``default_text`` shown when it cannot be rendered,
    the most characters it may make (``max_length``) and where a click leads (``url``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    template: str = Field(max_length=2000)
    default_text: str = Field("", max_length=300)
    max_length: int = Field(200, ge=1, le=1000)
    url: str | None = Field(None, max_length=2000)
    style: TextStyle = TextStyle()


def _first_name(traits: Mapping[str, Any]) -> str | None:
    for key in ("first_name", "firstName"):
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    name = traits.get("name")
    if isinstance(name, str) and name.split():
        return name.split()[0]
    return None


def variables(profile: RenderProfile, prices: object) -> dict[str, Any]:
    """What a headline template can read for ``profile`` (see the module)."""
    traits = profile.traits
    found: dict[str, Any] = {
        key: value
        for key, value in traits.items()
        if isinstance(key, str)
        and key.isidentifier()
        and not key.startswith("_")
        and key not in _RESERVED
        and value is not None
    }
    found["traits"] = traits
    first_name = _first_name(traits)
    if first_name is not None:
        found["first_name"] = first_name
    found["cart"] = profile.cart
    if profile.last_order is not None:
        found["last_order"] = profile.last_order
    found["recently_viewed"] = profile.recently_viewed
    if profile.recently_viewed:
        found["last_viewed"] = profile.recently_viewed[0]
    found[LOCALE_VARIABLE] = profile.locale
    order = profile.last_order or {}
    currency = profile.cart.get("currency") or order.get("currency")
    found[CURRENCY_VARIABLE] = normalize_currency(currency)
    found[PRICES_VARIABLE] = prices
    return found


def _fit(text: str, style: TextStyle, fonts: Fonts) -> tuple[Font, tuple[str, ...]]:
    """The largest font (down to ``min_font_size``) that sets all of ``text`` in the box,
    and its lines; at the smallest size, what fits, ending in an ellipsis."""
    s = style.scale
    inner_width = (style.width - 2 * style.padding) * s
    inner_height = (style.height - 2 * style.padding) * s
    words = " ".join(text.split())
    size = style.font_size
    while True:
        font = fonts.get(style.font_family, size * s, bold=style.bold)
        ascent, descent = font.getmetrics()
        room = max(1, min(style.max_lines, inner_height // (ascent + descent)))
        lines = wrap(words, font, inner_width, room)
        if " ".join(lines) == words or size <= style.min_font_size:
            return font, lines
        size = max(style.min_font_size, size - 2)


def _draw(text: str, style: TextStyle, fonts: Fonts) -> Rendered:
    s = style.scale
    width, height = style.width * s, style.height * s
    image = Image.new("RGB", (width, height), rgb(style.background))
    font, lines = _fit(text, style, fonts)
    ascent, descent = font.getmetrics()
    line_height = ascent + descent
    top = (height - line_height * len(lines)) / 2
    draw = ImageDraw.Draw(image)
    pad = style.padding * s
    for i, line in enumerate(lines):
        line = ellipsize(line, font, width - 2 * pad)
        length = font.getlength(line)
        x = {"left": pad, "center": (width - length) / 2, "right": width - pad - length}[
            style.align
        ]
        draw.text((x, top + i * line_height), line, font=font, fill=rgb(style.color))
    data, content_type = encode(
        image,
        style.format,
        quality=style.quality,
        max_bytes=style.max_bytes,
        exact=[rgb(style.background), rgb(style.color)],
    )
    return Rendered(data, content_type, width, height, (), s)


class TextApp:
    """A personalised headline image (see the module)."""

    __slots__ = ("config", "template")

    kind = "text"

    def __init__(self, config: TextConfig) -> None:
        self.config = config
        self.template = HeadlineTemplate(config.template)

    def validate(self) -> None:
        """Raise :class:`~.headline.TemplateError` when the template cannot be used."""
        self.template.validate()

    def text_for(self, ctx: RenderContext) -> str:
        """The headline for ``ctx.profile``: the template's, else the default text."""
        try:
            text = self.template.render(
                variables(ctx.profile, ctx.caches.prices), max_length=self.config.max_length
            )
        except HeadlineRenderError:
            text = ""
        text = " ".join(text.split())
        return text or " ".join(self.config.default_text.split())

    def render(self, ctx: RenderContext) -> Rendered:
        """The headline as an image; ``empty`` when there is no text at all."""
        text = self.text_for(ctx)
        if not text:
            return Rendered.nothing()
        style, fonts = self.config.style, ctx.caches.fonts
        image = ctx.caches.texts.get_or_make((text, style), lambda: _draw(text, style, fonts))
        box = (0, 0, image.display_width, image.display_height)
        return replace(image, slots=(Slot(0, self.config.url, None, text, box),))
