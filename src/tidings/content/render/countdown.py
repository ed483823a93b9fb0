"""The countdown timer: an animated GIF counting down to a deadline, as the email is opened.

The deadline is a moment, or a wall-clock time (``2026-11-30T23:59``) read in the recipient's
time zone (trait ``timezone``, else the block's), so that "ends at midnight" means *their*
midnight. Each render is a GIF of ``frames`` frames, one per second, from the time of the open:

- the **first frame already shows the time left**: Outlook on Windows shows only the first
  frame of a GIF;
- the animation loops (it restarts a minute behind, as every email countdown does, since an
  image cannot know when it is looked at); when it would reach zero within its frames, it
  plays once and stops at zero;
- after the deadline the block shows an "ended" image instead.

Opens come in bursts (a send lands in thousands of inboxes within seconds), and every open in
the same second shows the same frames: the encoded GIF is cached by (deadline, style, second),
so a burst costs one render. A render itself is cheap: the unchanging parts (boxes, labels,
separators) are drawn once per style, and the digits are pasted from ten pre-drawn sprites
into copies of it. Everything is drawn in one fixed palette (ramps between the style's
colours, for antialiased text), so frames need no quantisation and share one colour table.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from . import gif
from .context import RenderContext
from .fonts import Font, FontFamily, Fonts
from .layout import Colour, rgb
from .profile import RenderProfile
from .rendered import GIF, Rendered, Slot
from .typesetting import ellipsize

Label = Annotated[str, StringConstraints(max_length=20)]
_RAMP = 64  # shades between two colours: antialiased edges need no more


def zone(name: str | None) -> tzinfo | None:
    """The IANA time zone ``name``, or ``None`` when it is not one."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class CountdownStyle(BaseModel):
    """How a countdown looks. ``box_color`` ``None`` draws the digits straight on the
    background. Digits shrink to fit when the style asks for more than ``width`` holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(600, ge=200, le=1200)
    height: int = Field(150, ge=60, le=600)
    background: Colour = "#111111"
    box_color: Colour | None = "#2b2b2b"
    digit_color: Colour = "#ffffff"
    label_color: Colour = "#bdbdbd"
    font_family: FontFamily = "dejavu-sans"
    digit_size: int = Field(56, ge=12, le=200)
    label_size: int = Field(13, ge=6, le=48)
    labels: tuple[Label, Label, Label, Label] = ("DAYS", "HOURS", "MINUTES", "SECONDS")
    show_days: bool = True
    separator: Annotated[str, StringConstraints(max_length=3)] = ":"
    ended_text: Annotated[str, StringConstraints(max_length=100)] = "This offer has ended"
    scale: Literal[1, 2] = 1


class CountdownConfig(BaseModel):
    """A countdown to ``deadline``: aware, a moment; naive, a wall-clock time in the
    recipient's time zone, else in ``timezone``. ``url`` is where a click leads."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deadline: datetime
    timezone: str = "UTC"
    url: str | None = Field(None, max_length=2000)
    frames: int = Field(60, ge=1, le=120)
    style: CountdownStyle = CountdownStyle()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if zone(value) is None:
            raise ValueError(f"{value!r} is not an IANA time zone (such as 'Europe/Berlin')")
        return value


@dataclass(frozen=True, slots=True)
class _Face:
    """The unchanging parts of a countdown and its digit sprites, in one palette."""

    static: Image.Image  # mode P
    sprites: tuple[Image.Image, ...]  # "0".."9", mode P, same palette
    positions: tuple[tuple[int, int], ...]  # top-left of each digit, in reading order
    lead_digits: int


# The palette: three ramps of shades, from the colour under text to the text's colour. Text is
# drawn as a coverage mask and each pixel takes the shade of its coverage, so every colour is
# exact (Pillow's nearest-colour mapping is approximate, and a white background came out grey).
_BOX_TO_DIGIT = 0
_BACKGROUND_TO_DIGIT = _RAMP
_BACKGROUND_TO_LABEL = 2 * _RAMP
_BOX = _BOX_TO_DIGIT
_BACKGROUND = _BACKGROUND_TO_DIGIT


def _palette(style: CountdownStyle) -> list[int]:
    """The style's palette, flat RGB (see the ramps above)."""
    background, digit, label = rgb(style.background), rgb(style.digit_color), rgb(style.label_color)
    box = rgb(style.box_color) if style.box_color else background
    flat: list[int] = []
    for start, end in ((box, digit), (background, digit), (background, label)):
        for i in range(_RAMP):
            t = i / (_RAMP - 1)
            flat += [round(a + (b - a) * t) for a, b in zip(start, end, strict=True)]
    return flat


