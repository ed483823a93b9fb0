"""The catalog API (admin token): feed import and products, under ``/v1/catalog``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from tidings.core.deps import AdminDep
from tidings.core.errors import TidingsError
from tidings.core.http import read_body
from tidings.core.schemas import UNAUTHORIZED, error

from .feed import detect_format
from .schemas import DeletedOut, ImportSummaryOut, ProductIn, ProductOut, ProductPage
from .service import product_json

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No product has this id")}

_FEED_SCHEMA: dict[str, Any] = {
    "oneOf": [
        {"type": "array", "items": {"type": "object"}},
        {
            "type": "object",
            "properties": {"products": {"type": "array", "items": {"type": "object"}}},
        },
    ]
}
_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A CSV (or TSV) feed with a header row, or a JSON feed",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": _FEED_SCHEMA},
        },
    }
}


def build_router() -> APIRouter:
    router = APIRouter(tags=["catalog"], responses=UNAUTHORIZED)

    @router.post(
        "/v1/catalog/import",
        summary="Import a product feed (CSV or JSON)",
        response_model=ImportSummaryOut,
        responses={
            400: error("Not a feed: empty, not JSON, no id column, or over the size limit"),
            415: error("Unsupported Content-Encoding"),
            422: error("An unknown format"),
        },
        openapi_extra=_IMPORT_BODY,
    )
    async def import_feed(
        request: Request,
        c: AdminDep,
        fmt: Annotated[
            Literal["csv", "json"] | None,
            Query(alias="format", description="csv or json; by default from the Content-Type"),
        ] = None,
    ) -> dict[str, Any]:
        """Insert or update every product of the feed; rows that cannot be read are rejected
        and listed (line or index, field, reason), the others imported. The feed's values win
        over what events taught. Columns may use Google Merchant's names (`id`, `title`,
        `price` as `"19.99 USD"`, `image_link`, `link`, `product_type`, `availability`, …).
        A JSON feed is a list of objects or `{"products": [...]}`. Gzip bodies are accepted
        (`Content-Encoding: gzip`); at most `TIDINGS_CATALOG_IMPORT_MAX_BYTES` (20 MB)."""
        raw = await read_body(request, c.settings.catalog_import_max_bytes)
        if not raw.strip():
            raise TidingsError("empty_feed", "the body is empty: send a CSV or JSON feed", "body")
        chosen = fmt or detect_format(raw, content_type=request.headers.get("content-type"))
        summary = await c.catalog.import_feed(raw, chosen)
        return summary.as_dict()

    @router.get(
        "/v1/catalog/products",
        summary="Products, in id order",
        response_model=ProductPage,
        responses={400: error("A malformed cursor"), 422: error("A parameter out of range")},
    )
    def list_products(
        c: AdminDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None, Query(max_length=400, description="`cursor.next` of the previous page")
        ] = None,
        category: Annotated[
            str | None, Query(max_length=500, description="Exact category (any case)")
        ] = None,
        q: Annotated[
            str | None,
            Query(max_length=200, description="Part of the id, sku, name or brand (any case)"),
        ] = None,
    ) -> dict[str, Any]:
        return c.catalog.page(limit, cursor, category, q)

    def get_product(product_id: str, c: AdminDep) -> dict[str, Any]:
        return product_json(c.catalog.get(product_id))

    async def put_product(product_id: str, body: ProductIn, c: AdminDep) -> dict[str, Any]:
        """The product becomes exactly this: fields left out are cleared (and may be learned
        from events again). Its values win over events', like a feed's."""
        product, _ = await c.catalog.put(product_id, body.model_dump())
        return product_json(product)

    async def delete_product(product_id: str, c: AdminDep) -> dict[str, Any]:
        """Events that mention the product afterwards will learn it again."""
        await c.catalog.delete(product_id)
        return {"product_id": product_id, "deleted": True}

    # The documented routes take any id without a slash (newlines included); the same
    # operations are repeated, undocumented, on a path that also takes ids with slashes.
    for path, documented in (
        ("/v1/catalog/products/{product_id}", True),
        ("/v1/catalog/products/{product_id:path}", False),
    ):
        router.add_api_route(
            path,
            get_product,
            methods=["GET"],
            summary="One product, with where each field came from",
            response_model=ProductOut,
            responses=NOT_FOUND,
            include_in_schema=documented,
        )
        router.add_api_route(
            path,
            put_product,
            methods=["PUT"],
            summary="Create or replace a product (as the feed)",
            response_model=ProductOut,
            responses={
                422: error("A value that cannot be read; `errors` lists each"),
            },
            include_in_schema=documented,
        )
        router.add_api_route(
            path,
            delete_product,
            methods=["DELETE"],
            summary="Delete a product",
            response_model=DeletedOut,
            responses=NOT_FOUND,
            include_in_schema=documented,
        )

    return router
