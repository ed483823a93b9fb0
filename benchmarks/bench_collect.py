"""``make bench-collect``: durable ingest throughput of the collection API, with its baselines.

For each database (SQLite in WAL mode with ``synchronous=FULL``, and PostgreSQL) it

1. starts ``tidings serve`` on a fresh database and drives it with wrk from a second process
   (``benchmarks/segment_events.lua``: realistic ``Product Viewed`` events, every messageId
   unique) on ``/v1/batch`` with 100-event bodies, then on ``/v1/track``;
2. counts the rows committed during each run, so the figure is *durable* events per second,
   not responses;
3. drives a bare FastAPI no-op app (``benchmarks/noop_app.py``, same uvicorn stack) with the same
   load: the ceiling HTTP alone allows on this machine;
4. inserts the very rows tidings stored into a fresh database on the same disk with plain
   ``executemany`` of ``CollectStore``'s single-row INSERT, one transaction per 100 events: the
   raw speed of the store.

It prints events/s, requests/s, p50/p99 latency, both ratios and the goals with pass/fail.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from tidings.collect.store import EVENT_COLUMNS, CollectStore, EventRow
from tidings.core import migrate
from tidings.core.db import Database
from tidings.testing import ServerProcess, free_port, pg_available, pg_schema, prepare_database

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "segment_events.lua"
NOOP_APP = HERE / "noop_app.py"
WRK = shutil.which("wrk") or "/usr/bin/wrk"
RAW_MAX_ROWS = 300_000

GOAL_BATCH_EVENTS = 50_000
GOAL_RAW_RATIO = 0.7
GOAL_TRACK_RPS = 4_000
GOAL_TRACK_P99_MS = 20.0

console = Console()


@dataclass
class Load:
    """One wrk run against one server and endpoint."""

    target: str  # "tidings" or "no-op"
    db: str
    endpoint: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    durable_events: int | None = None  # rows committed during the run (tidings only)
    acked_events: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def events_per_s(self) -> float | None:
        return None if self.durable_events is None else self.durable_events / self.seconds


@dataclass
class Raw:
    db: str
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


@dataclass
class Options:
    duration: float
    warmup: float
    connections: int
    threads: int
    batch_size: int
    workdir: Path
    workers: int = 1


def run_wrk(
    lua: Path, url: str, args: list[str], threads: int, connections: int, duration: float
) -> dict[str, Any]:
    """wrk with the ``lua`` script and its ``args``; the script's ``WRK_JSON`` summary."""
    cmd = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
        "--",
        *args,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"^WRK_JSON (\{.*\})$", out, re.M)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def wrk(url: str, mode: str, auth: str, opts: Options, duration: float) -> dict[str, int | float]:
    nonce = uuid.uuid4().hex[:10]
    args = [mode, auth, nonce, str(opts.batch_size)]
    return run_wrk(LUA, url, args, opts.threads, opts.connections, duration)


def load(
    target: str,
    db: str,
    endpoint: str,
    base_url: str,
    auth: str,
    opts: Options,
    count_rows: Database | None = None,
) -> Load:
    mode = "batch" if endpoint == "/v1/batch" else "track"
    before = count_events(count_rows) if count_rows else 0
    r = wrk(base_url + endpoint, mode, auth, opts, opts.duration)
    errors = int(
        r["status_errors"]
        + r["connect_errors"]
        + r["read_errors"]
        + r["write_errors"]
        + r["timeouts"]
    )
    per_request = opts.batch_size if mode == "batch" else 1
    result = Load(
        target=target,
        db=db,
        endpoint=endpoint,
        requests=int(r["requests"]),
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        errors=errors,
        acked_events=max(0, int(r["requests"]) - int(r["status_errors"])) * per_request,
    )
    if count_rows is not None:
        result.durable_events = count_events(count_rows) - before
    return result


