"""Every app by its kind, for blocks that store an app as a kind and a JSON config.

An app is a small class over an immutable, validated config, with ``render(ctx)``; product
apps also have ``render_slot(ctx, k)`` and the Text app ``validate()``. Build each app once
per block version and reuse it across renders (the Text app compiles its template once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from pydantic import BaseModel

from .context import RenderContext
from .countdown import CountdownApp, CountdownConfig
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
from .rendered import Rendered
from .text import TextApp, TextConfig


class App(Protocol):
    def render(self, ctx: RenderContext) -> Rendered: ...


APPS: Final[Mapping[str, tuple[type[Any], type[BaseModel]]]] = {
    "recently_viewed": (RecentlyViewedApp, RecentlyViewedConfig),
    "cart_items": (CartItemsApp, CartItemsConfig),
    "last_order": (LastOrderApp, LastOrderConfig),
    "recommended": (RecommendedApp, RecommendedConfig),
    "countdown": (CountdownApp, CountdownConfig),
    "text": (TextApp, TextConfig),
}


def build_app(kind: str, config: Mapping[str, Any]) -> App:
    """The app of ``kind`` over ``config`` (JSON-shaped). Raises ``KeyError`` for an unknown
    kind and pydantic's ``ValidationError`` for a bad config; a Text app's template is only
    checked by its ``validate()``."""
    app_class, config_class = APPS[kind]
    app: App = app_class(config_class.model_validate(config))
    return app
