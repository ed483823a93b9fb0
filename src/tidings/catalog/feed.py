"""Reading a product feed: CSV (or TSV) with a header row, or JSON, into product records.

A feed is what a shop exports for Google Merchant Center, Meta or an ESP: one product per row.
Shops name the same columns many ways, so each field has aliases, matched after normalizing
the column name (case, spaces, dashes, ``camelCase`` and Google's ``g:`` prefix do not matter):

============  ==========================================================================
field         column names (the first present wins)
============  ==========================================================================
product_id    ``product_id``, ``id``, ``item_id``, ``offer_id``; else ``sku``
sku           ``sku``, ``variant_sku``
name          ``name``, ``title``, ``product_name``, ``product_title``
price         ``price``, ``regular_price``, ``list_price``, ``variant_price``
sale_price    ``sale_price``, ``special_price``, ``sales_price``
currency      ``currency``, ``currency_code``, ``price_currency``
image_url     ``image_url``, ``image_link``, ``image``, ``image_src``, ``images``
url           ``url``, ``link``, ``product_url``, ``product_link``
category      ``category``, ``product_type``, ``product_category``, ``google_product_category``
brand         ``brand``, ``vendor``, ``manufacturer``
in_stock      ``in_stock``, ``availability``, ``is_in_stock``, ``stock_status``, ``available``,
              ``stock``
============  ==========================================================================

Every other column is kept as ``extra`` (``description``, ``gtin``, ``color``, …).

Values are read leniently and checked strictly: prices may be ``19.99``, ``"19.99 USD"``
(Google's form, which also gives the currency), ``"$19.99"``, ``"19,99 €"`` or, in JSON,
``{"value": "19.99", "currency": "USD"}``; availability may be ``in stock``, ``out_of_stock``,
``preorder``, a schema.org URL, a boolean or a stock count. A row with a value that cannot be
read (a price that is not an amount, a ``javascript:`` link, an id longer than 200 characters)
is **rejected as a whole** and reported with its line (CSV, JSON Lines) or index (JSON), the
field and why; the other rows are imported. :func:`parse_feed` never raises: a file that is
not a feed at all (not JSON, no header, no id column) comes back with a ``fatal`` issue.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

from tidings.profiles.ecommerce import parse_amount

FeedFormat = Literal["csv", "json"]

PRODUCT_FIELDS: Final = (
    "sku",
    "name",
    "price",
    "sale_price",
    "currency",
    "image_url",
    "url",
    "category",
    "brand",
    "in_stock",
)
"""A product's fields besides its id, in a fixed order (their bit is ``1 << index``)."""

FIELD_BITS: Final = {name: 1 << i for i, name in enumerate(PRODUCT_FIELDS)}

# Longest values kept (the columns' sizes); longer ones are rejected from feeds.
MAX_ID: Final = 200
MAX_TEXT: Final = {"sku": 200, "name": 500, "category": 500, "brand": 200}
MAX_URL: Final = 2048
MAX_EXTRA_BYTES: Final = 64 * 1024

_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "product_id": ("product_id", "id", "item_id", "offer_id"),
    "sku": ("sku", "variant_sku"),
    "name": ("name", "title", "product_name", "product_title"),
    "price": ("price", "regular_price", "list_price", "variant_price"),
    "sale_price": ("sale_price", "special_price", "sales_price"),
    "currency": ("currency", "currency_code", "price_currency"),
    "image_url": ("image_url", "image_link", "image", "image_src", "images"),
    "url": ("url", "link", "product_url", "product_link"),
    "category": ("category", "product_type", "product_category", "google_product_category"),
    "brand": ("brand", "vendor", "manufacturer"),
    "in_stock": ("in_stock", "availability", "is_in_stock", "stock_status", "available", "stock"),
}

_IN_STOCK: Final = frozenset(
    {"in stock", "instock", "available", "limited availability", "limitedavailability"}
    | {"yes", "y", "true", "t", "1"}
)
_OUT_OF_STOCK: Final = frozenset(
    {"out of stock", "outofstock", "sold out", "soldout", "unavailable", "not available"}
    | {"discontinued", "preorder", "pre order", "backorder", "back order", "presale"}
    | {"no", "n", "false", "f", "0"}
)
# Currency symbols that name one currency well enough to default to it.
_SYMBOLS: Final[Mapping[str, str]] = {
    "$": "USD",
    "US$": "USD",
    "€": "EUR",
    "£": "GBP",
    "¥": "JPY",
    "₹": "INR",
    "₩": "KRW",
    "C$": "CAD",
    "CA$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "R$": "BRL",
    "CHF": "CHF",
}
_NUMBER_CHARS: Final = re.compile(r"[0-9.,'’\s\u00a0\u202f\u2009+\-\u2212]")
_CURRENCY_CODE: Final = re.compile(r"[A-Za-z]{3}")
_PRICE_CURRENCY_KEYS: Final = ("currency", "currency_code", "currencyCode")
_CAMEL_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS: Final = re.compile(r"[\s\-./:]+")
_DELIMITERS: Final = (",", "\t", ";", "|")
_URL_CHAR: Final = r"[^\x00-\x20\x7f\s]"
_LINK: Final = re.compile(
    rf"(?i:https?)://[^\x00-\x20\x7f\s/?#]+(?:[/?#]{_URL_CHAR}*)?|/(?!/){_URL_CHAR}*"
)


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """One product as a feed (or an admin) states it. ``None``: the feed gives no value."""

    product_id: str
    sku: str | None = None
    name: str | None = None
    price: float | None = None
    sale_price: float | None = None
    currency: str | None = None
    image_url: str | None = None
    url: str | None = None
    category: str | None = None
    brand: str | None = None
    in_stock: bool | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def field_mask(self) -> int:
        """The bits (:data:`FIELD_BITS`) of the fields this record gives a value."""
        mask = 0
        for name, bit in FIELD_BITS.items():
            if getattr(self, name) is not None:
                mask |= bit
        return mask


@dataclass(frozen=True, slots=True)
class FeedIssue:
    """Why a row (or, when ``fatal``, the whole file) was refused.

    ``line``: the line the row starts on (CSV, JSON Lines; the header is line 1);
    ``index``: the row's position among the feed's records, from 0.
    """

    code: str
    message: str
    field: str | None = None
    line: int | None = None
    index: int | None = None
    product_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "index": self.index,
            "product_id": self.product_id,
            "field": self.field,
            "code": self.code,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class FeedRow:
    line: int | None
    index: int
    product: ProductRecord


@dataclass(slots=True)
class ParsedFeed:
    """What :func:`parse_feed` read: the good rows, and an issue per problem of each bad row."""

    format: FeedFormat
    rows: list[FeedRow] = field(default_factory=list)
    issues: list[FeedIssue] = field(default_factory=list)
    fatal: FeedIssue | None = None
    columns: dict[str, str] = field(default_factory=dict)
    """For CSV: each field → the column it was read from."""

    @property
    def rejected(self) -> int:
        """How many rows were rejected (a row may have several issues)."""
        return len({issue.index for issue in self.issues})

    @property
    def total(self) -> int:
        return len(self.rows) + self.rejected


# -- the format ------------------------------------------------------------------------------


def detect_format(
    data: bytes | str, filename: str | None = None, content_type: str | None = None
) -> FeedFormat:
    """The feed's format from the file's extension, else the Content-Type, else its first
    character (``[`` or ``{``: JSON)."""
    if filename:
        lower = filename.lower()
        if lower.endswith((".json", ".jsonl", ".ndjson")):
            return "json"
        if lower.endswith((".csv", ".tsv", ".txt")):
            return "csv"
    if content_type:
        media = content_type.split(";", 1)[0].strip().lower()
        if media.endswith(("/json", "+json", "/x-ndjson", "/jsonl", "/x-jsonlines")):
            return "json"
        if media in ("text/csv", "application/csv", "text/tab-separated-values"):
            return "csv"
    head = data[:1024]
    text = head.decode("utf-8", "ignore") if isinstance(head, bytes) else head
    return "json" if text.lstrip("\ufeff \t\r\n")[:1] in ("[", "{") else "csv"


def decode(data: bytes) -> str:
    """Text from a file's bytes: UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_feed(data: bytes | str, fmt: FeedFormat) -> ParsedFeed:
    """Every product of a CSV or JSON feed, and every problem; never raises."""
    text = _clean(decode(data) if isinstance(data, bytes) else data)
    feed = _parse_json(text) if fmt == "json" else _parse_csv(text)
    _drop_duplicates(feed)
    return feed


def _drop_duplicates(feed: ParsedFeed) -> None:
    """Reject every row that repeats an earlier row's product id (the first row is kept)."""
    first: dict[str, FeedRow] = {}
    kept: list[FeedRow] = []
    for row in feed.rows:
        earlier = first.get(row.product.product_id)
        if earlier is None:
            first[row.product.product_id] = row
            kept.append(row)
            continue
        where = f"line {earlier.line}" if earlier.line is not None else f"index {earlier.index}"
        feed.issues.append(
            FeedIssue(
                "duplicate_product_id",
                f"product id {row.product.product_id!r} was already given on {where}; "
                "the first row is kept",
                "product_id",
                row.line,
                row.index,
                row.product.product_id,
            )
        )
    if len(kept) != len(feed.rows):
        feed.rows = kept
        feed.issues.sort(key=lambda i: i.index if i.index is not None else -1)


# -- CSV --------------------------------------------------------------------------------------


def _delimiter(text: str) -> str:
    """The delimiter of the header line: the most frequent of ``,``, tab, ``;`` and ``|``."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return max(_DELIMITERS, key=first.count) if first else ","


def _parse_csv(text: str) -> ParsedFeed:
    feed = ParsedFeed("csv")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header: list[str] | None = None
    header_line = 0
    index = 0
    last_line = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            start = last_line + 1
            last_line = reader.line_num
            if header is None:
                feed.fatal = FeedIssue("invalid_csv", f"the header cannot be read: {exc}", line=1)
                return feed
            feed.issues.append(
                FeedIssue("invalid_csv", f"the row cannot be read: {exc}", line=start, index=index)
            )
            index += 1
            continue
        start = last_line + 1
        last_line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # blank lines (or only delimiters)
        if header is None:
            header = [_clean(cell).strip() or f"column_{i + 1}" for i, cell in enumerate(cells)]
            header_line = start
            columns = _column_map(header)
            if "product_id" not in columns:
                feed.fatal = FeedIssue(
                    "missing_id_column",
                    "the header has no product id column: name one id, product_id or sku "
                    f"(columns: {', '.join(header[:20])})",
                    field="header",
                    line=header_line,
                )
                return feed
            feed.columns = {name: header[i] for name, i in columns.items()}
            extras = [i for i in range(len(header)) if i not in set(columns.values())]
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            feed.issues.append(
                FeedIssue(
                    "too_many_fields",
                    f"the row has {len(cells)} fields but the header names {len(header)} "
                    "(a delimiter inside an unquoted value?)",
                    line=start,
                    index=index,
                )
            )
            index += 1
            continue
        values: dict[str, Any] = {
            name: cells[i] if i < len(cells) else None for name, i in columns.items()
        }
        extra = {header[i]: cells[i] for i in extras if i < len(cells) and cells[i].strip()}
        _add_row(feed, values, extra, line=start, index=index)
        index += 1
    if header is None:
        feed.fatal = FeedIssue("empty_feed", "the feed is empty: no header row", field="header")
    return feed


def _column_map(names: Sequence[str]) -> dict[str, int]:
    """Each product field → the position of the column it is read from (first alias wins)."""
    keys = [normalize_key(name) for name in names]
    found: dict[str, int] = {}
    for name, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in keys:
                found[name] = keys.index(alias)
                break
    if "product_id" not in found and "sku" in found:
        found["product_id"] = found["sku"]
    return found


def normalize_key(name: str) -> str:
    """``Image Link``, ``imageLink``, ``g:image_link`` and ``image-link`` → ``image_link``."""
    key = name.strip().lstrip("\ufeff")
    if key[:2].lower() == "g:":
        key = key[2:]
    key = _SEPARATORS.sub("_", _CAMEL_HUMP.sub("_", key)).lower()
    return re.sub("_+", "_", key).strip("_")


# -- JSON -------------------------------------------------------------------------------------


def _parse_json(text: str) -> ParsedFeed:
    feed = ParsedFeed("json")
    stripped = text.strip()
    if not stripped:
        feed.fatal = FeedIssue("empty_feed", "the feed is empty", field="body")
        return feed
    try:
        value = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        lines = _json_lines(text)
        if lines is None:
            feed.fatal = FeedIssue("invalid_json", f"the feed is not valid JSON: {exc}", "body")
            return feed
        for index, (line, item) in enumerate(lines):
            _add_item(feed, item, line, index)
        return feed
    items: Any = value
    if isinstance(value, dict):
        items = next(
            (value[k] for k in ("products", "items", "entries") if isinstance(value.get(k), list)),
            None,
        )
        if items is None and _looks_like_product(value):
            items = [value]
    if not isinstance(items, list):
        feed.fatal = FeedIssue(
            "invalid_feed",
            'a JSON feed is a list of product objects, or {"products": [...]}',
            field="body",
        )
        return feed
    for index, item in enumerate(items):
        _add_item(feed, item, None, index)
    return feed


def _json_lines(text: str) -> list[tuple[int, Any]] | None:
    """JSON Lines (one object per line), or ``None`` when the text is not that either."""
    found: list[tuple[int, Any]] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            found.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError:
            if not found:
                return None
            found.append((number, _Unreadable(line)))
    if len(found) < 2 or not isinstance(found[0][1], dict):
        return None
    return found


@dataclass(frozen=True, slots=True)
class _Unreadable:
    text: str


def _looks_like_product(value: Mapping[str, Any]) -> bool:
    keys = {normalize_key(k) for k in value}
    return bool(keys & set(_ALIASES["product_id"] + _ALIASES["sku"]))


def _add_item(feed: ParsedFeed, item: Any, line: int | None, index: int) -> None:
    if isinstance(item, _Unreadable):
        feed.issues.append(
            FeedIssue("invalid_json", "the line is not valid JSON", line=line, index=index)
        )
        return
    if not isinstance(item, dict):
        feed.issues.append(
            FeedIssue(
                "not_an_object",
                f"each product must be a JSON object, not {_json_type(item)}",
                line=line,
                index=index,
            )
        )
        return
    columns = _column_map(list(item))
    keys = list(item)
    values = {name: item[keys[i]] for name, i in columns.items()}
    used = set(columns.values())
    extra = {k: v for i, (k, v) in enumerate(item.items()) if i not in used and _present(v)}
    _add_row(feed, values, extra, line=line, index=index)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an object" if isinstance(value, dict) else "a list"


# -- one record -------------------------------------------------------------------------------


class _RowError(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code
        self.message = message


def _add_row(
    feed: ParsedFeed,
    values: Mapping[str, Any],
    extra: Mapping[str, Any],
    *,
    line: int | None,
    index: int,
) -> None:
    if not any(_present(v) for v in values.values()) and not extra:
        return  # an empty object or row
    record, issues = read_record(values, extra, line=line, index=index)
    if record is None:
        feed.issues.extend(issues)
        return
    feed.rows.append(FeedRow(line, index, record))


def read_record(
    values: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    *,
    line: int | None = None,
    index: int | None = None,
) -> tuple[ProductRecord | None, list[FeedIssue]]:
    """A record from values keyed by field name (``product_id``, ``name``, …), or every
    problem that rejects it. Also checks products sent to the API."""
    problems: list[_RowError] = []
    product_id: str | None = None
    try:
        product_id = _id(values.get("product_id"))
    except _RowError as err:
        problems.append(err)
    fields: dict[str, Any] = {}
    for name, reader in _READERS:
        try:
            fields[name] = reader(name, values.get(name))
        except _RowError as err:
            problems.append(err)
    marks: list[tuple[str, str]] = []
    for name in ("price", "sale_price"):
        try:
            fields[name], mark = _price_field(name, values.get(name))
        except _RowError as err:
            problems.append(err)
            continue
        if mark is not None:
            marks.append((name, mark))
    currency = fields.get("currency")
    for name, mark in marks:
        if currency is None:
            currency = mark
        elif mark != currency:
            problems.append(
                _RowError(
                    name,
                    "currency_mismatch",
                    f"{name} is in {mark} but the product's currency is {currency}",
                )
            )
            break
    fields["currency"] = currency
    kept = _extra(extra or {})
    if kept is None:
        problems.append(
            _RowError(
                "extra",
                "invalid_extra",
                f"the other columns must be JSON of at most {MAX_EXTRA_BYTES} bytes "
                "(nested at most 255 levels, without unpaired surrogates)",
            )
        )
    if problems or product_id is None or kept is None:
        problems.sort(key=lambda err: _FIELD_ORDER.get(err.field, len(_FIELD_ORDER)))
        return None, [
            FeedIssue(err.code, err.message, err.field, line, index, product_id) for err in problems
        ]
    return ProductRecord(product_id=product_id, extra=kept, **fields), []


def _id(value: Any) -> str:
    text = _as_text("product_id", value)
    if text is None:
        raise _RowError("product_id", "missing_product_id", "the row has no product id")
    if len(text) > MAX_ID:
        raise _RowError("product_id", "too_long", f"a product id has at most {MAX_ID} characters")
    return text


def _text_field(name: str, value: Any) -> str | None:
    text = _as_text(name, value)
    if text is not None and len(text) > MAX_TEXT[name]:
        raise _RowError(name, "too_long", f"{name} has at most {MAX_TEXT[name]} characters")
    return text


def _as_text(name: str, value: Any) -> str | None:
    """Text as given (trimmed, ``None`` when blank); numbers as text; anything else refused."""
    if value is None:
        return None
    if isinstance(value, str):
        return _clean(value).strip() or None
    if isinstance(value, bool):
        raise _RowError(name, "invalid_type", f"{name} must be text, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    raise _RowError(name, "invalid_type", f"{name} must be text, not {_json_type(value)}")


def _clean(text: str) -> str:
    """Text a database stores: no NUL characters, no unpaired surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _currency_field(name: str, value: Any) -> str | None:
    text = _as_text(name, value)
    if text is None:
        return None
    code = _SYMBOLS.get(text, text).upper()
    if not _CURRENCY_CODE.fullmatch(code):
        raise _RowError(
            name, "invalid_currency", f"currency must be a three-letter ISO code, not {text!r}"
        )
    return code


