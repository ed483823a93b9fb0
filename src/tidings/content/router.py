"""Content over HTTP: the blocks API (admin token) and the open-time endpoints an email calls.

``/i/…`` always answers with an image, status 200, even for an unknown block or a bad path:
Gmail's image proxy and others cache what they get, and an error response shows as a broken
image in the person's email. ``X-Tidings-Served`` says which image it is and why.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from tidings.core.deps import AdminDep, Container, ContainerDep
from tidings.core.http import client_ip
from tidings.core.schemas import UNAUTHORIZED, error

from .blocks import block_json
from .blocks import block_tag as tag_json
from .preview import Previewer
from .schemas import (
    AlarmList,
    BlockIn,
    BlockList,
    BlockOut,
    DecisionList,
    Deleted,
    PreviewIn,
    PreviewOut,
    SimulateIn,
    SimulateOut,
    TagOut,
)
from .service import MAX_SLOT, TRANSPARENT, Served

NO_STORE: Final = {
    "Cache-Control": "no-cache, no-store, max-age=0, must-revalidate",
    "Pragma": "no-cache",
    "Expires": "0",
}
IMAGE_TYPES: Final = ("image/png", "image/jpeg", "image/gif")
EXTENSIONS: Final = frozenset({"png", "jpg", "jpeg", "gif"})
EspName = Literal[
    "mailchimp", "sfmc", "braze", "klaviyo", "marketo", "iterable", "hubspot", "sendgrid", "generic"
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No block has this id")}
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image for this recipient now, or the block's fallback, or a 1×1 "
        "transparent GIF (unknown block, bad path); X-Tidings-Served says which and why",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in IMAGE_TYPES},
    }
}
_REDIRECT: dict[int | str, dict[str, Any]] = {
    302: {"description": "To what the recipient was shown there, with UTM parameters"},
    404: error("No block has this id, or nothing to link to"),
}
_U_DOC = "The recipient: the ESP's merge tag for the email address (or a userId, external id)"
_S_DOC = "A send id (the campaign's merge tag or id): pairs this image with its click"


def _image(served: Served) -> Response:
    return Response(
        served.data,
        media_type=served.content_type,
        headers={
            **NO_STORE,
            "X-Content-Type-Options": "nosniff",
            "X-Tidings-Served": served.reason,
        },
    )


def _split(name: str) -> tuple[str, str] | None:
    """``blk_….png`` → (``blk_…``, ``png``); ``None`` for any other shape of name."""
    stem, dot, ext = name.rpartition(".")
    if not dot or ext.lower() not in EXTENSIONS:
        return None
    return stem, ext.lower()


def open_named(request: Request, c: Container, name: str, u: str | None, s: str | None) -> Response:
    """``GET /i/{name}``: the block's image for ``u`` (any name that is not ``{block}.{ext}``
    is the transparent pixel). Shared by the route and :class:`.fastpath.OpenFastPath`."""
    parts = _split(name)
    if parts is None:
        return _image(Served(*TRANSPARENT, "bad_path"))
    return _open(request, c, parts[0], None, u, s)


def _open(
    request: Request, c: Container, block: str, slot: int | None, u: str | None, s: str | None
) -> Response:
    served = c.content.render(
        block,
        u,
        slot=slot,
        send_id=s,
        user_agent=request.headers.get("user-agent"),
        client_ip=client_ip(request),
        country=_country(request, c),
    )
    return _image(served)


def _country(request: Request, c: Container) -> str | None:
    """The opener's country from the header a trusted proxy sets (``CF-IPCountry``, …), when
    ``TIDINGS_CONTENT_COUNTRY_HEADER`` names one: an ISO code, upper-cased."""
    header = c.settings.content_country_header
    value = request.headers.get(header, "").strip() if header else ""
    return value.upper() if 2 <= len(value) <= 3 and value.isalpha() else None


def _utm(request: Request) -> dict[str, str | None]:
    return {
        k: v[:200]
        for k, v in request.query_params.items()
        if k in ("utm_source", "utm_medium", "utm_campaign", "utm_content")
    }


def build_router() -> APIRouter:
    router = APIRouter()
    admin = APIRouter(tags=["content"], responses=UNAUTHORIZED)

    # -- blocks ---------------------------------------------------------------------------------
    @admin.post(
        "/v1/blocks",
        status_code=201,
        summary="Create a content block",
        response_model=BlockOut,
        responses={
            422: error("A field that cannot be used; `field` names it"),
        },
    )
    async def create_block(body: BlockIn, c: AdminDep) -> dict[str, Any]:
        """A block is one placement in an email: an app with its config (a grid of products,
        a countdown or a headline), a fallback, and how opens and clicks are handled. The
        app's config is validated as the render will read it."""
        block = await c.db.run_write(c.content.blocks.create, body)
        return block_json(block)

    @admin.get("/v1/blocks", summary="Every block", response_model=BlockList)
    def list_blocks(c: AdminDep) -> dict[str, Any]:
        return {"data": [block_json(b) for b in c.content.blocks.list()]}

    @admin.get(
        "/v1/blocks/{id}",
        summary="A block, with its alarms",
        response_model=BlockOut,
        responses=NOT_FOUND,
    )
    async def get_block(id: str, c: AdminDep) -> dict[str, Any]:
        block = c.content.blocks.get(id)
        await c.decisions.flush()
        return {**block_json(block), "alarms": c.content.alarms(block.id)}

    @admin.put(
        "/v1/blocks/{id}",
        summary="Replace a block",
        response_model=BlockOut,
        responses={
            **NOT_FOUND,
            422: error("A field that cannot be used; `field` names it"),
        },
    )
    async def put_block(id: str, body: BlockIn, c: AdminDep) -> dict[str, Any]:
        """The block becomes exactly this; its version goes up (decisions name the version
        they rendered)."""
        block = await c.db.run_write(c.content.blocks.replace, id, body)
        return block_json(block)

    @admin.delete(
        "/v1/blocks/{id}",
        summary="Delete a block, its decisions, locks and alarms",
        response_model=Deleted,
        responses=NOT_FOUND,
    )
    async def delete_block(id: str, c: AdminDep) -> dict[str, Any]:
        await c.decisions.flush()
        await c.db.run_write(c.content.blocks.delete, id)
        return {"id": id, "deleted": True}

    @admin.get(
        "/v1/blocks/{id}/alarms",
        summary="Alarms: opens whose recipient was a literal merge tag, or empty",
        response_model=AlarmList,
        responses=NOT_FOUND,
    )
    async def get_alarms(id: str, c: AdminDep) -> dict[str, Any]:
        block = c.content.blocks.get(id)
        await c.decisions.flush()
        return {"block_id": block.id, "data": c.content.alarms(block.id)}

    @admin.get(
        "/v1/blocks/{id}/decisions",
        summary="Render decisions, newest first",
        response_model=DecisionList,
        responses=NOT_FOUND,
    )
    async def get_decisions(
        id: str,
        c: AdminDep,
        u: Annotated[str | None, Query(max_length=320, description=_U_DOC)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> dict[str, Any]:
        """What each open of the block was shown: the variant, the products and their links,
        or the fallback and why; who fetched it (a person or a machine) and how long it took."""
        block = c.content.blocks.get(id)
        await c.decisions.flush()
        return {"block_id": block.id, "data": c.content.decision_page(block.id, u, limit)}

    @admin.post(
        "/v1/blocks/{id}/preview",
        summary="What a recipient would see now (or at a moment, in an inbox), and why",
        response_model=PreviewOut,
        responses={**NOT_FOUND, 422: error("A field that cannot be used; `field` names it")},
    )
    def preview_block(id: str, body: PreviewIn, c: AdminDep) -> dict[str, Any]:
        """Walks the block's waterfall for the recipient as an open would, with the profile as
        it is now, and returns the chosen variant, the trace of every rule evaluated and the
        image as the inbox shows it (`data_url`). Records nothing: no decision, no lock."""
        return Previewer(c.content).preview(
            id, body.recipient, at=body.at, inbox=body.inbox, slot=body.slot, country=body.country
        )

    @admin.post(
        "/v1/blocks/{id}/simulate",
        summary="How many profiles would see each variant",
        response_model=SimulateOut,
        responses={
            **NOT_FOUND,
            400: error("A sample larger than TIDINGS_CONTENT_SIMULATE_MAX"),
            422: error("A field that cannot be used; `field` names it"),
        },
    )
    def simulate_block(id: str, body: SimulateIn, c: AdminDep) -> dict[str, Any]:
        """Runs the waterfall over every profile (or a seeded sample) without drawing: counts
        and examples per variant, and why the rest get the fallback. Check a campaign before
        the send."""
        return Previewer(c.content).simulate(
            id,
            sample=body.sample,
            at=body.at,
            inbox=body.inbox,
            seed=body.seed,
            examples=body.examples,
        )

    @admin.get(
        "/v1/blocks/{id}/tag",
        summary="The creative tag to paste into an ESP's template",
        response_model=TagOut,
        responses={**NOT_FOUND, 400: error("An argument the tag cannot use")},
    )
    def block_tag(
        request: Request,
        id: str,
        c: AdminDep,
        esp: Annotated[EspName, Query(description="The ESP that sends the email")] = "generic",
        slot: Annotated[int | None, Query(ge=0, le=MAX_SLOT, description="One slot")] = None,
        alt: Annotated[str | None, Query(max_length=200)] = None,
    ) -> dict[str, Any]:
        """`<a href><img src alt width height></a>` with the ESP's merge tag for the recipient's
        email (in its URL-encoding form where it has one) and its send id tag, so the image and
        the click of one send stay paired. The height is left out when the variants' differ."""
        block = c.content.blocks.get(id)
        base = c.settings.public_url or str(request.base_url)
        return tag_json(block, esp, base, c.content.caches.fonts, slot=slot, alt=alt)

    # -- opens and clicks -------------------------------------------------------------------
    @router.get(
        "/i/{name}",
        tags=["open-time"],
        summary="The block's image for this recipient, now",
        response_class=Response,
        responses=_IMAGE,
    )
    def open_image(
        request: Request,
        c: ContainerDep,
        name: Annotated[str, Path(description="`{block id}.png` (or .jpg, .jpeg, .gif)")],
        u: Annotated[str | None, Query(description=_U_DOC)] = None,
        s: Annotated[str | None, Query(description=_S_DOC)] = None,
    ) -> Response:
        """The extension only satisfies email clients: the image is always the block's own
        format with its true Content-Type. Never cached (`Cache-Control: no-store`)."""
        return open_named(request, c, name, u, s)

    @router.get(
        "/i/{block}/{name}",
        tags=["open-time"],
        summary="One product of the block's grid, in an image of its own",
        response_class=Response,
        responses=_IMAGE,
    )
    def open_slot_image(
        request: Request,
        c: ContainerDep,
        block: str,
        name: Annotated[str, Path(description="`{slot}.png`: slot 0 is the first product")],
        u: Annotated[str | None, Query(description=_U_DOC)] = None,
        s: Annotated[str | None, Query(description=_S_DOC)] = None,
    ) -> Response:
        """Product *slot* of what `/i/{block}.png` would show; link it with
        `/c/{block}/{slot}`. A slot with nothing to show is a 1×1 transparent GIF."""
        parts = _split(name)
        if parts is None or not parts[0].isdigit() or len(parts[0]) > 2:
            return _image(Served(*TRANSPARENT, "bad_path"))
        return _open(request, c, block, int(parts[0]), u, s)

    @router.get("/i/{rest:path}", include_in_schema=False)
    def open_anything_else(rest: str) -> Response:
        """Any other path under /i/ (``../`` tricks, extra segments) is still an image."""
        return _image(Served(*TRANSPARENT, "bad_path"))

    def _redirect(target: str) -> Response:
        return RedirectResponse(target, status_code=302, headers=NO_STORE)

    @router.get(
        "/c/{block}",
        tags=["open-time"],
        summary="Go to what the recipient was shown",
        response_class=Response,
        responses=_REDIRECT,
    )
    def click(
        request: Request,
        c: ContainerDep,
        block: str,
        u: Annotated[str | None, Query(description=_U_DOC)] = None,
        s: Annotated[str | None, Query(description=_S_DOC)] = None,
    ) -> Response:
        """A redirect to the first thing (slot 0) shown in this recipient's latest render of
        the block (of send `s` when given), never to anything else; no render known: the
        block's fallback link. `utm_*` parameters here override the block's."""
        return _redirect(c.content.click(block, u, send_id=s, utm=_utm(request)))

    @router.get(
        "/c/{block}/{slot}",
        tags=["open-time"],
        summary="Go to the product shown in one slot",
        response_class=Response,
        responses=_REDIRECT,
    )
    def click_slot(
        request: Request,
        c: ContainerDep,
        block: str,
        slot: Annotated[int, Path(ge=0, le=MAX_SLOT)],
        u: Annotated[str | None, Query(description=_U_DOC)] = None,
        s: Annotated[str | None, Query(description=_S_DOC)] = None,
    ) -> Response:
        return _redirect(c.content.click(block, u, slot=slot, send_id=s, utm=_utm(request)))

    router.routes.extend(admin.routes)
    return router
