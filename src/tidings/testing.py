"""Helpers for tests and benchmarks: throwaway PostgreSQL schemas and a live server process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
from sqlalchemy import text

from tidings.collect.sources import SourceService
from tidings.collect.store import CollectStore
from tidings.core import migrate
from tidings.core.auth import TokenService
from tidings.core.clock import SystemClock
from tidings.core.db import Database, create_engine

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    return os.environ.get("TIDINGS_TEST_PG_URL") or DEFAULT_PG_URL


def pg_available(url: str | None = None) -> str | None:
    """None when PostgreSQL answers at ``url``, else the reason it does not."""
    try:
        engine = create_engine(url or pg_url())
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"PostgreSQL at {url or pg_url()} is not reachable: {exc.__class__.__name__}: {exc}"
    return None


@contextmanager
def pg_schema(base_url: str | None = None) -> Iterator[str]:
    """A fresh schema for one test or run; yields a URL whose search_path points at it."""
    base = base_url or pg_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={name}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        admin.dispose()


@dataclass
class Credentials:
    source_id: str
    write_key: str
    admin_token: str


def prepare_database(url: str, source_name: str = "test source") -> Credentials:
    """Migrate ``url`` and create a source and an admin token in it."""
    db = Database.from_url(url)
    try:
        migrate.upgrade(db.engine)
        clock = SystemClock()
        made = SourceService(CollectStore(db.engine), clock).create(source_name)
        token = TokenService(db.engine, clock).create("test admin")
    finally:
        db.close()
    return Credentials(made.source.id, made.write_key, token.secret)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``tidings serve`` in a child process, as a user would run it."""

    database_url: str
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    args: list[str] = field(default_factory=list)  # more `tidings serve` options
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        env = {**os.environ, "TIDINGS_DATABASE_URL": self.database_url, **self.env}
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tidings", "serve", "--port", str(self.port), *self.args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches --workers' children
        )
        if not isinstance(out, int):
            out.close()  # the child holds its own descriptor
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tidings serve exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tidings serve did not become healthy within {timeout} s")

    def kill(self) -> None:
        """SIGKILL to every process of the server (with ``--workers N``, the supervisor and
        its workers): no shutdown hook runs, as in a crash."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
