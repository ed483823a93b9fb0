"""A/B runs of the pipeline's drain, each on a fresh copy of one loaded log.

``make bench-pipeline`` generates and loads the stream anew for every run (about three minutes
before the pipeline starts on this kind of machine). To compare two versions of the code, load
the log once into a template database, then time ``Pipeline.drain()`` on copies of it
(``CREATE DATABASE … TEMPLATE``, seconds), back to back:

    .venv/bin/python benchmarks/drain_ab.py load                    # once: 1,000,000 events
    .venv/bin/python benchmarks/drain_ab.py run --name a            # this checkout
    PYTHONPATH=/tmp/other/src .venv/bin/python benchmarks/drain_ab.py run --name b

Each run prints events/s, this process's CPU seconds and the PostgreSQL server's (every
``postgres`` process on the machine, from ``/proc``: run nothing else against it), and keeps
its database (``tidings_drain_<name>``) so that derived tables can be compared between runs.

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


def run(base: str, name: str, sqlite: bool) -> None:
    url = _copy(base, name, sqlite)
    container = build_container(Settings(database_url=url, data_dir=SQLITE_DIR))
    try:
        pg_started = postgres_cpu_s()
        started = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        applied = container.pipeline.drain()
        seconds = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime
        pg_cpu = postgres_cpu_s() - pg_started
        profiles = container.profiles.profiles.count()
    finally:
        container.db.close()
    print(
        f"{name}: {applied:,} events in {seconds:.1f} s = {applied / seconds:,.0f} events/s; "
        f"process CPU {cpu:.1f} s; PostgreSQL CPU {pg_cpu:.1f} s; {profiles:,} profiles"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=("load", "run"))
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--name", default="a", help="run: the copy's name (letters, digits)")
    parser.add_argument("--url", default=pg_url(), help="any database on the server")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead")
    opts = parser.parse_args()
    if opts.command == "load":
        load(opts.url, opts.events, opts.sqlite)
    else:
        run(opts.url, opts.name, opts.sqlite)


if __name__ == "__main__":
    main()
