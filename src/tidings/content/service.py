"""Open-time content: render a block for the person opening the email, and send their click
to what they were shown.

:meth:`ContentService.render` is the whole open, callable in-process (the render benchmark
measures it without HTTP): find the block, read ``u``, tell people from machines, serve a
locked first-open image if the block keeps one, resolve the recipient's profile view, render
the variant's app, record the decision, and return the bytes. It never raises for bad input:
whatever goes wrong, the answer is an image (the block's fallback, or a 1×1 transparent GIF).

:meth:`ContentService.click` finds the decision of the recipient's latest render of the block
(of the send, when the tag carries one) and returns the URL shown in that slot with UTM
parameters; with no render known, the block's fallback link.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from PIL import Image

from tidings.catalog.images import ImageCache
from tidings.core.clock import Clock, from_ms, iso, to_ms
from tidings.core.errors import NotFound
from tidings.core.settings import Settings
from tidings.rules import EventFact, OpenContext, ProfileFacts, WaterfallResult, run_waterfall
from tidings.tracking.machine import FetchKind, classify_fetch

from .blocks import BlockService, CompiledBlock, CompiledVariant, tag_size
from .decisions import Decision, DecisionLog, Shown, shown_from_json, shown_json
from .links import safe_target, with_utm
from .ports import RenderCatalog, RenderImages
from .recipients import ALARM_MESSAGES, ProfileView, ProfileViews, Recipient, read_recipient
from .render import RenderCaches, RenderContext, Rendered
from .render.encode import encode
from .render.products import ProductApp
from .render.rendered import GIF, TRANSPARENT_GIF
from .store import MAX_WATERFALL, LockRow

MAX_SLOT: Final = 35  # a layout holds at most 6 × 6 products
MAX_SEND_CHARS: Final = 200
WHOLE: Final = -1  # the lock key of the whole block's image (slot images lock per slot)
MAX_DECISIONS_PAGE: Final = 200


@dataclass(frozen=True, slots=True)
class Served:
    """What an open gets: the image, and why it is this one (``render``, ``locked``, or the
    reason for a fallback, e.g. ``unknown_recipient``)."""

    data: bytes
    content_type: str
    reason: str
    decision: Decision | None = None


TRANSPARENT: Final = (TRANSPARENT_GIF, GIF)


def ip_class(client_ip: str | None) -> str:
    """``public``, ``private``, ``loopback`` or ``unknown``: decisions keep the class, not
    the address."""
    try:
        address = ipaddress.ip_address(client_ip or "")
    except ValueError:
        return "unknown"
    if address.is_loopback:
        return "loopback"
    if address.is_private or address.is_link_local:
        return "private"
    return "public"


def _send_id(s: str | None) -> str:
    """A usable send id, or ``""`` (an unusable one pairs nothing, it is not an error)."""
    if not s:
        return ""
    s = s.strip()
    if len(s) > MAX_SEND_CHARS or any(ord(ch) < 32 for ch in s):
        return ""
    return s


class ContentService:
    def __init__(
        self,
        blocks: BlockService,
        decisions: DecisionLog,
        views: ProfileViews,
        catalog: RenderCatalog,
        images: ImageCache,
        caches: RenderCaches,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.blocks = blocks
        self.decisions = decisions
        self.views = views
        self.catalog = catalog
        self.images = images
        self.render_images = RenderImages(images)  # read-only, shared: no copy per tile
        self.caches = caches
        self.clock = clock
        self.settings = settings
        self._fallbacks: dict[tuple[str, int], tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    # -- opens ------------------------------------------------------------------------------
    def render(
        self,
        block_id: str,
        u: str | None,
        *,
        slot: int | None = None,
        send_id: str | None = None,
        user_agent: str | None = None,
        client_ip: str | None = None,
        country: str | None = None,
    ) -> Served:
        """The image for this open (see the module); records the decision."""
        started = time.perf_counter()
        block = self.blocks.find(block_id)
        if block is None:
            return Served(*TRANSPARENT, "unknown_block")
        if slot is not None and not 0 <= slot <= MAX_SLOT:
            return Served(*TRANSPARENT, "unknown_slot")
        now = self.clock.now()
        at = to_ms(now)
        recipient = read_recipient(u)
        if not isinstance(recipient, Recipient):
            if recipient in ALARM_MESSAGES:
                self.decisions.alarm(block.id, recipient, (u or "")[:200], at)
            return Served(*self.fallback_image(block, slot), recipient)
        fetch = classify_fetch(user_agent, client_ip, self.settings)
        opening = _Open(
            block, recipient, _send_id(send_id), slot, at, user_agent, client_ip, fetch, country
        )

        if fetch.machine and block.spec.machine_opens == "fallback":
            return self._fall_back(opening, "machine_open", None, started)
        locking = block.spec.lock_after_first_open and not fetch.machine
        if block.spec.lock_after_first_open:
            lock = self.decisions.lock_of(
                block.id, recipient.key, opening.send_id, WHOLE if slot is None else slot
            )
            if lock is not None:
                shown = shown_from_json(lock.shown)
                self._record(opening, "locked", "locked", lock.profile_id, shown, started)
                return Served(lock.data, lock.content_type, "locked")
        view = self.views.get(recipient)
        if view is None:
            return self._fall_back(opening, "unknown_recipient", None, started)
        choice = self.choose(block, view, opening.context(now, view), slot=slot)
        if choice.variant is None or choice.rendered is None or choice.rendered.empty:
            reason = choice.reason if choice.variant is None else "empty_slot"
            return self._fall_back(opening, reason, view.profile_id, started, choice.waterfall)
        variant, rendered = choice.variant, choice.rendered
        shown = tuple(Shown(s.index, s.product_id, s.name, s.url) for s in rendered.slots)
        data, content_type, served = rendered.data, rendered.content_type, "render"
        lock_row: LockRow | None = None
        if locking:
            candidate = LockRow(
                block.id,
                recipient.key,
                opening.send_id,
                WHOLE if slot is None else slot,
                view.profile_id,
                content_type,
                data,
                shown_json(shown),
                at,
            )
            kept = self.decisions.locks.put_first(candidate)
            if kept is candidate:
                lock_row = candidate
            else:  # another open of this person won the race: show what it locked
                data, content_type, served = kept.data, kept.content_type, "locked"
                shown = shown_from_json(kept.shown)
        decision = self._record(
            opening,
            served,
            served,
            view.profile_id,
            shown,
            started,
            variant.id,
            lock_row,
            choice.waterfall,
        )
        return Served(data, content_type, served, decision)

    def choose(
        self,
        block: CompiledBlock,
        view: ProfileView,
        ctx: OpenContext,
        *,
        slot: int | None = None,
        draw: bool = True,
    ) -> Choice:
        """Walk the block's waterfall for this person at this open: the first variant whose
        rule matches and whose content is not empty, rendered (``draw``) or only checked.

        For one slot's image the variant is judged by its whole grid, so all the slot images
        of one email come from the same variant; the slot itself may still be empty."""
        render_ctx = RenderContext(
            view.profile, self.catalog, self.render_images, ctx.now, self.caches
        )
        facts = ProfileFacts(view.state, ctx.now_ms, events=self._behaviour(view.profile_id))
        rendered: dict[int, Rendered] = {}

        def accept(index: int) -> str | None:
            variant = block.variants[index]
            if not draw or slot is not None:
                if not shows_something(variant, render_ctx):
                    return "nothing to show"
                if draw:
                    rendered[index] = _render_slot(variant, render_ctx, slot or 0)
                return None
            out = variant.app.render(render_ctx)
            if out.empty:
                return "nothing to show"
            rendered[index] = out
            return None

        result = run_waterfall([(v.id, v.rule) for v in block.variants], facts, ctx, accept)
        if result.chosen is None:
            tried = any(s.outcome == "fell_through" for s in result.steps)
            return Choice(None, None, result, "nothing_to_show" if tried else "no_variant")
        return Choice(block.variants[result.chosen], rendered.get(result.chosen), result, "")

    def _behaviour(self, profile_id: str) -> Callable[[str, int | None], list[EventFact]]:
        def load(name: str, since_ms: int | None) -> list[EventFact]:
            return [
                EventFact(ts, props)
                for ts, props in self.views.profiles.behaviour(profile_id, name, since_ms)
            ]

        return load

    def _fall_back(
        self,
        opening: _Open,
        reason: str,
        profile_id: str | None,
        started: float,
        waterfall: WaterfallResult | None = None,
    ) -> Served:
        decision = self._record(
            opening, "fallback", reason, profile_id, (), started, waterfall=waterfall
        )
        return Served(*self.fallback_image(opening.block, opening.slot), reason, decision)

    def _record(
        self,
        opening: _Open,
        served: str,
        reason: str,
        profile_id: str | None,
        shown: tuple[Shown, ...],
        started: float,
        variant: str | None = None,
        lock: LockRow | None = None,
        waterfall: WaterfallResult | None = None,
    ) -> Decision:
        block = opening.block
        decision = Decision(
            block_id=block.id,
            block_version=block.version,
            variant=variant,
            recipient=opening.recipient.given,
            recipient_key=opening.recipient.key,
            send_id=opening.send_id,
            profile_id=profile_id,
            served=served,
            reason=reason,
            slot=opening.slot,
            shown=shown,
            at_ms=opening.at,
            user_agent=(opening.user_agent or "")[:500] or None,
            ip_class=ip_class(opening.client_ip),
            machine=opening.fetch.machine,
            fetch_kind=opening.fetch.kind,
            duration_ms=(time.perf_counter() - started) * 1000,
            rules_ms=waterfall.rules_ms if waterfall is not None else 0.0,
            waterfall=waterfall_text(waterfall),
        )
        return self.decisions.record(decision, lock)

    def fallback_image(self, block: CompiledBlock, slot: int | None) -> tuple[bytes, str]:
        """The block's fallback image: a collapse (and every slot image) is the 1×1
        transparent GIF; a static image is fetched once and served at the block's width."""
        fallback = block.fallback
        if slot is not None or fallback.kind == "collapse":
            return TRANSPARENT
        key = (block.id, block.version)
        with self._lock:
            found = self._fallbacks.get(key)
        if found is not None:
            return found
        variant = block.main
        width = variant.width * variant.scale
        image = self.images.get(fallback.image_url, width, 4 * width, fit="contain")
        if image is None:
            return TRANSPARENT  # not cached: the image cache retries after its failure TTL
        if image.mode != "RGB":
            flat = Image.new("RGB", image.size, (255, 255, 255))
            flat.paste(image, mask=image.getchannel("A") if image.mode == "RGBA" else None)
            image = flat
        encoded = encode(image, "jpeg" if variant.format == "jpeg" else "png", max_bytes=1_000_000)
        with self._lock:
            if len(self._fallbacks) > 1000:
                self._fallbacks.clear()
            self._fallbacks[key] = encoded
        return encoded

    # -- clicks -------------------------------------------------------------------------------
    def click(
        self,
        block_id: str,
        u: str | None,
        *,
        slot: int | None = None,
        send_id: str | None = None,
        utm: Mapping[str, str | None] | None = None,
    ) -> str:
        """Where a click on the block (or one slot of it) leads, with UTM parameters: the
        URL shown there in the recipient's latest render, else the fallback link. Raises
        404 for an unknown block, or when there is nowhere to go."""
        block = self.blocks.get(block_id)
        index = slot or 0
        target: str | None = None
        recipient = read_recipient(u)
        if isinstance(recipient, Recipient) and 0 <= index <= MAX_SLOT:
            decision = self.decisions.latest_for(
                block.id, recipient.key, _send_id(send_id) or None, index
            )
            if decision is not None:
                target = safe_target(decision.url_of(index))
        target = target or block.fallback_link
        if target is None:
            raise NotFound(
                "no_link",
                "nothing was shown here for this recipient and the block's fallback has no link",
                "u",
            )
        return with_utm(target, block.spec.utm, utm or {})

    # -- what a send showed ----------------------------------------------------------------------
    def tag_size(self, block: CompiledBlock, slot: int | None) -> tuple[int, int | None]:
        """The ``width`` and ``height`` of a block's ``<img>`` (no height when the variants'
        differ, or for one slot)."""
        return tag_size(block, self.caches.fonts, slot)

    async def variants_seen(self, send_id: str) -> dict[str, dict[str, str]]:
        """Which variant each recipient of one send saw, per block: ``{recipient_key:
        {block_id: variant}}``, from the send's render decisions (a person's latest render
        over a machine's; ``"fallback"`` when the block fell back). Flushes the log first."""
        await self.decisions.flush()
        seen: dict[str, dict[str, tuple[bool, int, str]]] = {}
        after = 0
        while True:
            rows = self.decisions.store.variants_of_send(send_id, after, 5000)
            if not rows:
                break
            for row_id, key, block_id, variant, machine, at in rows:
                after = row_id
                best = seen.setdefault(key, {}).get(block_id)
                rank = (not machine, at, variant or "fallback")
                if best is None or rank[:2] >= best[:2]:
                    seen[key][block_id] = rank
        return {k: {b: r[2] for b, r in blocks.items()} for k, blocks in seen.items()}

    # -- reading ------------------------------------------------------------------------------
    def renders_per_minute(self, since_ms: int) -> list[tuple[int, bool, int]]:
        """``(minute, machine, renders)`` recorded at or after ``since_ms`` (epoch minutes;
        what is written so far: decisions still in the log's queue are not counted yet)."""
        return self.decisions.store.renders_per_minute(since_ms)

    def alarms(self, block_id: str) -> list[dict[str, Any]]:
        """The block's alarms (what is written so far: flush the decision log first)."""
        return [
            {
                "code": a.code,
                "message": ALARM_MESSAGES.get(a.code, a.code),
                "count": a.count,
                "first_seen": iso(from_ms(a.first_seen)),
                "last_seen": iso(from_ms(a.last_seen)),
                "example": a.example,
            }
            for a in self.decisions.store.alarms(block_id)
        ]

    def decision_page(self, block_id: str, u: str | None, limit: int) -> list[dict[str, Any]]:
        """The block's latest decisions, newest first (of one recipient when ``u`` is given)."""
        key: str | None = None
        if u is not None:
            recipient = read_recipient(u)
            key = recipient.key if isinstance(recipient, Recipient) else u.strip()
        rows = self.decisions.store.decisions(block_id, key, max(1, min(limit, MAX_DECISIONS_PAGE)))
        return [_decision_json(Decision.from_row(row)) for row in rows]


