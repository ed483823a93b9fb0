"""Feed parsing: column aliases, value formats, bad rows reported with line, field and reason."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tidings.catalog.feed import (
    FIELD_BITS,
    MAX_ID,
    ParsedFeed,
    ProductRecord,
    detect_format,
    normalize_key,
    parse_feed,
    read_record,
)

PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only(feed: ParsedFeed) -> ProductRecord:
    assert feed.fatal is None, feed.fatal
    assert not feed.issues, feed.issues
    assert len(feed.rows) == 1
    return feed.rows[0].product


def csv_of(*rows: list[str], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


# -- column names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "field", "value", "expected"),
    [
        ("product_id", "product_id", "P-1", "P-1"),
        ("id", "product_id", "P-1", "P-1"),
        ("ID", "product_id", "P-1", "P-1"),
        ("g:id", "product_id", "P-1", "P-1"),
        ("Item ID", "product_id", "P-1", "P-1"),
        ("offer_id", "product_id", "P-1", "P-1"),
        ("productId", "product_id", "P-1", "P-1"),
        ("title", "name", "Runner", "Runner"),
        ("name", "name", "Runner", "Runner"),
        ("Product Name", "name", "Runner", "Runner"),
        ("g:title", "name", "Runner", "Runner"),
        ("price", "price", "19.99", 19.99),
        ("regular_price", "price", "19.99", 19.99),
        ("Variant Price", "price", "19.99", 19.99),
        ("sale_price", "sale_price", "9.5", 9.5),
        ("salePrice", "sale_price", "9.5", 9.5),
        ("g:sale_price", "sale_price", "9.5", 9.5),
        ("special_price", "sale_price", "9.5", 9.5),
        ("currency", "currency", "eur", "EUR"),
        ("currency_code", "currency", "EUR", "EUR"),
        ("image_link", "image_url", "https://cdn.example/1.jpg", "https://cdn.example/1.jpg"),
        ("image_url", "image_url", "https://cdn.example/1.jpg", "https://cdn.example/1.jpg"),
        ("imageLink", "image_url", "https://cdn.example/1.jpg", "https://cdn.example/1.jpg"),
        ("Image Src", "image_url", "https://cdn.example/1.jpg", "https://cdn.example/1.jpg"),
        ("image", "image_url", "/demo/products/1.png", "/demo/products/1.png"),
        ("link", "url", "https://shop.example/p/1", "https://shop.example/p/1"),
        ("url", "url", "https://shop.example/p/1", "https://shop.example/p/1"),
        ("product_url", "url", "//shop.example/p/1", "https://shop.example/p/1"),
        ("product_type", "category", "Shoes > Runners", "Shoes > Runners"),
        ("category", "category", "Shoes", "Shoes"),
        ("google_product_category", "category", "187", "187"),
        ("brand", "brand", "Kestrel", "Kestrel"),
        ("Vendor", "brand", "Kestrel", "Kestrel"),
        ("availability", "in_stock", "in stock", True),
        ("in_stock", "in_stock", "false", False),
        ("is_in_stock", "in_stock", "1", True),
        ("stock", "in_stock", "0", False),
        ("sku", "sku", "SKU-9", "SKU-9"),
    ],
)
def test_each_column_alias(column: str, field: str, value: str, expected: Any) -> None:
    header = [column] if field == "product_id" else ["id", column]
    row = [value] if field == "product_id" else ["P-1", value]
    product = only(parse_feed(csv_of(header, row), "csv"))
    assert getattr(product, field) == expected


def test_sku_is_the_id_when_there_is_no_id_column() -> None:
    product = only(parse_feed(csv_of(["SKU", "Title"], ["S-1", "Tote"]), "csv"))
    assert (product.product_id, product.sku, product.name) == ("S-1", "S-1", "Tote")


def test_the_first_alias_wins_and_the_others_are_kept_as_extra() -> None:
    feed = parse_feed(
        csv_of(
            ["id", "title", "name", "category", "product_type", "color"],
            ["1", "From title", "From name", "Shoes", "Apparel > Shoes", "red"],
        ),
        "csv",
    )
    product = only(feed)
    assert product.name == "From name"
    assert product.category == "Shoes"
    assert product.extra == {
        "title": "From title",
        "product_type": "Apparel > Shoes",
        "color": "red",
    }
    assert feed.columns["name"] == "name"


def test_a_google_merchant_tsv_feed() -> None:
    text = (
        "id\ttitle\tdescription\tlink\timage_link\tavailability\tprice\tsale_price\tbrand\t"
        "product_type\tgtin\n"
        "SKU-1\tTrail Runner\tLight shoe\thttps://shop.example/p/1\thttps://cdn.example/1.jpg\t"
        "in_stock\t89.00 USD\t69.00 USD\tKestrel\tShoes > Running\t0001234567890\n"
        "SKU-2\tRain Jacket\t\thttps://shop.example/p/2\thttps://cdn.example/2.jpg\t"
        "out_of_stock\t120.00 USD\t\tTidewater\tOuterwear\t\n"
    )
    feed = parse_feed(text.encode(), "csv")
    assert feed.fatal is None and not feed.issues
    first, second = (row.product for row in feed.rows)
    assert first == ProductRecord(
        product_id="SKU-1",
        name="Trail Runner",
        price=89.0,
        sale_price=69.0,
        currency="USD",
        image_url="https://cdn.example/1.jpg",
        url="https://shop.example/p/1",
        category="Shoes > Running",
        brand="Kestrel",
        in_stock=True,
        extra={"description": "Light shoe", "gtin": "0001234567890"},
    )
    assert second.in_stock is False
    assert second.sale_price is None
    assert second.extra == {}
    assert [row.line for row in feed.rows] == [2, 3]


def test_semicolon_and_pipe_delimiters() -> None:
    for delimiter in (";", "|"):
        product = only(
            parse_feed(csv_of(["id", "price"], ["1", "19,99 €"], delimiter=delimiter), "csv")
        )
        assert (product.price, product.currency) == (19.99, "EUR")


def test_key_normalization() -> None:
    for raw in (
        "Image Link",
        "imageLink",
        "g:image_link",
        "image-link",
        " IMAGE_LINK ",
        "ImageLink",
    ):
        assert normalize_key(raw) == "image_link"


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "price", "currency"),
    [
        ("19.99", 19.99, None),
        ("19.99 USD", 19.99, "USD"),
        ("USD 19.99", 19.99, "USD"),
        ("$19.99", 19.99, "USD"),
        ("19,99", 19.99, None),
        ("19,99 €", 19.99, "EUR"),
        ("€19.99", 19.99, "EUR"),
        ("£5", 5.0, "GBP"),
        ("1,299.00", 1299.0, None),
        ("1.299,00 EUR", 1299.0, "EUR"),
        ("CHF 1'299.50", 1299.5, "CHF"),
        ("0", 0.0, None),
        ("", None, None),
    ],
)
def test_price_formats(text: str, price: float | None, currency: str | None) -> None:
    product = only(parse_feed(csv_of(["id", "price"], ["1", text]), "csv"))
    assert (product.price, product.currency) == (price, currency)


def test_a_currency_column_and_a_price_in_another_currency_reject_the_row() -> None:
    feed = parse_feed(csv_of(["id", "price", "currency"], ["1", "19.99 EUR", "USD"]), "csv")
    [issue] = feed.issues
    assert (issue.line, issue.field, issue.code) == (2, "price", "currency_mismatch")
    assert "EUR" in issue.message and "USD" in issue.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in stock", True),
        ("In Stock", True),
        ("in_stock", True),
        ("https://schema.org/InStock", True),
        ("limited availability", True),
        ("yes", True),
        ("12", True),
        ("out of stock", False),
        ("out_of_stock", False),
        ("http://schema.org/OutOfStock", False),
        ("preorder", False),
        ("backorder", False),
        ("discontinued", False),
        ("no", False),
        ("0", False),
        ("", None),
    ],
)
def test_availability(text: str, expected: bool | None) -> None:
    product = only(parse_feed(csv_of(["id", "availability"], ["1", text]), "csv"))
    assert product.in_stock is expected


def test_field_mask_names_the_fields_given() -> None:
    product = only(parse_feed(csv_of(["id", "title", "price"], ["1", "Tote", "5"]), "csv"))
    assert product.field_mask == FIELD_BITS["name"] | FIELD_BITS["price"]


# -- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_are_reported_with_line_field_and_reason_and_the_rest_imported() -> None:
    text = (
        "id,title,price,link,availability\n"
        "1,Good,19.99,https://shop.example/1,in stock\n"
        "2,Bad price,cheap,https://shop.example/2,in stock\n"
        '3,"A name\nover two lines",5,https://shop.example/3,in stock\n'
        "4,Bad link,5,javascript:alert(1),in stock\n"
        ",No id,5,https://shop.example/5,in stock\n"
        "6,Bad stock,5,https://shop.example/6,maybe\n"
        "7,Negative,-5,https://shop.example/7,in stock\n"
        "\n"
        "8,Too,many,fields,in stock,extra\n"
        "1,Duplicate,1,https://shop.example/1,in stock\n"
        f"{'x' * (MAX_ID + 1)},Long id,1,https://shop.example/9,in stock\n"
    )
    feed = parse_feed(text, "csv")
    assert feed.fatal is None
    assert [(r.product.product_id, r.line) for r in feed.rows] == [("1", 2), ("3", 4)]
    assert feed.rows[1].product.name == "A name\nover two lines"
    found = [(i.line, i.field, i.code) for i in feed.issues]
    assert found == [
        (3, "price", "invalid_price"),
        (6, "url", "invalid_url"),
        (7, "product_id", "missing_product_id"),
        (8, "in_stock", "invalid_availability"),
        (9, "price", "invalid_price"),
        (11, None, "too_many_fields"),
        (12, "product_id", "duplicate_product_id"),
        (13, "product_id", "too_long"),
    ]
    assert feed.issues[0].product_id == "2"
    assert "cheap" in feed.issues[0].message
    assert "line 2" in feed.issues[6].message
    assert feed.rejected == 8
    assert feed.total == 10


def test_a_row_with_several_problems_lists_each_and_counts_once() -> None:
    feed = parse_feed(csv_of(["id", "price", "sale_price"], ["1", "x", "y"]), "csv")
    assert [(i.field, i.code) for i in feed.issues] == [
        ("price", "invalid_price"),
        ("sale_price", "invalid_price"),
    ]
    assert feed.rejected == 1


def test_trailing_empty_fields_are_not_too_many() -> None:
    feed = parse_feed("id,title\n1,Tote,,\n", "csv")
    assert only(feed).name == "Tote"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_feed"),
        ("\n\n", "empty_feed"),
        ("title,price\nTote,5\n", "missing_id_column"),
    ],
)
def test_files_that_are_not_csv_feeds(text: str, code: str) -> None:
    feed = parse_feed(text, "csv")
    assert feed.fatal is not None
    assert feed.fatal.code == code
    assert not feed.rows


# -- JSON -----------------------------------------------------------------------------------------


def test_json_list_and_products_object() -> None:
    items = [
        {
            "id": "1",
            "title": "Tote",
            "price": {"value": "35.00", "currency": "EUR"},
            "imageLink": "https://cdn.example/1.jpg",
            "availability": "in stock",
            "color": "red",
            "sizes": ["S", "M"],
        },
        {"product_id": 2, "name": "Bag", "price": 12, "in_stock": False},
    ]
    for body in (items, {"products": items}):
        feed = parse_feed(orjson.dumps(body), "json")
        assert feed.fatal is None and not feed.issues
        first, second = (r.product for r in feed.rows)
        assert (first.price, first.currency, first.image_url) == (
            35.0,
            "EUR",
            "https://cdn.example/1.jpg",
        )
        assert first.extra == {"color": "red", "sizes": ["S", "M"]}
        assert (second.product_id, second.price, second.in_stock) == ("2", 12.0, False)
        assert [r.index for r in feed.rows] == [0, 1]
        assert [r.line for r in feed.rows] == [None, None]


def test_json_bad_items_are_reported_by_index() -> None:
    body = [{"id": "1"}, "not an object", {"id": "3", "price": True}, {"id": ["x"]}]
    feed = parse_feed(orjson.dumps(body), "json")
    assert [r.product.product_id for r in feed.rows] == ["1"]
    assert [(i.index, i.field, i.code) for i in feed.issues] == [
        (1, None, "not_an_object"),
        (2, "price", "invalid_price"),
        (3, "product_id", "invalid_type"),
    ]


def test_json_lines_report_line_numbers() -> None:
    text = '\n{"id": "1", "title": "A"}\n{"id": "2", "price": "x"}\n{not json\n{"id": "4"}\n'
    feed = parse_feed(text, "json")
    assert [(r.product.product_id, r.line) for r in feed.rows] == [("1", 2), ("4", 5)]
    assert [(i.line, i.code) for i in feed.issues] == [(3, "invalid_price"), (4, "invalid_json")]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_feed"),
        ("{not json", "invalid_json"),
        ('{"products": "none"}', "invalid_feed"),
        ("42", "invalid_feed"),
    ],
)
def test_files_that_are_not_json_feeds(text: str, code: str) -> None:
    feed = parse_feed(text, "json")
    assert feed.fatal is not None and feed.fatal.code == code


def test_read_record_checks_api_values() -> None:
    record, issues = read_record({"product_id": "p", "price": "$5", "url": "/p/1"})
    assert record is not None and not issues
    assert (record.price, record.currency, record.url) == (5.0, "USD", "/p/1")
    record, issues = read_record({"product_id": "p", "currency": "dollars", "url": "ftp://x"})
    assert record is None
    assert {(i.field, i.code) for i in issues} == {
        ("currency", "invalid_currency"),
        ("url", "invalid_url"),
    }


# -- formats and encodings ------------------------------------------------------------------------


def test_detect_format() -> None:
    assert detect_format(b"id,title", "feed.json") == "json"
    assert detect_format(b"[]", "feed.csv") == "csv"
    assert detect_format(b"id\ttitle", "feed.txt") == "csv"
    assert detect_format(b"id,title", None, "application/json; charset=utf-8") == "json"
    assert detect_format(b"[{}]", None, "text/csv") == "csv"
    assert detect_format(b"\xef\xbb\xbf  [{}]") == "json"
    assert detect_format(b"id,title") == "csv"


@pytest.mark.parametrize(
    "encode",
    [
        lambda s: s.encode("utf-8"),
        lambda s: b"\xef\xbb\xbf" + s.encode("utf-8"),
        lambda s: s.encode("utf-16"),
        lambda s: s.encode("latin-1"),
    ],
)
def test_encodings(encode: Any) -> None:
    product = only(parse_feed(encode("id,title\n1,Café\n"), "csv"))
    assert product.name == "Café"


def test_nul_characters_and_lone_surrogates_are_cleaned() -> None:
    product = only(parse_feed("id,title\n1,Ca\x00fé\ud800\n", "csv"))
    assert product.name == "Café?"


# -- never raises ---------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
FEED_KEYS = ("id", "sku", "title", "price", "sale_price", "currency", "image_link", "link")
feed_keys = st.sampled_from(
    [*FEED_KEYS, "availability", "product_type", "brand", "g:id", "Price", "color"]
) | st.text(max_size=8)
json_products = st.dictionaries(feed_keys, json_values, max_size=8)


def _check(feed: ParsedFeed) -> None:
    """What every parse promises, whatever the input."""
    ids = [row.product.product_id for row in feed.rows]
    assert len(ids) == len(set(ids))
    assert all(0 < len(pid) <= MAX_ID and "\x00" not in pid for pid in ids)
    assert all(issue.index is not None for issue in feed.issues)
    if feed.fatal is not None:
        assert not feed.rows
    for row in feed.rows:
        orjson.dumps(dict(row.product.extra))  # storable


@PROPS
@given(st.text(max_size=400), st.sampled_from(["csv", "json"]))
@example("id\n\x00", "csv")
@example('[{"id": "1", "price": {"value": {"value": 1}}}]', "json")
@example("[" * 2000, "json")
def test_any_text_is_parsed_or_reported_never_raises(text: str, fmt: Any) -> None:
    _check(parse_feed(text, fmt))
    _check(parse_feed(text.encode("utf-8", "surrogatepass"), fmt))


@PROPS
@given(st.binary(max_size=300), st.sampled_from(["csv", "json"]))
def test_any_bytes_are_parsed_or_reported_never_raise(data: bytes, fmt: Any) -> None:
    _check(parse_feed(data, fmt))


@PROPS
@given(
    st.lists(feed_keys, min_size=1, max_size=8),
    st.lists(st.lists(st.text(max_size=20), max_size=10), max_size=8),
    st.sampled_from([",", "\t", ";"]),
)
def test_any_csv_table_is_parsed_or_reported(
    header: list[str], rows: list[list[str]], delimiter: str
) -> None:
    feed = parse_feed(csv_of(header, *rows, delimiter=delimiter), "csv")
    _check(feed)


@PROPS
@given(st.lists(json_products | json_values, max_size=8), st.booleans())
def test_any_json_feed_is_parsed_or_reported(items: list[Any], wrapped: bool) -> None:
    body = {"products": items} if wrapped else items
    feed = parse_feed(orjson.dumps(body), "json")
    _check(feed)
    assert feed.fatal is None
    assert len(feed.rows) + feed.rejected <= len(items)
