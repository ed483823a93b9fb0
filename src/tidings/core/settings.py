"""All configuration in one pydantic-settings class, read once and passed in."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WebhookMapping(BaseModel):
    """A generic ESP webhook (``POST /v1/webhooks/{name}``): where the fields are, as dotted
    paths into each event (``msg.email``, ``0.event``); see docs/api.md."""

    secret: SecretStr = Field(..., description="Sent by the ESP in `secret_header`")
    secret_header: str = "X-Tidings-Webhook-Secret"  # noqa: S105 (a header name)
    events: str = Field(default="", description="Path to the list of events; empty: the body")
    event_type: str = Field(..., description="Path to the ESP's name for the event")
    types: dict[str, str] = Field(..., description="The ESP's event names → Email spec event names")
    email: str = Field(..., description="Path to the recipient's email address")
    event_id: str | None = Field(default=None, description="Path to a unique id (dedup)")
    timestamp: str | None = Field(
        default=None, description="Path to the time: ISO-8601, or epoch seconds/milliseconds"
    )
    properties: dict[str, str] = Field(
        default_factory=dict, description="Email spec property → path (email_id, link_url, …)"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/tidings.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql://user@host/db",
    )
    data_dir: Path = Field(default=Path("var"), description="Files: caches, demo credentials")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Signs cookies and links; generated into data_dir/secret_key when empty",
    )
    secret_keys_previous: list[SecretStr] = Field(
        default_factory=list,
        description="Retired secret keys: what they signed still verifies (rotation)",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL browsers reach tidings at; taken from the request when unset",
    )
    auto_migrate: bool = True
    admin_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long an admin UI sign-in lasts"
    )

    # SQLite durability: FULL fsyncs the WAL at every commit, so a 2xx survives power loss.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    sqlite_busy_timeout_ms: int = 10_000

    # Segment's limits (https://segment.com/docs/connections/rate-limits/).
    max_event_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_events: int = 2500
    max_message_id_chars: int = 100

    # Ingest queue: bounded; full means 429 with Retry-After.
    ingest_queue_max_events: int = 50_000
    ingest_commit_max_events: int = 10_000
    ingest_retry_after_s: int = 1

    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    analytics_js_dir: Path | None = Field(
        default=None,
        description="Folder holding @segment/analytics-next's dist/umd, served as a CDN",
    )
    debugger_poll_s: float = 0.5

    # Identity resolution (like Segment Unify's identity rules).
    identity_limits: dict[str, int] = Field(
        default_factory=lambda: {"user_id": 1, "anonymous_id": 5, "email": 5},
        description="Most distinct values of each identifier type one profile may hold",
    )
    identity_blocked_values: list[str] = Field(
        default_factory=lambda: ["null", "undefined", "anonymous", "0", "-1", ""],
        description="Values that are never identifiers (trimmed, case-insensitive)",
    )
    identity_external_ids: list[str] = Field(
        default_factory=list,
        description="Extra identifier types, read from traits and context.externalIds by name "
        "(e.g. phone, ga_client_id)",
    )
    identity_priority: list[str] | None = Field(
        default=None, description="Identifier types, most trusted first"
    )

    # The pipeline (events log → identities and profiles).
    pipeline_in_process: bool = Field(
        default=True, description="Run the pipeline inside `tidings serve` (else: `tidings worker`)"
    )
    pipeline_batch_events: int = Field(
        default=10_000, ge=1, description="Most events the pipeline applies in one transaction"
    )
    pipeline_poll_s: float = Field(
        default=0.05,
        gt=0,
        le=60,
        description=(
            "How often an idle pipeline looks for new events (a `tidings worker` cannot be "
            "woken by the server's commits; the in-process pipeline is); it bounds the delay"
        ),
    )
    pipeline_state_cache: int = Field(
        default=100_000,
        ge=0,
        description="Profile states the pipeline keeps in memory (least recently written go first)",
    )

    # Retention: events (and rejections) received longer ago than this are purged.
    retention_days: int = Field(default=30, ge=1)
    retention_interval_s: float = 3600.0

    # The catalog: feed imports, and the cache open-time renders read products through.
    catalog_import_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    catalog_cache_ttl_s: float = 5.0
    # Product images (catalog/images.py): fetched over HTTP, cached under data_dir/images.
    images_allow_private: bool = Field(
        default=False, description="Fetch images from private/loopback addresses too"
    )
    images_max_bytes: int = 5 * 1024 * 1024
    images_max_pixels: int = 40_000_000
    images_max_side: int = 4000
    images_connect_timeout_s: float = 3.0
    images_read_timeout_s: float = 5.0
    images_total_timeout_s: float = 15.0
    images_max_redirects: int = 3
    images_failure_ttl_s: float = 60.0
    images_memory_bytes: int = 64 * 1024 * 1024
    # Open-time content (content/): caches of the render path and the decision writer.
    content_profile_ttl_s: float = Field(
        default=1.0, ge=0, description="How long a recipient's profile view is reused"
    )
    content_block_ttl_s: float = Field(
        default=2.0, ge=0, description="How long a block is reused before it is read again"
    )
    content_decision_flush_s: float = Field(
        default=0.2, gt=0, description="How long the decision writer gathers before a commit"
    )
    content_decision_batch: int = Field(default=2000, ge=1)
    content_decision_queue_max: int = Field(
        default=50_000,
        ge=1,
        description="Decisions waiting to be written; beyond, the oldest are dropped (and counted)",
    )
    content_latest_max: int = Field(
        default=100_000, ge=1, description="Latest decisions kept in memory for clicks"
    )
    content_lock_memory_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    content_grid_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Encoded product grids kept for re-opens and identical content (bytes)",
    )
    content_tile_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Product tiles drawn and quantised, kept for the grids that show them "
        "(bytes; about 50 KB a tile of a 600 px, 3-column grid)",
    )
    content_country_header: str | None = Field(
        default=None,
        description="Request header a trusted proxy or CDN sets to the opener's country "
        "(e.g. CF-IPCountry), read by rules on the open's country",
    )
    content_simulate_max: int = Field(
        default=100_000, ge=1, description="Most profiles one block simulation walks"
    )

    # Email tracking (tracking/): signed open pixels and click links, ESP webhooks.
    tracking_utm_source: str = Field(
        default="newsletter", description="utm_source added to clicked links unless given"
    )
    tracking_link_max_age_days: int | None = Field(
        default=None,
        ge=1,
        description="Record no opens or clicks of links older than this (clicks still redirect)",
    )
    webhook_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1)
    webhook_sendgrid_public_key: str | None = Field(
        default=None, description="SendGrid's signed Event Webhook verification key (base64)"
    )
    webhook_mandrill_key: SecretStr | None = Field(
        default=None, description="Mailchimp Transactional (Mandrill) webhook key"
    )
    webhook_mandrill_url: str | None = Field(
        default=None, description="The URL registered in Mandrill (it is part of the signature)"
    )
    webhook_postmark_credentials: SecretStr | None = Field(
        default=None, description="`user:password` Postmark sends as HTTP Basic auth"
    )
    webhook_postmark_token: SecretStr | None = Field(
        default=None, description="A secret Postmark sends in the X-Tidings-Webhook-Token header"
    )
    webhook_mappings: dict[str, WebhookMapping] = Field(
        default_factory=dict, description="Generic JSON webhooks by name"
    )
    log_level: str = "info"

    # Campaigns (campaigns/): sending over SMTP, replies, reports.
    smtp_host: str | None = Field(default=None, description="The SMTP server campaigns go out by")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        default="starttls",
        description="starttls (submission, 587), tls (implicit TLS, 465) or none (a local relay)",
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    smtp_connections: int = Field(
        default=1,
        ge=1,
        le=32,
        description="SMTP connections a send uses at once (each message on one of them)",
    )
    smtp_from: str | None = Field(
        default=None, description="From address of campaigns that name none"
    )
    campaign_send_rate: float = Field(
        default=10.0, gt=0, le=10_000, description="Messages per second a send goes out at"
    )
    campaign_send_burst: int = Field(
        default=1, ge=1, le=10_000, description="Messages that may go out at once (token bucket)"
    )
    campaign_attribution_days: float = Field(
        default=5.0, gt=0, le=90, description="Default attribution window of a campaign"
    )
    reply_domain: str | None = Field(
        default=None,
        description="Domain of the per-recipient Reply-To (reply+<token>@domain): its MX must "
        "reach an inbound endpoint or the built-in SMTP receiver",
    )
    reply_store_body: bool = Field(
        default=False, description="Keep a reply's whole text in its event (else a snippet)"
    )
    reply_snippet_chars: int = Field(default=200, ge=0, le=2000)
    inbound_sendgrid_secret: SecretStr | None = Field(
        default=None,
        description="Secret SendGrid Inbound Parse sends (?secret= or the Basic password)",
    )
    inbound_mailgun_signing_key: SecretStr | None = Field(
        default=None, description="Mailgun's HTTP webhook signing key (routes are signed with it)"
    )
    inbound_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    inbound_smtp_port: int | None = Field(
        default=None, ge=1, le=65535, description="Run the built-in SMTP receiver for replies"
    )
    inbound_smtp_host: str = "127.0.0.1"

    # Machine fetches (tracking/machine.py): opens prefetched by Apple Mail Privacy Protection
    # and security scanners. 17.0.0.0/8 is Apple's own network (ASN 714); Apple publishes the
    # full egress list MPP and iCloud Private Relay share at
    # https://mask-api.icloud.com/egress-ip-ranges.csv (large; add its ranges here to use it).
    machine_ip_ranges: list[str] = Field(
        default_factory=lambda: ["17.0.0.0/8"],
        description="CIDRs (IPv4 or IPv6) whose image fetches are machine opens",
    )
    machine_user_agents: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions (case-insensitive) for machine user agents",
    )
    scanner_click_window_s: float = Field(
        default=10.0,
        ge=0,
        description="A click or open this soon after delivery counts as a scanner's",
    )

    @field_validator("machine_ip_ranges")
    @classmethod
    def _cidrs_parse(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"machine_ip_ranges: {cidr!r} is not a CIDR ({exc})") from exc
        return value

    @field_validator("machine_user_agents")
    @classmethod
    def _regexes_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"machine_user_agents: {pattern!r} is not a regular expression ({exc})"
                ) from exc
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