class _Canvas:
    """A palette image drawn in palette indices: rectangles in one, text in a ramp."""

    __slots__ = ("image",)

    def __init__(self, size: tuple[int, int], palette: list[int], index: int) -> None:
        self.image = Image.new("P", size, index)
        self.image.putpalette(palette)

    def rectangle(self, box: tuple[int, int, int, int], index: int) -> None:
        ImageDraw.Draw(self.image).rectangle(box, fill=index)

    def text(
        self, xy: tuple[float, float], text: str, font: Font, ramp: int, anchor: str = "la"
    ) -> None:
        """``text`` at ``xy`` (as :meth:`ImageDraw.text` places it), each pixel the shade of
        ``ramp`` its coverage asks for."""
        left, top, right, bottom = (int(v) for v in font.getbbox(text, anchor=anchor))
        if right <= left or bottom <= top:
            return
        coverage = Image.new("L", (right - left, bottom - top), 0)
        x, y = xy
        ImageDraw.Draw(coverage).text(
            (x - round(x) - left, y - round(y) - top), text, font=font, fill=255, anchor=anchor
        )
        shades = coverage.point([ramp + round(v * (_RAMP - 1) / 255) for v in range(256)])
        indexed = Image.frombytes("P", coverage.size, shades.tobytes())
        inked = coverage.point([0] + [255] * 255)
        self.image.paste(indexed, (round(x) + left, round(y) + top), inked)


class _Fonts:
    """The digit and label fonts of a style, shrunk by ``ratio`` to fit."""

    __slots__ = ("digit", "label")

    def __init__(self, fonts: Fonts, style: CountdownStyle, ratio: float) -> None:
        s = style.scale
        digit_size = max(8, math.floor(style.digit_size * s * ratio))
        self.digit: Font = fonts.get(style.font_family, digit_size, bold=True)
        self.label: Font = fonts.get(
            style.font_family, max(6, math.floor(style.label_size * s * ratio))
        )


