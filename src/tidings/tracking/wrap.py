"""Wrap an HTML email: every trackable ``<a href>`` becomes a signed click URL, and the open
pixel goes in before ``</body>``; every other byte of the HTML stays as it was.

The stdlib ``html.parser`` finds the start tags (it skips comments, ``<script>`` and
``<style>`` the way browsers do); the rewrite works on the original text, replacing only the
``href`` value of each wrapped link at the offsets the parser reports, so the output is the
input with those values changed and the pixel added. The ``href`` is located by tokenising the
tag's own text the way the parser does, never by a search that a quoted ``title`` could fool.

Not wrapped (each reported with a reason): ``mailto:``, ``tel:``, ``#anchors`` and any other
non-http(s) or relative URL; links whose host is a merge tag; links already pointing at
tidings' tracking paths; links marked ``data-tidings-skip``; and, unless turned off,
unsubscribe links (ESPs track those themselves and must recognise them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit

from tidings.core.signing import Signer

from .links import MERGE_TAG, RECIPIENT_PARAM, UnsafeTarget, template_of, tracking_url
from .tokens import RecipientType, TrackingToken, encode

# The merge tag each ESP fills with the recipient's address, when it has a standard one.
RECIPIENT_TAGS: dict[str, str | None] = {
    "mailchimp": "*|EMAIL|*",
    "mandrill": "*|EMAIL|*",
    "sendgrid": "{{email}}",
    "postmark": None,
    "generic": None,
}
ESPS = tuple(RECIPIENT_TAGS)
CLICK_PATH = "/t/c/"
OPEN_PATH = "/t/o/"
UNSUBSCRIBE_PATH = "/t/u/"
UNSUBSCRIBE = re.compile(
    r"unsub|opt[-_ ]?out|\*\|UNSUB\|\*|asm_group_unsubscribe|asm_global_unsubscribe"
    r"|pm:unsubscribe|\[unsubscribe\]|%unsubscribe_url%|%tag_unsubscribe_url%",
    re.IGNORECASE,
)
# Attribute tokeniser equivalent to html.parser's own (``attrfind_tolerant``), so the href
# found here is the one the parser reported.
_TAG_NAME = re.compile(r"<[a-zA-Z][^\t\n\r\f />\x00]*(?:\s|/(?!>))*")
_ATTR = re.compile(
    r"((?<=['\"\s/])[^\s/>][^\s/=>]*)(\s*=+\s*"
    r"('[^']*'|\"[^\"]*\"|(?!['\"])[^>\s]*))?(?:\s|/(?!>))*"
)


@dataclass(frozen=True, slots=True)
class Skipped:
    href: str
    reason: str


@dataclass(slots=True)
class Wrapped:
    html: str
    links_wrapped: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    pixel_added: bool = False
    complete: bool = True  # False: the parser stopped early; links after that point are as-is


@dataclass(frozen=True, slots=True)
class Campaign:
    """What every link and the pixel of one email are signed with."""

    campaign_id: str
    campaign_name: str | None = None
    email_id: str | None = None
    email_subject: str | None = None
    utm_source: str | None = None
    issued_at: int = 0
    expires_at: int | None = None
    sent_at: int | None = None


@dataclass(frozen=True, slots=True)
class WrapOptions:
    campaign_id: str
    esp: str
    campaign_name: str | None = None
    email_id: str | None = None
    email_subject: str | None = None
    recipient_tag: str | None = None
    utm_source: str | None = None
    skip_unsubscribe: bool = True
    add_pixel: bool = True
    #: Epoch seconds at which tidings itself sends this email (its campaigns do); signed into
    #: every link so a click seconds later is recognised as a scanner's.
    sent_at: int | None = None


def campaign_of(options: WrapOptions, now: datetime, max_age_days: int | None) -> Campaign:
    """The signed facts of one email's links, issued ``now``."""
    return Campaign(
        campaign_id=options.campaign_id,
        campaign_name=options.campaign_name,
        email_id=options.email_id,
        email_subject=options.email_subject,
        utm_source=options.utm_source,
        issued_at=int(now.timestamp()),
        expires_at=int((now + timedelta(days=max_age_days)).timestamp()) if max_age_days else None,
        sent_at=options.sent_at,
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    """Signed (``value``, per recipient) or an ESP merge tag filled in later (``tag``)."""

    value: str | None = None
    type: RecipientType = "email"
    tag: str | None = None

    def __post_init__(self) -> None:
        if (self.value is None) == (self.tag is None):
            raise ValueError("a recipient is either a value or an ESP merge tag")


def recipient_for(esp: str, tag: str | None) -> Recipient:
    """The ESP's merge tag for the recipient's address: ``tag``, else the ESP's standard one."""
    chosen = tag or RECIPIENT_TAGS.get(esp)
    if not chosen:
        raise ValueError(
            f"{esp} has no standard merge tag for the recipient's address: "
            "pass recipient_tag (the tag your template uses, e.g. {{email}})"
        )
    return Recipient(tag=chosen)


class _LinkFinder(HTMLParser):
    """Collects (offset, start-tag text, attrs) of each ``<a>`` and the last ``</body>``."""

    def __init__(self, line_starts: Sequence[int]) -> None:
        super().__init__(convert_charrefs=False)
        self.line_starts = line_starts
        self.anchors: list[tuple[int, str, list[tuple[str, str | None]]]] = []
        self.body_end: int | None = None

    def _offset(self) -> int:
        line, col = self.getpos()
        return self.line_starts[line - 1] + col

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append((self._offset(), self.get_starttag_text() or "", attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self._offset()


def _href_span(tag_text: str) -> tuple[int, int] | None:
    """Where the first ``href`` attribute's value (with its quotes) sits in the tag's text."""
    name = _TAG_NAME.match(tag_text)
    if name is None:
        return None
    k = name.end()
    while k < len(tag_text):
        m = _ATTR.match(tag_text, k)
        if not m or m.end() == k:
            return None
        if m.group(1).lower() == "href" and m.group(3) is not None:
            return m.start(3), m.end(3)
        k = m.end()
    return None


def _attribute(url: str) -> str:
    # Only & and " need escaping inside a double-quoted attribute; merge tags stay literal.
    return '"' + url.replace("&", "&amp;").replace('"', "&quot;") + '"'


def _skip_reason(
    href: str, attrs: dict[str, str | None], own_origin: str, skip_unsub: bool
) -> str | None:
    if "data-tidings-skip" in attrs:
        return "marked data-tidings-skip"
    text = href.strip()
    if not text:
        return "empty href"
    lowered = text.lower()
    if lowered.startswith("#"):
        return "an anchor in the email"
    if lowered.startswith(("mailto:", "tel:", "sms:")):
        return f"a {lowered.split(':', 1)[0]}: link"
    if skip_unsub and UNSUBSCRIBE.search(text):
        return "an unsubscribe link (the ESP tracks it)"
    if MERGE_TAG.fullmatch(text):
        return "the whole URL is a merge tag"
    try:
        parts = urlsplit(MERGE_TAG.sub("", text))
    except ValueError:
        return "not a URL"
    if f"{parts.scheme}://{parts.netloc}".lower() == own_origin and parts.path.startswith(
        (CLICK_PATH, OPEN_PATH, UNSUBSCRIBE_PATH)
    ):
        return "already a tidings tracking link"
    return None


def unsubscribe_url(base_url: str, signer: Signer, campaign: Campaign, recipient: str) -> str:
    """A signed one-click unsubscribe link for one recipient of a campaign (RFC 8058: a GET
    shows a confirmation, a POST unsubscribes)."""
    token = encode(
        TrackingToken(
            kind="unsubscribe",
            campaign_id=campaign.campaign_id,
            campaign_name=campaign.campaign_name,
            email_id=campaign.email_id,
            email_subject=campaign.email_subject,
            recipient=recipient,
            issued_at=campaign.issued_at,
        ),
        signer,
    )
    return tracking_url(base_url, UNSUBSCRIBE_PATH + token, [])


def wrap_html(
    html: str,
    *,
    base_url: str,
    signer: Signer,
    campaign: Campaign,
    recipient: Recipient,
    skip_unsubscribe: bool = True,
    add_pixel: bool = True,
) -> Wrapped:
    """``html`` with its trackable links wrapped and the open pixel added. Never raises for
    any HTML: what cannot be wrapped is left as it was and listed in ``skipped``."""
    line_starts = [0] + [i + 1 for i, c in enumerate(html) if c == "\n"]
    finder = _LinkFinder(line_starts)
    try:
        finder.feed(html)
        finder.close()
    except (AssertionError, AttributeError, ValueError, IndexError):
        # html.parser gives up on a few malformed declarations (``<![``…); what it found
        # before is still exact, the rest of the email is left unwrapped.
        finder.body_end = None
        parsed_all = False
    else:
        parsed_all = True
    base = urlsplit(base_url)
    own_origin = f"{base.scheme}://{base.netloc}".lower()

    def token_params(extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return ([(RECIPIENT_PARAM, recipient.tag)] if recipient.tag else []) + extra

    def token(kind: str, **more: object) -> str:
        return encode(
            TrackingToken(
                kind=kind,  # type: ignore[arg-type]
                campaign_id=campaign.campaign_id,
                campaign_name=campaign.campaign_name,
                email_id=campaign.email_id,
                email_subject=campaign.email_subject,
                recipient=recipient.value,
                recipient_type=recipient.type,
                recipient_in_query=recipient.tag is not None,
                utm_source=campaign.utm_source,
                issued_at=campaign.issued_at,
                expires_at=campaign.expires_at,
                sent_at=campaign.sent_at,
                **more,  # type: ignore[arg-type]
            ),
            signer,
        )

    edits: list[tuple[int, int, str]] = []
    result = Wrapped(html, complete=parsed_all)
    for offset, tag_text, attr_list in finder.anchors:
        if html[offset : offset + len(tag_text)] != tag_text:
            continue  # the parser's position is off (never seen): leave the tag alone
        attrs = dict(attr_list)
        href = next((v for k, v in attr_list if k == "href"), None)
        span = _href_span(tag_text)
        if href is None or span is None:
            continue
        reason = _skip_reason(href, attrs, own_origin, skip_unsubscribe)
        template, tags = "", list[str]()
        if reason is None:
            try:
                template, tags = template_of(href)
            except UnsafeTarget as exc:
                reason = str(exc)
        if reason is not None:
            result.skipped.append(Skipped(href, reason))
            continue
        result.links_wrapped += 1
        link_id = (attrs.get("data-tidings-link") or "").strip()[:100] or (
            f"link-{result.links_wrapped}"
        )
        click = token(
            "click",
            target=template,
            merge_slots=len(tags),
            link_id=link_id,
            utm_content=link_id,
        )
        merge = [(f"m{i}", tag) for i, tag in enumerate(tags)]
        url = tracking_url(base_url, CLICK_PATH + click, token_params(merge))
        edits.append((offset + span[0], offset + span[1], _attribute(url)))
    if add_pixel:
        pixel_url = tracking_url(base_url, f"{OPEN_PATH}{token('open')}.gif", token_params([]))
        pixel = (
            f'<img src={_attribute(pixel_url)} width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0;" />'
        )
        at = finder.body_end if finder.body_end is not None else len(html)
        edits.append((at, at, pixel))
        result.pixel_added = True
    pieces: list[str] = []
    last = 0
    for start, end, text in sorted(edits, key=lambda e: (e[0], e[1])):
        pieces.append(html[last:start])
        pieces.append(text)
        last = end
    pieces.append(html[last:])
    result.html = "".join(pieces)
    return result
