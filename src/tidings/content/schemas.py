"""The content API's shapes: blocks (what is saved), alarms and render decisions (what is read).

A block's ``variants`` are a waterfall: a list of ``{id, rule, creative}``, tried in order;
the first whose targeting rule (:mod:`tidings.rules`) matches and whose content is not empty is
shown, and the block's ``fallback`` ends every waterfall.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tidings.rules.model import Rule, check_size

from .render.countdown import zone

MAX_VARIANTS = 20

AppKind = Literal["recently_viewed", "cart_items", "last_order", "recommended", "countdown", "text"]
ImageFormat = Literal["png", "jpeg", "gif"]
Url = Annotated[str, Field(min_length=1, max_length=2000)]


def _http_url(value: str) -> str:
    value = value.strip()
    if not value.lower().startswith(("http://", "https://")) or len(value) < 10:
        raise ValueError("must be an absolute http:// or https:// URL")
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("must not contain spaces or control characters")
    return value


class Creative(BaseModel):
    """What a variant shows: a render ``app`` and its ``config`` (its layout or style inside),
    encoded as ``format`` (``gif`` for a countdown, else ``png`` or ``jpeg``; by default the
    config's) at ``quality`` (JPEG)."""

    model_config = ConfigDict(extra="forbid")

    app: AppKind
    config: dict[str, Any] = Field(default_factory=dict)
    format: ImageFormat | None = None
    quality: int | None = Field(None, ge=30, le=95)


class Variant(BaseModel):
    """One step of the block's waterfall: shown when ``rule`` matches (``null``: always) and
    its creative has something to show; otherwise the next variant is tried."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    rule: Rule | None = Field(
        None, description="A targeting rule (see docs/api.md, Targeting rules); null: always"
    )
    creative: Creative

    @field_validator("rule")
    @classmethod
    def _bounded(cls, value: Rule | None) -> Rule | None:
        if value is not None:
            check_size(value)
        return value


class ImageFallback(BaseModel):
    """A static image (served at the block's width) and where a click on it leads."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["image"]
    image_url: Url
    link_url: Url

    _urls = field_validator("image_url", "link_url")(_http_url)


class CollapseFallback(BaseModel):
    """A 1×1 transparent image: the block disappears from the email. A click (unlikely on
    a pixel) leads to ``link_url`` if given."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["collapse"]
    link_url: Url | None = None

    @field_validator("link_url")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


Fallback = Annotated[ImageFallback | CollapseFallback, Field(discriminator="kind")]


class Utm(BaseModel):
    """UTM parameters appended to every click's target (a parameter the target already has,
    or the click URL overrides, wins); ``null`` leaves one out."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field("tidings", max_length=200)
    medium: str | None = Field("email", max_length=200)
    campaign: str | None = Field(None, max_length=200)
    content: str | None = Field(None, max_length=200)


class BlockIn(BaseModel):
    """A content block: one placement in an email."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    variants: list[Variant] = Field(min_length=1, max_length=MAX_VARIANTS)
    fallback: Fallback
    lock_after_first_open: bool = Field(
        False, description="Re-opens by the same recipient show the first open's image and links"
    )
    machine_opens: Literal["render", "fallback"] = Field(
        "render", description="What Apple Mail Privacy Protection and scanners are served"
    )
    utm: Utm = Utm()
    timezone: str = Field(
        "UTC",
        max_length=64,
        description="For wall-clock countdown deadlines, when the recipient has no timezone trait",
    )

    @field_validator("variants")
    @classmethod
    def _distinct_ids(cls, value: list[Variant]) -> list[Variant]:
        seen: set[str] = set()
        for variant in value:
            if variant.id in seen:
                raise ValueError(f"two variants have the id {variant.id!r}: ids must differ")
            seen.add(variant.id)
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if zone(value) is None:
            raise ValueError(f"{value!r} is not an IANA time zone (such as 'Europe/Berlin')")
        return value


class AlarmOut(BaseModel):
    code: Literal["merge_tag", "empty_recipient"]
    message: str
    count: int
    first_seen: str
    last_seen: str
    example: str


class WaterfallStepOut(BaseModel):
    id: str
    rule: str = Field(description="The variant's rule as a person reads it")


class BlockOut(BlockIn):
    id: str
    version: int
    format: ImageFormat
    width: int = Field(description="Display width in pixels (the <img width>)")
    image_path: str = Field(examples=["/i/blk_0123456789abcdef0123.png"])
    click_path: str = Field(examples=["/c/blk_0123456789abcdef0123"])
    waterfall: list[WaterfallStepOut] = Field(
        description="The variants in the order they are tried, with their rules in words"
    )
    created_at: str
    updated_at: str
    alarms: list[AlarmOut] = Field(default_factory=list)


class BlockList(BaseModel):
    data: list[BlockOut]


class AlarmList(BaseModel):
    block_id: str
    data: list[AlarmOut]


class Deleted(BaseModel):
    id: str
    deleted: bool


class ShownOut(BaseModel):
    index: int
    product_id: str | None
    name: str | None
    url: str | None


class DecisionOut(BaseModel):
    id: int
    block_id: str
    block_version: int
    variant: str | None
    recipient: str
    profile_id: str | None
    send_id: str | None
    served: Literal["render", "locked", "fallback"]
    reason: str
    slot: int | None
    shown: list[ShownOut]
    at: str
    user_agent: str | None
    ip_class: str
    machine: bool
    fetch_kind: str
    duration_ms: float
    rules_ms: float = Field(description="Of duration_ms, the time spent evaluating rules")
    waterfall: str = Field(
        description="Each variant tried, in order, and its outcome (chosen, no_match, "
        "fell_through)",
        examples=["cart:no_match viewed:chosen"],
    )


class DecisionList(BaseModel):
    block_id: str
    data: list[DecisionOut]


Inbox = Literal["normal", "apple_mpp", "gmail_proxy", "outlook"]


class PreviewIn(BaseModel):
    """Who to preview for, when, and in which inbox (see docs/api.md, Previews)."""

    model_config = ConfigDict(extra="forbid")

    recipient: str = Field(
        min_length=1, max_length=320, description="As a creative tag's u: an email, a userId"
    )
    at: datetime | None = Field(None, description="The moment of the open (default: now)")
    inbox: Inbox = "normal"
    slot: int | None = Field(None, ge=0, le=35, description="One slot's image instead")
    country: str | None = Field(None, pattern=r"^[A-Za-z]{2,3}$")


class ImageOut(BaseModel):
    content_type: str
    width: int
    height: int
    frames: int
    shown_frames: int = Field(description="Frames the inbox shows (Outlook: only the first)")
    bytes: int
    data_url: str


class PreviewOut(BaseModel):
    block_id: str
    block_version: int
    recipient: str
    profile_id: str | None
    at: str
    inbox: dict[str, str]
    fetch: dict[str, Any]
    served: Literal["render", "fallback"]
    reason: str
    variant: str | None
    waterfall: dict[str, Any] | None = Field(
        description="chosen (index), rules_ms, and each step: outcome and the rule's trace"
    )
    shown: list[ShownOut]
    image: ImageOut


class SimulateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sample: int | None = Field(
        None, ge=1, description="A seeded random sample of this many profiles (default: all)"
    )
    seed: int = Field(0, ge=0, le=2**31)
    at: datetime | None = None
    inbox: Inbox = "normal"
    examples: int = Field(3, ge=0, le=10)


class SimulatedVariant(BaseModel):
    id: str
    rule: str
    count: int
    share: float
    examples: list[str]


class SimulatedFallback(BaseModel):
    count: int
    share: float
    examples: list[str]
    reasons: dict[str, int]


class SimulateOut(BaseModel):
    block_id: str
    block_version: int
    at: str
    inbox: str
    profiles: int
    sampled: bool
    variants: list[SimulatedVariant]
    fallback: SimulatedFallback
    rules_ms_per_profile: float
    elapsed_ms: float


class TagOut(BaseModel):
    block_id: str
    esp: str
    esp_name: str
    html: str = Field(description="Paste into the ESP's template: <a href><img></a>")
    merge_tag: str = Field(description="The ESP's merge tag for the email address, as used")
    send_id_tag: str | None
    encodes: bool = Field(description="Whether the ESP URL-encodes the substituted address")
    doc: str
