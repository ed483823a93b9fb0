"""Content blocks: saving them (validated down to each app's config) and reading them back
compiled (each variant's app built once per block version, which compiles a Text app's
template once), cached for ``ttl_s`` so opens do not read the block row each time.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from pydantic import ValidationError

from tidings.core.clock import Clock, from_ms, iso, to_ms
from tidings.core.errors import NotFound, TidingsError
from tidings.core.ids import new_id
from tidings.rules import ALWAYS, Rule, describe

from .render import App, TemplateError, build_app
from .render.countdown import CountdownApp
from .render.fonts import Fonts
from .render.layout import grid
from .render.products import CartItemsApp, LastOrderApp, ProductApp
from .render.text import TextApp
from .schemas import BlockIn, CollapseFallback, Creative, ImageFallback
from .store import BlockRow, ContentStore
from .tags import ESPS, creative_tag

BLOCK_ID: Final = re.compile(r"^blk_[0-9a-f]{20}$")
EXTENSIONS: Final = {"png": "png", "jpeg": "jpg", "gif": "gif"}


def _unprocessable(field: str, message: str, code: str = "invalid_block") -> TidingsError:
    return TidingsError(code, message, field, status=422)


@dataclass(frozen=True, slots=True)
class CompiledVariant:
    id: str
    kind: str
    app: App
    format: str  # png, jpeg or gif
    width: int  # display pixels
    scale: int
    rule: Rule = ALWAYS

    def display_height(self, fonts: Fonts) -> int:
        """The image's height in display pixels (``<img height>``): fixed by the layout or
        style, never by what a person is shown."""
        app = self.app
        if isinstance(app, CountdownApp):
            return app.config.style.height
        if isinstance(app, TextApp):
            return app.config.style.height
        assert isinstance(app, ProductApp)
        layout = app.config.layout
        cart = isinstance(app, CartItemsApp)
        footer = cart or isinstance(app, LastOrderApp)
        return grid(layout, fonts, caption=cart, footer=footer).height // layout.scale

    @property
    def has_slots(self) -> bool:
        """Whether the app draws one product per slot image (else slot 0 is the whole)."""
        return isinstance(self.app, ProductApp)


@dataclass(frozen=True, slots=True)
class CompiledBlock:
    id: str
    version: int
    name: str
    spec: BlockIn
    variants: tuple[CompiledVariant, ...]
    created_at: int
    updated_at: int

    @property
    def fallback(self) -> ImageFallback | CollapseFallback:
        return self.spec.fallback

    @property
    def fallback_link(self) -> str | None:
        return self.spec.fallback.link_url

    @property
    def main(self) -> CompiledVariant:
        return self.variants[0]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.main.format]


def _compile_creative(creative: Creative, timezone: str, where: str) -> App:
    kind = creative.app
    config = dict(creative.config)
    if kind == "countdown":
        if creative.format not in (None, "gif"):
            raise _unprocessable(f"{where}.format", "a countdown is an animated GIF: use gif")
        config.setdefault("timezone", timezone)
    else:
        if creative.format == "gif":
            raise _unprocessable(f"{where}.format", f"the {kind} app renders png or jpeg")
        part = "style" if kind == "text" else "layout"
        inner = config.get(part, {})
        if not isinstance(inner, dict):
            raise _unprocessable(f"{where}.config.{part}", f"{part} must be an object")
        inner = dict(inner)
        if creative.format is not None:
            inner["format"] = creative.format
        if creative.quality is not None:
            inner["quality"] = creative.quality
        config[part] = inner
    try:
        app = build_app(kind, config)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        field = f"{where}.config" + (f".{loc}" if loc else "")
        raise _unprocessable(field, first.get("msg", "invalid value")) from None
    if isinstance(app, TextApp):
        try:
            app.validate()
        except TemplateError as exc:
            raise _unprocessable(f"{where}.config.template", str(exc)) from None
    return app


def parse_block(data: Any) -> BlockIn:
    """A block's JSON as :class:`BlockIn`; raises 422 naming the first bad field as the API
    does (``variants.1.rule.all.rules.0.state``)."""
    try:
        return BlockIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        raise _unprocessable(field or "body", first.get("msg", "invalid value")) from None


def compile_block(row: BlockRow) -> CompiledBlock:
    """A stored block, validated and with its apps built; raises 422 naming the bad field."""
    spec = parse_block(row.spec)
    variants = []
    for i, variant in enumerate(spec.variants):
        where = f"variants.{i}"
        app = _compile_creative(variant.creative, spec.timezone, f"{where}.creative")
        compiled = _variant(variant.id, variant.creative.app, app)
        if variant.rule is not None:
            compiled = replace(compiled, rule=variant.rule)
        variants.append(compiled)
    return CompiledBlock(
        row.id, row.version, spec.name, spec, tuple(variants), row.created_at, row.updated_at
    )


def _variant(variant_id: str, kind: str, app: App) -> CompiledVariant:
    if isinstance(app, CountdownApp):
        style = app.config.style
        return CompiledVariant(variant_id, kind, app, "gif", style.width, style.scale)
    if isinstance(app, TextApp):
        text_style = app.config.style
        return CompiledVariant(
            variant_id, kind, app, text_style.format, text_style.width, text_style.scale
        )
    assert isinstance(app, ProductApp)
    layout = app.config.layout
    return CompiledVariant(variant_id, kind, app, layout.format, layout.width, layout.scale)


def _spec(body: BlockIn) -> dict[str, Any]:
    return body.model_dump(mode="json")


class BlockService:
    """Saves, reads and deletes blocks (see the module)."""

    def __init__(
        self,
        store: ContentStore,
        clock: Clock,
        *,
        ttl_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, CompiledBlock | None]] = {}
        self._lock = threading.Lock()
        self.on_delete: list[Callable[[str], None]] = []

    def create(self, body: BlockIn) -> CompiledBlock:
        """Save a new block; a block that cannot render raises 422 naming the field."""
        at = to_ms(self.clock.now())
        row = BlockRow(new_id("blk"), body.name, 1, _spec(body), at, at)
        compiled = compile_block(row)
        self.store.insert_block(row)
        self._forget(row.id)
        return compiled

    def replace(self, block_id: str, body: BlockIn) -> CompiledBlock:
        """Replace a block's definition (its version goes up; decisions keep the old one)."""
        current = self.get(block_id)
        at = to_ms(self.clock.now())
        row = BlockRow(
            block_id, body.name, current.version + 1, _spec(body), current.created_at, at
        )
        compile_block(row)  # raises 422 before anything is stored
        if not self.store.update_block(block_id, body.name, row.spec, at):
            raise self._not_found(block_id)
        self._forget(block_id)
        return self.get(block_id)

    def delete(self, block_id: str) -> None:
        """Delete the block with its decisions, locks and alarms."""
        if not BLOCK_ID.match(block_id) or not self.store.delete_block(block_id):
            raise self._not_found(block_id)
        self._forget(block_id)
        for listener in self.on_delete:
            listener(block_id)

    def get(self, block_id: str) -> CompiledBlock:
        found = self.find(block_id)
        if found is None:
            raise self._not_found(block_id)
        return found

    def find(self, block_id: str) -> CompiledBlock | None:
        """The block (cached), or ``None``: what an open reads."""
        if not BLOCK_ID.match(block_id):
            return None
        now = self._monotonic()
        with self._lock:
            entry = self._cache.get(block_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        row = self.store.get_block(block_id)
        compiled = compile_block(row) if row is not None else None
        if self.ttl_s > 0:
            with self._lock:
                self._cache[block_id] = (now + self.ttl_s, compiled)
                if len(self._cache) > 10_000:
                    self._cache.clear()
        return compiled

    def list(self) -> list[CompiledBlock]:
        return [compile_block(row) for row in self.store.list_blocks()]

    def _forget(self, block_id: str) -> None:
        with self._lock:
            self._cache.pop(block_id, None)

    @staticmethod
    def _not_found(block_id: str) -> NotFound:
        return NotFound("block_not_found", f"no block has the id {block_id!r}", "id")


def block_json(block: CompiledBlock) -> dict[str, Any]:
    """A block as the API shows it (alarms are added by the caller)."""
    return {
        "id": block.id,
        "version": block.version,
        **_spec(block.spec),
        "format": block.main.format,
        "width": block.main.width,
        "image_path": f"/i/{block.id}.{block.extension}",
        "click_path": f"/c/{block.id}",
        "waterfall": [{"id": v.id, "rule": describe(v.rule)} for v in block.variants],
        "created_at": iso(from_ms(block.created_at)),
        "updated_at": iso(from_ms(block.updated_at)),
        "alarms": [],
    }


def tag_size(block: CompiledBlock, fonts: Fonts, slot: int | None) -> tuple[int, int | None]:
    """The ``width`` and ``height`` of a block's ``<img>``: the height is the layout's (never
    who is shown), left out when the variants' differ, or for one slot."""
    heights = {v.display_height(fonts) for v in block.variants}
    height = heights.pop() if len(heights) == 1 and slot is None else None
    return block.main.width, height


def block_tag(
    block: CompiledBlock,
    esp: str,
    base_url: str,
    fonts: Fonts,
    *,
    slot: int | None = None,
    alt: str | None = None,
) -> dict[str, Any]:
    """The creative tag of ``block`` for ``esp`` as the API shows it; the ``<img height>`` is
    left out when the variants' heights differ. Raises 400 naming a bad argument."""
    width, height = tag_size(block, fonts, slot)
    try:
        html = creative_tag(
            base_url,
            block.id,
            esp,
            width=width,
            height=height,
            alt=alt if alt is not None else block.name,
            slot=slot,
            fmt=block.extension,
        )
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        raise TidingsError("invalid_tag", message or str(exc), field) from None
    tags = ESPS[esp]
    return {
        "block_id": block.id,
        "esp": esp,
        "esp_name": tags.name,
        "html": html,
        "merge_tag": tags.email,
        "send_id_tag": tags.send_id,
        "encodes": tags.encodes,
        "doc": tags.doc,
    }
