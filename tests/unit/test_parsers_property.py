"""Property tests: whatever a client sends, the parsers answer with a clear error or a good row."""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import zlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from tidings.collect.auth import basic_write_key
from tidings.collect.messages import TYPES, Enricher, InvalidMessage, Limits, parse_time
from tidings.collect.pixel import MAX_DEPTH, decode_data, from_dotted, pixel_message
from tidings.core.errors import TidingsError, Unauthorized
from tidings.core.http import read_body

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = Limits()

# -- strategies -----------------------------------------------------------------------------------

# What orjson.loads can hand the service: 64-bit integers (larger ones arrive as floats),
# finite floats, text without lone surrogates.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
json_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=6)

offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda m: timezone(timedelta(minutes=m))
)
aware_datetimes = st.builds(lambda moment, tz: moment.replace(tzinfo=tz), st.datetimes(), offsets)
time_strings = (
    aware_datetimes.map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.isoformat())
    | st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01",
            "9999-12-31T23:59:59.999999",
            "2026-11-23T12:00:00Z",
            "2026-13-01T00:00:00Z",
        ]
    )
    | st.text(max_size=40)
)
time_values = time_strings | json_values
ids = st.text(max_size=12) | st.text(min_size=495, max_size=505) | json_scalars

message_fields = {
    "type": st.sampled_from(TYPES) | json_values,
    "userId": ids,
    "anonymousId": ids,
    "previousId": ids,
    "groupId": ids,
    "event": st.text(max_size=20) | st.text(min_size=499, max_size=502) | json_values,
    "messageId": st.text(max_size=10) | st.text(min_size=95, max_size=110) | json_scalars,
    "timestamp": time_values,
    "originalTimestamp": time_values,
    "sentAt": time_values,
    "properties": json_objects | json_values,
    "traits": json_objects | json_values,
    "context": st.fixed_dictionaries({}, optional={"direct": st.booleans(), "ip": st.text()})
    | json_objects
    | json_values,
    "integrations": json_objects | json_values,
    "writeKey": st.text(max_size=20) | json_scalars,
}
messages = st.builds(
    lambda fixed, extra: {**extra, **fixed},
    st.fixed_dictionaries({}, optional=message_fields),
    json_objects,
)
valid_tracks = st.fixed_dictionaries(
    {
        "type": st.just("track"),
        "userId": st.text(min_size=1, max_size=20),
        "event": st.text(min_size=1, max_size=20).filter(str.strip),
    },
    optional={
        "messageId": st.text(max_size=100),
        "writeKey": st.text(max_size=20),
        "timestamp": aware_datetimes.map(lambda d: d.isoformat()),
        "properties": json_objects,
    },
)
received_times = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


# -- parse_time -----------------------------------------------------------------------------------


@PROPS
@given(time_values)
@example("0001-01-01T00:00:00+14:00")
@example("9999-12-31T23:59:59-14:00")
def test_parse_time_only_raises_invalid_message(value: Any) -> None:
    try:
        moment = parse_time(value, "timestamp")
    except InvalidMessage as exc:
        assert exc.error.field == "timestamp"
        assert exc.error.code == "invalid_timestamp"
        return
    assert moment.tzinfo is not None
    moment.astimezone(UTC)  # every accepted instant can be written as UTC


@PROPS
@given(
    aware_datetimes.filter(
        lambda d: (
            datetime.min.replace(tzinfo=UTC) + timedelta(days=1)
            < d
            < datetime.max.replace(tzinfo=UTC) - timedelta(days=1)
        )
    )
)
def test_parse_time_round_trips_iso_strings(moment: datetime) -> None:
    assert parse_time(moment.isoformat(), "sentAt") == moment


def test_parse_time_takes_a_zoneless_value_as_utc() -> None:
    assert parse_time("2026-11-23T12:00:00", "timestamp") == datetime(2026, 11, 23, 12, tzinfo=UTC)


# -- Enricher.enrich ------------------------------------------------------------------------------


