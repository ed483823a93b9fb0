"""``tidings blocks``: create, list, show, preview and simulate content blocks."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Column, Table

from tidings.core.clock import SystemClock, from_ms, iso
from tidings.core.errors import TidingsError
from tidings.core.settings import Settings
from tidings.rules import describe

from .blocks import BlockService, block_json
from .preview import INBOXES, Previewer
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


@blocks_app.command("apply")
def apply_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A block as JSON (the API's body)")
    ],
    block_id: Annotated[
        str | None, typer.Option("--id", help="Replace this block instead of creating one")
    ] = None,
    db: DbOption = None,
) -> None:
    """Create (or with --id replace) a block from a JSON file: a whole waterfall of variants
    with their targeting rules, as POST /v1/blocks takes it."""
    try:
        spec = BlockIn.model_validate(json.loads(file.read_text()))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise _fail(f"{where}: {first['msg']}") from None
        raise _fail(f"{file} is not JSON: {exc}") from None
    service, database = _blocks(db)
    try:
        block = service.replace(block_id, spec) if block_id else service.create(spec)
    except TidingsError as exc:
        raise _fail(f"{exc.error.field}: {exc.error.message}") from None
    finally:
        database.close()
    console.print(f"block [bold]{block.id}[/] ({block.name}), version {block.version}")
    for v in block.variants:
        console.print(f"  {v.id}: {describe(v.rule)} → {v.kind}", highlight=False)


def _previewer(db: str | None) -> tuple[Previewer, Any]:
    from tidings.app import build_container
    from tidings.core import migrate

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    container = build_container(settings)
    migrate.upgrade(container.db.engine)
    return Previewer(container.content), container.db


@blocks_app.command("preview")
def preview_command(
    block_id: str,
    recipient: Annotated[str, typer.Option("--recipient", "-u", help="An email or a userId")],
    at: Annotated[
        datetime | None, typer.Option(help="The moment of the open (UTC unless zoned)")
    ] = None,
    inbox: Annotated[
        str, typer.Option(help="normal, apple_mpp, gmail_proxy or outlook")
    ] = "normal",
    out: Annotated[
        Path | None, typer.Option(help="Write the image as the inbox shows it here")
    ] = None,
    db: DbOption = None,
) -> None:
    """What the recipient would see, and the trace of every rule evaluated."""
    if inbox not in INBOXES:
        raise _fail(f"--inbox must be one of {', '.join(INBOXES)}")
    previewer, database = _previewer(db)
    try:
        body = previewer.preview(block_id, recipient, at=at, inbox=inbox)  # type: ignore[arg-type]
    except TidingsError as exc:
        raise _fail(exc.error.message) from None
    finally:
        database.close()
    table = Table("variant", "outcome", "rule", "why", title=f"{body['recipient']} at {body['at']}")
    for step in (body["waterfall"] or {}).get("steps", []):
        trace = step["trace"]
        style = {"chosen": "green", "fell_through": "yellow"}.get(step["outcome"], "dim")
        table.add_row(step["name"], f"[{style}]{step['outcome']}[/]", trace["rule"], step["reason"])
    console.print(table)
    shown = body["variant"] or f"the fallback ({body['reason']})"
    image = body["image"]
    console.print(
        f"shows [bold]{shown}[/]: {image['content_type']} {image['width']}×{image['height']}",
        highlight=False,
    )
    for item in body["shown"]:
        console.print(f"  {item['index']}: {item['name']} → {item['url']}", highlight=False)
    if out is not None:
        out.write_bytes(base64.b64decode(image["data_url"].partition(",")[2]))
        console.print(f"image written to {out}")


@blocks_app.command("simulate")
def simulate_command(
    block_id: str,
    sample: Annotated[int | None, typer.Option(min=1, help="A random sample of profiles")] = None,
    seed: Annotated[int, typer.Option(help="The sample's seed")] = 0,
    at: Annotated[datetime | None, typer.Option(help="The moment of the opens")] = None,
    db: DbOption = None,
) -> None:
    """How many profiles would see each variant of the waterfall, with examples."""
    previewer, database = _previewer(db)
    try:
        with console.status("walking the waterfall over the profiles"):
            body = previewer.simulate(block_id, sample=sample, seed=seed, at=at)
    except TidingsError as exc:
        raise _fail(exc.error.message) from None
    finally:
        database.close()
    table = Table(
        "variant",
        "rule",
        Column("profiles", justify="right"),
        Column("share", justify="right"),
        "examples",
        title=f"{body['profiles']:,} profiles at {body['at']}",
    )
    for v in body["variants"]:
        table.add_row(
            v["id"], v["rule"], f"{v['count']:,}", f"{v['share']:.1%}", ", ".join(v["examples"])
        )
    fb = body["fallback"]
    reasons = ", ".join(f"{k}: {n:,}" for k, n in fb["reasons"].items())
    table.add_row(
        "fallback", reasons, f"{fb['count']:,}", f"{fb['share']:.1%}", ", ".join(fb["examples"])
    )
    console.print(table)
    console.print(
        f"{body['elapsed_ms']:,.0f} ms; rules {body['rules_ms_per_profile']:.3f} ms per profile",
        highlight=False,
    )
