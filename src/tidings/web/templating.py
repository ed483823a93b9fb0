"""The Jinja2 environment of the admin pages: autoescaped HTML, filters for instants and JSON."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from tidings.core.clock import from_ms

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# The navigation, in order.
NAV: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "Dashboard", "/admin"),
    ("sources", "Sources", "/admin/sources"),
    ("profiles", "Profiles", "/admin/profiles"),
    ("catalog", "Catalog", "/admin/catalog"),
    ("blocks", "Blocks", "/admin/blocks"),
    ("campaigns", "Campaigns", "/admin/campaigns"),
)


def profile_path(ref: str) -> str:
    """The profile page of ``type:value``."""
    return "/admin/profiles/" + quote(ref, safe=":@")


def recipient_path(recipient: str) -> str:
    """The profile page of a creative tag's recipient (an email address, else a user id)."""
    return profile_path(("email:" if "@" in recipient else "user_id:") + recipient)


def _instant(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return from_ms(int(value))
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def when(value: Any) -> str:
    """``2026-11-23 12:00:05 UTC`` from an ISO string, epoch milliseconds or a datetime."""
    moment = _instant(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def iso_attr(value: Any) -> str:
    """The machine-readable twin for ``<time datetime=…>``."""
    moment = _instant(value)
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "—" if value is None else str(value)
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def money(value: Any, currency: str | None = None) -> str:
    if value is None:
        return "—"
    return f"{float(value):,.2f}" + (f" {currency}" if currency else "")


def build_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        iso_attr=iso_attr,
        pretty_json=pretty_json,
        number=number,
        money=money,
        recipient_path=recipient_path,
    )
    env.globals["nav"] = NAV
    return env
