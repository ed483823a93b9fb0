"""E-commerce events read in any common spelling, and flagged where Movable Ink needs more."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.profiles.ecommerce import (
    ECOMMERCE_EVENTS,
    LIST_EVENTS,
    MAX_QUANTITY,
    SINGLE_PRODUCT_EVENTS,
    Flag,
    Normalized,
    Product,
    canonical_event,
    normalize,
    parse_amount,
)

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def track(event: str, properties: Any = None, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "track",
        "event": event,
        "messageId": "m1",
        "userId": "ada@example.com",
        "timestamp": "2026-01-01T00:00:00.000Z",
    }
    if properties is not None:
        message["properties"] = properties
    message.update(fields)
    return message


def codes(normalized: Normalized) -> list[tuple[str, str]]:
    return [(f.code, f.field) for f in normalized.flags]


GOOD_VIEW = {"product_id": "sku-1", "url": "https://shop.example/p/1", "price": 19.99}


# -- event names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Product Viewed", "Product Viewed"),
        ("Viewed Product", "Product Viewed"),
        ("product_viewed", "Product Viewed"),
        ("PRODUCT VIEWED", "Product Viewed"),
        ("productViewed", "Product Viewed"),
        ("ProductViewed", "Product Viewed"),
        ("product-viewed", "Product Viewed"),
        ("  Product   Viewed ", "Product Viewed"),
        ("Completed Order", "Order Completed"),
        ("completed_order", "Order Completed"),
        ("Added Product", "Product Added"),
        ("Removed Product", "Product Removed"),
        ("Viewed Cart", "Cart Viewed"),
        ("Started Checkout", "Checkout Started"),
        ("Viewed Product Category", "Product List Viewed"),
        ("Refunded Order", "Order Refunded"),
        ("Order Canceled", "Order Cancelled"),
        ("productAddedToWishlist", "Product Added to Wishlist"),
        ("Added Product to Wishlist", "Product Added to Wishlist"),
        ("wishlist_product_added_to_cart", "Wishlist Product Added to Cart"),
        ("Entered Payment Info", "Payment Info Entered"),
    ],
)
def test_canonical_event_names(name: str, expected: str) -> None:
    assert canonical_event(name) == expected


@pytest.mark.parametrize("name", ["Signed Up", "email_opened", "Product", "Viewed", "", "  "])
def test_unknown_event_names_are_returned_unchanged(name: str) -> None:
    assert canonical_event(name) == name


def test_every_v2_name_is_its_own_canonical_name() -> None:
    for name in ECOMMERCE_EVENTS:
        assert canonical_event(name) == name
        assert canonical_event(name.upper()) == name
        assert canonical_event(name.lower().replace(" ", "_")) == name
    assert SINGLE_PRODUCT_EVENTS.isdisjoint(LIST_EVENTS)


# -- amounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (19.99, 19.99),
        (20, 20.0),
        ("19.99", 19.99),
        (" 19.99 ", 19.99),
        ("$1,299.00", 1299.0),
        ("19,99 €", 19.99),
        ("1.299,00 €", 1299.0),
        ("1 299,50", 1299.5),
        ("1\u00a0299,50 €", 1299.5),
        ("CHF 1'299.50", 1299.5),
        ("USD 19.99", 19.99),
        ("19.99 USD", 19.99),
        ("R$ 10,50", 10.5),
        ("£5", 5.0),
        ("$.99", 0.99),
        ("1,299", 1299.0),
        ("1,299,000", 1299000.0),
        ("1.299.000", 1299000.0),
        ("0,999", 0.999),
        ("1,5", 1.5),
        ("-$5.00", -5.0),
        ("$-5.00", -5.0),
        ("1e3", 1000.0),
        (0, 0.0),
    ],
)
def test_parse_amount_reads_numbers_and_formatted_text(value: Any, expected: float) -> None:
    assert parse_amount(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        "",
        "   ",
        "free",
        "12abc34",
        "about 12",
        "1,2,3",
        "1.2.3",
        "1,29.9,9",
        "nan",
        "inf",
        "1e999",
        math.nan,
        math.inf,
        10**400,
        1e13,
        "9" * 80,
        [19.99],
        {"amount": 19.99},
    ],
)
def test_parse_amount_refuses_what_is_not_an_amount(value: Any) -> None:
    assert parse_amount(value) is None


@PROPS
@given(st.integers(min_value=0, max_value=10**11))
def test_formatted_amounts_read_back_to_the_cent(cents: int) -> None:
    amount = cents / 100
    us = f"${amount:,.2f}"
    european = f"{amount:,.2f} €".replace(",", " ").replace(".", ",")
    assert parse_amount(us) == pytest.approx(amount)
    assert parse_amount(european) == pytest.approx(amount)
    assert parse_amount(f"{amount:.2f}") == pytest.approx(amount)


# -- products ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("properties", "product_id", "sku"),
    [
        ({"product_id": "p-1", "sku": "SKU-1"}, "p-1", "SKU-1"),
        ({"productId": "p-1"}, "p-1", None),
        ({"sku": "SKU-1"}, "SKU-1", "SKU-1"),
        ({"id": "p-1"}, "p-1", None),
        ({"id": 42}, "42", None),
        ({"product_id": 42.0}, "42", None),
        ({"product_id": "", "sku": "SKU-1"}, "SKU-1", "SKU-1"),
        ({"product_id": None, "productId": "p-2"}, "p-2", None),
    ],
)
def test_product_id_aliases(properties: dict[str, Any], product_id: str, sku: str | None) -> None:
    product = normalize(track("Product Clicked", properties)).product
    assert product is not None
    assert (product.product_id, product.sku) == (product_id, sku)


def test_product_fields_and_their_aliases() -> None:
    properties = {
        "productId": "p-1",
        "title": "Blue shoe",
        "priceCents": 1999,
        "salePrice": "$14.50",
        "currency": " usd ",
        "quantity": "3",
        "category": "Shoes",
        "brand": "Acme",
        "variant": "blue",
        "productUrl": "https://shop.example/p/1",
        "image_urls": ["https://cdn.example/1.jpg", "https://cdn.example/2.jpg"],
    }
    product = normalize(track("Product Added", properties)).product
    assert product == Product(
        product_id="p-1",
        name="Blue shoe",
        price=19.99,
        sale_price=14.5,
        currency="USD",
        quantity=3,
        category="Shoes",
        brand="Acme",
        variant="blue",
        url="https://shop.example/p/1",
        image_url="https://cdn.example/1.jpg",
    )


@pytest.mark.parametrize(
    ("properties", "image_url"),
    [
        ({"image_url": "a"}, "a"),
        ({"imageUrl": "b"}, "b"),
        ({"image": "c"}, "c"),
        ({"imageUrls": ["d"]}, "d"),
        ({"image_urls": []}, None),
        ({"image_urls": [{"src": "x"}]}, None),
    ],
)
def test_image_aliases(properties: dict[str, Any], image_url: str | None) -> None:
    product = normalize(track("Product Viewed", {**GOOD_VIEW, **properties})).product
    assert product is not None
    assert product.image_url == image_url


@pytest.mark.parametrize(
    ("properties", "price"),
    [
        ({"price": "$1,299.00"}, 1299.0),
        ({"price": "19,99 €"}, 19.99),
        ({"price_cents": 1999}, 19.99),
        ({"price_cents": "250"}, 2.5),
        ({"price": 5, "price_cents": 1999}, 5.0),
        ({"unit_price": 3.5}, 3.5),
        ({}, None),
    ],
)
def test_prices_and_cents(properties: dict[str, Any], price: float | None) -> None:
    normalized = normalize(track("Product Viewed", {**GOOD_VIEW, "price": None, **properties}))
    assert normalized.product is not None
    assert normalized.product.price == price
    assert normalized.flags == ()


@pytest.mark.parametrize(
    ("quantity", "expected", "flagged"),
    [
        (None, 1, False),
        (2, 2, False),
        ("3", 3, False),
        (" 4 ", 4, False),
        (2.0, 2, False),
        ("2.7", 2, False),
        (0, 0, False),
        (10**12, MAX_QUANTITY, False),
        (-2, 0, True),
        ("many", 1, True),
        (True, 1, True),
        ([2], 1, True),
    ],
)
def test_quantity_parsing(quantity: Any, expected: int, flagged: bool) -> None:
    normalized = normalize(track("Product Added", {**GOOD_VIEW, "quantity": quantity}))
    assert normalized.product is not None
    assert normalized.product.quantity == expected
    expected_flags = [("invalid_quantity", "properties.quantity")] if flagged else []
    assert codes(normalized) == expected_flags


def test_to_dict_leaves_out_absent_values() -> None:
    assert Product("p-1").to_dict() == {"product_id": "p-1", "quantity": 1}
    full = Product("p-1", sku="s", price=2.5, currency="EUR", quantity=2, url="u").to_dict()
    assert full == {
        "product_id": "p-1",
        "sku": "s",
        "price": 2.5,
        "currency": "EUR",
        "quantity": 2,
        "url": "u",
    }


def test_a_single_product_event_reads_the_first_of_products_when_it_has_no_product_itself() -> None:
    properties = {
        "currency": "eur",
        "products": [{"sku": "s-1", "url": "https://x/1", "price": "2,50"}, {"sku": "s-2"}],
    }
    normalized = normalize(track("Product Viewed", properties))
    assert normalized.product == Product(
        "s-1", sku="s-1", price=2.5, currency="EUR", url="https://x/1"
    )
    assert normalized.products == ()
    assert normalized.flags == ()

    # The top-level product wins when both are given.
    both = normalize(track("Product Viewed", {**GOOD_VIEW, **properties}))
    assert both.product is not None
    assert both.product.product_id == "sku-1"


def test_list_events_read_every_product_with_an_id() -> None:
    properties = {
        "currency": "usd",
        "products": [
            {"product_id": "a", "price": 1, "quantity": 2},
            {"name": "no id"},
            "not an object",
            {"sku": "b", "price": "3.50", "currency": "eur"},
        ],
    }
    normalized = normalize(track("Cart Viewed", properties))
    assert normalized.event == "Cart Viewed"
    assert normalized.product is None
    assert normalized.listed  # it shows the whole cart
    assert normalize(track("Cart Viewed", {"products": []})).listed
    assert not normalize(track("Checkout Started", {"order_id": "o"})).listed
    assert not normalize(track("Product Viewed", {"sku": "a", "url": "u"})).listed
    assert [(p.product_id, p.price, p.quantity, p.currency) for p in normalized.products] == [
        ("a", 1.0, 2, "USD"),
        ("b", 3.5, 1, "EUR"),
    ]
    assert codes(normalized) == [
        ("missing_product_id", "properties.products[1].product_id"),
        ("invalid_product", "properties.products[2]"),
    ]


# -- orders -----------------------------------------------------------------------------------

ORDER = {
    "order_id": "o-1",
    "total": "$27.50",
    "revenue": 25,
    "currency": "usd",
    "products": [{"product_id": "a", "price": 10, "quantity": 2}, {"sku": "b", "price": 7.5}],
}


def test_order_completed_reads_order_fields() -> None:
    normalized = normalize(track("Completed Order", ORDER))
    assert normalized.event == "Order Completed"
    assert (normalized.order_id, normalized.total, normalized.revenue) == ("o-1", 27.5, 25.0)
    assert normalized.currency == "USD"
    assert [p.product_id for p in normalized.products] == ["a", "b"]
    assert normalized.flags == ()


@pytest.mark.parametrize(
    ("amounts", "total", "revenue"),
    [
        ({"total": 10, "revenue": 8, "value": 6}, 10.0, 8.0),
        ({"revenue": 8, "value": 6}, 8.0, 8.0),
        ({"value": "6.00"}, 6.0, None),
        ({"total": "oops", "revenue": 8}, 8.0, 8.0),
    ],
)
def test_order_total_falls_back_to_revenue_then_value(
    amounts: dict[str, Any], total: float, revenue: float | None
) -> None:
    properties = {"products": ORDER["products"], **amounts}
    normalized = normalize(track("Order Completed", properties))
    assert (normalized.total, normalized.revenue) == (total, revenue)


def test_order_completed_flags_missing_total_and_products() -> None:
    normalized = normalize(track("Order Completed", {"order_id": 7}))
    assert normalized.order_id == "7"
    assert codes(normalized) == [
        ("missing_products", "properties.products"),
        ("missing_total", "properties.total"),
    ]
    assert normalized.flags[1].message.startswith("Order Completed needs properties.total")

    empty = normalize(track("Order Completed", {"total": 1, "products": []}))
    assert codes(empty) == [("missing_products", "properties.products")]


def test_order_completed_flags_each_product_without_id_or_price() -> None:
    properties = {
        "total": 30,
        "products": [
            {"product_id": "a", "price": 10},
            {"product_id": "b"},
            {"price": 5},
            {"sku": "d", "price": "ten"},
        ],
    }
    normalized = normalize(track("Order Completed", properties))
    assert codes(normalized) == [
        ("missing_price", "properties.products[1].price"),
        ("missing_product_id", "properties.products[2].product_id"),
        ("invalid_price", "properties.products[3].price"),
    ]
    assert [p.product_id for p in normalized.products] == ["a", "b", "d"]
    assert normalized.flags[1].message == (
        "Order Completed needs properties.products[2].sku or properties.products[2].product_id"
        " (Movable Ink uses it to find the product)"
    )


def test_an_invalid_total_is_flagged_without_a_missing_total() -> None:
    normalized = normalize(track("Order Completed", {"total": "n/a", "products": [GOOD_VIEW]}))
    assert normalized.total is None
    assert codes(normalized) == [("invalid_price", "properties.total")]


# -- Movable Ink's product rules --------------------------------------------------------------


@pytest.mark.parametrize("event", ["Product Viewed", "Product Added", "Viewed Product"])
def test_product_events_need_an_id_and_a_url(event: str) -> None:
    normalized = normalize(track(event, {"name": "shoe", "price": 5}))
    assert normalized.product is None
    assert codes(normalized) == [
        ("missing_product_id", "properties.product_id"),
        ("missing_url", "properties.url"),
    ]
    name = canonical_event(event)
    assert normalized.flags[0] == Flag(
        "missing_product_id",
        "properties.product_id",
        f"{name} needs properties.sku or properties.product_id "
        "(Movable Ink uses it to find the product)",
    )
    assert normalized.flags[1].message == (
        f"{name} needs properties.url (Movable Ink links to the product with it)"
    )


def test_a_sku_alone_and_a_url_alias_satisfy_movable_ink() -> None:
    normalized = normalize(track("Product Added", {"sku": "s", "product_url": "https://x"}))
    assert normalized.flags == ()


def test_other_product_events_need_an_id_but_no_url() -> None:
    assert codes(normalize(track("Product Removed", {"product_id": "a"}))) == []
    assert codes(normalize(track("Product Removed", {"name": "a"}))) == [
        ("missing_product_id", "properties.product_id")
    ]


def test_an_invalid_price_is_flagged_at_its_field() -> None:
    normalized = normalize(track("Product Viewed", {**GOOD_VIEW, "price": "cheap"}))
    assert normalized.product is not None
    assert normalized.product.price is None
    assert codes(normalized) == [("invalid_price", "properties.price")]
    assert "'cheap'" in normalized.flags[0].message

    negative = normalize(track("Product Viewed", {**GOOD_VIEW, "price": -3}))
    assert codes(negative) == [("invalid_price", "properties.price")]


# -- generic rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, []),
        ({"userId": None, "anonymousId": "anon-1"}, []),
        ({"userId": 42}, []),
        ({"userId": None}, [("missing_identity", "userId")]),
        ({"userId": "", "anonymousId": "  "}, [("missing_identity", "userId")]),
        ({"timestamp": None}, [("missing_timestamp", "timestamp")]),
        ({"timestamp": ""}, [("missing_timestamp", "timestamp")]),
    ],
)
def test_every_event_needs_a_timestamp_and_an_identity(
    fields: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    message = track("Signed Up", {"plan": "pro"}, **fields)
    assert codes(normalize(message)) == expected


def test_other_message_types_get_the_generic_rules_only() -> None:
    identify = {"type": "identify", "traits": {"email": "a@b.c"}, "messageId": "m"}
    normalized = normalize(identify)
    assert normalized.event is None
    assert codes(normalized) == [("missing_timestamp", "timestamp"), ("missing_identity", "userId")]
    page = {"type": "page", "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z"}
    assert normalize(page) == Normalized(None)


def test_a_track_call_without_an_event_name_is_flagged() -> None:
    assert codes(normalize(track("", {}))) == [("missing_event", "event")]
    message = track("x", {})
    message["event"] = 12
    assert codes(normalize(message)) == [("missing_event", "event")]


def test_unknown_events_are_kept_as_they_are() -> None:
    properties = {"product_id": "p", "price": "bad", "total": "bad", "products": [{}]}
    normalized = normalize(track("signup_completed", properties, userId=None))
    assert normalized == Normalized(
        "signup_completed", flags=(Flag("missing_identity", "userId", normalized.flags[0].message),)
    )


def test_properties_of_the_wrong_shape_are_read_as_empty() -> None:
    normalized = normalize(track("Product Viewed", ["not", "an", "object"]))
    assert normalized.product is None
    assert codes(normalized) == [
        ("missing_product_id", "properties.product_id"),
        ("missing_url", "properties.url"),
    ]


# -- never raises -----------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
amount_like = json_values | st.sampled_from(["$1,299.00", "19,99 €", "1.2.3", "-", "$", "€ 5"])
product_keys = [
    "product_id",
    "productId",
    "sku",
    "id",
    "name",
    "price",
    "price_cents",
    "priceCents",
    "sale_price",
    "currency",
    "quantity",
    "category",
    "url",
    "product_url",
    "image_url",
    "image_urls",
]
products_like = st.dictionaries(st.sampled_from(product_keys), amount_like, max_size=8)
properties_like = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(product_keys, amount_like),
        "products": st.lists(products_like | json_values, max_size=4) | json_values,
        "total": amount_like,
        "revenue": amount_like,
        "value": amount_like,
        "order_id": json_values,
    },
)
event_names = st.sampled_from(sorted(ECOMMERCE_EVENTS)) | st.sampled_from(
    ["Viewed Product", "completed_order", "productAdded"]
)
other_fields = {
    "userId": json_values,
    "anonymousId": json_values,
    "timestamp": json_values,
    "messageId": json_values,
    "context": json_values,
    "traits": json_values,
}
ecommerce_messages = st.fixed_dictionaries(
    {"type": st.just("track"), "event": event_names, "properties": properties_like},
    optional=other_fields,
)
messages = ecommerce_messages | st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["track", "identify", "page"]) | json_values,
        "event": event_names | json_values,
        "properties": properties_like | json_values,
        **other_fields,
    },
)


def check(normalized: Normalized) -> None:
    for flag in normalized.flags:
        assert flag.code and flag.field and flag.message
        assert len(flag.field) <= 200 and len(flag.message) <= 1000
    every = [*normalized.products, *([normalized.product] if normalized.product else [])]
    for product in every:
        assert isinstance(product.product_id, str) and product.product_id
        assert 0 <= product.quantity <= MAX_QUANTITY
        assert product.price is None or (math.isfinite(product.price) and product.price >= 0)
        product.to_dict()
    for amount in (normalized.total, normalized.revenue):
        assert amount is None or math.isfinite(amount)


@PROPS
@given(messages)
def test_normalize_never_raises_on_messages_of_any_shape(message: dict[str, Any]) -> None:
    check(normalize(message))


@PROPS
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=8))
def test_normalize_never_raises_on_arbitrary_objects(message: dict[str, Any]) -> None:
    check(normalize(message))
    check(normalize({**message, "type": "track", "event": "Order Completed"}))


@PROPS
@given(st.text(max_size=40))
def test_canonical_event_and_parse_amount_never_raise_on_text(text: str) -> None:
    name = canonical_event(text)
    assert name == text or name in ECOMMERCE_EVENTS
    amount = parse_amount(text)
    assert amount is None or math.isfinite(amount)
