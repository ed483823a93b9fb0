"""E-commerce events in the shape of Segment's e-commerce spec (v2), checked against what Movable
Ink needs of them, as pure logic.

Shops send the same facts in many spellings: ``Viewed Product`` (the v1 spec), ``product_viewed``
or ``productViewed``; ``productId``, ``sku`` or ``id``; a price as ``19.99``, ``"$1,299.00"``,
``"19,99 €"`` or ``price_cents: 1999``. :func:`normalize` reads a stored Segment message and
returns a :class:`Normalized`: the canonical v2 event name (:func:`canonical_event`), the product
of a single-product event (``Product Viewed``, ``Product Added``, …; read from the top-level
properties as in v2, or from the first item of ``properties.products``), the products of a list
event (``Cart Viewed``, ``Checkout Started``, ``Order Completed``, …), the order id, total,
revenue and currency.

**Flags, never drops.** An event that breaks a rule is kept and carries :class:`Flag` s, each
naming the rule and the exact field at fault (``properties.products[2].price``). The rules are
those of Segment's Movable Ink destination plus the generic ones:

- ``Product Viewed`` and ``Product Added`` need ``sku`` or ``product_id`` (any id alias counts)
  and ``url``;
- ``Order Completed`` needs ``total`` (``revenue`` or ``value`` count) and a non-empty
  ``products`` list whose every item has ``sku`` or ``product_id`` and ``price``;
- every product of a recognised event needs an id (an item without one is left out of
  :attr:`Normalized.products`); prices, totals and quantities that are present must parse;
- every message needs a ``timestamp`` and a ``userId`` or ``anonymousId`` (null or empty counts
  as absent); a track call needs an event name.

Events that are not e-commerce events are kept as they are: their name unchanged, no product,
only the generic flags. Everything here is a pure function over plain dicts, without pydantic
and without compiling anything per call: it runs on the pipeline's hot path.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, NamedTuple

# -- event names ------------------------------------------------------------------------------

PRODUCTS_SEARCHED: Final = "Products Searched"
PRODUCT_LIST_VIEWED: Final = "Product List Viewed"
PRODUCT_LIST_FILTERED: Final = "Product List Filtered"
PROMOTION_VIEWED: Final = "Promotion Viewed"
PROMOTION_CLICKED: Final = "Promotion Clicked"
PRODUCT_CLICKED: Final = "Product Clicked"
PRODUCT_VIEWED: Final = "Product Viewed"
PRODUCT_ADDED: Final = "Product Added"
PRODUCT_REMOVED: Final = "Product Removed"
CART_VIEWED: Final = "Cart Viewed"
CHECKOUT_STARTED: Final = "Checkout Started"
CHECKOUT_STEP_VIEWED: Final = "Checkout Step Viewed"
CHECKOUT_STEP_COMPLETED: Final = "Checkout Step Completed"
PAYMENT_INFO_ENTERED: Final = "Payment Info Entered"
ORDER_UPDATED: Final = "Order Updated"
ORDER_COMPLETED: Final = "Order Completed"
ORDER_REFUNDED: Final = "Order Refunded"
ORDER_CANCELLED: Final = "Order Cancelled"
COUPON_ENTERED: Final = "Coupon Entered"
COUPON_APPLIED: Final = "Coupon Applied"
COUPON_DENIED: Final = "Coupon Denied"
COUPON_REMOVED: Final = "Coupon Removed"
PRODUCT_ADDED_TO_WISHLIST: Final = "Product Added to Wishlist"
PRODUCT_REMOVED_FROM_WISHLIST: Final = "Product Removed from Wishlist"
WISHLIST_PRODUCT_ADDED_TO_CART: Final = "Wishlist Product Added to Cart"
PRODUCT_SHARED: Final = "Product Shared"
CART_SHARED: Final = "Cart Shared"
PRODUCT_REVIEWED: Final = "Product Reviewed"

SINGLE_PRODUCT_EVENTS: Final = frozenset(
    {
        PRODUCT_CLICKED,
        PRODUCT_VIEWED,
        PRODUCT_ADDED,
        PRODUCT_REMOVED,
        PRODUCT_ADDED_TO_WISHLIST,
        PRODUCT_REMOVED_FROM_WISHLIST,
        WISHLIST_PRODUCT_ADDED_TO_CART,
        PRODUCT_SHARED,
        PRODUCT_REVIEWED,
    }
)
"""Events about one product, read from the top-level properties."""

LIST_EVENTS: Final = frozenset(
    {
        PRODUCT_LIST_VIEWED,
        PRODUCT_LIST_FILTERED,
        CART_VIEWED,
        CHECKOUT_STARTED,
        ORDER_UPDATED,
        ORDER_COMPLETED,
        ORDER_REFUNDED,
        ORDER_CANCELLED,
        CART_SHARED,
    }
)
"""Events about a list of products, read from ``properties.products``."""

ECOMMERCE_EVENTS: Final = frozenset(
    {
        *SINGLE_PRODUCT_EVENTS,
        *LIST_EVENTS,
        PRODUCTS_SEARCHED,
        PROMOTION_VIEWED,
        PROMOTION_CLICKED,
        CHECKOUT_STEP_VIEWED,
        CHECKOUT_STEP_COMPLETED,
        PAYMENT_INFO_ENTERED,
        COUPON_ENTERED,
        COUPON_APPLIED,
        COUPON_DENIED,
        COUPON_REMOVED,
    }
)
"""Every event of Segment's e-commerce spec (v2)."""

