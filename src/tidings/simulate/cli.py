"""``tidings simulate``: a shop and its shoppers, sent over HTTP or written through the store."""

from __future__ import annotations

import enum
import gc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidings.core.settings import Settings

from .catalog import DEFAULT_BASE_URL, generate_catalog
from .send import SendResult, send_direct, send_http
from .shoppers import ShopperModel, Simulation, simulate
from .truth import GroundTruth, write_ground_truth


class Via(enum.StrEnum):
    http = "http"
    direct = "direct"


def _start_of(days: int, start: datetime | None) -> datetime:
    """The window's start: as given (UTC unless zoned), else so that it ends at midnight today."""
    if start is not None:
        return start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _direct_source(database_url: str, write_key: str | None, name: str, console: Console) -> str:
    """The id of the source to write to: the write key's, or a new one named ``name``."""
    from tidings.collect.sources import SourceService
    from tidings.collect.store import CollectStore
    from tidings.core import migrate
    from tidings.core.clock import SystemClock
    from tidings.core.db import Database

    database = Database.from_url(database_url)
    try:
        migrate.upgrade(database.engine)
        sources = SourceService(CollectStore(database.engine), SystemClock())
        if write_key is not None:
            found = sources.by_write_key(write_key)
            if found is None:
                console.print("[red]no source has that write key in this database[/]")
                raise typer.Exit(2)
            return found.id
        made = sources.create(name)
    finally:
        database.close()
    console.print(f"created source [bold]{made.source.id}[/] ({made.source.name})")
    console.print(f"write key (shown only now): [yellow]{made.write_key}[/]", highlight=False)
    return made.source.id


def _summary(result: SendResult, truth: GroundTruth) -> Table:
    table = Table()
    table.add_column("event", style="bold")
    table.add_column("count", justify="right")
    for name, count in result.names.most_common():
        table.add_row(name, f"{count:,}")
    table.add_section()
    people = list(truth)
    rows = [
        ("persons", len(result.persons)),
        ("identified", sum(p.user_id is not None for p in people)),
        ("on two devices", sum(len(p.anonymous_ids) > 1 for p in people)),
        ("converted", sum(p.converted for p in people)),
        ("repeat buyers", sum(p.orders > 1 for p in people)),
        ("churned", sum(p.churned for p in people)),
    ]
    for label, value in rows:
        table.add_row(label, f"{value:,}")
    table.add_section()
    if result.stored is not None:
        table.add_row("stored (new)", f"{result.stored:,}")
    table.add_row("rejected", f"{result.rejected:,}")
    table.add_row("elapsed", f"{result.elapsed_s:,.1f} s")
    table.add_row("events/s", f"{result.events_per_s:,.0f}")
    return table


def simulate_command(
    shoppers: Annotated[int, typer.Option(min=0, help="People to simulate")] = 2000,
    days: Annotated[int, typer.Option(min=1, help="Length of the window in days")] = 30,
    seed: Annotated[int, typer.Option(help="Same seed, same shop, same events")] = 1,
    via: Annotated[
        Via | None,
        typer.Option(
            help="http: the API with Segment's client; direct: the store (default: "
            "http with --url, else direct)"
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="tidings server to send to (http)")] = None,
    write_key: Annotated[
        str | None, typer.Option(help="Source write key (http: required; direct: else a new one)")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
    ] = None,
    source: Annotated[str, typer.Option(help="Name of the source made in direct mode")] = (
        "Simulated shop"
    ),
    ground_truth: Annotated[
        Path | None, typer.Option(help="Write who is who, who churned, who bought here (JSON)")
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(help="First day (UTC; default: so that the window ends at midnight today)"),
    ] = None,
    products: Annotated[int, typer.Option(min=10, help="Catalog size")] = 240,
    messy: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of product events sent imperfectly")
    ] = 0.02,
    image_base_url: Annotated[
        str | None,
        typer.Option(
            help="Base URL of product images (default: --url, TIDINGS_PUBLIC_URL or "
            f"{DEFAULT_BASE_URL})"
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar")] = True,
) -> None:
    """Simulate a shop's shoppers and send their events (Segment messages) to tidings."""
    console = Console()
    settings = Settings()
    mode = via or (Via.http if url else Via.direct)
    if mode is Via.http and not write_key:
        console.print("[red]--via http needs --write-key (and --url, default localhost:8000)[/]")
        raise typer.Exit(2)
    server = (url or "http://127.0.0.1:8000").rstrip("/")
    images = image_base_url or (url if url else settings.public_url) or DEFAULT_BASE_URL
    database_url = db or settings.database_url
    source_id = ""
    if mode is Via.direct:
        source_id = _direct_source(database_url, write_key, source, console)

    catalog = generate_catalog(seed, products, base_url=images)
    window = _start_of(days, start)
    sim: Simulation = simulate(
        seed, shoppers, days, window, catalog, model=ShopperModel(messy_rate=messy)
    )
    # The simulation's people live as long as the run: keep the collector from rescanning them.
    gc.collect()
    gc.freeze()
    console.print(
        f"{shoppers:,} shoppers over {days} days from {window.date()} · seed {seed} · "
        f"{len(catalog)} products",
        highlight=False,
    )
    try:
        if mode is Via.http:
            result = send_http(sim, server, write_key or "", progress=progress, console=console)
        else:
            result = send_direct(sim, database_url, source_id, progress=progress, console=console)
    finally:
        gc.unfreeze()
    truth = sim.ground_truth
    console.print(_summary(result, truth))
    console.print(
        f"simulated {sim.emitted:,} events via {result.via} in {result.elapsed_s:,.1f} s "
        f"({result.events_per_s:,.0f} events/s)",
        highlight=False,
    )
    if ground_truth is not None:
        path = write_ground_truth(truth, ground_truth)
        console.print(f"ground truth of {len(truth):,} persons written to {path}")
    for error in result.errors:
        console.print(f"[red]{error}[/]", highlight=False)
    if result.rejected:
        raise typer.Exit(1)
