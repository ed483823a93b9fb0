"""The render benchmark's server: tidings' own app plus one static folder, for the baseline.

``python benchmarks/render_app.py PORT STATIC_DIR`` serves exactly what ``tidings serve``
serves (the app from :func:`tidings.app.create_app`, settings from the environment, uvicorn
with uvloop and httptools, access log off) and, only here, ``STATIC_DIR`` at
``/bench-static/``: the benchmark puts a PNG of a render's size there, so the static baseline
runs through the same process, event loop and HTTP stack as the renders.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.staticfiles import StaticFiles

from tidings.app import create_app
from tidings.core.settings import Settings


def main() -> None:
    port, static_dir = int(sys.argv[1]), sys.argv[2]
    settings = Settings()
    app = create_app(settings)
    app.mount("/bench-static", StaticFiles(directory=static_dir), name="bench-static")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
