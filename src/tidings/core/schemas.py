"""Response models every context documents: the one error shape, and the admin errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ErrorResponse(BaseModel):
    success: Literal[False] = False
    code: str = Field(..., examples=["invalid_write_key"])
    message: str
    field: str | None = None


def error(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for the error shape."""
    return {"model": ErrorResponse, "description": description}


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: error("Missing, unknown or revoked admin token")
}