def _check_row(row: tuple[Any, ...], received: datetime, limits: Limits) -> None:
    source_id, message_id, type_, event, user_id, anonymous_id, ts, received_ms, payload = row
    assert source_id == "src_test"
    assert type_ in TYPES
    assert user_id or anonymous_id, "an accepted row names a user"
    assert isinstance(message_id, str) and 0 < len(message_id) <= limits.max_message_id_chars
    assert isinstance(ts, int) and isinstance(received_ms, int)
    assert received_ms == int(received.timestamp() * 1000)
    body = orjson.loads(payload)
    assert "writeKey" not in body
    assert body["messageId"] == message_id
    assert body["type"] == type_
    assert body.get("userId") == user_id
    parse_time(body["timestamp"], "timestamp")
    parse_time(body["receivedAt"], "receivedAt")
    if type_ == "track":
        assert isinstance(event, str) and event.strip()
    else:
        assert event is None
    if type_ == "alias":
        assert user_id and body.get("previousId")
    if type_ == "group":
        assert body.get("groupId") not in (None, "")


@PROPS
@given(
    msg=messages,
    type_=st.none() | st.sampled_from(TYPES),
    sent_at=st.none() | time_values,
    batch_context=st.none() | json_objects,
    client_ip=st.none() | st.just("203.0.113.9"),
    check_size=st.booleans(),
    received=received_times,
)
@example(
    msg={
        "type": "track",
        "userId": "u",
        "event": "e",
        "originalTimestamp": "0001-01-01T00:00:00",
        "sentAt": "9999-12-31T00:00:00",
    },
    type_=None,
    sent_at=None,
    batch_context=None,
    client_ip=None,
    check_size=False,
    received=datetime(2026, 11, 23, tzinfo=UTC),
)
@example(
    msg={"userId": "u", "timestamp": "9999-12-31T23:59:59-05:00"},
    type_="identify",
    sent_at=None,
    batch_context=None,
    client_ip=None,
    check_size=False,
    received=datetime(2026, 11, 23, tzinfo=UTC),
)
@example(
    msg={"userId": "u", "timestamp": "2026-11-23T12:00:00Z"},
    type_="page",
    sent_at="0001-01-01T00:00:00Z",
    batch_context=None,
    client_ip=None,
    check_size=False,
    received=datetime(2026, 11, 23, tzinfo=UTC),
)
def test_enrich_accepts_or_raises_invalid_message(
    msg: dict[str, Any],
    type_: str | None,
    sent_at: Any,
    batch_context: dict[str, Any] | None,
    client_ip: str | None,
    check_size: bool,
    received: datetime,
) -> None:
    try:
        enricher = Enricher(
            "src_test",
            received,
            LIMITS,
            sent_at=sent_at,
            batch_context=batch_context,
            client_ip=client_ip,
        )
        row = enricher.enrich(orjson.loads(orjson.dumps(msg)), type_, check_size)
    except InvalidMessage as exc:
        assert exc.error.code and exc.error.message
        return
    _check_row(row, received, LIMITS)


@PROPS
@given(msg=valid_tracks, received=received_times)
def test_enrich_keeps_valid_tracks(msg: dict[str, Any], received: datetime) -> None:
    original = dict(msg)
    try:
        row = Enricher("src_test", received, LIMITS).enrich(msg, None, True)
    except InvalidMessage as exc:
        # Only a timestamp that cannot be written in UTC may turn a valid track away.
        assert exc.error.field == "timestamp", exc.error
        return
    _check_row(row, received, LIMITS)
    assert row[3] == original["event"]
    if original.get("messageId"):
        assert row[1] == original["messageId"]


