"""All configuration in one pydantic-settings class, read once and passed in."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TIDINGS_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/tidings.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql://user@host/db",
    )
    data_dir: Path = Field(default=Path("var"), description="Files: caches, demo credentials")
    secret_key: SecretStr = Field(
        default=SecretStr(""),
        description="Signs cookies and links; generated into data_dir when empty",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL browsers reach tidings at; taken from the request when unset",
    )
    auto_migrate: bool = True

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
        default=5000, ge=1, description="Most events the pipeline applies in one transaction"
    )
    pipeline_poll_s: float = 0.25
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
    log_level: str = "info"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
