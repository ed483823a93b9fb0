"""A profile's derived state: traits, counts, cart, recently viewed products and orders, folded
from its events so that the result does not depend on the order they arrive in.

Every event has a *stamp*, ``(timestamp_ms, messageId)``: its (skew-corrected) time, ties broken
by its id, a total order on a set of events with distinct ids. Each part of the state is a
function of the *set* of events folded in, built only from operations that commute:

- **counts**: ``first_seen_ms``/``last_seen_ms`` are the min/max timestamp, ``event_count`` and
  ``counts`` (per track event name, or message type) are sums; at most :data:`MAX_EVENT_NAMES`
  names are counted, new names beyond are ignored.
- **traits**: the ``traits`` (and ``context.traits``) of ``identify`` calls; each key holds the
  value of the latest write by stamp (last-writer-wins; ``null`` is a value like any other).
- **recently viewed**: per product id, the latest ``Product Viewed`` by stamp with its product,
  and only the :data:`MAX_VIEWED` most recent products (a top-k by stamp is order-independent:
  a product pushed out can only come back with a later view).
- **cart**: a *base*, the latest snapshot by stamp (``Cart Viewed`` or ``Checkout Started``
  carrying ``products[]``: the whole cart at that time; ``Order Completed``: an empty cart),
  plus the ``Product Added``/``Product Removed`` *deltas* stamped after it (the latest
  :data:`MAX_CART_DELTAS`; earlier ones can no longer matter). The cart is read by replaying
  the deltas in stamp order on the base, a quantity never going below zero.
- **orders**: ``Order Completed`` adds one to ``order_count`` and its total to the revenue,
  ``Order Refunded`` takes its total off; amounts are summed as integer cents, so the order of
  additions cannot change them. ``last_order`` is the latest order by stamp; the purchased
  product ids keep the stamp of their latest purchase (the :data:`MAX_PURCHASES` most recent).

Hence folding a set of events in any order gives an equal state, and
``fold(A).merge(fold(B)) == fold(A | B)`` for disjoint ``A`` and ``B`` (both up to the caps),
which is what merging two profiles needs. An event folded twice counts twice: the events log
deduplicates by messageId before anything reaches here.

The state is stored as compact JSON (:meth:`ProfileState.to_json`, keys sorted so that equal
states serialise equally); :meth:`ProfileState.columns` gives the scalar summary kept in indexed
columns beside it.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

import orjson

from .ecommerce import (
    CART_VIEWED,
    CHECKOUT_STARTED,
    ORDER_COMPLETED,
    ORDER_REFUNDED,
    PRODUCT_ADDED,
    PRODUCT_REMOVED,
    PRODUCT_VIEWED,
    WISHLIST_PRODUCT_ADDED_TO_CART,
    Normalized,
    Product,
)

MAX_EVENT_NAMES: Final = 500
MAX_TRAITS: Final = 1000
MAX_TRAIT_KEY_LENGTH: Final = 200
MAX_VIEWED: Final = 50
MAX_PURCHASES: Final = 500
MAX_CART_DELTAS: Final = 500

FORMAT_VERSION: Final = 1

_CART_ADDS: Final = frozenset({PRODUCT_ADDED, WISHLIST_PRODUCT_ADDED_TO_CART})
_CART_SNAPSHOTS: Final = frozenset({CART_VIEWED, CHECKOUT_STARTED})

Stamp = tuple[int, str]
"""``(timestamp_ms, messageId)``: when an event happened, ties broken by its id."""

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class TraitChange:
    """An identify call set trait ``key`` to ``value`` and that write is now the latest."""

    key: str
    value: Any
    timestamp_ms: int
    message_id: str


class _View(NamedTuple):
    timestamp_ms: int
    message_id: str
    product: dict[str, Any]


class _Delta(NamedTuple):
    timestamp_ms: int
    message_id: str
    product_id: str
    quantity: int  # positive: added; negative: removed
    product: dict[str, Any]


class _Item(NamedTuple):
    quantity: int
    product: dict[str, Any]


class _Snapshot(NamedTuple):
    timestamp_ms: int
    message_id: str
    items: dict[str, _Item]  # by product id; never mutated once built


def _delta_stamp(delta: _Delta) -> Stamp:
    return (delta.timestamp_ms, delta.message_id)


def _cents(amount: float) -> int:
    return round(amount * 100)


def _value_key(value: Any) -> bytes:
    """Orders two values written by events with equal stamps (the same message twice)."""
    return orjson.dumps(value, default=repr, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _later(stamp: Stamp, value: Any, current_stamp: Stamp, current: Any) -> bool:
    if stamp != current_stamp:
        return stamp > current_stamp
    return _value_key(value) > _value_key(current)


def _top(entries: dict[str, _T], limit: int, stamp_of: Callable[[_T], Stamp]) -> None:
    """Keep the ``limit`` entries with the latest stamps (drops the earliest, in place)."""
    while len(entries) > limit:
        oldest = min(entries, key=lambda k: (stamp_of(entries[k]), k))
        del entries[oldest]


def _view_stamp(view: _View) -> Stamp:
    return (view.timestamp_ms, view.message_id)


def _same(stamp: Stamp) -> Stamp:
    return stamp


class ProfileState:
    """The derived state of one profile; see the module for what each part means.

    Mutated only by :meth:`apply`; :meth:`merge` returns a new state. Two states are equal when
    they hold the same data (the same events, up to the caps).
    """

    __slots__ = (
        "_cart_base",
        "_cart_deltas",
        "_last_order_stamp",
        "_purchases",
        "_trait_stamps",
        "_views",
        "counts",
        "event_count",
        "first_seen_ms",
        "last_order",
        "last_seen_ms",
        "order_count",
        "revenue_cents",
        "traits",
    )

    def __init__(self) -> None:
        self.first_seen_ms: int | None = None
        self.last_seen_ms: int | None = None
        self.event_count = 0
        self.counts: dict[str, int] = {}
        self.traits: dict[str, Any] = {}
        self.order_count = 0
        self.revenue_cents = 0
        self.last_order: dict[str, Any] | None = None
        self._trait_stamps: dict[str, Stamp] = {}
        self._views: dict[str, _View] = {}
        self._purchases: dict[str, Stamp] = {}
        self._cart_base: _Snapshot | None = None
        self._cart_deltas: list[_Delta] = []  # sorted by stamp, all after the base
        self._last_order_stamp: Stamp | None = None

    @classmethod
    def empty(cls) -> ProfileState:
        return cls()

    @property
    def revenue(self) -> float:
        """Order totals less refunds, in the shop's currency units."""
        return self.revenue_cents / 100

    # -- folding events ---------------------------------------------------------------------

    def apply(
        self, message: Mapping[str, Any], normalized: Normalized, timestamp_ms: int
    ) -> list[TraitChange]:
        """Fold one event in: ``message`` as stored, ``normalized`` its reading
        (:func:`~tidings.profiles.ecommerce.normalize`), ``timestamp_ms`` its time.

        Returns the trait writes of an identify call that are now the latest for their key
        (a write older than the current value of its key is not returned).
        """
        message_id = message.get("messageId")
        stamp: Stamp = (timestamp_ms, "" if message_id is None else str(message_id))
        if self.first_seen_ms is None or timestamp_ms < self.first_seen_ms:
            self.first_seen_ms = timestamp_ms
        if self.last_seen_ms is None or timestamp_ms > self.last_seen_ms:
            self.last_seen_ms = timestamp_ms
        self.event_count += 1
        type_ = message.get("type")
        name = normalized.event if type_ == "track" else type_
        if isinstance(name, str):
            self._count(name, 1)
        if type_ == "identify":
            return self._apply_identify(message, stamp)

        event = normalized.event
        product = normalized.product
        if event == PRODUCT_VIEWED:
            if product is not None:
                viewed = product.to_dict()
                del viewed["quantity"]  # a view is of a product, not of a number of units
                self._put_view(product.product_id, _View(*stamp, viewed))
        elif event in _CART_ADDS:
            if product is not None:
                self._add_delta(stamp, product, product.quantity)
        elif event == PRODUCT_REMOVED:
            if product is not None:
                self._add_delta(stamp, product, -product.quantity)
        elif event in _CART_SNAPSHOTS:
            if normalized.listed:
                self._put_base(_snapshot(stamp, normalized.products))
        elif event == ORDER_COMPLETED:
            self._apply_order(stamp, normalized)
        elif event == ORDER_REFUNDED:
            refunded = _order_cents(normalized)
            if refunded is not None:
                self.revenue_cents -= abs(refunded)
        return []

    def _count(self, name: str, n: int) -> None:
        if name in self.counts:
            self.counts[name] += n
        elif len(self.counts) < MAX_EVENT_NAMES:
            self.counts[name] = n

    def _apply_identify(self, message: Mapping[str, Any], stamp: Stamp) -> list[TraitChange]:
        written = identify_traits(message)
        return [
            TraitChange(key, value, *stamp)
            for key, value in written.items()
            if isinstance(key, str) and self._set_trait(key, value, stamp)
        ]

    def _set_trait(self, key: str, value: Any, stamp: Stamp) -> bool:
        current = self._trait_stamps.get(key)
        if current is None:
            if len(self.traits) >= MAX_TRAITS or len(key) > MAX_TRAIT_KEY_LENGTH:
                return False
        elif not _later(stamp, value, current, self.traits[key]):
            return False
        self.traits[key] = value
        self._trait_stamps[key] = stamp
        return True

    def _put_view(self, product_id: str, view: _View) -> None:
        current = self._views.get(product_id)
        if current is None:
            self._views[product_id] = view
            _top(self._views, MAX_VIEWED, _view_stamp)
        elif _view_stamp(view) > _view_stamp(current):
            self._views[product_id] = view

    def _put_purchase(self, product_id: str, stamp: Stamp) -> None:
        current = self._purchases.get(product_id)
        if current is None:
            self._purchases[product_id] = stamp
            _top(self._purchases, MAX_PURCHASES, _same)
        elif stamp > current:
            self._purchases[product_id] = stamp

    def _add_delta(self, stamp: Stamp, product: Product, quantity: int) -> None:
        self._insert_delta(_Delta(*stamp, product.product_id, quantity, product.to_dict()))

    def _insert_delta(self, delta: _Delta) -> None:
        base = self._cart_base
        if base is not None and _delta_stamp(delta) <= (base.timestamp_ms, base.message_id):
            return  # the cart was replaced after it: it no longer matters
        insort(self._cart_deltas, delta, key=_delta_stamp)
        if len(self._cart_deltas) > MAX_CART_DELTAS:
            del self._cart_deltas[0]

    def _put_base(self, snapshot: _Snapshot) -> None:
        stamp = (snapshot.timestamp_ms, snapshot.message_id)
        base = self._cart_base
        if base is not None and stamp <= (base.timestamp_ms, base.message_id):
            return
        self._cart_base = snapshot
        del self._cart_deltas[: bisect_right(self._cart_deltas, stamp, key=_delta_stamp)]

    def _apply_order(self, stamp: Stamp, normalized: Normalized) -> None:
        cents = _order_cents(normalized)
        self.order_count += 1
        self.revenue_cents += cents or 0
        if self._last_order_stamp is None or stamp > self._last_order_stamp:
            self._last_order_stamp = stamp
            self.last_order = {
                "order_id": normalized.order_id,
                "total": cents / 100 if cents is not None else None,
                "currency": normalized.currency
                or next((p.currency for p in normalized.products if p.currency), None),
                "products": [p.to_dict() for p in normalized.products],
                "timestamp_ms": stamp[0],
            }
        for product in normalized.products:
            self._put_purchase(product.product_id, stamp)
        self._put_base(_Snapshot(*stamp, {}))

    # -- merging ----------------------------------------------------------------------------

    def merge(self, other: ProfileState) -> ProfileState:
        """The state of both profiles' events together (their event sets being disjoint)."""
        merged = self.copy()
        merged._absorb(other)
        return merged

    def copy(self) -> ProfileState:
        """An independent copy (the product and trait values, never mutated, are shared)."""
        new = ProfileState()
        new.first_seen_ms = self.first_seen_ms
        new.last_seen_ms = self.last_seen_ms
        new.event_count = self.event_count
        new.counts = dict(self.counts)
        new.traits = dict(self.traits)
        new.order_count = self.order_count
        new.revenue_cents = self.revenue_cents
        new.last_order = self.last_order
        new._trait_stamps = dict(self._trait_stamps)
        new._views = dict(self._views)
        new._purchases = dict(self._purchases)
        new._cart_base = self._cart_base
        new._cart_deltas = list(self._cart_deltas)
        new._last_order_stamp = self._last_order_stamp
        return new

    def _absorb(self, other: ProfileState) -> None:
        for seen in (other.first_seen_ms, other.last_seen_ms):
            if seen is None:
                continue
            if self.first_seen_ms is None or seen < self.first_seen_ms:
                self.first_seen_ms = seen
            if self.last_seen_ms is None or seen > self.last_seen_ms:
                self.last_seen_ms = seen
        self.event_count += other.event_count
        for name in sorted(other.counts):
            self._count(name, other.counts[name])
        for key in sorted(other.traits):
            self._set_trait(key, other.traits[key], other._trait_stamps[key])
        for product_id, view in other._views.items():
            self._put_view(product_id, view)
        for product_id, stamp in other._purchases.items():
            self._put_purchase(product_id, stamp)
        if other._cart_base is not None:
            self._put_base(other._cart_base)
        for delta in other._cart_deltas:
            self._insert_delta(delta)
        self.order_count += other.order_count
        self.revenue_cents += other.revenue_cents
        if other._last_order_stamp is not None and (
            self._last_order_stamp is None or other._last_order_stamp > self._last_order_stamp
        ):
            self._last_order_stamp = other._last_order_stamp
            self.last_order = other.last_order

    # -- reading ----------------------------------------------------------------------------

    def purchased_at(self) -> dict[str, int]:
        """When each product was last bought (epoch ms), by product id."""
        return {product_id: stamp[0] for product_id, stamp in self._purchases.items()}

    def recently_viewed(
        self, limit: int = 20, *, exclude_purchased: bool = False
    ) -> list[dict[str, Any]]:
        """Viewed products, most recent first, one per product id (its latest view), each with
        ``viewed_at_ms``. ``exclude_purchased`` leaves out products bought after that view."""
        found: list[dict[str, Any]] = []
        if limit <= 0:
            return found
        views = sorted(self._views.values(), key=_view_stamp, reverse=True)
        for view in views:
            if exclude_purchased:
                bought = self._purchases.get(view.product["product_id"])
                if bought is not None and bought > _view_stamp(view):
                    continue
            found.append({**view.product, "viewed_at_ms": view.timestamp_ms})
            if len(found) >= limit:
                break
        return found

    def cart(self) -> dict[str, Any]:
        """The cart now: ``items`` (product, ``quantity``, ``added_at_ms``; most recently added
        first; a product's fields are those of its latest add, completed by earlier ones and the
        snapshot), ``quantity`` (units), ``value`` (price × quantity summed, to the cent),
        ``currency`` (of the most recent item giving one) and ``updated_at_ms``."""
        quantities: dict[str, int] = {}
        products: dict[str, dict[str, Any]] = {}
        added: dict[str, Stamp] = {}
        updated: int | None = None
        base = self._cart_base
        if base is not None:
            updated = base.timestamp_ms
            for product_id, item in base.items.items():
                quantities[product_id] = item.quantity
                products[product_id] = item.product
                added[product_id] = (base.timestamp_ms, base.message_id)
        for delta in self._cart_deltas:
            product_id = delta.product_id
            before = quantities.get(product_id, 0)
            quantities[product_id] = max(0, before + delta.quantity)
            if delta.quantity > 0:  # the latest add describes the product; earlier fill gaps
                products[product_id] = {**products.get(product_id, {}), **delta.product}
                added[product_id] = _delta_stamp(delta)
            updated = delta.timestamp_ms
        in_cart = sorted(
            (pid for pid, quantity in quantities.items() if quantity > 0),
            key=lambda pid: (added[pid], pid),
            reverse=True,
        )
        items: list[dict[str, Any]] = []
        units = 0
        value_cents = 0
        currency: str | None = None
        for product_id in in_cart:
            product, quantity = products[product_id], quantities[product_id]
            items.append({**product, "quantity": quantity, "added_at_ms": added[product_id][0]})
            units += quantity
            price = product.get("price")
            if isinstance(price, int | float):
                value_cents += _cents(price) * quantity
            if currency is None and isinstance(product.get("currency"), str):
                currency = product["currency"]
        return {
            "items": items,
            "quantity": units,
            "value": value_cents / 100,
            "currency": currency,
            "updated_at_ms": updated,
        }

    def columns(self) -> dict[str, Any]:
        """The scalar summary stored in indexed columns beside the JSON state."""
        cart = self.cart()
        return {
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "event_count": self.event_count,
            "order_count": self.order_count,
            "revenue": self.revenue,
            "last_order_ms": self._last_order_stamp[0] if self._last_order_stamp else None,
            "cart_quantity": cart["quantity"],
            "cart_value": cart["value"],
        }

    # -- storing ----------------------------------------------------------------------------

    def to_json(self) -> str:
        """Compact JSON with sorted keys: equal states give equal text."""
        base = self._cart_base
        data = {
            "v": FORMAT_VERSION,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "event_count": self.event_count,
            "counts": self.counts,
            "traits": self.traits,
            "trait_stamps": self._trait_stamps,
            "order_count": self.order_count,
            "revenue_cents": self.revenue_cents,
            "last_order": self.last_order,
            "last_order_stamp": self._last_order_stamp,
            "views": {k: list(v) for k, v in self._views.items()},
            "purchases": self._purchases,
            "cart_base": (
                None
                if base is None
                else [
                    base.timestamp_ms,
                    base.message_id,
                    {k: list(v) for k, v in base.items.items()},
                ]
            ),
            "cart_deltas": [list(d) for d in self._cart_deltas],
        }
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()

    @classmethod
    def from_json(cls, text: str | bytes) -> ProfileState:
        """The state :meth:`to_json` wrote."""
        data = orjson.loads(text)
        if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
            raise ValueError("not a profile state of a known version")
        state = cls()
        state.first_seen_ms = data["first_seen_ms"]
        state.last_seen_ms = data["last_seen_ms"]
        state.event_count = data["event_count"]
        state.counts = data["counts"]
        state.traits = data["traits"]
        state._trait_stamps = {k: _stamp(v) for k, v in data["trait_stamps"].items()}
        state.order_count = data["order_count"]
        state.revenue_cents = data["revenue_cents"]
        state.last_order = data["last_order"]
        last = data["last_order_stamp"]
        state._last_order_stamp = _stamp(last) if last is not None else None
        state._views = {k: _View(*v) for k, v in data["views"].items()}
        state._purchases = {k: _stamp(v) for k, v in data["purchases"].items()}
        base = data["cart_base"]
        if base is not None:
            ts, mid, items = base
            state._cart_base = _Snapshot(ts, mid, {k: _Item(*v) for k, v in items.items()})
        state._cart_deltas = [_Delta(*d) for d in data["cart_deltas"]]
        return state

    # -- comparing --------------------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        return (
            self.first_seen_ms,
            self.last_seen_ms,
            self.event_count,
            self.counts,
            self.traits,
            self._trait_stamps,
            self.order_count,
            self.revenue_cents,
            self.last_order,
            self._last_order_stamp,
            self._views,
            self._purchases,
            self._cart_base,
            self._cart_deltas,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProfileState):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"ProfileState(events={self.event_count}, traits={len(self.traits)}, "
            f"orders={self.order_count}, viewed={len(self._views)}, "
            f"cart_deltas={len(self._cart_deltas)})"
        )


