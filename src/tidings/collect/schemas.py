"""OpenAPI documentation of Segment messages. Validation itself lives in ``messages.py``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    userId: str | None = Field(None, description="Your id for the person; userId or anonymousId")
    anonymousId: str | None = Field(None, description="Device or cookie id before sign-in")
    messageId: str | None = Field(
        None, max_length=100, description="Unique per message; retries with it are de-duplicated"
    )
    timestamp: str | None = Field(None, description="ISO-8601; when the event happened")
    originalTimestamp: str | None = Field(None, description="ISO-8601 device time")
    sentAt: str | None = Field(None, description="ISO-8601 device time of sending")
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    writeKey: str | None = Field(None, description="The source's write key, if not sent as auth")


class TrackMessage(_Message):
    type: Literal["track"] | None = None
    event: str = Field(..., min_length=1, max_length=500, examples=["Product Viewed"])
    properties: dict[str, Any] | None = None


class IdentifyMessage(_Message):
    type: Literal["identify"] | None = None
    traits: dict[str, Any] | None = None


class PageMessage(_Message):
    type: Literal["page"] | None = None
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class ScreenMessage(_Message):
    type: Literal["screen"] | None = None
    name: str | None = None
    properties: dict[str, Any] | None = None


class GroupMessage(_Message):
    type: Literal["group"] | None = None
    groupId: str = Field(..., min_length=1)
    traits: dict[str, Any] | None = None


class AliasMessage(_Message):
    type: Literal["alias"] | None = None
    previousId: str = Field(..., min_length=1)
    userId: str | None = Field(..., min_length=1, description="The new id")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[dict[str, Any]] = Field(
        ..., max_length=2500, description="Messages, each with its `type`"
    )
    writeKey: str | None = None
    sentAt: str | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None


class RejectedEvent(BaseModel):
    index: int | None = None
    code: str
    field: str | None = None
    message: str


class IngestResponse(BaseModel):
    success: bool = True
    accepted: int | None = Field(None, description="Messages stored (batch only)")
    rejected: list[RejectedEvent] | None = Field(
        None, description="Messages not stored and why (batch only)"
    )


MESSAGE_MODELS: dict[str, type[BaseModel]] = {
    "track": TrackMessage,
    "identify": IdentifyMessage,
    "page": PageMessage,
    "screen": ScreenMessage,
    "group": GroupMessage,
    "alias": AliasMessage,
}
DOC_MODELS: tuple[type[BaseModel], ...] = (*MESSAGE_MODELS.values(), BatchRequest)