# Movable Ink's rules: these events need a product id and a url.
_NEEDS_URL: Final = frozenset({PRODUCT_VIEWED, PRODUCT_ADDED})

# Other spellings, from Segment's v1 spec and common variants, as lower-case word keys.
_OTHER_NAMES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "searched products": PRODUCTS_SEARCHED,
        "viewed product category": PRODUCT_LIST_VIEWED,
        "viewed product list": PRODUCT_LIST_VIEWED,
        "filtered product list": PRODUCT_LIST_FILTERED,
        "filtered products": PRODUCT_LIST_FILTERED,
        "viewed promotion": PROMOTION_VIEWED,
        "clicked promotion": PROMOTION_CLICKED,
        "clicked product": PRODUCT_CLICKED,
        "viewed product": PRODUCT_VIEWED,
        "added product": PRODUCT_ADDED,
        "removed product": PRODUCT_REMOVED,
        "viewed cart": CART_VIEWED,
        "started checkout": CHECKOUT_STARTED,
        "viewed checkout step": CHECKOUT_STEP_VIEWED,
        "completed checkout step": CHECKOUT_STEP_COMPLETED,
        "entered payment info": PAYMENT_INFO_ENTERED,
        "updated order": ORDER_UPDATED,
        "completed order": ORDER_COMPLETED,
        "refunded order": ORDER_REFUNDED,
        "cancelled order": ORDER_CANCELLED,
        "canceled order": ORDER_CANCELLED,
        "order canceled": ORDER_CANCELLED,
        "entered coupon": COUPON_ENTERED,
        "applied coupon": COUPON_APPLIED,
        "denied coupon": COUPON_DENIED,
        "removed coupon": COUPON_REMOVED,
        "added product to wishlist": PRODUCT_ADDED_TO_WISHLIST,
        "removed product from wishlist": PRODUCT_REMOVED_FROM_WISHLIST,
        "added wishlist product to cart": WISHLIST_PRODUCT_ADDED_TO_CART,
        "shared product": PRODUCT_SHARED,
        "shared cart": CART_SHARED,
        "reviewed product": PRODUCT_REVIEWED,
    }
)

_BY_KEY: Final[Mapping[str, str]] = MappingProxyType(
    {**{name.lower(): name for name in ECOMMERCE_EVENTS}, **_OTHER_NAMES}
)
_EXACT: Final[Mapping[str, str]] = MappingProxyType(
    {
        **{name: name for name in ECOMMERCE_EVENTS},
        **{key.title(): name for key, name in _OTHER_NAMES.items()},
    }
)
_CAMEL_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SEPARATORS: Final = str.maketrans("_-.", "   ")


def canonical_event(name: str) -> str:
    """The v2 name of an e-commerce event spelled any common way, else ``name`` unchanged.

    Matches case-insensitively, across spaces, ``snake_case``, ``kebab-case`` and
    ``camelCase``, and knows the v1 names (``Viewed Product``, ``Completed Order``, …).
    """
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    words = _CAMEL_HUMP.sub(" ", name).translate(_WORD_SEPARATORS).lower().split()
    return _BY_KEY.get(" ".join(words), name)


# -- amounts and other fields ----------------------------------------------------------------

