"""``make bench-campaign``: a campaign sent to 100,000 people over SMTP, and its report.

For each database (SQLite in WAL mode with ``synchronous=FULL`` in ``var/bench/``, PostgreSQL
in a throwaway schema at ``TIDINGS_TEST_PG_URL``) it

1. **seeds** N profiles with an email (``shopper<n>@example.com``, an ``identify`` each, stored
   through the collection layer with the simulator's ``send_direct`` and applied by
   ``Pipeline.drain()``) and a Recently Viewed block;
2. **sends** a campaign to all of them (``recipients: {"all_with_email": true}``, the block in
   its template) with ``CampaignService.send``, in this process, over SMTP to an aiosmtpd sink
   in a second process (``benchmarks/smtp_sink.py``: it accepts and counts, keeps nothing;
   ``--sink-latency-ms`` makes it answer each command late, like a relay across a network), at
   a rate setting that is not the limit (10,000 messages/s, burst 10,000), on
   ``--smtp-connections`` connections (default: the setting's default, 1);
3. **baseline**: as many messages of the same mean size sent by aiosmtplib alone (as many
   connections, ``sendmail`` of prepared bytes) to the same sink: raw SMTP on this machine;
4. **engagement**, without HTTP: opens (some by machines), clicks and orders among the
   recipients, as ``EmailEvent``s through ``TrackingService.record_events`` with the campaign's
   real email ids and ``Order Completed`` track events through the collection layer; drained;
5. **report**: ``CampaignService.report`` a few times (p50, max of its ``elapsed_ms``), checked
   against what was simulated (delivered = N, opens, machine opens, clicks, conversions,
   revenue); then again after ``--later-events`` email events of another campaign are logged
   after this one's (the report must not read them all).

Prints the figures, the goals (report ≤ 5 s, send ≥ 300 messages/s) and pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import IO, Any

import aiosmtplib
from bench_collect import machine
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tidings.app import build_container
from tidings.campaigns.schemas import CampaignIn
from tidings.content.schemas import BlockIn
from tidings.core.deps import Container
from tidings.core.settings import Settings
from tidings.simulate.send import send_direct
from tidings.simulate.shoppers import SimEvent
from tidings.testing import free_port, pg_available, pg_schema, prepare_database
from tidings.tracking.events import EMAIL_LINK_CLICKED, EMAIL_OPENED, EmailEvent

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SINK = HERE / "smtp_sink.py"
GOAL_REPORT_S = 5.0
GOAL_SEND_PER_S = 300.0
SENDER = "news@shop.example"
BASE_URL = "http://127.0.0.1:8000"
TEMPLATE = """<!doctype html><html><body>
<p>Hello {{ first_name | default('there') }}!</p>
<p>Our spring sale starts today: everything in the shop is 20% off until Sunday.</p>
<a href="https://shop.example/sale?ref=nl">Shop the sale</a>
<a href="https://shop.example/new">New arrivals</a>
{{ block('BLOCK_ID') }}
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""

console = Console(width=max(190, Console().width))


@dataclass
class Plan:
    """Who does what after the send (indices into the recipients, by email)."""

    human: set[str] = field(default_factory=set)  # opened as a person (pixel, or a click)
    machine: set[str] = field(default_factory=set)  # opened only by a machine
    clicks: set[str] = field(default_factory=set)
    orders: dict[str, float] = field(default_factory=dict)  # email → order total


@dataclass
class Result:
    db: str
    recipients: int
    connections: int
    seed_s: float
    send_s: float
    first_part_s: float
    send_cpu_s: float
    sent: int
    sink_messages: int
    mean_bytes: float
    raw_s: float
    raw_messages: int
    sink_send_cpu_s: float
    sink_raw_cpu_s: float
    engagement_events: int
    report_ms: list[float]
    report_later_ms: list[float]
    later_events: int
    checks: dict[str, tuple[Any, Any]]

    @property
    def send_rate(self) -> float:
        return self.sent / self.send_s

    @property
    def raw_rate(self) -> float:
        return self.raw_messages / self.raw_s


# -- the sink ----------------------------------------------------------------------------------