@PROPS
@given(
    msg=st.fixed_dictionaries({"userId": st.text(min_size=1, max_size=10)}),
    original=aware_datetimes.filter(lambda d: 1900 < d.year < 2200),
    skew=st.timedeltas(min_value=timedelta(days=-3650), max_value=timedelta(days=3650)),
    received=received_times,
)
def test_enrich_corrects_the_timestamp_for_clock_skew(
    msg: dict[str, Any], original: datetime, skew: timedelta, received: datetime
) -> None:
    sent = original + skew
    msg |= {"originalTimestamp": original.isoformat(), "sentAt": sent.isoformat()}
    row = Enricher("src_test", received, LIMITS).enrich(msg, "identify", False)
    expected = received - skew
    assert abs(row[6] - int(expected.timestamp() * 1000)) <= 1


# -- Pixel API ------------------------------------------------------------------------------------


def _b64_forms(raw: bytes) -> list[str]:
    std = base64.b64encode(raw).decode()
    url = base64.urlsafe_b64encode(raw).decode()
    return [std, std.rstrip("="), url, url.rstrip("="), f"  {url.rstrip('=')}\n"]


@PROPS
@given(json_objects)
def test_pixel_data_round_trips_in_every_base64_form(value: dict[str, Any]) -> None:
    raw = orjson.dumps(value)
    for form in _b64_forms(raw):
        assert decode_data(form) == value
        assert pixel_message([("ignored", "x"), ("data", form)]) == value


@PROPS
@given(st.text(max_size=80) | st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode()))
@example("====")
@example("e30")  # {} without padding
@example("WzFd")  # [1]: JSON but not an object
@example("é")
def test_decode_data_only_raises_invalid_message(data: str) -> None:
    try:
        value = decode_data(data)
    except InvalidMessage as exc:
        assert exc.error.field == "data"
        return
    assert isinstance(value, dict)


params = st.lists(st.tuples(st.text(max_size=30), st.text(max_size=10)), max_size=8)
dotted_keys = st.lists(
    st.text(alphabet="abcxyz_", min_size=1, max_size=3), min_size=1, max_size=MAX_DEPTH + 1
).map(".".join)


@PROPS
@given(params | st.lists(st.tuples(dotted_keys, st.text(max_size=5)), max_size=8))
@example([("a", "1"), ("a.b", "2"), ("a.b.c", "3"), ("a", "4")])
@example([("." * 3, "x")])
@example([(".".join("a" * (MAX_DEPTH + 1)), "x")])
def test_pixel_params_only_raise_invalid_message(pairs: list[tuple[str, str]]) -> None:
    try:
        msg = pixel_message(pairs)
    except InvalidMessage as exc:
        assert exc.error.code in {
            "invalid_parameter",
            "invalid_base64",
            "invalid_json",
            "invalid_type",
        }
        return
    assert isinstance(msg, dict)
    orjson.dumps(msg)


@PROPS
@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh", min_size=1, max_size=6), st.text(max_size=10), max_size=6
    )
)
def test_from_dotted_without_dots_is_the_plain_mapping(fields: dict[str, str]) -> None:
    assert from_dotted(fields.items()) == fields


def test_from_dotted_nests_and_the_last_value_wins() -> None:
    got = from_dotted(
        [
            ("properties.subject", "Hi"),
            ("properties.subject", "Bye"),
            ("userId", "u1"),
            ("context.campaign.name", "n"),
        ]
    )
    assert got == {
        "properties": {"subject": "Bye"},
        "userId": "u1",
        "context": {"campaign": {"name": "n"}},
    }


# -- Basic auth -----------------------------------------------------------------------------------


@PROPS
@given(st.text(max_size=60) | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))
@example("Og==")
@example("\x00")
@example("//79")  # decodes to bytes that are not UTF-8
def test_basic_write_key_only_raises_unauthorized(value: str) -> None:
    try:
        key = basic_write_key(value)
    except Unauthorized as exc:
        assert exc.status == 401
        assert exc.error.field == "Authorization"
        return
    assert isinstance(key, str)
    assert ":" not in key


