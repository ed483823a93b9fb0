"""The Profile API (admin token), modelled on Segment's: ``/v1/profiles/{id_type}:{value}/…``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tidings.core.deps import AdminDep
from tidings.core.schemas import UNAUTHORIZED, error

RESPONSES: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    400: error("A malformed profile address or an unknown id type"),
    404: error("No profile holds this identifier"),
}

_ID_DOC = (
    "`{id_type}:{value}`: `user_id:u_42`, `anonymous_id:…`, `email:ada@example.com`, a "
    "configured external id type, or `profile_id:prof_…`"
)


def build_router() -> APIRouter:
    router = APIRouter(tags=["profiles"], responses=RESPONSES)

    @router.get("/v1/profiles/{id}", summary="A profile: identities, traits, derived state")
    def get_profile(id: str, c: AdminDep) -> dict[str, Any]:
        return c.profiles.summary(c.profiles.resolve(id))

    @router.get("/v1/profiles/{id}/traits", summary="Current traits (and their history)")
    def get_traits(
        id: str,
        c: AdminDep,
        include: Annotated[
            str | None, Query(description="Comma-separated trait names to return")
        ] = None,
        history: Annotated[bool, Query(description="Also list every change, oldest first")] = False,
    ) -> dict[str, Any]:
        names = [n.strip() for n in include.split(",") if n.strip()] if include else []
        return c.profiles.traits(c.profiles.resolve(id), names, history)

    @router.get("/v1/profiles/{id}/events", summary="The profile's events, newest first")
    def get_events(
        id: str,
        c: AdminDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        next: Annotated[
            str | None, Query(description="The `cursor.next` of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        before = c.profiles.events_cursor(next)
        return c.profiles.events(c.profiles.resolve(id), limit, before)

    @router.get("/v1/profiles/{id}/identities", summary="Identifiers that belong to the profile")
    def get_identities(id: str, c: AdminDep) -> dict[str, Any]:
        return c.profiles.identities(c.profiles.resolve(id))

    @router.get("/v1/profiles/{id}/external_ids", include_in_schema=False)
    def get_external_ids(id: str, c: AdminDep) -> dict[str, Any]:
        """Segment's name for the same list."""
        return c.profiles.identities(c.profiles.resolve(id))

    @router.get("/v1/profiles/{id}/recently-viewed", summary="Products viewed, most recent first")
    def get_recently_viewed(
        id: str,
        c: AdminDep,
        limit: Annotated[int, Query(ge=1, le=200)] = 20,
        exclude_purchased: Annotated[
            bool, Query(description="Leave out products bought since they were viewed")
        ] = False,
    ) -> dict[str, Any]:
        return c.profiles.recently_viewed(c.profiles.resolve(id), limit, exclude_purchased)

    @router.get("/v1/profiles/{id}/cart", summary="The current cart: items, quantity, value")
    def get_cart(id: str, c: AdminDep) -> dict[str, Any]:
        return c.profiles.cart(c.profiles.resolve(id))

    @router.get("/v1/profiles/{id}/merges", summary="Why identifiers were merged, or not")
    def get_merges(id: str, c: AdminDep) -> dict[str, Any]:
        return c.profiles.merges(c.profiles.resolve(id))

    @router.delete(
        "/v1/profiles/{id}",
        summary="Delete a person everywhere and suppress their identifiers",
    )
    async def delete_profile(
        id: str,
        c: AdminDep,
        reason: Annotated[
            str, Query(max_length=200, description="Recorded with the suppression")
        ] = "deletion request",
    ) -> dict[str, Any]:
        return await c.profiles.delete(c.profiles.resolve(id), reason)

    for route in router.routes:
        if hasattr(route, "description") and "{id}" in getattr(route, "path", ""):
            route.description = (route.description or "") + f"\n\n`id`: {_ID_DOC}"
    return router
