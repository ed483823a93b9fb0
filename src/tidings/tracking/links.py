"""Tracking URLs: making pixel and click URLs, and turning a click back into its target.

**ESP merge tags in a target** (``https://shop.example/?e=*|EMAIL|*``) must reach the email
literally, so the ESP substitutes them. A token is opaque base64, so the tags are cut out of
the signed target (each becomes a slot ``\\x00<n>\\x00``) and written beside the token as
``?m<n>=*|EMAIL|*``, where the ESP fills them in. At click time the slots are filled from those
parameters *exactly as the ESP wrote them* (no decoding), which is what the ESP would have
put in the original link. Tags are allowed only after the host: a tag in the scheme or host
would let a filled-in value choose where the redirect goes, so such links are never wrapped,
and a filled target whose scheme or host differs from the signed one is refused.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlsplit

# Merge tags of the common ESPs: Mailchimp/Mandrill *|TAG|*, Handlebars/Mustache/Liquid
# {{ tag }} and {{{ tag }}}, Liquid {% … %}, SendGrid's legacy <%tag%>, Salesforce %%tag%%,
# Mailgun %recipient.tag%.
MERGE_TAG = re.compile(
    r"\*\|[^|\s]{1,80}\|\*"
    r"|\{\{\{?[^{}]{1,120}\}?\}\}"
    r"|\{%[^%]{1,120}%\}"
    r"|<%[^%<>]{1,80}%>"
    r"|%%[^%\s]{1,80}%%"
    r"|%recipient\.[\w.-]{1,80}%"
)
SLOT = re.compile(r"\x00(\d+)\x00")
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content")
RECIPIENT_PARAM = "u"


class UnsafeTarget(ValueError):
    """A target tidings will not wrap or redirect to; the message says why."""


def template_of(url: str) -> tuple[str, list[str]]:
    """The target with its merge tags cut out as slots, and the tags in order.

    Raises ``UnsafeTarget`` for anything but an absolute http(s) URL with a fixed host."""
    tags: list[str] = []

    def cut(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        return f"\x00{len(tags) - 1}\x00"

    if "\x00" in url:
        raise UnsafeTarget("the URL contains a NUL character")
    template = MERGE_TAG.sub(cut, url.strip())
    origin(template)
    return template, tags


def origin(url: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of an absolute http(s) URL whose host holds no merge slot."""
    if any(c in url for c in "\r\n\t"):
        raise UnsafeTarget("the URL contains a line break or tab")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise UnsafeTarget(f"not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeTarget("only absolute http and https URLs are tracked")
    if not parts.netloc or "\x00" in parts.scheme + parts.netloc or "\\" in parts.netloc:
        raise UnsafeTarget("the host must be written out, not a merge tag")
    return scheme, parts.netloc.lower()


def raw_params(query_string: str) -> dict[str, str]:
    """``u`` and ``m<n>`` from a raw query string, undecoded (as the ESP substituted them);
    the first occurrence wins."""
    found: dict[str, str] = {}
    for part in query_string.split("&"):
        key, sep, value = part.partition("=")
        if sep and (key == RECIPIENT_PARAM or (key[:1] == "m" and key[1:].isdigit())):
            found.setdefault(key, value)
    return found


def recipient_from(params: dict[str, str]) -> str | None:
    """The ``u=`` recipient, percent-decoded (``+`` stays a plus: addresses contain it)."""
    value = params.get(RECIPIENT_PARAM)
    if value is None:
        return None
    text = unquote(value).strip()
    # An ESP that did not substitute its tag leaves the tag itself: that is no recipient.
    if not text or MERGE_TAG.fullmatch(text):
        return None
    return text[:500]


def fill(template: str, params: dict[str, str]) -> str:
    """The target with each slot replaced by its ``m<n>`` value; the origin must not change."""
    if "\x00" not in template:
        return template
    filled = SLOT.sub(lambda m: params.get(f"m{m.group(1)}", ""), template)
    if origin(filled) != origin(template):
        raise UnsafeTarget("the filled-in merge values change the link's host")
    return filled


def with_utm(url: str, utm: dict[str, str]) -> str:
    """``url`` with the UTM parameters it does not have yet, before its fragment; its own query
    (and any UTM values already there) kept exactly as written."""
    base, hash_, fragment = url.partition("#")
    path, _, query = base.partition("?")
    present = {key for key, _ in parse_qsl(query, keep_blank_values=True)}
    extra = [
        f"{key}={quote(value, safe='')}"
        for key in UTM_KEYS
        if (value := utm.get(key)) and key not in present
    ]
    if not extra:
        return url
    joined = query + ("&" if query and not query.endswith("&") else "") + "&".join(extra)
    return f"{path}?{joined}" + (hash_ + fragment)


def tracking_url(base_url: str, path: str, params: list[tuple[str, str]]) -> str:
    """``base_url`` + ``path`` with ``params`` whose values are written *literally*: they are
    ESP merge tags the ESP must recognise, or plain text that is already safe."""
    url = base_url.rstrip("/") + path
    if params:
        url += "?" + "&".join(f"{k}={v}" for k, v in params)
    return url
