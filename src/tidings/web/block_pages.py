"""The admin UI's blocks pages (HTTP only): the list, the editor with its live preview, the
simulation and the creative tags. The form's logic is in :mod:`.blocks`; saving, previews and
simulations are the content context's own (the same validation and waterfall as the API)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.responses import Response

from tidings.content.blocks import CompiledBlock, block_tag, parse_block
from tidings.content.preview import Previewer
from tidings.content.tags import ESPS
from tidings.core.deps import Container, ContainerDep, UserDep, UserFormDep
from tidings.core.errors import TidingsError

from .blocks import (
    APPS,
    FORMATS,
    RULE_KINDS,
    BlockForm,
    RuleForm,
    block_rows,
    check_rule,
    error_anchor,
)
from .service import Visit

InboxName = Literal["normal", "apple_mpp", "gmail_proxy", "outlook"]
SUGGESTIONS = 20
INBOX_LABELS = {
    "normal": "A normal open",
    "apple_mpp": "Apple Mail Privacy Protection",
    "gmail_proxy": "Gmail's image proxy",
    "outlook": "Outlook (first GIF frame)",
}


def _moment(at: str | None) -> datetime | None:
    """The preview's moment from a ``datetime-local`` input (UTC when it has no offset)."""
    if not at or not at.strip():
        return None
    try:
        moment = datetime.fromisoformat(at.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TidingsError(
            "invalid_moment", "the moment must be a date and time such as 2026-11-23T18:00", "at"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class BlockPages:
    """Renders the editor page; one per request."""

    def __init__(self, request: Request, c: Container, visit: Visit) -> None:
        self.request, self.c, self.visit = request, c, visit

    def tags(self, block: CompiledBlock) -> list[dict[str, Any]]:
        base = self.c.settings.public_url or str(self.request.base_url)
        fonts = self.c.content.caches.fonts
        return [block_tag(block, esp, base, fonts) for esp in ESPS]

    def editor(
        self,
        form: BlockForm,
        block: CompiledBlock | None,
        status: int = 200,
        *,
        error: TidingsError | None = None,
        preview: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        simulation: dict[str, Any] | None = None,
        simulation_error: str | None = None,
        saved: bool = False,
    ) -> Response:
        problem = None
        if error is not None:
            problem = {
                "field": error.error.field,
                "message": error.error.message,
                "anchor": error_anchor(form, error.error.field),
            }
        return self.c.web.page(
            self.visit,
            "block.html",
            status,
            active="blocks",
            form=form,
            block=block,
            problem=problem,
            rule_checks=[check_rule(v.rule) for v in form.variants],
            apps=APPS,
            formats=FORMATS,
            rule_kinds=RULE_KINDS,
            inboxes=INBOX_LABELS,
            esps=ESPS,
            tags=self.tags(block) if block is not None else [],
            preview=preview,
            query=query or {"recipient": "", "at": "", "inbox": "normal", "esp": "generic"},
            recipients=self.c.profiles.recent_recipients(SUGGESTIONS),
            simulation=simulation,
            simulation_error=simulation_error,
            saved=saved,
            alarms=self.c.content.alarms(block.id) if block is not None else [],
        )

    async def save(self, block_id: str | None) -> Response:
        """The editor's POST: a button that changes the form, or saving the block."""
        raw = await self.request.form()
        form = BlockForm.from_form(raw)
        block = self.c.content.blocks.get(block_id) if block_id is not None else None
        op = raw.get("op")
        if isinstance(op, str) and op != "save" and form.apply(op):
            return self.editor(form, block)
        blocks = self.c.content.blocks
        try:
            body = parse_block(form.to_spec())
            if block_id is None:
                made = await self.c.db.run_write(blocks.create, body)
            else:
                made = await self.c.db.run_write(blocks.replace, block_id, body)
        except TidingsError as exc:
            if exc.status != 422:
                raise
            return self.editor(form, block, 422, error=exc)
        response = RedirectResponse(f"/admin/blocks/{made.id}?saved=true", status_code=303)
        return self.c.web.finish(response, self.visit)


def add_block_routes(router: APIRouter) -> None:
    @router.get("/admin/blocks")
    async def blocks_page(c: ContainerDep, visit: UserDep) -> Response:
        await c.decisions.flush()
        return c.web.page(visit, "blocks.html", active="blocks", blocks=block_rows(c.content))

    @router.get("/admin/blocks/new")
    def new_block(request: Request, c: ContainerDep, visit: UserDep) -> Response:
        return BlockPages(request, c, visit).editor(BlockForm.new(), None)

    @router.post("/admin/blocks/new")
    async def create_block(request: Request, c: ContainerDep, visit: UserFormDep) -> Response:
        return await BlockPages(request, c, visit).save(None)

    @router.post("/admin/blocks/rule")
    async def rule_check(request: Request, c: ContainerDep, visit: UserFormDep) -> Response:
        """The rule a variant's inputs make, in words, or why it cannot be saved (the editor
        asks as the rule is typed). The inputs are the variant's ``rule.*`` fields."""
        raw = await request.form()
        fields = {k: v.strip() for k, v in raw.items() if isinstance(v, str)}
        rule = RuleForm(fields.get("kind", "always"), fields)
        return c.web.finish(JSONResponse(check_rule(rule)), visit)

    @router.get("/admin/blocks/{block_id}")
    async def block_page(
        request: Request,
        c: ContainerDep,
        visit: UserDep,
        block_id: str,
        recipient: Annotated[str, Query(max_length=320)] = "",
        at: Annotated[str, Query(max_length=40)] = "",
        inbox: InboxName = "normal",
        esp: Annotated[str, Query(max_length=40)] = "generic",
        saved: bool = False,
    ) -> Response:
        block = c.content.blocks.get(block_id)
        await c.decisions.flush()
        preview = None
        if recipient.strip():  # the preview form without JavaScript
            preview = Previewer(c.content).preview(
                block.id, recipient.strip(), at=_moment(at), inbox=inbox
            )
        query = {
            "recipient": recipient,
            "at": at,
            "inbox": inbox,
            "esp": esp if esp in ESPS else "generic",
        }
        pages = BlockPages(request, c, visit)
        form = BlockForm.from_spec(block.spec.model_dump(mode="json"))
        return pages.editor(form, block, preview=preview, query=query, saved=saved)

    @router.post("/admin/blocks/{block_id}")
    async def save_block(
        request: Request, c: ContainerDep, visit: UserFormDep, block_id: str
    ) -> Response:
        return await BlockPages(request, c, visit).save(block_id)

    @router.get("/admin/blocks/{block_id}/preview")
    def preview_json(
        c: ContainerDep,
        visit: UserDep,
        block_id: str,
        recipient: Annotated[str, Query(min_length=1, max_length=320)],
        at: Annotated[str, Query(max_length=40)] = "",
        inbox: InboxName = "normal",
    ) -> Response:
        """What the preview panel fetches when the recipient, moment or inbox changes: the
        API's preview (``image.data_url``, the waterfall trace) and the panel's HTML."""
        body = Previewer(c.content).preview(
            block_id, recipient.strip(), at=_moment(at), inbox=inbox
        )
        html = c.web.env.get_template("_preview.html").render(preview=body)
        return c.web.finish(JSONResponse({**body, "html": html}), visit)

    @router.post("/admin/blocks/{block_id}/simulate")
    def simulate(
        request: Request,
        c: ContainerDep,
        visit: UserFormDep,
        block_id: str,
        sample: Annotated[str, Form(max_length=12)] = "",
    ) -> Response:
        block = c.content.blocks.get(block_id)
        pages = BlockPages(request, c, visit)
        form = BlockForm.from_spec(block.spec.model_dump(mode="json"))
        result, problem = None, None
        try:
            size = int(sample) if sample.strip() else None
            if size is not None and size < 1:
                raise ValueError
        except ValueError:
            problem = "the sample is a whole number of profiles, 1 or more (empty: everyone)"
        else:
            try:
                result = Previewer(c.content).simulate(block.id, sample=size, examples=3)
            except TidingsError as exc:
                problem = exc.error.message
        return pages.editor(
            form,
            block,
            200 if problem is None else 422,
            simulation=result,
            simulation_error=problem,
        )