@PROPS
@given(st.text(min_size=1, max_size=40).filter(lambda k: ":" not in k))
def test_basic_write_key_round_trips(key: str) -> None:
    with_colon = base64.b64encode(f"{key}:".encode()).decode()
    bare = base64.b64encode(key.encode()).decode()
    for form in (with_colon, bare, with_colon.rstrip("="), bare.rstrip("="), f" {with_colon} "):
        assert basic_write_key(form) == key


# -- request bodies: limits and compression -------------------------------------------------------

BODY_LIMIT = 32 * 1024


def _request(body: bytes, headers: dict[str, str], chunk: int = 16 * 1024) -> Request:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent >= len(pieces):
            return {"type": "http.disconnect"}
        piece = pieces[sent]
        sent += 1
        return {"type": "http.request", "body": piece, "more_body": sent < len(pieces)}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/track",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "query_string": b"",
    }
    return Request(scope, receive)


def _read(body: bytes, headers: dict[str, str], limit: int = BODY_LIMIT) -> bytes:
    return asyncio.run(read_body(_request(body, headers), limit))


@functools.cache
def _bomb(fmt: str, size: int) -> bytes:
    """``size`` bytes of zeros compressed: a few KB on the wire, megabytes inflated."""
    wbits = {"gzip": 31, "deflate": 15}[fmt]
    comp = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = b"\0" * (1 << 20)
    out = [comp.compress(block) for _ in range(size >> 20)]
    out.append(comp.flush())
    return b"".join(out)


@pytest.mark.parametrize(
    ("fmt", "header"), [("gzip", "gzip"), ("gzip", "x-gzip"), ("deflate", "deflate")]
)
def test_a_compression_bomb_is_refused_without_inflating_it(fmt: str, header: str) -> None:
    bomb = _bomb(fmt, 24 << 20)
    assert len(bomb) < BODY_LIMIT
    with pytest.raises(TidingsError) as caught:
        _read(bomb, {"Content-Encoding": header})
    assert caught.value.status == 400
    assert caught.value.error.code == "payload_too_large"


def test_a_bomb_inside_a_bomb_is_only_inflated_once() -> None:
    inner = _bomb("gzip", 16 << 20)
    outer = gzip.compress(inner)
    assert _read(outer, {"Content-Encoding": "gzip"}) == inner


def test_a_body_over_the_limit_is_refused_by_its_declared_length_and_by_its_bytes() -> None:
    big = b"x" * (BODY_LIMIT + 1)
    for headers in ({"Content-Length": str(len(big))}, {}):
        with pytest.raises(TidingsError) as caught:
            _read(big, headers)
        assert caught.value.error.code == "payload_too_large"


@PROPS
@given(
    body=st.binary(max_size=2048),
    encoding=st.sampled_from(["gzip", "x-gzip", "deflate", "GZIP ", "identity", "", "br", "zstd"]),
    limit=st.integers(min_value=1, max_value=4096),
)
def test_read_body_answers_any_bytes_with_a_body_or_a_clear_error(
    body: bytes, encoding: str, limit: int
) -> None:
    try:
        out = _read(body, {"Content-Encoding": encoding}, limit)
    except TidingsError as exc:
        assert exc.status in {400, 415}
        assert exc.error.code in {"payload_too_large", "invalid_encoding", "unsupported_encoding"}
        return
    assert len(out) <= limit


@PROPS
@given(
    body=st.binary(max_size=4096),
    fmt=st.sampled_from(["gzip", "deflate"]),
    cut=st.integers(min_value=1, max_value=64),
)
def test_read_body_inflates_what_fits_and_refuses_truncated_streams(
    body: bytes, fmt: str, cut: int
) -> None:
    packed = gzip.compress(body) if fmt == "gzip" else zlib.compress(body)
    assert _read(packed, {"Content-Encoding": fmt}, 4096) == body
    truncated = packed[: max(0, len(packed) - cut)]
    with pytest.raises(TidingsError) as caught:
        _read(truncated, {"Content-Encoding": fmt}, 4096)
    assert caught.value.error.code == "invalid_encoding"
