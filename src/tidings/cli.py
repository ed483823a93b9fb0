"""The ``tidings`` command: serve, migrate, sources, tokens, demo."""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from tidings.campaigns.cli import campaigns_app
from tidings.catalog.cli import catalog_app
from tidings.content.cli import blocks_app
from tidings.core import migrate as migrations
from tidings.core.auth import TokenService
from tidings.core.clock import SystemClock, from_ms, iso
from tidings.core.db import Database
from tidings.core.settings import Settings
from tidings.simulate.cli import simulate_command
from tidings.tracking.cli import emails_app
from tidings.web.cli import users_app

if TYPE_CHECKING:
    from tidings.core.deps import Container
    from tidings.demo.seed import DemoSeed

app = typer.Typer(no_args_is_help=True, help="tidings: events in, personal email out.")
sources_app = typer.Typer(no_args_is_help=True, help="Sources and their write keys.")
tokens_app = typer.Typer(no_args_is_help=True, help="Admin API tokens.")
app.add_typer(sources_app, name="sources")
app.add_typer(tokens_app, name="tokens")
pipeline_app = typer.Typer(no_args_is_help=True, help="The pipeline: events log → profiles.")
retention_app = typer.Typer(no_args_is_help=True, help="Purging expired events.")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(retention_app, name="retention")
app.add_typer(catalog_app, name="catalog")
app.add_typer(blocks_app, name="blocks")
app.add_typer(emails_app, name="emails")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(users_app, name="users")
console = Console()

DEMO_ADMIN = "admin@tidings.localhost"

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
]


def _settings(db: str | None = None) -> Settings:
    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    return settings


def _database(settings: Settings) -> Database:
    database = Database.from_settings(settings)
    migrations.upgrade(database.engine)
    return database


def _safe_url(url: str) -> str:
    """The database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def migrate(db: DbOption = None) -> None:
    """Create or upgrade the database schema."""
    settings = _settings(db)
    database = Database.from_url(settings.database_url)
    try:
        before = migrations.current_revision(database.engine)
        migrations.upgrade(database.engine)
        after = migrations.current_revision(database.engine)
    finally:
        database.close()
    where = _safe_url(settings.database_url)
    console.print(f"[green]schema at {after}[/] (was {before or 'empty'}) on {where}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    db: DbOption = None,
    access_log: Annotated[
        bool, typer.Option(help="Log each request (query strings redacted)")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes sharing the port (each has its own group-commit writer; "
            "one of them runs the pipeline)",
        ),
    ] = 1,
    smtp_port: Annotated[
        int | None,
        typer.Option(
            "--smtp-port",
            min=1,
            max=65535,
            help="Also receive replies over SMTP on this port (TIDINGS_INBOUND_SMTP_PORT; "
            "needs aiosmtpd: pip install 'tidings[smtp]')",
        ),
    ] = None,
) -> None:
    """Serve the collection API, the admin API and the open-time endpoints."""
    import uvicorn

    from tidings.app import create_app

    settings = _settings(db)
    if smtp_port is not None:
        if workers > 1:
            console.print("[red]--smtp-port needs --workers 1 (one process listens on it)[/]")
            raise typer.Exit(2)
        settings = settings.model_copy(update={"inbound_smtp_port": smtp_port})
    console.print(
        f"tidings on [bold]http://{host}:{port}[/] · database {_safe_url(settings.database_url)}"
        + (f" · {workers} processes" if workers > 1 else "")
    )
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "loop": "uvloop",
        "http": "httptools",
        "access_log": access_log,
        "log_level": settings.log_level,
        "timeout_graceful_shutdown": 10,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    # Each worker process builds its app from the environment; migrate once, here, first.
    if settings.auto_migrate:
        database = Database.from_url(settings.database_url)
        try:
            migrations.upgrade(database.engine)
        finally:
            database.close()
    os.environ["TIDINGS_DATABASE_URL"] = settings.database_url
    os.environ["TIDINGS_AUTO_MIGRATE"] = "false"
    uvicorn.run("tidings.app:create_app", factory=True, workers=workers, **options)  # type: ignore[arg-type]


def _container(settings: Settings) -> Container:
    from tidings.app import build_container

    container = build_container(settings)
    migrations.upgrade(container.db.engine)
    return container


def _drain(container: Container, what: str) -> int:
    """Apply the log until caught up, with a progress bar; returns the number of events."""
    pipeline = container.pipeline
    if not pipeline.lease.try_acquire():
        console.print(
            "[yellow]another process (tidings serve or a worker) is applying the log; "
            "it will do this work[/]"
        )
        return 0
    backlog = pipeline.status()["backlog"]
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(what, total=backlog, rate="…")

        def advance(n: int) -> None:
            done = progress.tasks[0].completed + n
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=n, rate=f"{rate:,.0f}")

        total = pipeline.drain(advance)
    elapsed = time.monotonic() - started
    pipeline.release()
    rate = total / elapsed if elapsed > 0 else 0.0
    console.print(f"applied {total:,} events in {elapsed:.1f} s ({rate:,.0f} events/s)")
    return total


@app.command()
def worker(
    db: DbOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Apply the backlog, then exit (no standing by)")
    ] = False,
) -> None:
    """Apply the events log to identities and profiles (beside or instead of the in-process
    pipeline of `tidings serve`; set TIDINGS_PIPELINE_IN_PROCESS=false there to leave it all to
    workers). Only one process applies the log at a time; others stand by and take over."""
    settings = _settings(db)
    container = _container(settings)
    try:
        if once:
            _drain(container, "applying the log")
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"worker {os.getpid()} on {_safe_url(settings.database_url)}; Ctrl-C to stop")
        applied = 0

        def report(n: int) -> None:
            nonlocal applied
            applied += n
            status = container.pipeline.stats.snapshot()
            console.print(
                f"applied {applied:,} · {status['events_per_s']:,.0f} events/s · "
                f"oldest event's delay {status['last_batch_lag_ms']} ms",
                highlight=False,
            )

        container.pipeline.run_forever(stop, on_batch=report)
    finally:
        container.db.close()


@pipeline_app.command("status")
def pipeline_status(db: DbOption = None) -> None:
    """Where the pipeline is in the log and how far behind."""
    container = _container(_settings(db))
    try:
        status = container.pipeline.status()
        profiles = container.profiles.profiles.count()
    finally:
        container.db.close()
    table = Table("", "")
    for key in ("position", "head", "backlog", "epoch"):
        table.add_row(key, f"{status[key]:,}")
    table.add_row("profiles", f"{profiles:,}")
    console.print(table)


@pipeline_app.command("rebuild")
def pipeline_rebuild(
    db: DbOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Forget every identity and profile and re-apply the whole events log."""
    if not yes:
        typer.confirm("Rebuild identities and profiles from the events log?", abort=True)
    container = _container(_settings(db))
    try:
        container.profiles.reset_derived()
        _drain(container, "re-applying the log")
    finally:
        container.db.close()