MAX_AMOUNT: Final = 1e12
"""Amounts beyond this (in either direction) are refused as implausible."""
MAX_QUANTITY: Final = 1_000_000
"""Quantities are capped here, so sums of them stay small integers."""

_DIGITS: Final = frozenset("0123456789")
# A currency mark (or sign), then digits with separators, then maybe a currency mark.
_FORMATTED: Final = re.compile(
    r"(?P<prefix>[^0-9]*?)\s*"
    r"(?P<body>[.,]?[0-9](?:[0-9.,'’ \u00a0\u202f\u2009]*[0-9])?)"
    r"\s*(?P<suffix>[^0-9]*)"
)
_GROUP_MARKS: Final = str.maketrans("", "", " \u00a0\u202f\u2009'’")
_MINUS_SIGNS: Final = "-\u2212"
_MAX_MARK_LENGTH: Final = 4


def parse_amount(value: Any) -> float | None:
    """An amount from a number or a text such as ``"19.99"``, ``"$1,299.00"``, ``"1.299,00 €"``
    or ``"CHF 1'299.50"``; ``None`` when it is not one (or is absent, infinite or implausibly
    large).

    In text, a currency code or symbol (up to four characters) may come before or after the
    number; the last of ``.`` and ``,`` is the decimal mark when both appear, the other groups
    thousands. A single ``,`` followed by exactly three digits groups thousands (``"1,299"``);
    otherwise a single ``,`` or ``.`` is the decimal mark.
    """
    cls = value.__class__
    if cls is float:
        # A comparison with NaN is false, so NaN is refused too.
        return value if -MAX_AMOUNT <= value <= MAX_AMOUNT else None
    if cls is str:
        try:
            number = float(value)
        except ValueError:
            return _parse_formatted(value.strip())
        return number if -MAX_AMOUNT <= number <= MAX_AMOUNT else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if -MAX_AMOUNT <= value <= MAX_AMOUNT else None
    if isinstance(value, float):  # a subclass
        return parse_amount(float(value))
    if isinstance(value, str):
        return parse_amount(str.__str__(value))
    return None


def _parse_formatted(text: str) -> float | None:
    """A number written for people: a currency mark around digits with separators."""
    match = _FORMATTED.fullmatch(text) if len(text) <= 64 else None
    if match is None:
        return None
    prefix, body, suffix = match.group("prefix", "body", "suffix")
    negative = False
    if prefix:
        prefix = prefix.strip()
        if prefix and prefix[0] in _MINUS_SIGNS:
            negative, prefix = True, prefix[1:].strip()
        elif prefix and prefix[-1] in _MINUS_SIGNS:
            negative, prefix = True, prefix[:-1].strip()
        if not _is_currency_mark(prefix):
            return None
    if suffix and not _is_currency_mark(suffix.strip()):
        return None
    number = _parse_digits(body.translate(_GROUP_MARKS))
    if number is None or number > MAX_AMOUNT:
        return None
    return -number if negative else number


def _is_currency_mark(text: str) -> bool:
    """Empty, or a short currency code or symbol: ``$``, ``USD``, ``R$``, ``kr.``, ``€``."""
    if len(text) > _MAX_MARK_LENGTH:
        return False
    return all(ch.isalpha() or ch in " ." or unicodedata.category(ch) == "Sc" for ch in text)


def _parse_digits(body: str) -> float | None:
    """Digits with ``.``/``,`` as decimal and grouping marks (see :func:`parse_amount`)."""
    dot, comma = body.rfind("."), body.rfind(",")
    if dot >= 0 and comma >= 0:
        decimal, group = (".", ",") if dot > comma else (",", ".")
        integer, _, fraction = body.rpartition(decimal)
        if not _grouped(integer, group):
            return None
        integer = integer.replace(group, "")
    elif dot >= 0 or comma >= 0:
        mark = "." if dot >= 0 else ","
        parts = body.split(mark)
        if len(parts) > 2:
            if not _grouped(body, mark):
                return None
            integer, fraction = body.replace(mark, ""), ""
        elif (
            mark == "," and len(parts[1]) == 3 and parts[0] not in ("", "0") and len(parts[0]) <= 3
        ):
            integer, fraction = parts[0] + parts[1], ""  # "1,299": groups thousands
        else:
            integer, fraction = parts
    else:
        integer, fraction = body, ""
    if not (integer or fraction) or not _DIGITS.issuperset(integer + fraction):
        return None
    return float(f"{integer or '0'}.{fraction or '0'}")


