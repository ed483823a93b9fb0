"""The Pixel API's query forms: ``?data=<base64 JSON>`` or dotted ``properties.subject=…``."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Any

import orjson

from .messages import InvalidMessage

# A 1x1 transparent GIF, 43 bytes.
TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
MAX_DEPTH = 8


def decode_data(data: str) -> Any:
    """base64 (standard or URL-safe, padding optional) of a JSON object."""
    text = data.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessage("invalid_base64", "data is not valid base64", "data") from None
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("invalid_json", f"data is not JSON: {exc}", "data") from None
    if not isinstance(value, dict):
        raise InvalidMessage("invalid_type", "data must encode a JSON object", "data")
    return value


def from_dotted(params: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """``properties.subject=Hi`` → ``{"properties": {"subject": "Hi"}}``; last value wins."""
    out: dict[str, Any] = {}
    for key, value in params:
        parts = key.split(".")
        if len(parts) > MAX_DEPTH or any(not p for p in parts):
            raise InvalidMessage("invalid_parameter", "not a valid dotted field name", key[:100])
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return out


def pixel_message(params: list[tuple[str, str]]) -> dict[str, Any]:
    """The message a pixel request carries, in either form."""
    data = [v for k, v in params if k == "data"]
    if data:
        return dict(decode_data(data[-1]))
    return from_dotted(params)