@retention_app.command("run")
def retention_run(db: DbOption = None) -> None:
    """Purge events and rejections older than TIDINGS_RETENTION_DAYS now."""
    settings = _settings(db)
    container = _container(settings)
    try:
        result = container.retention.run()
    finally:
        container.db.close()
    console.print(
        f"purged {result.events:,} events and {result.rejections:,} rejections received before "
        f"{iso(from_ms(result.cutoff_ms))} ({settings.retention_days} days)"
    )


@sources_app.command("create")
def sources_create(name: str, db: DbOption = None) -> None:
    """Create a source and print its write key (shown only now)."""
    from tidings.collect.sources import SourceService
    from tidings.collect.store import CollectStore

    database = _database(_settings(db))
    try:
        made = SourceService(CollectStore(database.engine), SystemClock()).create(name)
    finally:
        database.close()
    console.print(f"source [bold]{made.source.id}[/] ({made.source.name})")
    console.print("write key (shown only now):", style="yellow")
    print(made.write_key)


@sources_app.command("list")
def sources_list(db: DbOption = None) -> None:
    """List sources (write keys are shown only by their ends)."""
    from tidings.collect.store import CollectStore

    database = _database(_settings(db))
    try:
        store = CollectStore(database.engine)
        table = Table("id", "name", "write key", "events", "created")
        for s in store.list_sources():
            table.add_row(
                s.id,
                s.name,
                s.write_key_hint,
                str(store.count_events(s.id)),
                iso(from_ms(s.created_at)),
            )
    finally:
        database.close()
    console.print(table)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="What the token is for")] = "admin",
    db: DbOption = None,
) -> None:
    """Create an admin API token and print it (shown only now)."""
    database = _database(_settings(db))
    try:
        made = TokenService(database.engine, SystemClock()).create(name)
    finally:
        database.close()
    console.print(
        f"token [bold]{made.token.id}[/] ({name}); use as Authorization: Bearer …", style="yellow"
    )
    print(made.secret)


@tokens_app.command("list")
def tokens_list(db: DbOption = None) -> None:
    """List active admin tokens."""
    database = _database(_settings(db))
    try:
        table = Table("id", "name", "token", "created")
        for t in TokenService(database.engine, SystemClock()).list():
            table.add_row(t.id, t.name, t.hint, iso(from_ms(t.created_at)))
    finally:
        database.close()
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str, db: DbOption = None) -> None:
    """Revoke an admin token by id."""
    database = _database(_settings(db))
    try:
        ok = TokenService(database.engine, SystemClock()).revoke(token_id)
    finally:
        database.close()
    if not ok:
        console.print(f"[red]no active token {token_id}[/]")
        raise typer.Exit(1)
    console.print(f"revoked {token_id}")


