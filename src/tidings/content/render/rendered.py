"""What a render gives back: the encoded image and, in order, what it shows and where each
thing links to, so that a click on slot *k* leads to exactly what was shown in slot *k*."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
GIF: Final = "image/gif"

# The smallest transparent GIF (43 bytes): what an empty render carries, in case it is served.
TRANSPARENT_GIF: Final = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)


@dataclass(frozen=True, slots=True)
class Slot:
    """One clickable thing in an image: a product (or the whole image, for a countdown or a
    headline) and the URL a click on it leads to. ``box`` is ``(x, y, width, height)`` in
    display pixels."""

    index: int
    url: str | None
    product_id: str | None = None
    name: str | None = None
    box: tuple[int, int, int, int] = (0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Rendered:
    """An encoded image. ``width``/``height`` are its pixels; at ``scale`` 2 the email shows it
    at half that (:attr:`display_width`). ``empty`` means there was nothing to show: the
    caller serves the block's fallback instead (``data`` is then a 1×1 transparent GIF)."""

    data: bytes
    content_type: str
    width: int
    height: int
    slots: tuple[Slot, ...] = ()
    scale: int = 1
    empty: bool = False

    @classmethod
    def nothing(cls) -> Rendered:
        """The render of a block with nothing to show for this person."""
        return cls(TRANSPARENT_GIF, GIF, 1, 1, (), 1, empty=True)

    @property
    def display_width(self) -> int:
        return self.width // self.scale

    @property
    def display_height(self) -> int:
        return self.height // self.scale

    def slot(self, index: int) -> Slot | None:
        """Slot ``index``, or ``None`` when the image shows fewer things."""
        return self.slots[index] if 0 <= index < len(self.slots) else None
