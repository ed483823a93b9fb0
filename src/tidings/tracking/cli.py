"""``tidings emails``: wrap an HTML email's links and add the open pixel, from a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from tidings.core.clock import SystemClock
from tidings.core.settings import Settings
from tidings.core.signing import Signer

from .tokens import PURPOSE
from .wrap import ESPS, WrapOptions, campaign_of, recipient_for, wrap_html

emails_app = typer.Typer(no_args_is_help=True, help="Emails: wrap links for tracking.")
err = Console(stderr=True)


@emails_app.command("wrap")
def wrap_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The HTML email")],
    campaign_id: Annotated[str, typer.Option("--campaign-id", help="The campaign it belongs to")],
    esp: Annotated[str, typer.Option(help="The ESP that sends it: " + ", ".join(ESPS))],
    campaign_name: Annotated[str | None, typer.Option("--campaign-name")] = None,
    email_id: Annotated[str | None, typer.Option("--email-id")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="The email's subject")] = None,
    recipient_tag: Annotated[
        str | None,
        typer.Option("--recipient-tag", help="The ESP's merge tag for the recipient's address"),
    ] = None,
    utm_source: Annotated[str | None, typer.Option("--utm-source")] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Where recipients reach tidings (TIDINGS_PUBLIC_URL)"),
    ] = None,
    track_unsubscribe: Annotated[
        bool, typer.Option("--track-unsubscribe", help="Wrap unsubscribe links too")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout")
    ] = None,
) -> None:
    """Print the email with every trackable link wrapped and the open pixel added."""
    settings = Settings()
    base = base_url or settings.public_url
    if not base:
        err.print("[red]pass --base-url or set TIDINGS_PUBLIC_URL[/] (links must reach tidings)")
        raise typer.Exit(2)
    if esp not in ESPS:
        err.print(f"[red]--esp must be one of {', '.join(ESPS)}[/]")
        raise typer.Exit(2)
    try:
        recipient = recipient_for(esp, recipient_tag)
    except ValueError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    options = WrapOptions(
        campaign_id=campaign_id,
        esp=esp,
        campaign_name=campaign_name,
        email_id=email_id,
        email_subject=subject,
        recipient_tag=recipient_tag,
        utm_source=utm_source,
        skip_unsubscribe=not track_unsubscribe,
    )
    wrapped = wrap_html(
        file.read_text("utf-8"),
        base_url=base,
        signer=Signer.from_settings(settings, PURPOSE),
        campaign=campaign_of(options, SystemClock().now(), settings.tracking_link_max_age_days),
        recipient=recipient,
        skip_unsubscribe=options.skip_unsubscribe,
    )
    if output is not None:
        output.write_text(wrapped.html, "utf-8")
    else:
        sys.stdout.write(wrapped.html)
    err.print(f"wrapped {wrapped.links_wrapped} links, pixel added: {wrapped.pixel_added}")
    for skipped in wrapped.skipped:
        err.print(f"  left as is: {skipped.href[:80]} ({skipped.reason})", highlight=False)
    if not wrapped.complete:
        err.print("[yellow]the HTML parser stopped early: links after that point are as they were")
