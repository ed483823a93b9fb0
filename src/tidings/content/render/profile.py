"""The part of a profile that renders read, taken from its derived state.

A render needs what the person did lately, never their whole timeline: the products they viewed
(most recent first, one per product), their cart now, their last order, what they bought and
when, and the traits that say how to write to them (``locale``, ``timezone``, ``first_name``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from tidings.profiles.state import MAX_VIEWED, ProfileState

from .money import DEFAULT_LOCALE

EMPTY_CART: Final[Mapping[str, Any]] = MappingProxyType(
    {"items": (), "quantity": 0, "value": 0.0, "currency": None, "updated_at_ms": None}
)


@dataclass(frozen=True, slots=True)
class RenderProfile:
    """One person as renders see them.

    ``recently_viewed``: product dicts (``product_id``, ``name``, ``price``, ``sale_price``,
    ``currency``, ``url``, ``image_url``, ``category``, ``brand``, ``viewed_at_ms``), most
    recent first, one per product. ``cart``: ``items`` (product dicts with ``quantity``),
    ``quantity``, ``value``, ``currency``. ``last_order``: ``order_id``, ``total``,
    ``currency``, ``products`` (with ``quantity``), ``timestamp_ms``. ``purchased_at_ms``: the
    time of each product's latest purchase. ``locale`` is a CLDR name (``de_DE``);
    ``timezone`` an IANA name or ``None``.
    """

    traits: Mapping[str, Any] = field(default_factory=dict)
    recently_viewed: Sequence[Mapping[str, Any]] = ()
    cart: Mapping[str, Any] = field(default_factory=lambda: EMPTY_CART)
    last_order: Mapping[str, Any] | None = None
    purchased_at_ms: Mapping[str, int] = field(default_factory=dict)
    locale: str = DEFAULT_LOCALE
    timezone: str | None = None

    @property
    def purchased_ids(self) -> frozenset[str]:
        return frozenset(self.purchased_at_ms)

    @classmethod
    def from_traits(cls, traits: Mapping[str, Any], **parts: Any) -> RenderProfile:
        """A profile whose ``locale`` and ``timezone`` are read from ``traits``."""
        return cls(traits=traits, locale=locale_of(traits), timezone=timezone_of(traits), **parts)

    @classmethod
    def from_state(cls, state: ProfileState) -> RenderProfile:
        """The render view of a profile's derived state. Views followed by a purchase of the
        same product are left out of ``recently_viewed`` (the state knows the exact order)."""
        return cls.from_traits(
            state.traits,
            recently_viewed=state.recently_viewed(MAX_VIEWED, exclude_purchased=True),
            cart=state.cart(),
            last_order=state.last_order,
            purchased_at_ms=state.purchased_at(),
        )


def locale_of(traits: Mapping[str, Any]) -> str:
    """Trait ``locale`` (``de-DE`` or ``de_DE``) as ``de_DE``; ``en_US`` when absent."""
    value = traits.get("locale")
    if isinstance(value, str) and 2 <= len(value.strip()) <= 35:
        return value.strip().replace("-", "_")
    return DEFAULT_LOCALE


def timezone_of(traits: Mapping[str, Any]) -> str | None:
    """Trait ``timezone`` (an IANA name such as ``Europe/Berlin``), unchecked; ``None`` when
    absent. Renders that need it check it and fall back to their own default."""
    value = traits.get("timezone")
    if isinstance(value, str) and 0 < len(value.strip()) <= 64:
        return value.strip()
    return None
