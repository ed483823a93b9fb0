"""Pipeline status for operators (admin token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from tidings.core.deps import AdminDep
from tidings.core.schemas import UNAUTHORIZED


def build_router() -> APIRouter:
    router = APIRouter(tags=["pipeline"], responses=UNAUTHORIZED)

    @router.get("/v1/pipeline/status", summary="Cursor, backlog, throughput and lag")
    def status(c: AdminDep) -> dict[str, Any]:
        """Where the profiles consumer is in the events log, how far behind, how fast, and
        the delay from receiving an event to its profile reflecting it (p50/p99, ms)."""
        return c.pipeline.status()

    return router