def _price_field(name: str, value: Any) -> tuple[float | None, str | None]:
    """The amount, and the currency its text names (``"19.99 USD"``) if any."""
    if isinstance(value, dict):  # {"value": "19.99", "currency": "USD"} (Google's API)
        amount = next((value[k] for k in ("value", "amount") if k in value), None)
        code = next((value[k] for k in _PRICE_CURRENCY_KEYS if k in value), None)
        if isinstance(amount, dict):
            raise _RowError(name, "invalid_price", f"{name}.value must be an amount")
        price, mark = _price_field(name, amount)
        return price, (_currency_field(name, code) if code is not None else mark)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _RowError(name, "invalid_price", f"{name} must be an amount, not {_json_type(value)}")
    if not isinstance(value, str):
        amount, mark = parse_amount(value), None
    else:
        amount, mark = _amount_and_mark(_clean(value).strip())
    if amount is None:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise _RowError(
            name,
            "invalid_price",
            f'{name} must be an amount such as 19.99, "19.99 USD" or "$19.99", not {shown}',
        )
    if amount < 0:
        raise _RowError(name, "invalid_price", f"{name} cannot be negative")
    return amount, mark


def _amount_and_mark(text: str) -> tuple[float | None, str | None]:
    """An amount written as text and the currency it names, quickly for the common
    ``"19.99"`` and ``"19.99 USD"`` (Google's form), else through ``parse_amount``."""
    parts = text.split()
    if len(parts) == 2:
        first, second = parts
        code, number = (second, first) if len(second) == 3 and second.isalpha() else parts
        if len(code) == 3 and code.isascii() and code.isalpha():
            amount = parse_amount(number)
            if amount is not None:
                return amount, code.upper()
    amount = parse_amount(text)
    return amount, (_currency_in(text) if amount is not None else None)


