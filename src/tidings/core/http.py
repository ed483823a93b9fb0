"""HTTP helpers shared by routers: capped, optionally compressed JSON bodies."""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from starlette.requests import Request

from tidings.core.errors import TidingsError

_DECODERS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def _too_large(limit: int) -> TidingsError:
    return TidingsError(
        "payload_too_large",
        f"Exceed payload limit: at most {limit} bytes per request",
        None,
        status=400,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, decompressed, refusing more than ``limit`` bytes either way."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding and encoding != "identity":
        wbits = _DECODERS.get(encoding)
        if wbits is None:
            raise TidingsError(
                "unsupported_encoding",
                f"Content-Encoding {encoding!r} is not supported; use gzip or deflate",
                "Content-Encoding",
                status=415,
            )
        decoder = zlib.decompressobj(wbits)
        try:
            body = decoder.decompress(body, limit + 1)
        except zlib.error:
            raise TidingsError(
                "invalid_encoding", f"the body is not valid {encoding}", "Content-Encoding"
            ) from None
        if len(body) > limit or decoder.unconsumed_tail:
            raise _too_large(limit)
        if not decoder.eof:  # a truncated stream: its events would be cut off silently
            raise TidingsError(
                "invalid_encoding", f"the {encoding} body ends early", "Content-Encoding"
            )
    return body


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object, whatever the Content-Type (analytics.js sends text/plain)."""
    if not body:
        raise TidingsError("invalid_json", "the body is empty; send a JSON object", None)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TidingsError("invalid_json", f"the body is not valid JSON: {exc}", None) from None
    if not isinstance(value, dict):
        raise TidingsError("invalid_json", "the body must be a JSON object", None)
    return value


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None
