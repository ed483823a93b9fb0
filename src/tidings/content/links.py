"""Click targets: only http(s) URLs are followed, and UTM parameters are appended to them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .schemas import Utm

UTM_KEYS: Final = ("source", "medium", "campaign", "content")


def safe_target(url: str | None) -> str | None:
    """``url`` if a click may be sent there (absolute http or https, no spaces or control
    characters), else ``None``: product URLs come from events, which anyone holding the
    public write key can send."""
    if not url or len(url) > 2000:
        return None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def with_utm(url: str, defaults: Utm, overrides: Mapping[str, str | None]) -> str:
    """``url`` with ``utm_*`` parameters appended: the click's ``overrides`` (from the tag's
    query) over the block's ``defaults``; a parameter the target already carries is kept as
    it is, and the target's own query and fragment are kept."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {key for key, _ in query}
    added: list[tuple[str, str]] = []
    for key in UTM_KEYS:
        name = f"utm_{key}"
        value = overrides.get(name) or getattr(defaults, key)
        if value and name not in present:
            added.append((name, value))
    if not added:
        return url
    joined = parts.query + ("&" if parts.query else "") + urlencode(added)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))
