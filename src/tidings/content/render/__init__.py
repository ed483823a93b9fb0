"""Rendering open-time content: personalised images drawn with Pillow, as a pure library.

A render reads a :class:`RenderProfile` (one person's recent activity and traits), a
:class:`Catalog` and an :class:`Images` source through a :class:`RenderContext`, and returns a
:class:`Rendered`: the encoded image and its :class:`Slot` values (what it shows, in order, and
where each links to). No HTTP, no database: the content service around it resolves the
recipient, picks the block's app, records the decision and serves the bytes.

The apps (:mod:`.products`, :mod:`.countdown`, :mod:`.text`) decide what to show;
:func:`compose` is the bare drawing and encoding of a product grid; :class:`Layout` is how a
grid looks; :class:`RenderCaches` holds what renders share in a process.
"""

from __future__ import annotations

from .apps import APPS, App, build_app
from .caches import RenderCaches
from .compose import Tile, compose, compose_slot
from .context import RenderContext
from .countdown import CountdownApp, CountdownConfig, CountdownStyle
from .fonts import Fonts
from .headline import HeadlineTemplate, TemplateError
from .layout import MAX_BYTES, Layout
from .money import Prices
from .ports import Catalog, Images
from .products import (
    CartItemsApp,
    CartItemsConfig,
    LastOrderApp,
    LastOrderConfig,
    RecentlyViewedApp,
    RecentlyViewedConfig,
    RecommendedApp,
    RecommendedConfig,
)
from .profile import RenderProfile
from .rendered import GIF, JPEG, PNG, Rendered, Slot
from .text import TextApp, TextConfig, TextStyle

__all__ = [
    "APPS",
    "GIF",
    "JPEG",
    "MAX_BYTES",
    "PNG",
    "App",
    "CartItemsApp",
    "CartItemsConfig",
    "Catalog",
    "CountdownApp",
    "CountdownConfig",
    "CountdownStyle",
    "Fonts",
    "HeadlineTemplate",
    "Images",
    "LastOrderApp",
    "LastOrderConfig",
    "Layout",
    "Prices",
    "RecentlyViewedApp",
    "RecentlyViewedConfig",
    "RecommendedApp",
    "RecommendedConfig",
    "RenderCaches",
    "RenderContext",
    "RenderProfile",
    "Rendered",
    "Slot",
    "TemplateError",
    "TextApp",
    "TextConfig",
    "TextStyle",
    "Tile",
    "build_app",
    "compose",
    "compose_slot",
]
