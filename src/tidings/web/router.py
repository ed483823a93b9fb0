"""The admin UI's pages (HTTP only; the logic is in web/service.py and the other contexts).

Every route here is left out of the OpenAPI document: these are pages for a browser, signed in
with a session cookie, not the admin-token API.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tidings.catalog.feed import FeedFormat, detect_format
from tidings.collect.sources import NewSource
from tidings.core.deps import ContainerDep, FormDep, UserDep, UserFormDep, container_of
from tidings.core.errors import NotFound, TidingsError

from .block_pages import add_block_routes
from .blocks import blocks_for
from .campaign_pages import add_campaign_routes
from .dashboard import dashboard
from .service import LoginRequired, safe_next
from .sessions import CSRF_FIELD
from .templating import STATIC, profile_path

PROFILE_EVENTS_PAGE = 20
CATALOG_PAGE = 50
UPLOAD_OVERHEAD = 64 * 1024  # multipart boundaries, headers and the other fields
# Answered with JSON, not a page, when something is wrong: what scripts fetch.
_SCRIPTED = ("/stream", "/progress", "/preview", "/blocks/rule")


def _redirect(c: ContainerDep, visit: Any, to: str) -> Response:
    return c.web.finish(RedirectResponse(to, status_code=303), visit)


def build_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def root() -> RedirectResponse:
        return RedirectResponse("/admin", status_code=307)

    # -- signing in and out ---------------------------------------------------------------------
    @router.get("/admin/login")
    def login_form(
        request: Request,
        c: ContainerDep,
        next: Annotated[str | None, Query(max_length=2000)] = None,
        signed_out: bool = False,
    ) -> Response:
        visit = c.web.visit(request)
        if visit.user is not None:
            return _redirect(c, visit, safe_next(next))
        return c.web.page(
            visit, "login.html", next=safe_next(next), email="", error=None, signed_out=signed_out
        )

    @router.post("/admin/login")
    def login(
        request: Request,
        c: ContainerDep,
        visit: FormDep,
        email: Annotated[str, Form(max_length=320)],
        password: Annotated[str, Form(max_length=1024)],
        next: Annotated[str, Form(max_length=2000)] = "/admin",
    ) -> Response:
        client = request.client.host if request.client else None
        try:
            c.web.sign_in(visit, email, password, client)
        except TidingsError as exc:
            return c.web.page(
                visit,
                "login.html",
                status=exc.status,
                headers=exc.headers,
                next=safe_next(next),
                email=email,
                error=exc.error.message,
                signed_out=False,
            )
        return _redirect(c, visit, safe_next(next))

    @router.post("/admin/logout")
    def logout(c: ContainerDep, visit: FormDep) -> Response:
        c.web.sign_out(visit)
        return _redirect(c, visit, "/admin/login?signed_out=true")

    # -- dashboard ------------------------------------------------------------------------------
    @router.get("/admin")
    def dashboard_page(c: ContainerDep, visit: UserDep) -> Response:
        return c.web.page(visit, "dashboard.html", active="dashboard", panels=dashboard(c))

    # -- sources --------------------------------------------------------------------------------
    def sources_page(
        c: ContainerDep, visit: Any, status: int = 200, error: str | None = None
    ) -> Response:
        sources = [(s, c.collect_store.count_events(s.id)) for s in c.sources.list()]
        return c.web.page(
            visit, "sources.html", status, active="sources", sources=sources, error=error
        )

    @router.get("/admin/sources")
    def list_sources(c: ContainerDep, visit: UserDep) -> Response:
        return sources_page(c, visit)

    def key_page(
        request: Request, c: ContainerDep, visit: Any, made: NewSource, rotated: bool
    ) -> Response:
        base_url = (c.settings.public_url or str(request.base_url)).rstrip("/")
        return c.web.page(
            visit,
            "source_key.html",
            200 if rotated else 201,
            active="sources",
            made=made,
            rotated=rotated,
            base_url=base_url,
        )

    @router.post("/admin/sources")
    def create_source(
        request: Request,
        c: ContainerDep,
        visit: UserFormDep,
        name: Annotated[str, Form(max_length=1000)],
    ) -> Response:
        try:
            made = c.sources.create(name)
        except TidingsError as exc:
            return sources_page(c, visit, exc.status, exc.error.message)
        return key_page(request, c, visit, made, rotated=False)

    @router.post("/admin/sources/{source_id}/rotate")
    def rotate_key(
        request: Request, c: ContainerDep, visit: UserFormDep, source_id: str
    ) -> Response:
        return key_page(request, c, visit, c.sources.rotate(source_id), rotated=True)

    @router.get("/admin/sources/{source_id}")
    def debugger_page(c: ContainerDep, visit: UserDep, source_id: str) -> Response:
        source = c.sources.get(source_id)
        recent = c.debugger.recent(source_id, 50)
        entries = sorted(
            recent["events"] + recent["rejections"],
            key=lambda e: (e["receivedAt"], e.get("seq") or 0),
            reverse=True,
        )
        return c.web.page(
            visit,
            "debugger.html",
            active="sources",
            source=source,
            entries=entries,
            after_seq=max((e["seq"] for e in recent["events"]), default=0),
            after_rejection=max((e["id"] for e in recent["rejections"]), default=0),
            rejection_counts=sorted(recent["rejection_counts"].items(), key=lambda kv: -kv[1]),
        )

    @router.get("/admin/sources/{source_id}/stream")
    def debugger_stream(
        request: Request,
        c: ContainerDep,
        visit: UserDep,
        source_id: str,
        after_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
        after_rejection: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> StreamingResponse:
        """The page's live feed, from after what the page already shows."""
        c.sources.get(source_id)
        return StreamingResponse(
            c.debugger.stream(
                source_id, request.is_disconnected, after=(after_seq, after_rejection)
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- profiles -------------------------------------------------------------------------------
    @router.get("/admin/profiles")
    def search_profiles(
        c: ContainerDep,
        visit: UserDep,
        q: Annotated[str | None, Query(max_length=500)] = None,
        id_type: Annotated[str, Query(max_length=60)] = "any",
    ) -> Response:
        error, status = None, 200
        if q is not None:
            try:
                return _redirect(c, visit, profile_path(c.web.find_profile(q, id_type)))
            except TidingsError as exc:
                error, status = exc.error.message, exc.status
        return c.web.page(
            visit,
            "profiles.html",
            status,
            active="profiles",
            q=q or "",
            id_type=id_type,
            id_types=c.profiles.id_types(),
            error=error,
        )

    @router.get("/admin/profiles/{ref:path}")
    def profile_page(
        c: ContainerDep,
        visit: UserDep,
        ref: str,
        before: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Response:
        profiles = c.profiles
        cursor = profiles.events_cursor(before)
        found = profiles.resolve(ref)
        recipient = profiles.recipient(found)
        return c.web.page(
            visit,
            "profile.html",
            active="profiles",
            ref=ref,
            path=profile_path(ref),
            address=ref,
            summary=profiles.summary(found),
            identities=profiles.identities(found)["data"],
            recipient=recipient,
            shows=blocks_for(c.content, recipient) if recipient else [],
            merges=profiles.merges(found),
            viewed=profiles.recently_viewed(found, 10, exclude_purchased=False)["data"],
            cart=profiles.cart(found),
            timeline=profiles.events(found, PROFILE_EVENTS_PAGE, cursor),
            first_page=cursor is None,
        )

    # -- catalog --------------------------------------------------------------------------------
    @router.get("/admin/catalog")
    def catalog_page(
        c: ContainerDep,
        visit: UserDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
    ) -> Response:
        return c.web.page(
            visit,
            "catalog.html",
            active="catalog",
            q=q or "",
            cursor=cursor,
            page=c.catalog.page(CATALOG_PAGE, cursor, None, q or None),
            total=c.catalog.count(),
            imports=c.web.imports.recent()[:5],
            max_mb=c.settings.catalog_import_max_bytes / 1_048_576,
        )

    @router.post("/admin/catalog/import")
    async def import_feed(request: Request, c: ContainerDep, visit: UserDep) -> Response:
        """Multipart ``feed`` (the file), ``format`` (auto, csv or json) and the CSRF token.

        The form is read here, after the session is checked and the declared size is within
        the import limit, so nobody signed out can make tidings store an upload."""
        limit = c.settings.catalog_import_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + UPLOAD_OVERHEAD:
            raise TidingsError("feed_too_large", f"the file is over {limit:,} bytes", "feed")
        async with request.form(max_files=1, max_fields=4) as form:  # closes the spooled file
            c.web.check_csrf(visit, form.get(CSRF_FIELD))
            feed, fmt = form.get("feed"), form.get("format", "auto")
            if not isinstance(feed, UploadFile):
                raise TidingsError("missing_feed", "choose a feed file to import", "feed")
            if fmt not in ("auto", "csv", "json"):
                raise TidingsError("invalid_format", "format must be auto, csv or json", "format")
            data = await feed.read(limit + 1)
            name, content_type = feed.filename or "feed", feed.content_type
        if len(data) > limit:
            raise TidingsError("feed_too_large", f"the file is over {limit:,} bytes", "feed")
        if not data.strip():
            raise TidingsError("empty_feed", "the file is empty: choose a CSV or JSON feed", "feed")
        chosen: FeedFormat = (
            detect_format(data, filename=name, content_type=content_type)
            if fmt == "auto"
            else ("json" if fmt == "json" else "csv")
        )
        job = c.web.imports.start(data, chosen, name[:200])
        return _redirect(c, visit, f"/admin/catalog/imports/{job.id}")

    @router.get("/admin/catalog/imports/{job_id}")
    def import_page(c: ContainerDep, visit: UserDep, job_id: str) -> Response:
        job = c.web.imports.get(job_id)
        if job is None:
            raise NotFound("import_not_found", "no such import in this process", "job_id")
        return c.web.page(visit, "import.html", active="catalog", job=job)

    @router.get("/admin/catalog/imports/{job_id}/progress")
    def import_progress(c: ContainerDep, visit: UserDep, job_id: str) -> Response:
        job = c.web.imports.get(job_id)
        if job is None:
            raise NotFound("import_not_found", "no such import in this process", "job_id")
        return c.web.finish(JSONResponse(job.as_dict()), visit)

    add_block_routes(router)
    add_campaign_routes(router)
    router.routes.append(
        Mount("/admin/static", app=StaticFiles(directory=STATIC), name="admin-static")
    )
    return router


def is_page(conn: HTTPConnection) -> bool:
    """Whether an error on this request should be a page rather than JSON."""
    path = conn.url.path
    return path.startswith("/admin") and not path.endswith(_SCRIPTED)


def error_page(request: Request, status: int, body: dict[str, Any]) -> Response | None:
    """An admin page's error as a page (a sign-in form for LoginRequired); None for the rest."""
    if not is_page(request) or request.url.path.startswith("/admin/static"):
        return None
    c = container_of(request)
    visit = c.web.visit(request)
    if body.get("code") == LoginRequired().error.code:
        target = "/admin/login"
        if request.method == "GET":
            query = request.url.query
            target += "?next=" + quote(request.url.path + (f"?{query}" if query else ""))
        return c.web.finish(RedirectResponse(target, status_code=303), visit)
    return c.web.page(
        visit,
        "error.html",
        status,
        code=body.get("code"),
        field=body.get("field"),
        message=body.get("message") or "something went wrong",
    )
