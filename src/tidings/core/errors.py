"""One error model: a code, the field at fault and a message, turned into HTTP in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response


@dataclass(frozen=True, slots=True)
class FieldError:
    code: str
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "message": self.message}


class TidingsError(Exception):
    """An error the caller can fix; carries its HTTP status."""

    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error = FieldError(code, message, field)
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        return {"success": False, **self.error.as_dict(), **self.extra}


class Unauthorized(TidingsError):
    status = 401


class Forbidden(TidingsError):
    status = 403


class NotFound(TidingsError):
    status = 404


class Conflict(TidingsError):
    status = 409


class TooManyRequests(TidingsError):
    status = 429


class ServiceUnavailable(TidingsError):
    status = 503


def error_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    """The JSON answer for an error, the same from every handler and middleware."""
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )
