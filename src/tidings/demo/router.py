"""HTTP for the demo: product pictures of the simulated shop."""

from __future__ import annotations

import re
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tidings.core.deps import container_of
from tidings.core.errors import NotFound
from tidings.core.schemas import error

PRODUCT_ID: Final = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


async def product_picture(request: Request, product_id: str) -> Response:
    """A drawn picture of a product of the demo shop (any id gets one; known products show
    their catalog name)."""
    if not PRODUCT_ID.match(product_id):
        raise NotFound("not_found", "no such product picture", field="product_id")
    c = container_of(request)
    found = c.catalog.products([product_id]).get(product_id)
    name = found.name if found is not None and found.name else product_id
    category = found.category if found is not None and found.category else ""
    png = c.pictures.get(product_id, name, category)
    return Response(png, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


async def demo_email(request: Request, u: str | None = None) -> Response:
    """The demo email as one recipient receives it (`u`), or, without `u`, the three sample
    shoppers' emails side by side. 404 until `tidings demo` has seeded the shop."""
    c = container_of(request)
    base = str(request.base_url)
    html = c.demo.email(u, base) if u is not None else c.demo.three_up(base)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _json_error(description: str) -> dict[str, Any]:
    """An error documented as the JSON it is, on a route whose answers are HTML."""
    schema = {"$ref": "#/components/schemas/ErrorResponse"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def build_router() -> APIRouter:
    router = APIRouter(tags=["demo"])
    router.add_api_route(
        "/demo/email",
        demo_email,
        methods=["GET"],
        response_class=HTMLResponse,
        responses={
            400: _json_error("A u that is empty or too long"),
            404: _json_error("The demo is not seeded on this server"),
        },
        summary="The demo email, as a recipient receives it",
    )
    router.add_api_route(
        "/demo/products/{product_id}.png",
        product_picture,
        methods=["GET"],
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}}, "description": "A product picture"},
            404: error("Not a product id (letters, digits, . _ - only)"),
        },
        summary="A drawn product picture for the demo shop",
    )
    return router
