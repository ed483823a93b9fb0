"""``tidings catalog``: import a product feed from a file, with a progress bar and a summary."""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tidings.core.clock import SystemClock
from tidings.core.errors import TidingsError
from tidings.core.settings import Settings

from .feed import FeedFormat, detect_format
from .service import CatalogService, ImportSummary

catalog_app = typer.Typer(no_args_is_help=True, help="The product catalog: feeds and products.")

MAX_ISSUES_PRINTED = 50


class Format(enum.StrEnum):
    csv = "csv"
    json = "json"


def _service(db: str | None) -> CatalogService:
    from tidings.core import migrate
    from tidings.core.db import Database

    from .store import CatalogStore

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    database = Database.from_settings(settings)
    migrate.upgrade(database.engine)
    return CatalogService(database, CatalogStore(database.engine), SystemClock(), cache_ttl_s=0)


@catalog_app.command("import")
def import_command(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV or JSON feed")
    ],
    fmt: Annotated[
        Format | None,
        typer.Option("--format", help="csv or json (default: from the file's extension)"),
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
    ] = None,
) -> None:
    """Insert or update the products of a feed; rows that cannot be read are listed and
    skipped. The feed's values win over what events taught."""
    console = Console()
    data = file.read_bytes()
    chosen: FeedFormat = fmt.value if fmt is not None else detect_format(data, file.name)
    service = _service(db)
    try:
        started = time.monotonic()
        try:
            parsed = service.parse(data, chosen)
        except TidingsError as exc:
            console.print(f"[red]{file.name} is not a {chosen} feed:[/] {exc.error.message}")
            raise typer.Exit(1) from None
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"importing {file.name}", total=len(parsed.rows))
            summary = service.write(parsed, lambda n: progress.advance(task, n))
        summary.seconds = time.monotonic() - started
    finally:
        service.db.close()
    _print_summary(console, summary)


def _print_summary(console: Console, summary: ImportSummary) -> None:
    table = Table("", "rows", title=f"{summary.format} feed in {summary.seconds:.1f} s")
    table.add_row("read", f"{summary.rows:,}")
    table.add_row("[green]inserted[/]", f"{summary.inserted:,}")
    table.add_row("[cyan]updated[/]", f"{summary.updated:,}")
    table.add_row("[red]rejected[/]" if summary.rejected else "rejected", f"{summary.rejected:,}")
    console.print(table)
    if not summary.issues:
        return
    issues = Table("line", "product", "field", "why", title="rejected rows")
    for issue in summary.issues[:MAX_ISSUES_PRINTED]:
        where = str(issue.line) if issue.line is not None else f"#{issue.index}"
        issues.add_row(where, issue.product_id or "", issue.field or "", issue.message)
    console.print(issues)
    if len(summary.issues) > MAX_ISSUES_PRINTED:
        console.print(f"… and {len(summary.issues) - MAX_ISSUES_PRINTED:,} more problems")