def _currency_in(text: str) -> str | None:
    """The currency a price's text names: ``"19.99 USD"`` → USD, ``"€19.99"`` → EUR."""
    mark = _NUMBER_CHARS.sub("", text)
    if not mark:
        return None
    if _CURRENCY_CODE.fullmatch(mark):
        return mark.upper()
    return _SYMBOLS.get(mark)


def _url_field(name: str, value: Any) -> str | None:
    """An absolute http(s) URL or a path on tidings itself (``/demo/…``)."""
    if isinstance(value, list):  # "images": ["https://…", …]
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    text = _as_text(name, value)
    if text is None:
        return None
    if len(text) > MAX_URL:
        raise _RowError(name, "too_long", f"{name} has at most {MAX_URL} characters")
    link = link_url(text)
    if link is not None:
        return link
    shown = text if len(text) <= 60 else text[:57] + "..."
    raise _RowError(
        name, "invalid_url", f"{name} must be an http(s) URL or a path such as /p/1, not {shown!r}"
    )


def link_url(text: str) -> str | None:
    """``text`` if it is an http(s) URL with a host or a path such as ``/p/1`` (``//host/…``
    becomes https), without spaces or control characters; else ``None``."""
    if text.startswith("//"):
        text = "https:" + text
    return text if _LINK.fullmatch(text) else None


def _stock_field(name: str, value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value > 0
    if isinstance(value, float) and math.isfinite(value):
        return value > 0
    if isinstance(value, str):
        text = _clean(value).strip().lower()
        if not text:
            return None
        if "schema.org/" in text:
            text = text.rsplit("/", 1)[-1]
        words = " ".join(text.replace("_", " ").replace("-", " ").split())
        if words in _IN_STOCK:
            return True
        if words in _OUT_OF_STOCK:
            return False
        if words.isdigit():
            return int(words) > 0
    raise _RowError(
        name,
        "invalid_availability",
        f"{name} must be in stock, out of stock, preorder, backorder, a boolean or a count, "
        f"not {str(value)[:40]!r}",
    )


def _extra(values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The other columns, cleaned; ``None`` when they cannot be kept (too large, not JSON)."""
    kept: dict[str, Any] = {}
    for key, value in values.items():
        kept[_clean(str(key))] = _clean(value) if isinstance(value, str) else value
    if not kept:
        return kept
    try:
        size = len(orjson.dumps(kept))
    except TypeError:  # orjson.JSONEncodeError: nested too deeply, unpaired surrogates
        return None
    return kept if size <= MAX_EXTRA_BYTES else None


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


_FIELD_ORDER: Final = {name: i for i, name in enumerate(("product_id", *PRODUCT_FIELDS, "extra"))}
_READERS: Final = (
    ("sku", _text_field),
    ("name", _text_field),
    ("category", _text_field),
    ("brand", _text_field),
    ("currency", _currency_field),
    ("image_url", _url_field),
    ("url", _url_field),
    ("in_stock", _stock_field),
)
