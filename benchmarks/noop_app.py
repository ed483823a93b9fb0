"""The no-op baseline: a bare FastAPI app on the same uvicorn stack as ``tidings serve``.

It reads the request body and answers ``{"success":true}``, so the load generator, HTTP parsing,
ASGI and FastAPI routing cost the same as for tidings; only the work tidings does is missing.

    python benchmarks/noop_app.py PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

SUCCESS = b'{"success":true}'

app = FastAPI()


@app.post("/v1/{kind}")
async def noop(request: Request, kind: str) -> Response:
    await request.body()
    return Response(SUCCESS, media_type="application/json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )
