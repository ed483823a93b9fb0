"""A/B runs of the pipeline's drain, each on a fresh copy of one loaded log.

``make bench-pipeline`` generates and loads the stream anew for every run (about three minutes
before the pipeline starts on this kind of machine). To compare two versions of the code, load
the log once into a template database, then time ``Pipeline.drain()`` on copies of it
(``CREATE DATABASE … TEMPLATE``, seconds), back to back:

    .venv/bin/python benchmarks/drain_ab.py load                    # once: 1,000,000 events
    .venv/bin/python benchmarks/drain_ab.py run --name a            # this checkout
    PYTHONPATH=/tmp/other/src .venv/bin/python benchmarks/drain_ab.py run --name b

Each run prints events/s, this process's CPU seconds and the PostgreSQL server's (every
``postgres`` process on the machine, from ``/proc``: run nothing else against it), the wall
seconds spent preparing and committing batches (the two overlap; the one near the drain's
length bounds it), the bytes this process wrote and read through system calls, and keeps its
database (``tidings_drain_<name>``) so that derived tables can be compared between runs.
``--batch-events N`` sets ``TIDINGS_PIPELINE_BATCH_EVENTS``; ``--pragma "PRAGMA …"``
(repeatable) runs on every SQLite connection after tidings' own.

With ``--sqlite`` the log is loaded into ``var/drain-ab/log.db`` and each run drains a copy of
that file (``var/drain-ab/<name>.db``, kept likewise).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from bench_pipeline import enrich, raw_insert, settle, stream
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

import tidings.core.db as db_module
from tidings.app import build_container
from tidings.core.settings import Settings
from tidings.testing import pg_url, prepare_database

TEMPLATE = "tidings_drain_log"
ROOT = Path(__file__).resolve().parent.parent
SQLITE_DIR = ROOT / "var" / "drain-ab"


def _url(base: str, database: str) -> str:
    return f"{base.rsplit('/', 1)[0]}/{database}"


def _admin(base: str) -> Engine:
    return create_engine(_url(base, "postgres"), isolation_level="AUTOCOMMIT")


def postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on the machine (user + system)."""
    ticks = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if not f.read().startswith("postgres"):
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def io_bytes() -> tuple[int, int]:
    """Bytes this process has written and read through system calls (``/proc/self/io``)."""
    fields: dict[str, int] = {}
    with open("/proc/self/io") as f:
        for line in f:
            key, value = line.split(":")
            fields[key] = int(value)
    return fields["wchar"], fields["rchar"]


def load(base: str, events: int, sqlite: bool) -> None:
    if sqlite:
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        for leftover in SQLITE_DIR.glob("log.db*"):
            leftover.unlink()
        url = f"sqlite:///{SQLITE_DIR / 'log.db'}"
    else:
        engine = _admin(base)
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {TEMPLATE}"))
            conn.execute(text(f"CREATE DATABASE {TEMPLATE}"))
        url = _url(base, TEMPLATE)
    creds = prepare_database(url, "bench")
    messages, people = stream(100_000, 30, 1, events)
    seconds = raw_insert(url, enrich(creds.source_id, messages))
    settle(url)
    print(f"loaded {len(messages):,} events from {people:,} people in {seconds:.1f} s")


def _copy(base: str, name: str, sqlite: bool) -> str:
    """A fresh copy of the loaded log, named ``name``; returns its URL."""
    if sqlite:
        copy = SQLITE_DIR / f"{name}.db"
        for leftover in SQLITE_DIR.glob(f"{name}.db*"):
            leftover.unlink()
        shutil.copyfile(SQLITE_DIR / "log.db", copy)
        return f"sqlite:///{copy}"
    database = f"tidings_drain_{name}"
    engine = _admin(base)
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        conn.execute(text(f"CREATE DATABASE {database} TEMPLATE {TEMPLATE}"))
        conn.execute(text("CHECKPOINT"))
    return _url(base, database)


def run(base: str, name: str, sqlite: bool, batch_events: int | None, pragmas: list[str]) -> None:
    url = _copy(base, name, sqlite)
    settings = Settings(database_url=url, data_dir=SQLITE_DIR)
    if batch_events is not None:
        settings = settings.model_copy(update={"pipeline_batch_events": batch_events})
    db_module._SQLITE_TUNING = (*db_module._SQLITE_TUNING, *pragmas)
    container = build_container(settings)
    try:
        pg_started = postgres_cpu_s()
        written, read = io_bytes()
        started = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        applied = container.pipeline.drain()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        pg_cpu = postgres_cpu_s() - pg_started
        written_after, read_after = io_bytes()
        written, read = written_after - written, read_after - read
        stats = container.pipeline.stats.snapshot()
        profiles = container.profiles.profiles.count()
    finally:
        container.db.close()
    print(
        f"{name}: {applied:,} events in {seconds:.1f} s = {applied / seconds:,.0f} events/s; "
        f"process CPU {cpu:.1f} s (system {after.ru_stime - usage.ru_stime:.1f}); "
        f"PostgreSQL CPU {pg_cpu:.1f} s; preparing {stats['preparing_s']:.1f} s, committing "
        f"{stats['committing_s']:.1f} s; wrote {written / 1e9:.2f} GB, read {read / 1e9:.2f} GB; "
        f"{profiles:,} profiles"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=("load", "run"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--name", default="a", help="run: the copy's name (letters, digits)")
    parser.add_argument("--url", default=pg_url(), help="any database on the server")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    parser.add_argument("--batch-events", type=int, help="run: events per pipeline batch")
    parser.add_argument(
        "--pragma", action="append", default=[], help="run: a SQLite PRAGMA (repeatable)"
    )
    opts = parser.parse_args()
    if opts.command == "load":
        load(opts.url, opts.events, opts.sqlite)
    else:
        run(opts.url, opts.name, opts.sqlite, opts.batch_events, opts.pragma)


if __name__ == "__main__":
    main()
