"""Request and response models of the tracking API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

MAX_HTML_CHARS = 2_000_000
Esp = Literal["mailchimp", "mandrill", "sendgrid", "postmark", "generic"]


class WrapIn(BaseModel):
    html: str = Field(..., max_length=MAX_HTML_CHARS, description="The whole HTML email")
    campaign_id: str = Field(..., min_length=1, max_length=200, examples=["spring-sale"])
    campaign_name: str | None = Field(default=None, max_length=200, examples=["Spring sale"])
    email_id: str | None = Field(default=None, max_length=200)
    email_subject: str | None = Field(default=None, max_length=500)
    esp: Esp = Field(..., description="The ESP that sends it: decides the recipient merge tag")
    recipient_tag: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The ESP's merge tag for the recipient's address (default for mailchimp "
        "and mandrill: *|EMAIL|*; sendgrid: {{email}}; required for postmark and generic)",
    )
    utm_source: str | None = Field(default=None, min_length=1, max_length=200)
    skip_unsubscribe: bool = Field(
        default=True, description="Leave unsubscribe links to the ESP (it tracks them itself)"
    )
    add_pixel: bool = True


class SkippedLink(BaseModel):
    href: str
    reason: str


class WrapOut(BaseModel):
    html: str
    links_wrapped: int
    skipped: list[SkippedLink]
    pixel_added: bool
    complete: bool = Field(
        ..., description="False when the HTML parser stopped early; later links are as they were"
    )


class RejectedEvent(BaseModel):
    code: str
    field: str | None = None
    message: str
    index: int | None = None


class WebhookOut(BaseModel):
    success: Literal[True] = True
    accepted: int = Field(..., description="Email spec events stored (duplicates are skipped)")
    ignored: dict[str, int] = Field(..., description="ESP events with no Email spec event")
    rejected: list[RejectedEvent] = Field(
        default_factory=list, description="Events that could not be read, with reasons"
    )
