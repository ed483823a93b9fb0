"""HTTP for the demo: product pictures of the simulated shop."""

from __future__ import annotations

import re
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import Response

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


def build_router() -> APIRouter:
    router = APIRouter(tags=["demo"])
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
