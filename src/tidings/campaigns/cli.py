"""``tidings campaigns``: list, send (with a progress bar) and report campaigns."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from tidings.core.errors import TidingsError
from tidings.core.settings import Settings

if TYPE_CHECKING:
    from tidings.core.deps import Container

campaigns_app = typer.Typer(no_args_is_help=True, help="Campaigns: send over SMTP, report.")
console = Console()
T = TypeVar("T")

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
]


def _run(db: str | None, work: Callable[[Container], Awaitable[T]]) -> T:
    """Run ``work`` with a container whose ingest writer runs (sends record events)."""
    from tidings.app import build_container
    from tidings.core import migrate

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})

    async def main() -> T:
        container = build_container(settings)
        migrate.upgrade(container.db.engine)
        container.ingest.start()
        container.decisions.start()
        try:
            return await work(container)
        finally:
            await container.ingest.stop()
            await container.decisions.stop()
            container.db.close()

    try:
        return asyncio.run(main())
    except TidingsError as exc:
        console.print(f"[red]{exc.error.message}[/]")
        raise typer.Exit(1) from None


@campaigns_app.command("list")
def list_command(db: DbOption = None) -> None:
    """The newest campaigns and where their sends are."""

    async def work(c: Container) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return [(row, c.campaigns.status(row["id"])) for row in c.campaigns.recent()]

    table = Table("id", "name", "subject", "send", "sent", "bounced")
    for row, status in _run(db, work):
        table.add_row(
            row["id"],
            row["name"],
            row["subject"],
            status["status"],
            str(status.get("sent", "")),
            str(status.get("bounced", "")),
        )
    console.print(table)


@campaigns_app.command("send")
def send_command(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id")],
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Where recipients reach tidings (TIDINGS_PUBLIC_URL)"),
    ] = None,
    db: DbOption = None,
) -> None:
    """Send a campaign now, in this process, at TIDINGS_CAMPAIGN_SEND_RATE messages a second.
    Recipients already sent to are skipped, so running it again resumes."""
    base = base_url or Settings().public_url
    if not base:
        console.print(
            "[red]pass --base-url or set TIDINGS_PUBLIC_URL[/] (links must reach tidings)"
        )
        raise typer.Exit(2)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )

    async def work(c: Container) -> dict[str, Any]:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"sending {campaign_id}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return await c.campaigns.send(campaign_id, base, advance)

    status = _run(db, work)
    console.print(
        f"[green]{status['status']}[/]: sent {status['sent']}, bounced {status['bounced']}, "
        f"failed {status['failed']}, skipped {status['skipped']}, unknown {status['unknown']}"
    )


@campaigns_app.command("report")
def report_command(
    campaign_id: Annotated[str, typer.Argument(help="The campaign's id")],
    db: DbOption = None,
) -> None:
    """Delivered, opens, clicks, replies and attributed revenue, overall and per variant."""

    async def work(c: Container) -> dict[str, Any]:
        return await c.campaigns.report(campaign_id)

    r = _run(db, work)
    table = Table("", "", title=f"{r['name']} ({r['campaign_id']})")
    ctor = r["click_to_open_rate"]
    for label, value in (
        ("delivered", r["delivered"]),
        ("bounced", r["bounced"]),
        ("unique opens (people)", r["unique_opens"]),
        ("machine opens (apart)", r["machine_opens"]),
        ("unique clicks (people)", r["unique_clicks"]),
        ("machine clicks (apart)", r["machine_clicks"]),
        ("click-to-open", f"{ctor:.1%}" if ctor is not None else "–"),
        ("unsubscribes", r["unsubscribes"]),
        ("replies", r["replies"]),
        (f"conversions ({r['attribution_days']:g} days)", r["conversions"]),
        ("revenue", f"{r['revenue']:,.2f}"),
    ):
        table.add_row(label, str(value))
    console.print(table)
    if r["variants"]:
        variants = Table(
            "block",
            "variant",
            "recipients",
            "opens",
            "clicks",
            "conversions",
            "revenue",
            title="per open-time variant",
        )
        for v in r["variants"]:
            variants.add_row(
                v["block_id"],
                v["variant"],
                str(v["recipients"]),
                str(v["unique_opens"]),
                str(v["unique_clicks"]),
                str(v["conversions"]),
                f"{v['revenue']:,.2f}",
            )
        console.print(variants)
    console.print(f"computed in {r['elapsed_ms']:,.0f} ms", style="dim")
