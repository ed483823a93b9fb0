"""Leadership: at most one process applies the log at a time; the others stand by.

Identity resolution is one ordered computation over the whole log, so consumers do not split
it; they take turns. The lease is released by the operating system or the database when its
holder dies (an ``flock`` on a file beside the SQLite database, a session advisory lock on
PostgreSQL), so a standby takes over within one poll of a crash, kill -9 included. Even
without the lease the cursor's compare-and-set keeps two consumers from applying a batch
twice; the lease only spares the loser its wasted work.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy.engine import Connection, Engine


class Lease(Protocol):
    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class FileLease:
    """An exclusive ``flock`` on ``path``; other processes (and other instances) fail to get it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "ab")  # noqa: SIM115 (held open while leader)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class PgAdvisoryLease:
    """A session-level advisory lock held on a dedicated connection."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return True
            except Exception:
                self._drop()
        conn = self.engine.connect()
        try:
            got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (self.key,)).scalar()
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
            finally:
                self._conn = None

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (self.key,))
                self._conn.commit()
                self._conn.close()
            finally:
                self._conn = None


class NoLease:
    """For a private in-memory database: nobody else can reach it."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        return None


def lease_for(engine: Engine, name: str) -> Lease:
    if engine.dialect.name == "postgresql":
        schema = engine.url.query.get("options", "")
        return PgAdvisoryLease(engine, f"{engine.url.database}/{schema}/{name}")
    database = engine.url.database
    if not database or database == ":memory:":
        return NoLease()
    return FileLease(Path(f"{database}.{name}.lock"))
