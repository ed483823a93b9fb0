"""Which source a collection request belongs to: Basic, body ``writeKey`` or Bearer."""

from __future__ import annotations

import base64
import binascii

from tidings.core.auth import TokenService
from tidings.core.errors import Unauthorized

from .sources import SourceService
from .store import SourceRecord


def basic_write_key(value: str) -> str:
    """The write key in ``Basic base64(key:)``; Segment also accepts ``base64(key)``."""
    try:
        decoded = base64.b64decode(value.strip() + "=" * (-len(value.strip()) % 4), validate=True)
        text = decoded.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise Unauthorized(
            "invalid_authorization", "the Basic credentials are not valid base64", "Authorization"
        ) from None
    return text.split(":", 1)[0]


class WriteKeyAuth:
    def __init__(self, sources: SourceService, tokens: TokenService) -> None:
        self.sources = sources
        self.tokens = tokens

    def source_for(self, authorization: str | None, body_key: object) -> SourceRecord:
        """Resolve the source or raise 401 with the reason."""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            scheme = scheme.lower()
            if scheme == "basic":
                return self._by_key(basic_write_key(value), "Authorization")
            if scheme == "bearer":
                token = value.strip()
                source = self.sources.by_write_key(token) if token else None
                if source is not None:
                    return source
                if token and self.tokens.is_valid(token):
                    if not isinstance(body_key, str) or not body_key:
                        raise Unauthorized(
                            "missing_write_key",
                            "with an admin Bearer token, name the source with writeKey in the body",
                            "writeKey",
                        )
                    return self._by_key(body_key, "writeKey")
                raise Unauthorized(
                    "invalid_token",
                    "the Bearer token is neither a write key nor an admin token",
                    "Authorization",
                )
            raise Unauthorized(
                "bad_auth_scheme", "use Basic <base64(writeKey:)> or Bearer", "Authorization"
            )
        if isinstance(body_key, str) and body_key:
            return self._by_key(body_key, "writeKey")
        raise Unauthorized(
            "missing_write_key",
            "send the source's write key as Basic auth user or as writeKey in the body",
            "writeKey",
        )

    def _by_key(self, key: str, field: str) -> SourceRecord:
        if not key:
            raise Unauthorized("missing_write_key", "the write key is empty", field)
        source = self.sources.by_write_key(key)
        if source is None:
            raise Unauthorized("invalid_write_key", "no source has this write key", field)
        return source
