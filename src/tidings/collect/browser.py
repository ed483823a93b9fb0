"""What Segment's CDN serves to analytics.js: the settings document and, optionally, the bundle.

With these, a site loads ``@segment/analytics-next`` with tidings as both its CDN and its API.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from tidings.core.deps import container_of
from tidings.core.errors import NotFound, Unauthorized
from tidings.core.schemas import ErrorResponse

BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.js$")
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Not configured, or no such file"}
}
_JS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/javascript": {}}, "description": "The script"}
}


def settings_document(write_key: str, api_host: str, protocol: str) -> dict[str, Any]:
    """The subset of Segment's CDN settings analytics-next needs to send to ``api_host``."""
    return {
        "integrations": {
            "Segment.io": {
                "apiKey": write_key,
                "apiHost": api_host,
                "protocol": protocol,
                "unbundledIntegrations": [],
                "addBundledMetadata": True,
                "maybeBundledConfigIds": {},
            }
        },
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}}},
        "edgeFunction": {},
        "analyticsNextEnabled": True,
        "middlewareSettings": {},
        "enabledMiddleware": {},
        "metrics": {"sampleRate": 0},
        "legacyVideoPluginsEnabled": False,
        "remotePlugins": [],
    }


def _base(request: Request) -> tuple[str, str]:
    """(host[:port][/path], scheme) that browsers reach this server at."""
    public = container_of(request).settings.public_url
    if public:
        scheme, _, rest = public.rstrip("/").partition("://")
        return rest, scheme
    return request.url.netloc, request.url.scheme


def _bundle_dir(request: Request) -> Path:
    folder = container_of(request).settings.analytics_js_dir
    if folder is None:
        raise NotFound(
            "analytics_js_not_configured",
            "set TIDINGS_ANALYTICS_JS_DIR to a copy of @segment/analytics-next to serve it",
        )
    umd = folder / "dist" / "umd"
    return umd if umd.is_dir() else folder


def _bundle_file(request: Request, name: str) -> FileResponse:
    if not BUNDLE_NAME.match(name):
        raise NotFound("not_found", "no such file", "name")
    path = _bundle_dir(request) / name
    if not path.is_file():
        raise NotFound("not_found", f"{name} is not in the analytics.js folder", "name")
    return FileResponse(
        path, media_type="application/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


def build_router() -> APIRouter:
    router = APIRouter(tags=["analytics.js"])

    @router.get(
        "/v1/projects/{write_key}/settings",
        responses={401: {"model": ErrorResponse, "description": "Unknown write key"}},
    )
    def project_settings(write_key: str, request: Request) -> JSONResponse:
        """The settings analytics.js loads at start; points it back at this server."""
        c = container_of(request)
        if c.sources.by_write_key(write_key) is None:
            raise Unauthorized("invalid_write_key", "no source has this write key", "writeKey")
        host, scheme = _base(request)
        return JSONResponse(
            settings_document(write_key, f"{host}/v1", scheme),
            headers={"Cache-Control": "public, max-age=60"},
        )

    @router.get(
        "/analytics.js/v1/{write_key}/analytics.min.js",
        response_class=Response,
        responses={**_JS, **_ERRORS},
    )
    def analytics_js(write_key: str, request: Request) -> FileResponse:
        """analytics-next's standalone build; it reads the write key from this URL."""
        return _bundle_file(request, "standalone.js")

    @router.get(
        "/analytics-next/bundles/{name}", response_class=Response, responses={**_JS, **_ERRORS}
    )
    def analytics_bundle(name: str, request: Request) -> FileResponse:
        """The lazy chunks analytics-next loads (the query-string API among them)."""
        return _bundle_file(request, name)

    return router