def _grouped(integer: str, mark: str) -> bool:
    """Digits grouped in threes by ``mark`` (or not grouped at all): ``1,299,000``."""
    groups = integer.split(mark)
    if len(groups) == 1:
        return True
    return 1 <= len(groups[0]) <= 3 and set(map(len, groups[1:])) == {3}


def _quantity(value: Any) -> int | None:
    """A count from a number or text (``2``, ``2.0``, ``"3"``); ``None`` when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > 32:
            return None
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return None
        return int(number) if math.isfinite(number) else None
    return None


def _text(value: Any) -> str | None:
    """A text field: strings as sent (``None`` when blank), numbers as text; else nothing."""
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _currency(value: Any) -> str | None:
    if isinstance(value, str):
        code = value.strip().upper()
        return code or None
    return None


def _present(value: Any) -> bool:
    """Whether a field was given at all: not absent, null or blank text."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _first(source: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, Any] | None:
    """The first of ``keys`` present in ``source``, with its value."""
    for key in keys:
        value = source.get(key)
        if value is not None and (not isinstance(value, str) or value.strip()):
            return key, value
    return None


def _text_of(source: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    """The first of ``keys`` whose value reads as text (see :func:`_text`)."""
    for key in keys:
        value = source.get(key)
        if value is not None:
            text = _text(value)
            if text is not None:
                return text
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Flag:
    """A rule an event breaks: the event is kept and flagged, never dropped.

    ``code`` is snake_case (``missing_url``), ``field`` the JSON path of the field at fault
    (``properties.products[2].price``), ``message`` a sentence naming the rule.
    """

    code: str
    field: str
    message: str


MISSING_PRODUCT_ID: Final = "missing_product_id"
MISSING_URL: Final = "missing_url"
MISSING_TOTAL: Final = "missing_total"
MISSING_PRODUCTS: Final = "missing_products"
MISSING_PRICE: Final = "missing_price"
MISSING_TIMESTAMP: Final = "missing_timestamp"
MISSING_IDENTITY: Final = "missing_identity"
MISSING_EVENT: Final = "missing_event"
INVALID_PRICE: Final = "invalid_price"
INVALID_QUANTITY: Final = "invalid_quantity"
INVALID_PRODUCT: Final = "invalid_product"


class Product(NamedTuple):
    """One product of an e-commerce event, whatever the spelling it was sent in.

    A named tuple rather than a frozen dataclass: the pipeline makes one for most events it
    reads, and builds, hashes and compares them several times faster this way."""

    product_id: str
    sku: str | None = None
    name: str | None = None
    price: float | None = None
    sale_price: float | None = None
    currency: str | None = None
    quantity: int = 1
    category: str | None = None
    brand: str | None = None
    variant: str | None = None
    url: str | None = None
    image_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The product as JSON-ready v2 properties; ``None`` values left out."""
        found: dict[str, Any] = {"product_id": self[0], "quantity": self.quantity}
        for key, index in _PRODUCT_FIELDS:
            value = self[index]
            if value is not None:
                found[key] = value
        return found


# The optional fields of a product, in the order :meth:`Product.to_dict` gives them.
_PRODUCT_FIELDS: Final = tuple(
    (key, Product._fields.index(key))
    for key in (
        "sku",
        "name",
        "price",
        "sale_price",
        "currency",
        "category",
        "brand",
        "variant",
        "url",
        "image_url",
    )
)


class Normalized(NamedTuple):
    """A message read as an e-commerce event (see the module).

    ``event``: the v2 name of a recognised e-commerce event, the name as sent for any other
    track call, ``None`` for other message types. ``product``: the product of a single-product
    event; ``products``: those of a list event (items without an id left out). ``total``: the
    order's ``total``, else ``revenue``, else ``value``. ``listed``: a list event whose
    ``properties.products`` is a list (empty included): it shows the whole list, such as a cart.
    """

    event: str | None
    product: Product | None = None
    products: tuple[Product, ...] = ()
    order_id: str | None = None
    total: float | None = None
    revenue: float | None = None
    currency: str | None = None
    flags: tuple[Flag, ...] = ()
    listed: bool = False


# -- reading messages -------------------------------------------------------------------------

_ID_KEYS: Final = ("product_id", "productId", "sku", "id")
_SKU_KEYS: Final = ("sku",)
_NAME_KEYS: Final = ("name", "title")
_PRICE_KEYS: Final = ("price", "unit_price", "unitPrice")
_CENTS_KEYS: Final = ("price_cents", "priceCents")
_SALE_PRICE_KEYS: Final = ("sale_price", "salePrice")
_URL_KEYS: Final = ("url", "product_url", "productUrl")
_IMAGE_KEYS: Final = ("image_url", "imageUrl", "image")
_IMAGE_LIST_KEYS: Final = ("image_urls", "imageUrls", "images")
_TOTAL_KEYS: Final = ("total", "revenue", "value")
_ORDER_ID_KEYS: Final = ("order_id", "orderId")
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def _amount(found: tuple[str, Any], path: str, flags: list[Flag]) -> float | None:
    """The amount of a field found by :func:`_first`; an ``invalid_price`` flag when it is not
    one."""
    key, raw = found
    amount = parse_amount(raw)
    if amount is None:
        flags.append(
            Flag(
                INVALID_PRICE,
                f"{path}.{key}",
                f'{path}.{key} must be an amount such as 19.99 or "$1,299.00", not {_shown(raw)}',
            )
        )
    return amount


def _read_product(
    source: Mapping[str, Any],
    path: str,
    event: str,
    currency: str | None,
    flags: list[Flag],
    *,
    order: bool = False,
) -> Product | None:
    """The product described by ``source`` (at JSON path ``path``), flagging what is wrong."""
    get = source.get
    product_id = _text_of(source, _ID_KEYS)
    if product_id is None:
        why = (
            "Movable Ink uses it to find the product"
            if order or event in _NEEDS_URL
            else "it names the product"
        )
        flags.append(
            Flag(
                MISSING_PRODUCT_ID,
                f"{path}.product_id",
                f"{event} needs {path}.sku or {path}.product_id ({why})",
            )
        )
    url = _text_of(source, _URL_KEYS)
    if url is None and event in _NEEDS_URL:
        flags.append(
            Flag(
                MISSING_URL,
                f"{path}.url",
                f"{event} needs {path}.url (Movable Ink links to the product with it)",
            )
        )

    price: float | None = None
    found = _first(source, _PRICE_KEYS)
    if found is not None:
        price = _amount(found, path, flags)
    else:
        found = _first(source, _CENTS_KEYS)
        if found is not None:
            cents = _amount(found, path, flags)
            price = cents / 100 if cents is not None else None
        elif order:
            flags.append(
                Flag(
                    MISSING_PRICE,
                    f"{path}.price",
                    f"{event} needs {path}.price for every product "
                    "(Movable Ink records what each cost)",
                )
            )
    if price is not None and price < 0:
        flags.append(Flag(INVALID_PRICE, f"{path}.price", f"{path}.price must not be negative"))
        price = None
    found = _first(source, _SALE_PRICE_KEYS)
    sale_price = _amount(found, path, flags) if found is not None else None

    quantity = 1
    raw_quantity = get("quantity")
    if raw_quantity.__class__ is int and 0 <= raw_quantity <= MAX_QUANTITY:
        quantity = raw_quantity
    elif _present(raw_quantity):
        parsed = _quantity(raw_quantity)
        if parsed is None or parsed < 0:
            flags.append(
                Flag(
                    INVALID_QUANTITY,
                    f"{path}.quantity",
                    f"{path}.quantity must be a whole number of at least 0, "
                    f"not {_shown(raw_quantity)}",
                )
            )
        if parsed is not None:
            quantity = min(max(parsed, 0), MAX_QUANTITY)

    if product_id is None:
        return None
    return Product(
        product_id,
        _text(get("sku")),
        _text_of(source, _NAME_KEYS),
        price,
        sale_price,
        _currency(get("currency")) or currency,
        quantity,
        _text(get("category")),
        _text(get("brand")),
        _text(get("variant")),
        url,
        _image(source),
    )


def _image(source: Mapping[str, Any]) -> str | None:
    found = _text_of(source, _IMAGE_KEYS)
    if found is not None:
        return found
    for key in _IMAGE_LIST_KEYS:
        images = source.get(key)
        if isinstance(images, list) and images:
            return _text(images[0]) if isinstance(images[0], str) else None
    return None


def _read_products(
    props: Mapping[str, Any], event: str, currency: str | None, flags: list[Flag]
) -> tuple[Product, ...]:
    items = props.get("products")
    order = event == ORDER_COMPLETED
    if not isinstance(items, list) or not items:
        if order:
            flags.append(
                Flag(
                    MISSING_PRODUCTS,
                    "properties.products",
                    f"{event} needs a non-empty properties.products list "
                    "(Movable Ink records what was bought)",
                )
            )
        return ()
    found: list[Product] = []
    for index, item in enumerate(items):
        path = f"properties.products[{index}]"
        if not isinstance(item, Mapping):
            flags.append(Flag(INVALID_PRODUCT, path, f"{path} must be an object"))
            continue
        product = _read_product(item, path, event, currency, flags, order=order)
        if product is not None:
            found.append(product)
    return tuple(found)


def _single_source(props: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """Where a single-product event's product is: the top-level properties (v2), or the first
    item of ``properties.products`` when only that item carries a product id."""
    if _text_of(props, _ID_KEYS) is None:
        items = props.get("products")
        if (
            isinstance(items, list)
            and items
            and isinstance(items[0], Mapping)
            and _text_of(items[0], _ID_KEYS) is not None
        ):
            return items[0], "properties.products[0]"
    return props, "properties"


def _context_email(message: Mapping[str, Any]) -> str | None:
    """The Email spec's recipient (``context.traits.email``): tidings' own email events name
    their person by it alone."""
    context = message.get("context")
    traits = context.get("traits") if isinstance(context, Mapping) else None
    return _text(traits.get("email")) if isinstance(traits, Mapping) else None


def _generic_flags(message: Mapping[str, Any], flags: list[Flag]) -> None:
    timestamp = message.get("timestamp")
    if timestamp is None or (isinstance(timestamp, str) and not timestamp.strip()):
        flags.append(Flag(MISSING_TIMESTAMP, "timestamp", "every event needs a timestamp"))
    user_id, anonymous_id = message.get("userId"), message.get("anonymousId")
    if (user_id.__class__ is str and user_id.strip()) or (
        anonymous_id.__class__ is str and anonymous_id.strip()
    ):
        return  # the common case, decided without reading the ids as text
    if _text(user_id) is None and _text(anonymous_id) is None and _context_email(message) is None:
        flags.append(
            Flag(MISSING_IDENTITY, "userId", "every event needs a userId or an anonymousId")
        )


def normalize(message: Mapping[str, Any]) -> Normalized:
    """Read a stored Segment message as an e-commerce event, with its flags (see the module).

    Never raises on a message of the wrong shape: what cannot be read is absent, and flagged
    where a rule needs it.
    """
    flags: list[Flag] = []
    if message.get("type") != "track":
        _generic_flags(message, flags)
        return Normalized(None, flags=tuple(flags))
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        flags.append(Flag(MISSING_EVENT, "event", "a track call needs an event name"))
        _generic_flags(message, flags)
        return Normalized(None, flags=tuple(flags))
    event = canonical_event(name)
    if event not in ECOMMERCE_EVENTS:
        _generic_flags(message, flags)
        return Normalized(name, flags=tuple(flags))

    raw_props = message.get("properties")
    props = raw_props if isinstance(raw_props, Mapping) else _EMPTY
    currency = _currency(props.get("currency"))
    order_id = _text_of(props, _ORDER_ID_KEYS)
    product: Product | None = None
    products: tuple[Product, ...] = ()
    total: float | None = None
    revenue: float | None = None
    listed = False
    if event in SINGLE_PRODUCT_EVENTS:
        source, path = _single_source(props)
        product = _read_product(source, path, event, currency, flags)
    elif event in LIST_EVENTS:
        listed = isinstance(props.get("products"), list)
        products = _read_products(props, event, currency, flags)
        given = False
        for key in _TOTAL_KEYS:
            found = _first(props, (key,))
            if found is None:
                continue
            given = True
            amount = _amount(found, "properties", flags)
            if key == "revenue":
                revenue = amount
            if total is None:
                total = amount
        if event == ORDER_COMPLETED and not given:
            flags.append(
                Flag(
                    MISSING_TOTAL,
                    "properties.total",
                    f"{event} needs properties.total (or revenue or value): "
                    "Movable Ink records the conversion's value",
                )
            )
    _generic_flags(message, flags)
    return Normalized(
        event,
        product=product,
        products=products,
        order_id=order_id,
        total=total,
        revenue=revenue,
        currency=currency,
        flags=tuple(flags),
        listed=listed,
    )