class Sink:
    """``smtp_sink.py`` in a child process."""

    def __init__(self, port: int, latency_ms: float = 0.0) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, str(SINK), str(port), str(latency_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self._read() != "ready":
            raise RuntimeError("the SMTP sink did not start")

    def _read(self) -> str:
        out: IO[str] | None = self.proc.stdout
        assert out is not None
        return out.readline().strip()

    def counts(self) -> tuple[int, int]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        messages, size = self._read().split()
        return int(messages), int(size)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- seeding -----------------------------------------------------------------------------------


def email(n: int) -> str:
    return f"shopper{n}@example.com"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def identifies(n: int, start: datetime) -> Iterator[SimEvent]:
    for i in range(1, n + 1):
        at = start + timedelta(milliseconds=i * 10)
        message = {
            "type": "identify",
            "userId": f"user-{i}",
            "traits": {"email": email(i), "first_name": f"Shopper {i}"},
            "timestamp": _stamp(at),
            "messageId": f"bench-campaign-identify-{i}",
        }
        yield SimEvent(int(at.timestamp() * 1000), i, message, f"user-{i}")


def settings_for(url: str, data_dir: Path, port: int, opts: argparse.Namespace) -> Settings:
    more = {"smtp_connections": opts.smtp_connections} if opts.smtp_connections else {}
    return Settings(
        database_url=url,
        data_dir=data_dir,
        pipeline_in_process=False,
        public_url=BASE_URL,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_from=f"Shop <{SENDER}>",
        reply_domain="reply.shop.example",
        campaign_send_rate=opts.rate,
        campaign_send_burst=int(min(opts.rate, 10_000)),
        log_level="warning",
        **more,
    )


def block_body() -> BlockIn:
    return BlockIn.model_validate(
        {
            "name": "Recently viewed (bench)",
            "variants": [{"creative": {"app": "recently_viewed"}}],
            "fallback": {"kind": "collapse", "link_url": "https://shop.example/"},
        }
    )


# -- engagement --------------------------------------------------------------------------------


def plan_engagement(emails: list[str], opts: argparse.Namespace) -> Plan:
    rng = random.Random(f"bench-campaign-{opts.seed}")
    order = sorted(emails)
    rng.shuffle(order)
    n = len(order)
    openers = round(n * opts.opens)
    machines = round(openers * opts.machine_share)
    humans = order[: openers - machines]
    plan = Plan(set(humans), set(order[openers - machines : openers]))
    plan.clicks = set(humans[: round(n * opts.clicks)])
    for who in humans[: round(n * opts.orders)]:
        plan.orders[who] = round(rng.uniform(20, 200), 2)
    return plan


def engagement_events(
    container: Container, campaign_id: str, plan: Plan, now: datetime
) -> tuple[list[EmailEvent], list[SimEvent]]:
    """The opens and clicks (email events of the campaign's real email ids) and the orders
    (track events of the people, a few minutes after their open)."""
    rng = random.Random(campaign_id)
    email_events: list[EmailEvent] = []
    orders: list[SimEvent] = []
    by_email = {m.recipient: m for m in container.campaigns.store.all_messages(campaign_id)}
    name = container.campaigns.get(campaign_id)["name"]
    for who in sorted(plan.human | plan.machine):
        m = by_email[who]
        props = {"email_id": m.email_id, "campaign_id": campaign_id, "campaign_name": name}
        opened = now - timedelta(minutes=rng.uniform(15, 45))
        machine = who in plan.machine
        email_events.append(
            EmailEvent(
                EMAIL_OPENED,
                email=who,
                properties={**props, "machine_open": True} if machine else props,
                timestamp=opened,
                message_id=f"bench-open-{m.email_id}",
            )
        )
        if who in plan.clicks:
            email_events.append(
                EmailEvent(
                    EMAIL_LINK_CLICKED,
                    email=who,
                    properties={**props, "link_url": "https://shop.example/sale?ref=nl"},
                    timestamp=opened + timedelta(seconds=30),
                    message_id=f"bench-click-{m.email_id}",
                )
            )
        if who in plan.orders:
            at = opened + timedelta(minutes=rng.uniform(2, 10))
            n = who.removeprefix("shopper").removesuffix("@example.com")
            message = {
                "type": "track",
                "event": "Order Completed",
                "userId": f"user-{n}",
                "properties": {
                    "order_id": f"order-{n}",
                    "total": plan.orders[who],
                    "currency": "EUR",
                    "products": [],
                },
                "timestamp": _stamp(at),
                "messageId": f"bench-order-{n}",
            }
            orders.append(SimEvent(int(at.timestamp() * 1000), len(orders), message, who))
    orders.sort(key=lambda e: (e.timestamp_ms, e.seq))
    return email_events, orders


def later_events(count: int, now: datetime) -> list[EmailEvent]:
    """Another campaign's deliveries and opens, logged after this one's: what the log holds
    by the time an old campaign's report is read again."""
    out = []
    for i in range(count):
        event = EMAIL_OPENED if i % 4 == 3 else "Email Delivered"
        props = {"email_id": f"em_later{i:07d}", "campaign_id": "cmp_later", "campaign_name": "x"}
        out.append(
            EmailEvent(
                event,
                email=email(i % 1000 + 1),
                properties=props,
                timestamp=now,
                message_id=f"bench-later-{i}",
            )
        )
    return out


async def record(container: Container, events: list[EmailEvent], batch: int = 1000) -> int:
    stored = 0
    for i in range(0, len(events), batch):
        stored += await container.tracking.record_events(events[i : i + batch], "bench")
    return stored


# -- the report --------------------------------------------------------------------------------


async def time_reports(
    container: Container, campaign_id: str, runs: int
) -> tuple[list[float], dict[str, Any]]:
    times: list[float] = []
    result: dict[str, Any] = {}
    for _ in range(runs):
        result = await container.campaigns.report(campaign_id)
        times.append(float(result["elapsed_ms"]))
    return times, result


def checks_of(report: dict[str, Any], n: int, plan: Plan) -> dict[str, tuple[Any, Any]]:
    """``{figure: (expected, reported)}``."""
    return {
        "delivered": (n, report["delivered"]),
        "bounced": (0, report["bounced"]),
        "unique_opens": (len(plan.human), report["unique_opens"]),
        "machine_opens": (len(plan.machine), report["machine_opens"]),
        "unique_clicks": (len(plan.clicks), report["unique_clicks"]),
        "conversions": (len(plan.orders), report["conversions"]),
        "revenue": (round(sum(plan.orders.values()), 2), report["revenue"]),
    }


# -- the baseline ------------------------------------------------------------------------------


def baseline_message(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Shop <{SENDER}>"
    message["To"] = email(1)
    message["Subject"] = "Spring is here"
    message.set_content("<p>" + "x" * max(0, size - 400) + "</p>", subtype="html")
    return message.as_bytes()


async def raw_smtp(port: int, count: int, size: int, connections: int) -> float:
    """``count`` messages of about ``size`` bytes by aiosmtplib alone, over ``connections``
    connections at once (as many as the send used), each sending its share in turn."""
    body = baseline_message(size)

    async def one(share: range) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
        await client.connect()
        try:
            for i in share:
                errors, _ = await client.sendmail(SENDER, [email(i + 1)], body)
                if errors:
                    raise RuntimeError(f"the sink refused: {errors}")
        finally:
            await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(one(range(c, count, connections)) for c in range(connections)))
    return time.perf_counter() - started


# -- one database ------------------------------------------------------------------------------


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_db(
    db_name: str, url_of: Callable[[], AbstractContextManager[str]], opts: argparse.Namespace
) -> Result:
    n = opts.recipients
    with url_of() as url:
        started = time.perf_counter()
        console.print(f"[bold]{db_name}[/]: seeding {n:,} profiles …")
        creds = prepare_database(url, "bench")
        sent = send_direct(
            identifies(n, datetime.now(UTC) - timedelta(days=2)),
            url,
            creds.source_id,
            progress=False,
        )
        if sent.rejected:
            raise RuntimeError(f"the collection layer rejected events: {sent.errors}")
        port = free_port()
        settings = settings_for(url, opts.workdir / f"data-{uuid.uuid4().hex[:8]}", port, opts)
        container = build_container(settings)
        try:
            container.pipeline.drain()
            profiles = container.profiles.profiles.count()
            seed_s = time.perf_counter() - started
            console.print(f"  {profiles:,} profiles in {seed_s:.1f} s")
            sink = Sink(port, opts.sink_latency_ms)
            try:
                work = _measure(db_name, container, creds.source_id, sink, opts, seed_s)
                return asyncio.run(work)
            finally:
                sink.close()
        finally:
            container.db.close()
            shutil.rmtree(settings.data_dir, ignore_errors=True)


async def _measure(
    db_name: str,
    container: Container,
    source_id: str,
    sink: Sink,
    opts: argparse.Namespace,
    seed_s: float,
) -> Result:
    n = opts.recipients
    container.ingest.start()
    container.decisions.start()
    try:
        block = container.content.blocks.create(block_body())
        campaign = container.campaigns.create(
            CampaignIn.model_validate(
                {
                    "name": "Spring sale (bench)",
                    "subject": "Spring is here, {{ first_name | default('friend') }}",
                    "html": TEMPLATE.replace("BLOCK_ID", block.id),
                    "recipients": {"all_with_email": True},
                }
            )
        )
        cid = campaign["id"]
        columns = (
            TextColumn("  sending"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} messages/s"),
            TimeElapsedColumn(),
        )
        sink_before = sink.cpu_s()
        cpu_before = _cpu_s()
        first: list[float] = []  # seconds to the first part sent: the recipients read, mostly
        started = time.perf_counter()
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("", total=n, rate="…")

            def advance(done: int, total: int) -> None:
                if not first:
                    first.append(time.perf_counter() - started)
                rate = done / (time.perf_counter() - started)
                bar.update(task, completed=done, total=total, rate=f"{rate:,.0f}")

            status = await container.campaigns.send(cid, BASE_URL, advance)
        send_s = time.perf_counter() - started
        send_cpu = _cpu_s() - cpu_before
        sink_send_cpu = sink.cpu_s() - sink_before
        messages, size = sink.counts()
        mean = size / max(1, messages)
        console.print(
            f"  {status['status']}: {status['sent']:,} sent in {send_s:.1f} s "
            f"({status['sent'] / send_s:,.0f}/s; the first {min(n, 50)} after "
            f"{first[0] if first else 0:.1f} s); the sink counted {messages:,} of "
            f"{mean:,.0f} bytes on average"
        )

        raw_count = opts.baseline_messages or n
        console.print(
            f"  raw SMTP: {raw_count:,} messages by aiosmtplib alone, "
            f"{getattr(container.settings, 'smtp_connections', 1)} connection(s) …"
        )
        sink_before = sink.cpu_s()
        connections = getattr(container.settings, "smtp_connections", 1)
        raw_s = await raw_smtp(sink.port, raw_count, round(mean), connections)
        sink_raw_cpu = sink.cpu_s() - sink_before
        console.print(f"  {raw_count / raw_s:,.0f} messages/s")

        console.print("  engagement …")
        recipients = [m.recipient for m in container.campaigns.store.all_messages(cid)]
        plan = plan_engagement(recipients, opts)
        now = datetime.now(UTC)
        events, orders = engagement_events(container, cid, plan, now)
        stored = await record(container, events)
        placed = send_direct(orders, container.settings.database_url, source_id, progress=False)
        applied = await asyncio.to_thread(container.pipeline.drain)
        console.print(
            f"  {stored:,} email events and {placed.sent:,} orders logged, "
            f"{applied:,} events applied"
        )

        console.print(f"  report × {opts.report_runs} …")
        times, report = await time_reports(container, cid, opts.report_runs)
        if opts.profile_report is not None:  # one more run, under cProfile
            profiler = cProfile.Profile()
            profiler.enable()
            await container.campaigns.report(cid)
            profiler.disable()
            profiler.dump_stats(opts.profile_report)
        checks = checks_of(report, n, plan)
        later_times: list[float] = []
        if opts.later_events:
            console.print(f"  {opts.later_events:,} later events of another campaign …")
            await record(container, later_events(opts.later_events, now))
            later_times, later = await time_reports(container, cid, opts.report_runs)
            if checks_of(later, n, plan) != checks:
                raise RuntimeError("the report changed when other campaigns' events were added")
        return Result(
            db=db_name,
            recipients=n,
            connections=getattr(container.settings, "smtp_connections", 1),
            seed_s=seed_s,
            send_s=send_s,
            first_part_s=first[0] if first else 0.0,
            send_cpu_s=send_cpu,
            sent=int(status["sent"]),
            sink_messages=messages,
            mean_bytes=mean,
            raw_s=raw_s,
            raw_messages=raw_count,
            sink_send_cpu_s=sink_send_cpu,
            sink_raw_cpu_s=sink_raw_cpu,
            engagement_events=stored + placed.sent,
            report_ms=times,
            report_later_ms=later_times,
            later_events=opts.later_events,
            checks=checks,
        )
    finally:
        await container.ingest.stop()
        await container.decisions.stop()


# -- output ------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(results: list[Result]) -> bool:
    sends = Table(title="bench-campaign: the send")
    for col in (
        "db",
        "recipients",
        "SMTP conns",
        "sent",
        "sink counted",
        "mean bytes",
        "send s",
        "1st part s",
        "messages/s",
        "CPU ms/message",
        "raw SMTP msg/s",
        "vs raw",
        "sink CPU ms/msg (send, raw)",
    ):
        sends.add_column(col, justify="right")
    for r in results:
        sends.add_row(
            r.db,
            f"{r.recipients:,}",
            str(r.connections),
            f"{r.sent:,}",
            f"{r.sink_messages:,}",
            _f(r.mean_bytes),
            _f(r.send_s, 1),
            _f(r.first_part_s, 1),
            _f(r.send_rate),
            _f(r.send_cpu_s * 1000 / max(1, r.sent), 2),
            _f(r.raw_rate),
            _f(r.send_rate / r.raw_rate, 2),
            f"{r.sink_send_cpu_s * 1000 / max(1, r.sent):.2f}, "
            f"{r.sink_raw_cpu_s * 1000 / max(1, r.raw_messages):.2f}",
        )
    console.print(sends)
    reports = Table(title="bench-campaign: the report")
    for col in ("db", "log after the send", "runs", "p50 ms", "max ms"):
        reports.add_column(col, justify="right")
    for r in results:
        own = f"this campaign's ({r.engagement_events:,} events)"
        reports.add_row(
            r.db, own, str(len(r.report_ms)), _f(_p50(r.report_ms)), _f(max(r.report_ms))
        )
        if r.report_later_ms:
            reports.add_row(
                r.db,
                f"+ {r.later_events:,} of another campaign",
                str(len(r.report_later_ms)),
                _f(_p50(r.report_later_ms)),
                _f(max(r.report_later_ms)),
            )
    console.print(reports)
    checks = Table("db", "figure", "simulated", "reported", "", title="report spot-check")
    goals = Table("goal", "measured", "verdict", title="goals")
    ok = True
    for r in results:
        for name, (want, got) in r.checks.items():
            good = want == got
            ok &= good
            checks.add_row(r.db, name, str(want), str(got), "[green]ok[/]" if good else "[red]≠[/]")
        worst = max(r.report_ms + r.report_later_ms) / 1000
        for label, measured, good in (
            (
                f"{r.db}: report ≤ {GOAL_REPORT_S:.0f} s (max)",
                f"{worst:.2f} s",
                worst <= GOAL_REPORT_S,
            ),
            (
                f"{r.db}: send ≥ {GOAL_SEND_PER_S:.0f} messages/s",
                _f(r.send_rate),
                r.send_rate >= GOAL_SEND_PER_S,
            ),
            (
                f"{r.db}: every message reached the sink",
                f"{r.sink_messages:,} of {r.recipients:,}",
                r.sink_messages == r.recipients == r.sent,
            ),
        ):
            ok &= good
            goals.add_row(label, measured, "[green]pass[/]" if good else "[red]miss[/]")
    console.print(checks)
    console.print(goals)
    return ok


def _p50(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--recipients", type=int, default=100_000, help="profiles with an email")
    parser.add_argument("--rate", type=float, default=10_000.0, help="campaign send rate setting")
    parser.add_argument(
        "--smtp-connections",
        type=int,
        default=0,
        help="TIDINGS_SMTP_CONNECTIONS for the send (default: the setting's default)",
    )
    parser.add_argument(
        "--sink-latency-ms",
        type=float,
        default=0.0,
        help="the sink answers MAIL, RCPT and DATA this late (a relay across a network)",
    )
    parser.add_argument(
        "--baseline-messages", type=int, default=0, help="raw SMTP messages (default: recipients)"
    )
    parser.add_argument("--opens", type=float, default=0.30, help="share of recipients opening")
    parser.add_argument(
        "--machine-share", type=float, default=1 / 3, help="share of the opens by machines only"
    )
    parser.add_argument("--clicks", type=float, default=0.05, help="share of recipients clicking")
    parser.add_argument("--orders", type=float, default=0.01, help="share ordering after an open")
    parser.add_argument("--report-runs", type=int, default=5)
    parser.add_argument(
        "--later-events",
        type=int,
        default=100_000,
        help="email events of another campaign logged after the first report runs",
    )
    parser.add_argument(
        "--profile-report", type=Path, default=None, help="cProfile one more report run to FILE"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    opts = parser.parse_args(argv)
    opts.workdir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    console.print(
        f"machine: {machine()}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"files in {opts.workdir}"
    )
    results: list[Result] = []
    dbs = ["sqlite", "pg"] if opts.db == "both" else [opts.db]
    for db_name in dbs:
        if db_name == "pg":
            if (reason := pg_available()) is not None:
                if opts.db == "pg":
                    console.print(f"[red]{reason}[/]")
                    return 2
                console.print(f"[yellow]skipping PostgreSQL: {reason}[/]")
                continue
            results.append(run_db(db_name, pg_schema, opts))
        else:
            results.append(run_db(db_name, lambda: _sqlite(opts.workdir), opts))
    ok = report(results)
    load = os.getloadavg()
    console.print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after the run")
    return 0 if ok else 1


@contextmanager
def _sqlite(workdir: Path) -> Iterator[str]:
    path = workdir / f"campaign-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    try:
        yield f"sqlite:///{path / 'tidings.db'}"
    finally:
        shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