def count_events(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


@contextmanager
def app_process(
    cmd: list[str], url: str, log_path: Path, env: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[subprocess.Popen[bytes]]:
    """``cmd`` (an HTTP server) in a child process, once ``url``/healthz answers; stopped after."""
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[1]} exited with {proc.returncode}: see {log_path}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@contextmanager
def noop_server(workdir: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with app_process([sys.executable, str(NOOP_APP), str(port)], url, workdir / "noop.log"):
        yield url


def bench_tidings(db_name: str, url: str, opts: Options) -> tuple[list[Load], list[EventRow]]:
    creds = prepare_database(url, "bench")
    auth = basic(creds.write_key)
    data_dir = opts.workdir / f"data-{db_name}"
    server = ServerProcess(
        url,
        # The pipeline is measured by bench-pipeline; here the cores go to collection alone.
        env={
            "TIDINGS_DATA_DIR": str(data_dir),
            "TIDINGS_LOG_LEVEL": "warning",
            "TIDINGS_PIPELINE_IN_PROCESS": "false",
        },
        log_path=opts.workdir / f"server-{db_name}.log",
        args=["--workers", str(opts.workers)],
    )
    counter = Database.from_url(url)
    server.start()
    try:
        if opts.warmup > 0:
            wrk(server.url + "/v1/batch", "batch", auth, opts, opts.warmup)
        start_seq = _max_seq(counter)
        batch = load("tidings", db_name, "/v1/batch", server.url, auth, opts, counter)
        rows = _stored_rows(counter, start_seq, RAW_MAX_ROWS)
        track = load("tidings", db_name, "/v1/track", server.url, auth, opts, counter)
    finally:
        server.stop()
        counter.close()
    return [batch, track], rows


def _max_seq(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM events")).scalar_one())


def _stored_rows(db: Database, after_seq: int, limit: int) -> list[EventRow]:
    cols = ", ".join(EVENT_COLUMNS)
    sql = text(f"SELECT {cols} FROM events WHERE seq > :s ORDER BY seq LIMIT :n")
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sql, {"s": after_seq, "n": limit})]  # type: ignore[misc]


def bench_noop(db_name: str, opts: Options) -> list[Load]:
    with noop_server(opts.workdir) as url:
        if opts.warmup > 0:
            wrk(url + "/v1/batch", "batch", "Basic x", opts, opts.warmup)
        return [
            load("no-op", db_name, ep, url, "Basic x", opts) for ep in ("/v1/batch", "/v1/track")
        ]


def bench_raw(db_name: str, url: str, rows: list[EventRow], opts: Options) -> Raw:
    """Plain executemany of the same rows, one transaction per ``batch_size`` events."""
    db = Database.from_url(url)
    try:
        migrate.upgrade(db.engine)
        store = CollectStore(db.engine)
        n = opts.batch_size
        deadline = time.perf_counter() + opts.duration
        inserted = 0
        start = time.perf_counter()
        for i in range(0, len(rows), n):
            chunk = rows[i : i + n]
            with db.engine.begin() as conn:
                cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.executemany(store.insert_events_sql, chunk)
                cursor.close()
            inserted += len(chunk)
            if time.perf_counter() > deadline:
                break
        seconds = time.perf_counter() - start
        if count_events(db) != inserted:
            raise RuntimeError("raw store baseline lost rows")
    finally:
        db.close()
    return Raw(db_name, inserted, seconds)


def run_db(db_name: str, opts: Options) -> tuple[list[Load], Raw]:
    if db_name == "sqlite":
        run_dir = opts.workdir / f"sqlite-{uuid.uuid4().hex[:8]}"
        run_dir.mkdir(parents=True)
        try:
            loads, rows = bench_tidings(db_name, f"sqlite:///{run_dir / 'tidings.db'}", opts)
            raw = bench_raw(db_name, f"sqlite:///{run_dir / 'raw.db'}", rows, opts)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    else:
        with pg_schema() as url:
            loads, rows = bench_tidings(db_name, url, opts)
        with pg_schema() as url:
            raw = bench_raw(db_name, url, rows, opts)
    del rows
    return loads + bench_noop(db_name, opts), raw


def _f(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(loads: list[Load], raws: dict[str, Raw], opts: Options) -> bool:
    noop = {(x.db, x.endpoint): x for x in loads if x.target == "no-op"}
    table = Table(
        title=f"tidings collect: {opts.duration:g} s per run, wrk -t{opts.threads} "
        f"-c{opts.connections}, {opts.batch_size} events per batch, "
        f"{opts.workers} server process(es)",
    )
    for col in (
        "db",
        "target",
        "endpoint",
        "durable events/s",
        "requests/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "vs no-op",
        "vs raw store",
    ):
        table.add_column(col, justify="left" if col in ("db", "target", "endpoint") else "right")
    for x in loads:
        base = noop.get((x.db, x.endpoint))
        raw = raws.get(x.db)
        vs_noop = x.rps / base.rps if x.target == "tidings" and base else None
        eps = x.events_per_s
        vs_raw = eps / raw.events_per_s if eps is not None and raw else None
        table.add_row(
            x.db,
            x.target,
            x.endpoint,
            _f(eps),
            _f(x.rps),
            _f(x.p50_ms, 1),
            _f(x.p99_ms, 1),
            str(x.errors),
            _f(vs_noop, 2),
            _f(vs_raw, 2),
        )
    for db_name, raw in raws.items():
        table.add_row(
            db_name,
            "raw store",
            f"executemany, {opts.batch_size}/txn",
            _f(raw.events_per_s),
            "—",
            "—",
            "—",
            "0",
            "—",
            "1.00",
        )
    console.print(table)

    goals = Table(title="goals (SQLite, 2 cores, load generator on the same machine)")
    for col in ("goal", "measured", "result"):
        goals.add_column(col)
    ok = True
    by = {(x.db, x.target, x.endpoint): x for x in loads}
    for db_name in sorted({x.db for x in loads}):
        batch = by.get((db_name, "tidings", "/v1/batch"))
        track = by.get((db_name, "tidings", "/v1/track"))
        raw = raws.get(db_name)
        checks: list[tuple[str, str, bool]] = []
        if batch and batch.events_per_s is not None:
            checks.append(
                (
                    f"{db_name}: /v1/batch ≥ {GOAL_BATCH_EVENTS:,} durable events/s",
                    _f(batch.events_per_s),
                    batch.events_per_s >= GOAL_BATCH_EVENTS,
                )
            )
            if raw:
                ratio = batch.events_per_s / raw.events_per_s
                checks.append(
                    (
                        f"{db_name}: /v1/batch ≥ {GOAL_RAW_RATIO} × raw store",
                        _f(ratio, 2),
                        ratio >= GOAL_RAW_RATIO,
                    )
                )
        if track:
            checks.append(
                (
                    f"{db_name}: /v1/track ≥ {GOAL_TRACK_RPS:,} requests/s",
                    _f(track.rps),
                    track.rps >= GOAL_TRACK_RPS,
                )
            )
            checks.append(
                (
                    f"{db_name}: /v1/track p99 < {GOAL_TRACK_P99_MS:g} ms",
                    _f(track.p99_ms, 1),
                    track.p99_ms < GOAL_TRACK_P99_MS,
                )
            )
        for x in (batch, track):
            if x and x.durable_events is not None:
                checks.append(
                    (
                        f"{db_name}: {x.endpoint} every 2xx is in the database",
                        f"{x.durable_events:,} rows ≥ {x.acked_events:,} acked",
                        x.durable_events >= x.acked_events,
                    )
                )
        for goal, measured, passed in checks:
            binding = db_name == "sqlite" or "every 2xx" in goal
            if binding:
                ok = ok and passed
            verdict = (
                ("[green]pass[/]" if passed else "[red]FAIL[/]")
                if binding
                else ("met" if passed else "not met (recorded only)")
            )
            goals.add_row(goal, measured, verdict)
    console.print(goals)
    return ok


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch body")
    parser.add_argument(
        "--workers", type=int, default=1, help="`tidings serve --workers N` server processes"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=ROOT / "var" / "bench",
        help="where SQLite files and logs go (the disk being measured)",
    )
    args = parser.parse_args(argv)
    if not Path(WRK).exists():
        console.print("[red]wrk is not installed[/]: apt-get install wrk")
        return 2
    args.workdir.mkdir(parents=True, exist_ok=True)
    opts = Options(
        args.duration,
        args.warmup,
        args.connections,
        args.threads,
        args.batch_size,
        args.workdir,
        args.workers,
    )
    console.print(f"machine: {machine()}; files in {args.workdir}")
    dbs = ["sqlite", "pg"] if args.db == "both" else [args.db]
    loads: list[Load] = []
    raws: dict[str, Raw] = {}
    for db_name in dbs:
        if db_name == "pg" and (reason := pg_available()) is not None:
            if args.db == "pg":
                console.print(f"[red]{reason}[/]")
                return 2
            console.print(f"[yellow]skipping PostgreSQL: {reason}[/]")
            continue
        console.print(f"[bold]{db_name}[/]: tidings, then no-op, then raw store …")
        db_loads, raw = run_db(db_name, opts)
        loads += db_loads
        raws[db_name] = raw
    return 0 if report(loads, raws, opts) else 1


if __name__ == "__main__":
    sys.exit(main())
