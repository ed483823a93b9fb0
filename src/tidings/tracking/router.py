"""HTTP for tracking: the open pixel, click redirects, wrapping an email, ESP webhooks."""

from __future__ import annotations

import html
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from tidings.collect.pixel import PIXEL_HEADERS, TRANSPARENT_GIF
from tidings.core.deps import AdminDep, container_of
from tidings.core.errors import TidingsError
from tidings.core.http import client_ip, read_body
from tidings.core.schemas import UNAUTHORIZED, error

from .schemas import WebhookOut, WrapIn, WrapOut
from .service import Fetch
from .webhooks import WebhookRequest
from .wrap import WrapOptions

TokenPath = Annotated[str, Path(min_length=1, max_length=8192, description="A signed token")]


def _fetch(request: Request, token: str) -> Fetch:
    return Fetch(
        token=token,
        query_string=request.scope.get("query_string", b"").decode("latin-1"),
        user_agent=request.headers.get("user-agent"),
        client_ip=client_ip(request),
    )


def _bad_link_page(exc: TidingsError) -> Response:
    message = html.escape(exc.error.message)
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Link not valid</title>"
        "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
        "<h1>This link is not valid</h1>"
        f"<p>{message}</p><p>It may have been cut or changed. Open it again from the email, "
        "or copy the whole address.</p></body></html>"
    )
    return Response(page, status_code=exc.status, media_type="text/html")


def build_router() -> APIRouter:
    router = APIRouter(tags=["tracking"])

    @router.get(
        "/t/o/{token}.gif",
        response_class=Response,
        responses={200: {"content": {"image/gif": {}}, "description": "1x1 transparent GIF"}},
        summary="Open pixel",
    )
    async def open_pixel(token: TokenPath, request: Request) -> Response:
        """Records `Email Opened` for a genuine token; always answers the GIF, uncached."""
        await container_of(request).tracking.record_open(_fetch(request, token))
        return Response(TRANSPARENT_GIF, media_type="image/gif", headers=PIXEL_HEADERS)

    @router.get(
        "/t/c/{token}",
        response_class=RedirectResponse,
        status_code=302,
        responses={
            302: {"description": "To the signed target, with UTM parameters added"},
            400: {
                "description": "A forged, altered or cut link: no redirect",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
        },
        summary="Click redirect",
    )
    async def click(token: TokenPath, request: Request) -> Response:
        """Records `Email Link Clicked` and redirects to the link's signed target."""
        try:
            target = await container_of(request).tracking.click(_fetch(request, token))
        except TidingsError as exc:
            if "text/html" in request.headers.get("accept", ""):
                return _bad_link_page(exc)
            raise
        return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})

    @router.get(
        "/t/u/{token}",
        response_class=Response,
        responses={
            200: {"content": {"text/html": {}}, "description": "Asks to confirm"},
            400: {"content": {"text/html": {}}, "description": "A forged or altered link"},
        },
        summary="Unsubscribe page",
    )
    def unsubscribe_page(token: TokenPath, request: Request) -> Response:
        """A confirmation page (a GET must not unsubscribe: scanners follow links); its
        button POSTs to the same address."""
        action = html.escape(request.url.path, quote=True)
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Unsubscribe</title>"
            "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
            "<h1>Unsubscribe</h1><p>Stop receiving these emails?</p>"
            f"<form method=post action='{action}'><button>Unsubscribe</button></form>"
            "</body></html>"
        )
        return Response(page, media_type="text/html", headers={"Cache-Control": "no-store"})

    @router.post(
        "/t/u/{token}",
        response_class=Response,
        responses={
            200: {"content": {"text/html": {}}, "description": "Unsubscribed"},
            400: {
                "description": "A forged or altered link",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}},
                    "text/html": {"schema": {"type": "string"}},
                },
            },
        },
        summary="Unsubscribe (RFC 8058 one-click)",
    )
    async def unsubscribe(token: TokenPath, request: Request) -> Response:
        """Records `Unsubscribed` for the link's recipient and campaign; mail clients POST
        here from the `List-Unsubscribe` header."""
        try:
            await container_of(request).tracking.unsubscribe(_fetch(request, token))
        except TidingsError as exc:
            if "text/html" in request.headers.get("accept", ""):
                return _bad_link_page(exc)
            raise
        page = (
            "<!doctype html><html lang=en><meta charset=utf-8><title>Unsubscribed</title>"
            "<body style='font-family:sans-serif;max-width:36em;margin:4em auto'>"
            "<h1>You are unsubscribed</h1><p>You will get no more of these emails.</p>"
            "</body></html>"
        )
        return Response(page, media_type="text/html", headers={"Cache-Control": "no-store"})

    @router.post(
        "/v1/emails/wrap",
        response_model=WrapOut,
        responses={**UNAUTHORIZED, 400: error("The ESP needs a recipient_tag")},
        summary="Wrap an email's links and add the open pixel",
    )
    def wrap_email(body: WrapIn, request: Request, c: AdminDep) -> dict[str, Any]:
        """Every trackable link becomes a signed click URL and the open pixel goes in before
        `</body>`; the rest of the HTML is kept byte for byte, ESP merge tags included."""
        options = WrapOptions(
            campaign_id=body.campaign_id,
            esp=body.esp,
            campaign_name=body.campaign_name,
            email_id=body.email_id,
            email_subject=body.email_subject,
            recipient_tag=body.recipient_tag,
            utm_source=body.utm_source,
            skip_unsubscribe=body.skip_unsubscribe,
            add_pixel=body.add_pixel,
        )
        wrapped = c.tracking.wrap(body.html, options, str(request.base_url))
        return {
            "html": wrapped.html,
            "links_wrapped": wrapped.links_wrapped,
            "skipped": [{"href": s.href, "reason": s.reason} for s in wrapped.skipped],
            "pixel_added": wrapped.pixel_added,
            "complete": wrapped.complete,
        }

    @router.post(
        "/v1/webhooks/{esp}",
        response_model=WebhookOut,
        responses={
            400: error("The body is not what this ESP sends (kept for inspection)"),
            401: error("Missing or wrong signature or secret (kept for inspection)"),
            404: error("No webhook with this name is configured"),
            429: error("Ingest queue full; see Retry-After (the ESP retries)"),
            503: error("Storage unavailable; see Retry-After (the ESP retries)"),
        },
        summary="ESP event webhook (sendgrid, mandrill, postmark, or a configured mapping)",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/json": {"schema": {}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                }
            }
        },
    )
    async def webhook(
        esp: Annotated[str, Path(min_length=1, max_length=60)], request: Request
    ) -> dict[str, Any]:
        """Verifies the ESP's signature and records its events as Email spec events."""
        c = container_of(request)
        body = await read_body(request, c.settings.webhook_max_bytes)
        url = str(request.url)
        if c.settings.public_url:  # the address the ESP was given, not the one behind a proxy
            query = f"?{request.url.query}" if request.url.query else ""
            url = c.settings.public_url.rstrip("/") + request.url.path + query
        outcome = await c.tracking.webhook(
            esp,
            WebhookRequest(body, request.headers, url, request.headers.get("authorization")),
            client_ip(request),
        )
        return {
            "success": True,
            "accepted": outcome.accepted,
            "ignored": outcome.ignored,
            "rejected": outcome.rejected,
        }

    @router.head("/v1/webhooks/{esp}", include_in_schema=False)
    def webhook_check(esp: str) -> Response:
        """Mandrill checks a webhook URL with HEAD before it saves it."""
        return Response(status_code=200)

    return router
