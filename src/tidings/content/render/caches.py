"""What renders share across requests in one process: loaded fonts, formatted prices, fitted
lines of text, products' quantised tiles, countdown animations and headline images.

One :class:`RenderCaches` is made per process (or per test) and handed to every render through
its :class:`~tidings.content.render.context.RenderContext`; nothing is cached in module globals.
Every cache is bounded (least recently used entries go first) and safe to share between threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .fonts import Fonts
from .money import Prices
from .rendered import Rendered

if TYPE_CHECKING:
    from .pieces import Piece, TextPalette
    from .typesetting import Stamp

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded mapping that forgets its least recently used entries; counts hits and misses.

    It holds at most ``maxsize`` entries and, with ``weigh``, at most ``max_weight`` of their
    summed weights (e.g. encoded bytes).

    ``get_or_make`` may call ``make`` twice for one key when two threads miss at once; the
    values are equal, so the only cost is the duplicated work.
    """

    __slots__ = ("_data", "_lock", "hits", "max_weight", "maxsize", "misses", "weigh", "weight")

    def __init__(
        self,
        maxsize: int,
        *,
        weigh: Callable[[V], int] | None = None,
        max_weight: int = 0,
    ) -> None:
        if maxsize < 1:
            raise ValueError("an LRU cache needs room for one entry")
        self.maxsize = maxsize
        self.weigh = weigh
        self.max_weight = max_weight
        self.weight = 0
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: K, value: V) -> None:
        weight = self.weigh(value) if self.weigh is not None else 0
        if self.weigh is not None and weight > self.max_weight:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.weight -= old[1]
            self._data[key] = (value, weight)
            self.weight += weight
            while len(self._data) > self.maxsize or (
                self.weigh is not None and self.weight > self.max_weight
            ):
                _, (_, gone) = self._data.popitem(last=False)
                self.weight -= gone

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def __len__(self) -> int:
        return len(self._data)


GRID_BYTES = 32 * 1024 * 1024
TILE_BYTES = 64 * 1024 * 1024


def _grid_bytes(rendered: Rendered) -> int:
    return len(rendered.data) + 512  # the bytes, and about what the slots and key hold


def _piece_bytes(piece: Piece) -> int:
    return piece.weight


class RenderCaches:
    """The caches of one process's renders (see the module)."""

    __slots__ = (
        "countdown_faces",
        "countdowns",
        "fonts",
        "grids",
        "lines",
        "palettes",
        "prices",
        "stamps",
        "texts",
        "tiles",
    )

    def __init__(
        self,
        fonts: Fonts | None = None,
        *,
        prices: Prices | None = None,
        grid_bytes: int = GRID_BYTES,
        tile_bytes: int = TILE_BYTES,
    ) -> None:
        self.fonts = fonts if fonts is not None else Fonts()
        self.prices = prices if prices is not None else Prices()
        # (text, font, width, max lines) -> the lines it is set in
        self.lines: Lru[tuple[Any, ...], tuple[str, ...]] = Lru(20_000)
        # (text, font) -> the line set once, to be pasted (a few KB each)
        self.stamps: Lru[tuple[Any, ...], Stamp] = Lru(10_000)
        # (deadline second, style, now second, frames) -> the encoded animation
        self.countdowns: Lru[tuple[Any, ...], Rendered] = Lru(256)
        # (style, leading digits) -> a countdown's static image and digit sprites;
        # (style, "ended") -> its ended image
        self.countdown_faces: Lru[tuple[Any, ...], Any] = Lru(64)
        # (layout, tiles and their images, locale, footer) -> the encoded grid, for apps: many
        # people see the same recommendations, and a re-open shows what the first one showed.
        # Bounded by encoded bytes (a 600 px grid is 20-60 KB).
        self.grids: Lru[tuple[Any, ...], Rendered] = Lru(
            100_000, weigh=_grid_bytes, max_weight=grid_bytes
        )
        # ("tile", layout, geometry, tile, locale, colours, image) -> the product's tile drawn
        # and quantised (a palette of its own), which grids assemble; ("title", …) and
        # ("footer", …) -> the strips above and under a grid. Bounded by their pixels' bytes
        # (one byte each: a tile of a 600 px, 3-column grid is 189 x 252 px with its margin,
        # 48 KB; 190 KB at scale 2), so the default 64 MB holds about 1,300 tiles.
        self.tiles: Lru[tuple[Any, ...], Piece] = Lru(
            100_000, weigh=_piece_bytes, max_weight=tile_bytes
        )
        # layout -> the head of its grids' palettes: the background and the text's ramps
        self.palettes: Lru[Any, TextPalette] = Lru(1_000)
        # (text, style) -> the encoded headline image
        self.texts: Lru[tuple[Any, ...], Rendered] = Lru(2_000)
