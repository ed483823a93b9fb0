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
    log_level: str = "info"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
