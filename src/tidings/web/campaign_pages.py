"""The admin UI's campaigns pages (HTTP only): the list, and a campaign's settings, its send
(started with the form's CSRF token, its progress polled as JSON) and its engagement report.
Everything shown is the campaigns service's own: the same send job and report as the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.responses import Response

from tidings.core.deps import Container, ContainerDep, UserDep, UserFormDep
from tidings.core.errors import TidingsError

from .service import Visit

CAMPAIGNS_PAGE = 50
RUNNING = ("queued", "sending")


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The per-variant rows with each one's share of the best variant's clicks (the bars)."""
    rows = report["variants"]
    top = max((r["unique_clicks"] for r in rows), default=0)
    return [
        {
            **r,
            "click_to_open": r["unique_clicks"] / r["unique_opens"] if r["unique_opens"] else None,
            "share": r["unique_clicks"] / top if top else 0.0,
        }
        for r in rows
    ]


async def _campaign_page(
    c: Container, visit: Visit, campaign_id: str, status: int = 200, error: str | None = None
) -> Response:
    campaign = c.campaigns.get(campaign_id)
    report = await c.campaigns.report(campaign_id)
    send = c.campaigns.status(campaign_id)
    return c.web.page(
        visit,
        "campaign.html",
        status,
        active="campaigns",
        campaign=campaign,
        send=send,
        running=send["status"] in RUNNING,
        report=report,
        variants=report_rows(report),
        error=error,
    )


def add_campaign_routes(router: APIRouter) -> None:
    @router.get("/admin/campaigns")
    def campaigns_page(c: ContainerDep, visit: UserDep) -> Response:
        return c.web.page(
            visit,
            "campaigns.html",
            active="campaigns",
            campaigns=c.campaigns.overview(CAMPAIGNS_PAGE),
        )

    @router.get("/admin/campaigns/{campaign_id}")
    async def campaign_page(c: ContainerDep, visit: UserDep, campaign_id: str) -> Response:
        return await _campaign_page(c, visit, campaign_id)

    @router.post("/admin/campaigns/{campaign_id}/send")
    async def send_campaign(
        request: Request, c: ContainerDep, visit: UserFormDep, campaign_id: str
    ) -> Response:
        """Starts the send job (the API's own: resumes, never sends anyone twice); the page
        then polls its progress."""
        base_url = c.settings.public_url or str(request.base_url)
        try:
            await c.campaigns.start_send(campaign_id, base_url)
        except TidingsError as exc:
            if exc.status == 404:
                raise
            return await _campaign_page(c, visit, campaign_id, exc.status, exc.error.message)
        target = f"/admin/campaigns/{campaign_id}#send"
        return c.web.finish(RedirectResponse(target, status_code=303), visit)

    @router.get("/admin/campaigns/{campaign_id}/progress")
    def send_progress(c: ContainerDep, visit: UserDep, campaign_id: str) -> Response:
        """The send's status as JSON, for the page's progress bar."""
        return c.web.finish(JSONResponse(c.campaigns.status(campaign_id)), visit)
