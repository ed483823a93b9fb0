"""Fonts for rendered images: DejaVu from Debian's ``fonts-dejavu-core`` when it is installed,
else the font Pillow bundles, so rendering never fails for want of a font file.

Opening a TrueType font costs about a millisecond, more than drawing a whole tile, so each
(family, weight, size) is opened once per :class:`Fonts` and kept.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

from PIL import ImageFont

DEJAVU_DIR: Final = Path("/usr/share/fonts/truetype/dejavu")

FontFamily = Literal["dejavu-sans", "dejavu-serif", "dejavu-sans-mono"]
"""The families of ``fonts-dejavu-core`` (each in a regular and a bold weight)."""

_FILES: Final[dict[str, tuple[str, str]]] = {
    "dejavu-sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),
    "dejavu-serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"),
    "dejavu-sans-mono": ("DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"),
}

Font = ImageFont.FreeTypeFont


class Fonts:
    """Loaded fonts by family, weight and pixel size, looked for in ``directories`` in order."""

    __slots__ = ("_directories", "_loaded", "_lock")

    def __init__(self, directories: Sequence[Path] = (DEJAVU_DIR,)) -> None:
        self._directories = tuple(directories)
        self._loaded: dict[tuple[str, bool, int], Font] = {}
        self._lock = threading.Lock()

    def path(self, family: FontFamily, *, bold: bool = False) -> Path | None:
        """The file of ``family`` in that weight, or ``None`` when it is not installed."""
        name = _FILES[family][1 if bold else 0]
        for directory in self._directories:
            candidate = directory / name
            if candidate.is_file():
                return candidate
        return None

    def available(self, family: FontFamily) -> bool:
        return self.path(family) is not None

    def get(self, family: FontFamily, size: int, *, bold: bool = False) -> Font:
        """The font at ``size`` pixels; Pillow's own font when the family is not installed."""
        key = (family, bold, size)
        font = self._loaded.get(key)
        if font is not None:
            return font
        with self._lock:
            font = self._loaded.get(key)
            if font is None:
                font = self._open(family, size, bold=bold)
                self._loaded[key] = font
            return font

    def _open(self, family: FontFamily, size: int, *, bold: bool) -> Font:
        path = self.path(family, bold=bold) or self.path(family)
        if path is not None:
            return ImageFont.truetype(str(path), size)
        fallback = ImageFont.load_default(size)
        if not isinstance(fallback, ImageFont.FreeTypeFont):  # pragma: no cover
            raise RuntimeError("Pillow was built without FreeType; tidings needs it to set text")
        return fallback
