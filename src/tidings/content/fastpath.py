"""Serve email opens (``GET /i/{block}.png``) ahead of the router.

An open is the hottest request tidings answers and the route reads nothing FastAPI's
machinery gives it: two optional query strings, two headers and the container. Under load the
route matching, dependency solving and request/response wrapping held the GIL for about a
sixth of an open's Python time (py-spy, ``make bench-render``; see docs/benchmarks.md), time
the render threads then wait for. This middleware sends ``GET /i/{name}`` (one path segment)
straight to :func:`~tidings.content.router.open_named` on the same thread pool FastAPI runs the
route on; every other request (slot images, ``HEAD``, other paths) goes down the normal stack,
and the route stays for the OpenAPI document. Both call the same function, so they answer
the same bytes and headers; the HTTP tests (tests/integration/test_content_api.py) and the
OpenAPI fuzz test reach ``/i/{name}`` through this path.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.core.deps import container_of

from .router import open_named

PREFIX = "/i/"


class OpenFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            name = path[len(PREFIX) :]
            if path.startswith(PREFIX) and name and "/" not in name:
                request = Request(scope, receive)
                params = request.query_params
                response = await run_in_threadpool(
                    open_named,
                    request,
                    container_of(request),
                    name,
                    params.get("u"),
                    params.get("s"),
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
