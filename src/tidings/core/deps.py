"""The app's container of services, and ``Annotated`` dependencies routers declare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from tidings.campaigns.service import CampaignService
from tidings.catalog.images import ImageCache
from tidings.catalog.service import CatalogService
from tidings.collect.debugger import Debugger
from tidings.collect.ingest import IngestQueue
from tidings.collect.service import CollectService
from tidings.collect.sources import SourceService
from tidings.collect.store import CollectStore
from tidings.content.decisions import DecisionLog
from tidings.content.service import ContentService
from tidings.core.auth import TokenService
from tidings.core.clock import Clock
from tidings.core.db import Database
from tidings.core.settings import Settings
from tidings.demo.pictures import Pictures
from tidings.demo.service import DemoEmails
from tidings.pipeline.runner import Pipeline
from tidings.profiles.retention import Retention
from tidings.profiles.service import ProfileService
from tidings.tracking.service import TrackingService
from tidings.web.service import AdminUI, LoginRequired, Visit
from tidings.web.sessions import CSRF_FIELD


@dataclass(slots=True)
class Container:
    """Everything one app instance owns. Built by ``create_app``; no module-level state."""

    settings: Settings
    clock: Clock
    db: Database
    tokens: TokenService
    collect_store: CollectStore
    sources: SourceService
    ingest: IngestQueue
    collect: CollectService
    debugger: Debugger
    pipeline: Pipeline
    profiles: ProfileService
    retention: Retention
    catalog: CatalogService
    images: ImageCache
    content: ContentService
    decisions: DecisionLog
    pictures: Pictures
    demo: DemoEmails
    tracking: TrackingService
    campaigns: CampaignService
    web: AdminUI


def container_of(conn: HTTPConnection) -> Container:
    container: Container = conn.app.state.container
    return container


# Declares the scheme in OpenAPI; the check itself is TokenService's.
_bearer = HTTPBearer(auto_error=False, description="An admin token from `tidings tokens create`")


def _admin(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Container:
    c = container_of(request)
    c.tokens.check_header(request.headers.get("authorization"))
    return c


ContainerDep = Annotated[Container, Depends(container_of)]
AdminDep = Annotated[Container, Depends(_admin)]


# The admin UI (cookie sessions). A page asks for a signed-in user; a form's POST also checks
# its CSRF token against the session (FormDep alone: the login form, before anyone signs in).
def _signed_in(request: Request) -> Visit:
    visit = container_of(request).web.visit(request)
    if visit.user is None:
        raise LoginRequired()
    return visit


async def _form_checked(request: Request) -> Visit:
    web = container_of(request).web
    visit = web.visit(request)
    form = await request.form()  # parsed once: the route's Form() fields reuse it
    web.check_csrf(visit, form.get(CSRF_FIELD))
    return visit


async def _form_signed_in(request: Request) -> Visit:
    if _signed_in(request).user is None:  # before the form is read
        raise LoginRequired()
    return await _form_checked(request)


UserDep = Annotated[Visit, Depends(_signed_in)]
FormDep = Annotated[Visit, Depends(_form_checked)]
UserFormDep = Annotated[Visit, Depends(_form_signed_in)]