def _face(style: CountdownStyle, lead_digits: int, fonts: Fonts) -> _Face:
    s = style.scale
    width, height = style.width * s, style.height * s
    labels = style.labels if style.show_days else style.labels[1:]
    digits = [lead_digits] + [2] * (len(labels) - 1)

    ratio = 1.0
    for _ in range(8):  # shrink until it fits; each step is sized to fit, so one or two do
        f = _Fonts(fonts, style, ratio)
        advance = math.ceil(max(f.digit.getlength(str(d)) for d in range(10)))
        _, glyph_top, _, glyph_bottom = (int(v) for v in f.digit.getbbox("0123456789"))
        pad_x, pad_y = max(2, advance // 4), max(2, (glyph_bottom - glyph_top) // 4)
        label_ascent, label_descent = f.label.getmetrics()
        cells = [
            max(n * advance + 2 * pad_x, math.ceil(f.label.getlength(text)) + 4 * s)
            for n, text in zip(digits, labels, strict=True)
        ]
        separator = math.ceil(f.digit.getlength(style.separator)) + advance // 2
        box_height = glyph_bottom - glyph_top + 2 * pad_y
        block_height = box_height + 6 * s + label_ascent + label_descent
        block_width = sum(cells) + separator * (len(cells) - 1)
        fits = min((width - 8 * s) / block_width, (height - 8 * s) / block_height)
        if fits >= 1:
            break
        ratio *= fits * 0.98

    palette = _palette(style)
    static = _Canvas((width, height), palette, _BACKGROUND)
    x = (width - block_width) // 2
    top = (height - block_height) // 2
    positions: list[tuple[int, int]] = []
    for i, (cell, n, text) in enumerate(zip(cells, digits, labels, strict=True)):
        if style.box_color:
            static.rectangle((x, top, x + cell - 1, top + box_height - 1), _BOX)
        first = x + (cell - n * advance) // 2
        positions += [(first + j * advance, top + pad_y) for j in range(n)]
        label_top = top + box_height + 6 * s
        static.text((x + cell / 2, label_top), text, f.label, _BACKGROUND_TO_LABEL, "ma")
        x += cell
        if i < len(cells) - 1:
            centre = (x + separator / 2, top + box_height / 2)
            static.text(centre, style.separator, f.digit, _BACKGROUND_TO_DIGIT, "mm")
            x += separator
    under = _BOX if style.box_color else _BACKGROUND
    ramp = _BOX_TO_DIGIT if style.box_color else _BACKGROUND_TO_DIGIT
    sprites = []
    for d in range(10):
        sprite = _Canvas((advance, glyph_bottom - glyph_top), palette, under)
        sprite.text(((advance - f.digit.getlength(str(d))) / 2, -glyph_top), str(d), f.digit, ramp)
        sprites.append(sprite.image)
    return _Face(static.image, tuple(sprites), tuple(positions), lead_digits)


def _ended(style: CountdownStyle, fonts: Fonts) -> Rendered:
    s = style.scale
    width, height = style.width * s, style.height * s
    canvas = _Canvas((width, height), _palette(style), _BACKGROUND)
    font = fonts.get(style.font_family, max(8, style.digit_size * s // 2), bold=True)
    text = ellipsize(style.ended_text, font, width - 16 * s)
    canvas.text((width / 2, height / 2), text, font, _BACKGROUND_TO_DIGIT, "mm")
    buffer = io.BytesIO()
    canvas.image.save(buffer, "GIF", optimize=False)
    return Rendered(buffer.getvalue(), GIF, width, height, (), s)


def split(seconds: int, *, days: bool) -> tuple[int, int, int, int]:
    """``seconds`` as (days, hours, minutes, seconds); without ``days``, the hours hold them."""
    minutes, secs = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if not days:
        return 0, hours, minutes, secs
    whole_days, hours = divmod(hours, 24)
    return whole_days, hours, minutes, secs


class CountdownApp:
    """An animated countdown to the configured deadline (see the module)."""

    __slots__ = ("config",)

    kind = "countdown"

    def __init__(self, config: CountdownConfig) -> None:
        self.config = config

    def deadline_for(self, profile: RenderProfile) -> datetime:
        """The deadline as a moment for this recipient."""
        deadline = self.config.deadline
        if deadline.tzinfo is not None:
            return deadline
        where = zone(profile.timezone) or zone(self.config.timezone) or UTC
        return deadline.replace(tzinfo=where)

    def render(self, ctx: RenderContext) -> Rendered:
        """The countdown from ``ctx.now``, or the ended image after the deadline."""
        style, frames = self.config.style, self.config.frames
        deadline_s = math.floor(self.deadline_for(ctx.profile).timestamp())
        now_s = math.floor(ctx.now.timestamp())
        remaining = deadline_s - now_s
        caches = ctx.caches
        if remaining <= 0:
            image = caches.countdown_faces.get_or_make(
                (style, "ended"), lambda: _ended(style, caches.fonts)
            )
        else:
            key = (deadline_s, style, now_s, frames)
            image = caches.countdowns.get_or_make(key, lambda: self._animate(ctx, remaining))
        return self._linked(image)

    def _linked(self, image: Rendered) -> Rendered:
        box = (0, 0, image.display_width, image.display_height)
        slot = Slot(0, self.config.url, None, None, box)
        return replace(image, slots=(slot,))

    def _animate(self, ctx: RenderContext, remaining: int) -> Rendered:
        style, count = self.config.style, self.config.frames
        lead = split(remaining, days=style.show_days)[0 if style.show_days else 1]
        lead_digits = max(2, len(str(lead)))
        fonts = ctx.caches.fonts
        face: _Face = ctx.caches.countdown_faces.get_or_make(
            (style, lead_digits), lambda: _face(style, lead_digits, fonts)
        )
        sprite_width, sprite_height = face.sprites[0].size
        canvas = face.static.copy()
        shown = self._digits(face, remaining)
        for position, digit in zip(face.positions, shown, strict=True):
            canvas.paste(face.sprites[int(digit)], position)
        frames = [gif.Frame(gif.image_block(canvas, 0, 0), 100)]
        for second in range(1, count):
            digits = self._digits(face, remaining - second)
            changed = [i for i, (a, b) in enumerate(zip(shown, digits, strict=True)) if a != b]
            if not changed:  # stopped at zero: show the last frame longer
                frames[-1] = gif.Frame(frames[-1].block, frames[-1].delay + 100)
                continue
            for i in changed:
                canvas.paste(face.sprites[int(digits[i])], face.positions[i])
            left = min(face.positions[i][0] for i in changed)
            top = min(face.positions[i][1] for i in changed)
            right = max(face.positions[i][0] for i in changed) + sprite_width
            bottom = max(face.positions[i][1] for i in changed) + sprite_height
            region = canvas.crop((left, top, right, bottom))
            frames.append(gif.Frame(gif.image_block(region, left, top), 100))
            shown = digits
        palette = face.static.getpalette() or []
        # One that would reach zero within its frames plays once and stays at zero.
        data = gif.animation(canvas.size, palette, frames, loop=remaining >= count)
        width, height = canvas.size
        return Rendered(data, GIF, width, height, (), style.scale)

    def _digits(self, face: _Face, seconds: int) -> str:
        """The digits shown ``seconds`` before the deadline, in reading order."""
        show_days = self.config.style.show_days
        days, hours, minutes, secs = split(seconds, days=show_days)
        lead = min(days if show_days else hours, 10**face.lead_digits - 1)
        text = f"{lead:0{face.lead_digits}d}"
        if show_days:
            text += f"{hours:02d}"
        return text + f"{minutes:02d}{secs:02d}"