def _seed_demo(
    settings: Settings, source_id: str, base: str, shop: bool, shoppers: int
) -> DemoSeed | None:
    """Seed the demo shop once (see tidings.demo.seed); the seed already made, if any."""
    from tidings.demo.seed import read_seed, seed_demo

    found = read_seed(Path(settings.data_dir), source_id)
    if found is not None or not shop:
        return found
    if settings.public_url is None:
        settings = settings.model_copy(update={"public_url": base})
    console.print("[bold]seeding the demo shop[/] (once; takes a few seconds)")
    container = _container(settings)
    try:
        return seed_demo(
            container,
            source_id,
            base,
            drain=lambda: _drain(container, "building profiles"),
            shoppers=shoppers,
            progress=True,
            say=lambda line: console.print(f"  {line}", highlight=False),
        )
    finally:
        container.db.close()


@app.command()
def demo(
    db: DbOption = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    shop: Annotated[
        bool, typer.Option(help="Seed the demo shop: catalog, shoppers, blocks")
    ] = True,
    shoppers: Annotated[int, typer.Option(min=10, help="Shoppers in the demo shop")] = 2000,
) -> None:
    """Prepare the local demo once (a source, an admin token and an admin UI account) and
    print how to try it."""
    from tidings.collect.sources import SourceService
    from tidings.collect.store import CollectStore
    from tidings.web.store import UserStore
    from tidings.web.users import UserService

    settings = _settings(db)
    creds_path = Path(settings.data_dir) / "demo-credentials.json"
    database = _database(settings)
    try:
        clock = SystemClock()
        sources = SourceService(CollectStore(database.engine), clock)
        creds = json.loads(creds_path.read_text()) if creds_path.exists() else None
        changed = False
        # Credentials outlive a deleted database only as a file: check they still work.
        if (
            creds is None
            or sources.by_write_key(creds["write_key"]) is None
            or not TokenService(database.engine, clock).is_valid(creds["admin_token"])
        ):
            source = sources.create("Demo shop")
            token = TokenService(database.engine, clock).create("demo admin")
            creds = {
                "source_id": source.source.id,
                "write_key": source.write_key,
                "admin_token": token.secret,
            }
            changed = True
        users = UserService(UserStore(database.engine), clock)
        email = creds.get("admin_email", DEMO_ADMIN)
        password = creds.get("admin_password", "")
        if not password or users.password_matches(email, password) is None:
            password = secrets.token_urlsafe(12)
            if any(u.email == email for u in users.list()):
                users.set_password(email, password)
            else:
                users.create(email, password)
            creds.update(admin_email=email, admin_password=password)
            changed = True
        if changed:
            creds_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(creds_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(creds, fh)
    finally:
        database.close()
    base = f"http://{host}:{port}"
    seed = _seed_demo(settings, creds["source_id"], base, shop, shoppers)
    console.rule("[bold]tidings demo")
    console.print(f"admin UI        {base}/admin")
    console.print(f"  email         {creds['admin_email']}")
    console.print(f"  password      {creds['admin_password']}")
    console.print(f"API docs        {base}/docs")
    console.print(f"write key       {creds['write_key']}   (source {creds['source_id']})")
    console.print(f"admin token     {creds['admin_token']}")
    console.print(f"(kept in {creds_path}; delete it and the database to start over)")
    if seed is not None:
        console.print(f"\ndemo email      {base}/demo/email   (three shoppers side by side)")
        for role, email in seed.recipients.items():
            print(f"  {role:<13} {base}/demo/email?u={quote(email)}")
        console.print(f"blocks          {base}/admin/blocks")
        if seed.campaign:
            console.print(
                f"campaign        {base}/admin/campaigns/{seed.campaign}   (send it with "
                f"`tidings campaigns send {seed.campaign}` once TIDINGS_SMTP_HOST is set)",
                highlight=False,
            )
        if "browsed" in seed.user_ids:
            console.print("\nPut something in the browsing shopper's cart, then reload:")
            print(
                f"  curl -u '{creds['write_key']}:' {base}/v1/track "
                "-H 'Content-Type: application/json' \\\n"
                f'    -d \'{{"userId":"{seed.user_ids["browsed"]}","event":"Product Added",'
                '"properties":{"product_id":"prod-00007","price":49,"quantity":1,'
                '"url":"https://shop.example/p/demo"}}\''
            )
    console.print("\nSend an event:")
    print(
        f"  curl -u '{creds['write_key']}:' {base}/v1/track \\\n"
        "    -H 'Content-Type: application/json' \\\n"
        '    -d \'{"userId":"ada@example.com","event":"Product Viewed",'
        '"properties":{"product_id":"sku-1","url":"https://shop.example/p/1"}}\''
    )
    console.print("See it arrive:")
    print(
        f"  curl -H 'Authorization: Bearer {creds['admin_token']}' "
        f"'{base}/v1/sources/{creds['source_id']}/events?limit=5'"
    )
    console.print("The profile it built (a moment later):")
    print(
        f"  curl -H 'Authorization: Bearer {creds['admin_token']}' "
        f"'{base}/v1/profiles/user_id:ada@example.com'"
    )
    console.print("Watch live:")
    print(
        f"  curl -N -H 'Authorization: Bearer {creds['admin_token']}' "
        f"{base}/v1/sources/{creds['source_id']}/events/stream"
    )
    console.rule()


app.command("simulate")(simulate_command)


def main() -> None:
    app()
