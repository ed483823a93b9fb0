"""HTTP for sources (admin token): create, list, rotate keys, and the live debugger."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from tidings.core.clock import from_ms, iso
from tidings.core.deps import AdminDep
from tidings.core.schemas import ErrorResponse

from .store import SourceRecord

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, unknown or revoked admin token"}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No source with this id"}
}


class SourceIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, examples=["Web shop"])


class SourceOut(BaseModel):
    id: str
    name: str
    write_key_hint: str = Field(..., description="The key's ends; the key is shown only once")
    created_at: str
    rotated_at: str | None


class SourceWithKey(SourceOut):
    write_key: str = Field(..., description="Shown only in this response: keep it")


def _out(record: SourceRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "write_key_hint": record.write_key_hint,
        "created_at": iso(from_ms(record.created_at)),
        "rotated_at": iso(from_ms(record.rotated_at)) if record.rotated_at else None,
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1/sources", tags=["sources"], responses=UNAUTHORIZED)

    @router.post(
        "",
        status_code=201,
        response_model=SourceWithKey,
        responses={400: {"model": ErrorResponse, "description": "A blank name"}},
    )
    def create_source(body: SourceIn, c: AdminDep) -> dict[str, Any]:
        """Create a source. The write key is in this response and never shown again."""
        made = c.sources.create(body.name)
        return {**_out(made.source), "write_key": made.write_key}

    @router.get("", response_model=list[SourceOut])
    def list_sources(c: AdminDep) -> list[dict[str, Any]]:
        return [_out(s) for s in c.sources.list()]

    @router.get("/{source_id}", response_model=SourceOut, responses=NOT_FOUND)
    def get_source(source_id: str, c: AdminDep) -> dict[str, Any]:
        return _out(c.sources.get(source_id))

    @router.post("/{source_id}/rotate-key", response_model=SourceWithKey, responses=NOT_FOUND)
    def rotate_key(source_id: str, c: AdminDep) -> dict[str, Any]:
        """Issue a new write key; the old one stops working (within 30 s in other processes)."""
        made = c.sources.rotate(source_id)
        return {**_out(made.source), "write_key": made.write_key}

    @router.get("/{source_id}/events", responses=NOT_FOUND)
    def recent_events(
        source_id: str,
        c: AdminDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        kind: Literal["event", "rejection"] | None = None,
    ) -> dict[str, Any]:
        """The debugger: newest stored events and rejections (with reasons) of a source."""
        c.sources.get(source_id)
        return c.debugger.recent(source_id, limit, kind)

    @router.get(
        "/{source_id}/events/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}, **NOT_FOUND},
    )
    def stream_events(
        source_id: str,
        request: Request,
        c: AdminDep,
        max_seconds: Annotated[float | None, Query(gt=0, le=86400)] = None,
    ) -> StreamingResponse:
        """The live debugger as server-sent events: `event` and `rejection` messages."""
        c.sources.get(source_id)
        return StreamingResponse(
            c.debugger.stream(source_id, request.is_disconnected, max_seconds),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
