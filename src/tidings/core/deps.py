"""The app's container of services, and ``Annotated`` dependencies routers declare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

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
from tidings.pipeline.runner import Pipeline
from tidings.profiles.retention import Retention
from tidings.profiles.service import ProfileService
from tidings.tracking.service import TrackingService


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
    tracking: TrackingService


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
