"""Serve Segment's ingest POSTs ahead of the router: the hottest path skips what it never uses.

The ingest endpoints read their body themselves, declare no dependencies, and turn every
caller error into a :class:`~tidings.core.errors.TidingsError`. FastAPI's route matching,
request/response wrapping, exception middleware and exit stack cost about a third of a
``/v1/track`` request's CPU (py-spy under wrk; see docs/benchmarks.md), so this middleware
dispatches those exact paths straight to the same handler functions the router documents in
OpenAPI. Anything else (other methods, other paths, a trailing slash) goes down the normal stack,
so behaviour is the same on both ways in; tests/integration/test_collect_api.py exercises the
fast path, and the router's copies of the routes remain for the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.core.errors import TidingsError, error_response

Handler = Callable[[Request], Awaitable[Response]]


class CollectFastPath:
    def __init__(self, app: ASGIApp, handlers: Mapping[str, Handler]) -> None:
        self.app = app
        self.handlers = dict(handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.handlers.get(scope["path"])
            if handler is not None:
                try:
                    response = await handler(Request(scope, receive))
                except TidingsError as exc:
                    response = error_response(exc.status, exc.body(), exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
