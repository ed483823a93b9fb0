"""Database plumbing: one engine per app, SQLite in WAL mode or PostgreSQL over psycopg 3.

SQLite allows one writer at a time, so the hot write paths (ingest, later the pipeline) run
their transactions on ``Database.writer``, a single thread; readers run concurrently under WAL.
On PostgreSQL the same code runs with a small pool of writer threads.

Several server processes on one SQLite file (``tidings serve --workers N``) take turns through
an advisory lock file beside the database (``<db>-writers.lock``, ``flock``) around each write
on their writer threads: a waiting process wakes the moment the other one commits, instead of
polling in SQLite's busy handler, whose sleeps of up to 100 ms were the p99 of two processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from psycopg.errors import UniqueViolation
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Integer,
    MetaData,
    Table,
    and_,
    any_,
    bindparam,
    event,
    false,
    or_,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine import create_engine as sa_create_engine
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from tidings.core.settings import Settings

log = logging.getLogger(__name__)

metadata = MetaData()

# An auto-incrementing 64-bit key; on SQLite an INTEGER PRIMARY KEY, the alias of the rowid
# (only that type auto-increments there, and appends to it are the fastest).
Serial = BigInteger().with_variant(Integer, "sqlite")

P = ParamSpec("P")
T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept the URLs people paste (postgres://, postgresql://) and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


# Read and cache choices (durability is the journal mode and ``synchronous``, above). The
# default page cache (2 MB) holds almost nothing of a pipeline's working set (profiles, the
# timeline and identities indexes), so each batch re-read its pages with system calls; reads
# through a memory map skip them and share the operating system's page cache between
# connections; a checkpoint every 4,000 pages (16 MB of WAL, default 1,000) copies a page
# rewritten by several batches once.
_SQLITE_TUNING = (
    "PRAGMA cache_size=-32768",  # KiB: 32 MB per connection
    "PRAGMA mmap_size=1073741824",  # 1 GB of address space, not of memory
    "PRAGMA wal_autocheckpoint=4000",
)


def create_engine(url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 10_000) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa_create_engine(
            url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
            # SQLAlchemy's "begin" event below opens transactions itself; pysqlite's own
            # implicit transactions would not cover SELECTs and break snapshot reads.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
            for pragma in _SQLITE_TUNING:
                cur.execute(pragma)
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    return sa_create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


class Database:
    """The engine plus the writer thread(s) that hot write paths use."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._writer: ThreadPoolExecutor | None = None
        database = engine.url.database if self.is_sqlite else None
        self._lock_path = (
            f"{os.path.abspath(database)}-writers.lock"
            if database and database != ":memory:"
            else None
        )
        self._lock_fd: int | None = None

    @property
    def writer(self) -> ThreadPoolExecutor:
        """The writer thread(s); made on first use, so an app can start again after close()."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(
                max_workers=1 if self.is_sqlite else 4, thread_name_prefix="tidings-writer"
            )
        return self._writer

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url, **kwargs))

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The configured database, with the configured SQLite durability and busy timeout."""
        return cls.from_url(
            settings.database_url,
            synchronous=settings.sqlite_synchronous,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    async def run_write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` on the writer thread and await its result."""
        loop = asyncio.get_running_loop()

        def locked() -> T:
            with self.writers_lock():
                return fn(*args, **kwargs)

        return await loop.run_in_executor(self.writer, locked)

    @contextlib.contextmanager
    def writers_lock(self) -> Iterator[None]:
        """Exclusive among the processes writing this SQLite file (a no-op elsewhere). Hold it
        around a whole write transaction; it is not re-entrant within a process."""
        if self._lock_path is None:
            yield
            return
        if self._lock_fd is None:
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
            self._writer = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        self.engine.dispose()


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    update: Sequence[str] | None = None,
) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` (or ``DO NOTHING`` when ``update`` is empty),
    the same on SQLite and PostgreSQL; ``update=None`` updates every non-key column."""
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    columns = update if update is not None else [c for c in rows[0] if c not in keys]
    if columns:
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in columns}
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(stmt, list(rows))


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    on_conflict: str = "",
    *,
    distinct_keys: bool = False,
    new_keys: bool = False,
) -> None:
    """Insert many rows through the driver: SQLAlchemy's per-row parameter processing costs
    more than the insert itself on hot paths. ``on_conflict`` is the SQL after the rows (the
    same text works on SQLite and PostgreSQL, e.g. ``ON CONFLICT (k) DO NOTHING``); rows
    with the same key meet it in the order given.

    On SQLite, rows go in as multi-row ``INSERT``s (one GIL round-trip per statement instead
    of per row, see ``CollectStore``). On PostgreSQL they go in through ``COPY`` (see
    :func:`_copy_rows`), unless the statement updates on conflict and the caller cannot
    promise ``distinct_keys`` (PostgreSQL refuses to update a row twice in one statement):
    then as psycopg's pipelined ``executemany``, a statement per row.

    ``new_keys`` says that no row should meet ``on_conflict`` at all (each row's key is new,
    as an event's ``seq`` is to the pipeline, which applies each event once): PostgreSQL
    then copies straight into the table, and only if a key was not new after all does it
    fall back to the conflict clause, with the same result.
    """
    if not rows:
        return
    cols = ", ".join(columns)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite":
            one = "(" + ", ".join(("?",) * len(columns)) + ")"
            per = max(1, min(500, 30_000 // len(columns)))
            for part in chunks(rows, per):
                sql = f"INSERT INTO {table.name} ({cols}) VALUES {', '.join([one] * len(part))}"
                cursor.execute(f"{sql} {on_conflict}", [v for row in part for v in row])
        elif distinct_keys or "DO UPDATE" not in on_conflict:
            if not (new_keys and on_conflict and _copied_as_new(cursor, table.name, columns, rows)):
                _copy_rows(cursor, table.name, columns, rows, on_conflict)
        else:
            marks = ", ".join(["%s"] * len(columns))
            sql = f"INSERT INTO {table.name} ({cols}) VALUES ({marks}) {on_conflict}"
            cursor.executemany(sql, rows)
    finally:
        cursor.close()


def _copied_as_new(
    cursor: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> bool:
    """PostgreSQL: ``COPY`` straight into ``table`` inside a savepoint; ``False`` (and
    nothing written) if a row's key was already there. A table's staging copy and the
    ``INSERT … SELECT`` that moves it cost the server about as much as the copy itself
    (10,000 timeline rows: 190 against 90 ms)."""
    cursor.execute("SAVEPOINT tidings_copy")
    try:
        _copy_rows(cursor, table, columns, rows, "")
    except UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT tidings_copy")
        log.warning("rows of %s expected to be new were not; they meet ON CONFLICT", table)
        return False
    cursor.execute("RELEASE SAVEPOINT tidings_copy")
    return True


def _copy_rows(
    cursor: Any,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    on_conflict: str,
) -> None:
    """PostgreSQL: ``rows`` into ``table`` through ``COPY … FROM STDIN``.

    A multi-row ``INSERT … VALUES`` with thousands of parameters cost the client more than
    the server: psycopg parses every such statement anew in Python (it caches only short
    ones), which was two thirds of a pipeline batch's commit. ``COPY`` sends the rows as they
    are and adapts each value in C. ``COPY`` knows no ``ON CONFLICT``, so rows that need one
    are copied into a temporary table of this session (made on first use, emptied by the
    statement that moves its rows, and at every commit) and moved by one
    ``INSERT … SELECT … ON CONFLICT`` in the order they were copied.
    """
    cols = ", ".join(columns)
    if not on_conflict:
        target = table
    else:
        target = f"tidings_in_{table}_{zlib.crc32(cols.encode()):08x}"
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {table} WITH NO DATA"
        )
    with cursor.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    if on_conflict:
        cursor.execute(
            f"WITH moved AS (DELETE FROM {target} RETURNING {cols}) "
            f"INSERT INTO {table} ({cols}) SELECT {cols} FROM moved {on_conflict}"
        )


def placeholder(engine: Engine) -> str:
    """The driver's parameter mark: ``?`` for sqlite3, ``%s`` for psycopg."""
    return "?" if engine.dialect.name == "sqlite" else "%s"


def driver_rows(engine: Engine, sql: str, params: Sequence[Any]) -> list[Any]:
    """Every row of one read statement sent straight to the driver's cursor (parameters
    marked with :func:`placeholder`), for hot reads where SQLAlchemy's statement and result
    handling would cost more than the query."""
    with engine.connect() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            cursor.close()


def driver_rows_in(engine: Engine, select: str, column: str, values: Sequence[Any]) -> list[Any]:
    """Every row of ``{select} WHERE {column} IN values``, sent straight to the driver like
    :func:`driver_rows`. On PostgreSQL the values go as one array (``= ANY(%s)``: a short
    statement psycopg parses once and prepares, where an expanded ``IN`` of hundreds of
    parameters was parsed in Python at every call); on SQLite as ``IN (?, …)`` in chunks of
    500."""
    if not values:
        return []
    if engine.dialect.name != "sqlite":
        return driver_rows(engine, f"{select} WHERE {column} = ANY(%s)", [list(values)])
    found: list[Any] = []
    for part in chunks(values, 500):
        marks = ", ".join("?" * len(part))
        found.extend(driver_rows(engine, f"{select} WHERE {column} IN ({marks})", part))
    return found


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size`` (to stay under bound-parameter limits)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def values_in(
    engine: Engine, column: ColumnElement[Any], values: Sequence[Any]
) -> ColumnElement[bool]:
    """``column IN values`` for a query on ``engine``. On PostgreSQL the values go as one array
    (``column = ANY(…)``): the statement stays the same whatever their number, so SQLAlchemy
    compiles it once and psycopg parses and prepares it once, where an expanded ``IN`` of
    hundreds of parameters was rendered by one and parsed in Python by the other at every
    call. Elsewhere SQLAlchemy's ``IN``."""
    if engine.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def pairs_in(
    type_column: ColumnElement[str],
    value_column: ColumnElement[str],
    pairs: Iterable[tuple[str, str]],
    engine: Engine,
) -> ColumnElement[bool]:
    """``(type, value) IN pairs`` written as ``type = t AND value IN (…)`` per type, ORed
    (each ``IN`` as :func:`values_in` makes it for ``engine``).

    SQLite uses no index for a row-value ``IN (VALUES …)`` and scans the whole table (a
    profile's timeline read every timeline row); each term of this form is an index search on
    SQLite and PostgreSQL alike."""
    grouped: dict[str, list[str]] = {}
    for id_type, value in pairs:
        grouped.setdefault(id_type, []).append(value)
    if not grouped:
        return false()
    return or_(
        *(and_(type_column == t, values_in(engine, value_column, vs)) for t, vs in grouped.items())
    )
