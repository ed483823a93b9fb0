"""HTTP for collection: Segment's tracking API, Pixel API and the analytics.js settings."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.core.deps import container_of
from tidings.core.http import client_ip, parse_json_object, read_body
from tidings.core.schemas import ErrorResponse

from .fastpath import Handler
from .messages import TYPES
from .pixel import PIXEL_HEADERS, TRANSPARENT_GIF
from .schemas import DOC_MODELS, MESSAGE_MODELS, IngestResponse
from .service import RequestFacts

SUCCESS = b'{"success":true}'
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Invalid JSON, a limit exceeded, a bad event"},
    401: {"model": ErrorResponse, "description": "Missing or unknown write key"},
    415: {"model": ErrorResponse, "description": "Unsupported Content-Encoding"},
    429: {"model": ErrorResponse, "description": "Ingest queue full; see Retry-After"},
}


def _body_doc(model: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{model}"}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "text/plain": {"schema": schema}},
        }
    }


def _facts(request: Request, endpoint: str, body_bytes: int) -> RequestFacts:
    return RequestFacts(
        endpoint, request.headers.get("authorization"), client_ip(request), body_bytes
    )


def _single(type_: str) -> Any:
    async def handler(request: Request) -> Response:
        c = container_of(request)
        raw = await read_body(request, c.settings.max_event_bytes)
        facts = _facts(request, type_, len(raw))
        # No local keeps the parsed body: the service drops it before awaiting the commit.
        await c.collect.ingest_one(parse_json_object(raw), type_, facts)
        return Response(SUCCESS, media_type="application/json")

    handler.__name__ = f"collect_{type_}"
    handler.__doc__ = (
        f"Record one `{type_}` message (Segment HTTP Tracking API). 200 means it is committed."
    )
    return handler


async def collect_batch(request: Request) -> Response:
    """Record up to 2500 messages in one request; bad ones are listed by index, good ones kept."""
    c = container_of(request)
    raw = await read_body(request, c.settings.max_batch_bytes)
    facts = _facts(request, "batch", len(raw))
    # No local keeps the parsed body: the service drops it before awaiting the commit.
    outcome = await c.collect.ingest_batch(parse_json_object(raw), facts)
    if outcome.rejected and not outcome.rows:
        return Response(
            orjson.dumps(
                {
                    "success": False,
                    "code": "all_rejected",
                    "message": "no message in the batch was valid",
                    "accepted": 0,
                    "rejected": [r.as_dict() for r in outcome.rejected],
                }
            ),
            status_code=400,
            media_type="application/json",
        )
    body_out: dict[str, Any] = {"success": True, "accepted": len(outcome.rows)}
    if outcome.rejected:
        body_out["rejected"] = [r.as_dict() for r in outcome.rejected]
    return Response(orjson.dumps(body_out), media_type="application/json")


async def collect_pixel(request: Request, method: str) -> Response:
    """Pixel API: always a 1x1 transparent GIF; bad input is recorded for the debugger."""
    c = container_of(request)
    params = list(request.query_params.multi_items())
    if method in TYPES:
        await c.collect.ingest_pixel(method, params, _facts(request, f"pixel/{method}", 0))
    return Response(TRANSPARENT_GIF, media_type="image/gif", headers=PIXEL_HEADERS)


async def collect_metrics(request: Request) -> Response:
    """analytics.js client metrics (`/v1/m`): accepted and discarded."""
    await read_body(request, container_of(request).settings.max_event_bytes)
    return Response(SUCCESS, media_type="application/json")


BATCH_PATHS = ("/batch", "/import", "/b")


def ingest_handlers() -> dict[str, Handler]:
    """Every ingest POST path (``/v1/...``) and its handler: the routes below, and the
    :class:`~tidings.collect.fastpath.CollectFastPath` that serves them ahead of the router."""
    handlers: dict[str, Handler] = {}
    for type_ in TYPES:
        handler = _single(type_)
        handlers[f"/v1/{type_}"] = handlers[f"/v1/{type_[0]}"] = handler
    for path in BATCH_PATHS:
        handlers["/v1" + path] = collect_batch
    return handlers


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["collect"])
    handlers = ingest_handlers()
    for type_ in TYPES:
        doc = _body_doc(MESSAGE_MODELS[type_].__name__)
        for path in (f"/{type_}", f"/{type_[0]}"):
            router.add_api_route(
                path,
                handlers["/v1" + path],
                methods=["POST"],
                response_model=IngestResponse,
                responses=ERRORS,
                openapi_extra=doc,
                operation_id=f"collect{path.replace('/', '_')}",
                summary=f"{type_.capitalize()} (also /v1/{type_[0]})",
            )
    for path in BATCH_PATHS:
        router.add_api_route(
            path,
            handlers["/v1" + path],
            methods=["POST"],
            response_model=IngestResponse,
            responses=ERRORS,
            openapi_extra=_body_doc("BatchRequest"),
            operation_id=f"collect{path.replace('/', '_')}",
            summary="Batch (also /v1/import and /v1/b)",
        )
    router.add_api_route(
        "/pixel/{method}",
        collect_pixel,
        methods=["GET"],
        response_class=Response,
        responses={200: {"content": {"image/gif": {}}, "description": "1x1 transparent GIF"}},
        summary="Pixel API (track, identify, page, screen, group, alias)",
    )
    router.add_api_route("/m", collect_metrics, methods=["POST"], include_in_schema=False)
    return router


__all__ = ["DOC_MODELS", "build_router"]