@dataclass(frozen=True, slots=True)
class Choice:
    """What a block's waterfall chose for one open: the variant and its image (``None``:
    the fallback, for ``reason``), with every step of the walk."""

    variant: CompiledVariant | None
    rendered: Rendered | None
    waterfall: WaterfallResult
    reason: str


def shows_something(variant: CompiledVariant, ctx: RenderContext) -> bool:
    """Whether the variant's creative has content for this person (product grids need their
    minimum of products; a headline or a countdown always shows)."""
    app = variant.app
    return app.would_show(ctx) if isinstance(app, ProductApp) else True


def _render_slot(variant: CompiledVariant, ctx: RenderContext, slot: int) -> Rendered:
    if variant.has_slots:
        assert isinstance(variant.app, ProductApp)
        return variant.app.render_slot(ctx, slot)
    return variant.app.render(ctx) if slot == 0 else Rendered.nothing()


def waterfall_text(result: WaterfallResult | None) -> str:
    """``"cart:no_match viewed:chosen"``: the walk in a line, as decisions keep it."""
    if result is None:
        return ""
    return " ".join(f"{s.name}:{s.outcome}" for s in result.steps)[:MAX_WATERFALL]


@dataclass(frozen=True, slots=True)
class _Open:
    block: CompiledBlock
    recipient: Recipient
    send_id: str
    slot: int | None
    at: int
    user_agent: str | None
    client_ip: str | None
    fetch: FetchKind
    country: str | None = None

    def context(self, now: datetime, view: ProfileView) -> OpenContext:
        return OpenContext(
            now=now,
            recipient=self.recipient.key,
            block_id=self.block.id,
            timezone=view.profile.timezone or self.block.spec.timezone,
            user_agent=self.user_agent,
            device=self.fetch.device,
            client=self.fetch.client,
            country=self.country,
            machine=self.fetch.machine,
        )


def _decision_json(d: Decision) -> dict[str, Any]:
    return {
        "id": d.seq,
        "block_id": d.block_id,
        "block_version": d.block_version,
        "variant": d.variant,
        "recipient": d.recipient,
        "profile_id": d.profile_id,
        "send_id": d.send_id or None,
        "served": d.served,
        "reason": d.reason,
        "slot": d.slot,
        "shown": [s.as_dict() for s in d.shown],
        "at": iso(from_ms(d.at_ms)),
        "user_agent": d.user_agent,
        "ip_class": d.ip_class,
        "machine": d.machine,
        "fetch_kind": d.fetch_kind,
        "duration_ms": d.duration_ms,
        "rules_ms": d.rules_ms,
        "waterfall": d.waterfall,
    }
