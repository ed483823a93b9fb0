"""``tidings blocks``: create, list and show content blocks from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from tidings.core.clock import SystemClock, from_ms, iso
from tidings.core.errors import TidingsError
from tidings.core.settings import Settings

from .blocks import BlockService, block_json
from .schemas import AppKind, BlockIn
from .store import ContentStore

blocks_app = typer.Typer(no_args_is_help=True, help="Content blocks: what opens render.")
console = Console()

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
]


def _blocks(db: str | None) -> tuple[BlockService, Any]:
    from tidings.core import migrate
    from tidings.core.db import Database

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    database = Database.from_url(
        settings.database_url,
        synchronous=settings.sqlite_synchronous,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
    )
    migrate.upgrade(database.engine)
    return BlockService(ContentStore(database.engine), SystemClock(), ttl_s=0), database


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]{message}[/]")
    return typer.Exit(1)


@blocks_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="What the block is called")],
    app: Annotated[str, typer.Option("--app", help=f"One of: {', '.join(get_args(AppKind))}")],
    config: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="The app's config as a JSON file"),
    ] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="png, jpeg (gif: countdown)")] = None,
    fallback_image: Annotated[str | None, typer.Option(help="Static fallback image URL")] = None,
    fallback_link: Annotated[str | None, typer.Option(help="Where a fallback click goes")] = None,
    lock: Annotated[
        bool, typer.Option("--lock", help="Re-opens show the first open's image and links")
    ] = False,
    machine_opens: Annotated[
        str, typer.Option(help="render or fallback: what Apple MPP and scanners get")
    ] = "render",
    db: DbOption = None,
) -> None:
    """Create a block. Without --fallback-image the block collapses to a 1×1 image when it
    has nothing to show."""
    fallback: dict[str, Any] = (
        {"kind": "image", "image_url": fallback_image, "link_url": fallback_link}
        if fallback_image
        else {"kind": "collapse", "link_url": fallback_link}
    )
    app_config = json.loads(config.read_text()) if config else {}
    body = {
        "name": name,
        "variants": [{"creative": {"app": app, "config": app_config, "format": fmt}}],
        "fallback": fallback,
        "lock_after_first_open": lock,
        "machine_opens": machine_opens,
    }
    try:
        spec = BlockIn.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"{where}: {first['msg']}") from None
    service, database = _blocks(db)
    try:
        block = service.create(spec)
    except TidingsError as exc:
        raise _fail(f"{exc.error.field}: {exc.error.message}") from None
    finally:
        database.close()
    console.print(f"block [bold]{block.id}[/] ({block.name})")
    console.print(f"image: /i/{block.id}.{block.extension}?u=<recipient>")
    console.print(f"click: /c/{block.id}?u=<recipient>")


@blocks_app.command("list")
def list_command(db: DbOption = None) -> None:
    """Every block."""
    service, database = _blocks(db)
    try:
        blocks = service.list()
    finally:
        database.close()
    table = Table("name", "app", "format", "version", "updated")
    table.columns.insert(0, Column("id", no_wrap=True))
    for b in blocks:
        updated = iso(from_ms(b.updated_at))
        table.add_row(b.id, b.name, b.main.kind, b.main.format, str(b.version), updated)
    console.print(table)


@blocks_app.command("show")
def show_command(block_id: str, db: DbOption = None) -> None:
    """One block as JSON, with its alarms."""
    service, database = _blocks(db)
    try:
        block = service.get(block_id)
        alarms = service.store.alarms(block.id)
    except TidingsError as exc:
        raise _fail(exc.error.message) from None
    finally:
        database.close()
    shown = block_json(block)
    shown["alarms"] = [
        {"code": a.code, "count": a.count, "last_seen": iso(from_ms(a.last_seen))} for a in alarms
    ]
    print(json.dumps(shown, indent=2))
