"""Request and response models of the campaigns API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

MAX_HTML_CHARS = 2_000_000
MAX_LISTED = 100_000
ADDRESS = r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[^@\s<>\"(),;:]+$"


class Recipients(BaseModel):
    """Who a campaign goes to: listed profile ids and email addresses, or every profile that
    holds an email address. ``audience`` is the hook for audiences (not built yet)."""

    profile_ids: list[str] = Field(default_factory=list, max_length=MAX_LISTED)
    emails: list[str] = Field(default_factory=list, max_length=MAX_LISTED)
    all_with_email: bool = Field(default=False, description="Every profile holding an email")
    audience: str | None = Field(
        default=None, max_length=200, description="Reserved: an audience id once audiences exist"
    )

    @field_validator("emails")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        import re

        pattern = re.compile(ADDRESS)
        for i, email in enumerate(value):
            if len(email) > 320 or not pattern.match(email.strip()):
                raise ValueError(f"emails[{i}]: {email[:80]!r} is not an email address")
        return [e.strip() for e in value]

    @field_validator("profile_ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for i, pid in enumerate(value):
            if not 1 <= len(pid) <= 40:
                raise ValueError(f"profile_ids[{i}]: a profile id has 1 to 40 characters")
        return value

    @model_validator(mode="after")
    def _some(self) -> Recipients:
        if self.audience is not None:
            raise ValueError("audience: audiences are not available yet")
        return self


class CampaignIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200, examples=["Spring sale"])
    subject: str = Field(..., min_length=1, max_length=500, examples=["Spring is here"])
    from_address: str | None = Field(
        default=None,
        max_length=320,
        description="From: an address or `Name <address>`; default TIDINGS_SMTP_FROM",
        examples=["Shop <news@shop.example>"],
    )
    html: str = Field(
        ...,
        min_length=1,
        max_length=MAX_HTML_CHARS,
        description="A Jinja2 template (sandboxed): traits as variables "
        "(`{{ first_name | default('there') }}`), `{{ block('blk_…') }}` for a content "
        "block, `{{ unsubscribe_url }}`",
    )
    recipients: Recipients
    attribution_days: float | None = Field(
        default=None, gt=0, le=90, description="Attribution window (default 5 days)"
    )

    @field_validator("subject", "from_address")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and any(c in value for c in "\r\n"):
            raise ValueError("must be one line")
        return value


class CampaignOut(BaseModel):
    id: str
    name: str
    subject: str
    from_address: str | None
    html: str
    recipients: Recipients
    attribution_days: float
    created_at: str
    updated_at: str


class CampaignList(BaseModel):
    data: list[CampaignOut]


SendState = Literal["not_sent", "queued", "sending", "done", "failed"]


class SendStatus(BaseModel):
    campaign_id: str
    status: SendState
    total: int = 0
    sent: int = 0
    bounced: int = 0
    failed: int = Field(0, description="Not delivered (connection error, 4xx): tried again")
    skipped: int = Field(0, description="Suppressed, unsubscribed, no email, already sent")
    unknown: int = Field(0, description="Left mid-message by a crash: never sent again")
    error: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class VariantRow(BaseModel):
    block_id: str | None
    variant: str
    recipients: int
    unique_opens: int
    unique_clicks: int
    conversions: int
    revenue: float


class ReportOut(BaseModel):
    campaign_id: str
    name: str
    delivered: int
    bounced: int
    unique_opens: int = Field(..., description="People who opened (machine opens excluded)")
    machine_opens: int = Field(..., description="Messages opened only by a machine")
    unique_clicks: int = Field(..., description="People who clicked (machine clicks excluded)")
    machine_clicks: int
    click_to_open_rate: float | None
    unsubscribes: int
    replies: int
    conversions: int
    revenue: float
    attribution_days: float
    variants: list[VariantRow]
    elapsed_ms: float


class InboundOut(BaseModel):
    success: Literal[True] = True
    matched: bool
    campaign_id: str | None = None
    email_id: str | None = None
    matched_by: Literal["token", "in_reply_to"] | None = None
