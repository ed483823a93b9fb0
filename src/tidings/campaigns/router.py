"""HTTP for campaigns: CRUD, sending, the report, and inbound replies (SendGrid, Mailgun)."""

from __future__ import annotations

import base64
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from tidings.core.deps import AdminDep, container_of
from tidings.core.errors import NotFound, TidingsError, Unauthorized
from tidings.core.schemas import UNAUTHORIZED, error

from .replies import from_mailgun, from_sendgrid, verify_mailgun
from .schemas import CampaignIn, CampaignList, CampaignOut, InboundOut, ReportOut, SendStatus

NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No campaign has this id")}
CampaignId = Annotated[str, Path(min_length=1, max_length=40, description="A campaign id")]
FORM_BODY = {
    "requestBody": {
        "content": {
            "multipart/form-data": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        }
    }
}


async def _form(request: Request) -> dict[str, str]:
    """The posted form's text fields (attachments are not read into events)."""
    limit = container_of(request).settings.inbound_max_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TidingsError("too_large", f"an inbound post may hold {limit} bytes", status=413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise TidingsError(
            "unsupported_media_type",
            "post multipart/form-data or application/x-www-form-urlencoded",
            status=415,
        )
    try:
        form = await request.form()
    except Exception:  # python-multipart's parse errors have no common base
        raise TidingsError("invalid_form", "the body is not a readable form") from None
    try:
        return {k: v for k, v in form.items() if isinstance(v, str)}
    finally:
        await form.close()


def _sendgrid_secret(request: Request) -> str | None:
    """The secret SendGrid was given: ``?secret=`` in the URL, or the Basic password."""
    given = request.query_params.get("secret")
    header = request.headers.get("authorization", "")
    if given is None and header.lower().startswith("basic "):
        try:
            given = base64.b64decode(header[6:]).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = None
    return given


def build_router() -> APIRouter:
    router = APIRouter(tags=["campaigns"])
    admin = {**UNAUTHORIZED}

    @router.post(
        "/v1/campaigns",
        status_code=201,
        response_model=CampaignOut,
        responses={
            **admin,
            422: error("A field or the template is not valid"),
        },
        summary="Create a campaign",
    )
    def create(body: CampaignIn, c: AdminDep) -> dict[str, Any]:
        """A campaign: name, subject, from, an HTML template, its recipients and window."""
        return c.campaigns.create(body)

    @router.get("/v1/campaigns", response_model=CampaignList, responses=admin, summary="List")
    def list_campaigns(
        c: AdminDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
    ) -> dict[str, Any]:
        """The newest campaigns first."""
        return {"data": c.campaigns.recent(limit)}

    @router.get(
        "/v1/campaigns/{id}",
        response_model=CampaignOut,
        responses={**admin, **NOT_FOUND},
        summary="Read a campaign",
    )
    def get(id: CampaignId, c: AdminDep) -> dict[str, Any]:
        return c.campaigns.get(id)

    @router.put(
        "/v1/campaigns/{id}",
        response_model=CampaignOut,
        responses={
            **admin,
            **NOT_FOUND,
            422: error("A field or the template is not valid"),
        },
        summary="Replace a campaign",
    )
    def put(id: CampaignId, body: CampaignIn, c: AdminDep) -> dict[str, Any]:
        return c.campaigns.replace(id, body)

    @router.delete(
        "/v1/campaigns/{id}",
        status_code=204,
        response_class=Response,
        responses={**admin, **NOT_FOUND, 409: error("The campaign is being sent")},
        summary="Delete a campaign",
    )
    def delete(id: CampaignId, c: AdminDep) -> Response:
        """The campaign and its send records; the events it caused stay in the log."""
        c.campaigns.delete(id)
        return Response(status_code=204)

    @router.post(
        "/v1/campaigns/{id}/send",
        status_code=202,
        response_model=SendStatus,
        responses={
            **admin,
            **NOT_FOUND,
            400: error("SMTP or the from address is not configured, or a block is unknown"),
            409: error("The campaign is being sent"),
        },
        summary="Send a campaign (a background job)",
    )
    async def send(id: CampaignId, request: Request, c: AdminDep) -> dict[str, Any]:
        """Starts sending to every recipient not sent to yet; poll `GET …/send` for progress.
        Starting again after a crash or a failure resumes without sending anyone twice."""
        return await c.campaigns.start_send(id, str(request.base_url))

    @router.get(
        "/v1/campaigns/{id}/send",
        response_model=SendStatus,
        responses={**admin, **NOT_FOUND},
        summary="A campaign's send status",
    )
    def send_status(id: CampaignId, c: AdminDep) -> dict[str, Any]:
        """not_sent, queued, sending (sent of total), done or failed, with counts."""
        return c.campaigns.status(id)

    @router.get(
        "/v1/campaigns/{id}/report",
        response_model=ReportOut,
        responses={**admin, **NOT_FOUND},
        summary="A campaign's report",
    )
    async def report(id: CampaignId, c: AdminDep) -> dict[str, Any]:
        """Delivered, bounced, human opens and clicks (machine ones apart), click-to-open,
        unsubscribes, replies, attributed conversions and revenue, per open-time variant."""
        return await c.campaigns.report(id)

    @router.post(
        "/v1/inbound/sendgrid",
        response_model=InboundOut,
        responses={
            400: error("Not an Inbound Parse post"),
            401: error("Missing or wrong secret"),
            404: error("SendGrid inbound is not configured"),
            413: error("Too large"),
            415: error("Not a form"),
        },
        summary="SendGrid Inbound Parse: replies",
        openapi_extra=FORM_BODY,
    )
    async def inbound_sendgrid(request: Request) -> dict[str, Any]:
        """A reply to a campaign email, as SendGrid Inbound Parse posts it; recorded as
        `Email Replied`. Unmatched emails are answered 200 (kept as a rejection)."""
        c = container_of(request)
        secret = c.settings.inbound_sendgrid_secret
        if secret is None:
            raise NotFound("inbound_not_configured", "set TIDINGS_INBOUND_SENDGRID_SECRET")
        given = _sendgrid_secret(request)
        if given is None or not hmac.compare_digest(given, secret.get_secret_value()):
            raise Unauthorized("bad_secret", "the secret is missing or wrong", "secret")
        mail = from_sendgrid(await _form(request))
        match = await c.campaigns.record_reply(mail, "inbound/sendgrid")
        return _inbound(match)

    @router.post(
        "/v1/inbound/mailgun",
        response_model=InboundOut,
        responses={
            400: error("Not a Mailgun route post"),
            401: error("Missing, wrong or stale signature"),
            404: error("Mailgun inbound is not configured"),
            413: error("Too large"),
            415: error("Not a form"),
        },
        summary="Mailgun routes (forward): replies",
        openapi_extra=FORM_BODY,
    )
    async def inbound_mailgun(request: Request) -> dict[str, Any]:
        """A reply to a campaign email, as a Mailgun route forwards it (signature checked);
        recorded as `Email Replied`."""
        c = container_of(request)
        key = c.settings.inbound_mailgun_signing_key
        if key is None:
            raise NotFound("inbound_not_configured", "set TIDINGS_INBOUND_MAILGUN_SIGNING_KEY")
        form = await _form(request)
        verify_mailgun(form, key.get_secret_value(), c.clock.now().timestamp())
        match = await c.campaigns.record_reply(from_mailgun(form), "inbound/mailgun")
        return _inbound(match)

    return router


def _inbound(match: Any) -> dict[str, Any]:
    return {
        "success": True,
        "matched": match.matched,
        "campaign_id": match.campaign_id,
        "email_id": match.email_id,
        "matched_by": match.matched_by,
    }