def identify_traits(message: Mapping[str, Any]) -> dict[str, Any]:
    """The traits an identify call writes: ``context.traits``, then ``traits`` over them."""
    written: dict[str, Any] = {}
    context = message.get("context")
    if isinstance(context, Mapping):
        context_traits = context.get("traits")
        if isinstance(context_traits, Mapping):
            written.update(context_traits)
    traits = message.get("traits")
    if isinstance(traits, Mapping):
        written.update(traits)
    return written


def _stamp(value: Iterable[Any]) -> Stamp:
    ts, mid = value
    return (int(ts), str(mid))


def _snapshot(stamp: Stamp, products: Iterable[Product]) -> _Snapshot:
    """The cart as a list event shows it; the same product twice adds up."""
    items: dict[str, _Item] = {}
    for product in products:
        earlier = items.get(product.product_id)
        if earlier is None:
            items[product.product_id] = _Item(product.quantity, product.to_dict())
        else:
            items[product.product_id] = _Item(earlier.quantity + product.quantity, earlier.product)
    return _Snapshot(*stamp, {k: v for k, v in items.items() if v.quantity > 0})


def _order_cents(normalized: Normalized) -> int | None:
    """An order's amount in cents: its total, else the sum of its products' price × quantity
    (``None`` when neither is known)."""
    if normalized.total is not None:
        return _cents(normalized.total)
    priced = [p for p in normalized.products if p.price is not None]
    if not priced:
        return None
    return sum(_cents(p.price) * p.quantity for p in priced if p.price is not None)
