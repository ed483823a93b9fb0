"""Creative tags: the HTML snippet an ESP's template holds to show an open-time block.

A creative tag is ``<a href=".../c/{block}?u=TAG&s=SEND"><img src=".../i/{block}.png?u=TAG&s=SEND"
...></a>``, where ``TAG`` is the ESP's merge tag for the recipient's email address and ``SEND``
its merge tag for the send (campaign, job, dispatch), so the image and the click of one send stay
paired even when a proxy cached the image.

Encoding. The merge tag is written literally (the ESP must find it to substitute it), and what the
ESP substitutes lands raw in a query string. An address like ``ann+shop@example.com`` then reaches
tidings as ``ann shop@example.com``: a form-encoded query reads ``+`` as a space. So where the ESP
offers a URL-encoding form of its tag (Mailchimp ``*|URL:EMAIL|*``, Liquid ``| url_encode``,
AMPscript ``URLEncode()``, Iterable ``{{#urlEncode}}``, HubL and Django ``|urlencode``) the tag
uses it; for the others :func:`restore_plus_signs` repairs the received value (an email address
never holds a space, so a space in one was a ``+``).

Pure: no HTTP, no database. The content endpoints and the tag API call these functions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import quote, unquote, urlencode

__all__ = [
    "ESPS",
    "FORMATS",
    "EspTags",
    "creative_tag",
    "is_unsubstituted_merge_tag",
    "recipient_tag",
    "restore_plus_signs",
]


@dataclass(frozen=True, slots=True)
class EspTags:
    """One ESP's merge tags, as a creative tag uses them."""

    name: str
    #: The tag written into the URLs: the URL-encoding form where the ESP has one.
    email: str
    #: The plain tag for the recipient's email address (what an unsubstituted one looks like).
    email_plain: str
    #: The tag for the send or campaign id, when the ESP has one.
    send_id: str | None
    #: True when ``email`` URL-encodes the substituted address (``+`` arrives as ``%2B``).
    encodes: bool
    #: Where the tags are documented.
    doc: str


ESPS: Mapping[str, EspTags] = MappingProxyType(
    {
        # https://mailchimp.com/help/all-the-merge-tags-cheat-sheet/ (``*|URL:MERGE|*`` encodes
        # a merge field for a URL); *|EMAIL|* and *|CAMPAIGN_UID|* are also listed by Validity's
        # ESP table: https://knowledge.validity.com/hc/en-us/articles/360047239072
        "mailchimp": EspTags(
            name="Mailchimp",
            email="*|URL:EMAIL|*",
            email_plain="*|EMAIL|*",
            send_id="*|CAMPAIGN_UID|*",
            encodes=True,
            doc="https://mailchimp.com/help/all-the-merge-tags-cheat-sheet/",
        ),
        # Personalization strings (emailaddr, jobid): https://ampscript.guide/system-strings/ and
        # https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/personalizationStringsAMPscript.html
        # URLEncode(str, encodeAllChars, encodeAllStrings): the third argument must be true or a
        # bare value (not a URL) is left as is:
        # https://developer.salesforce.com/docs/marketing/marketing-cloud-ampscript/references/mc-ampscript-http/mc-ampscript-reference-http-url-encode.md
        "sfmc": EspTags(
            name="Salesforce Marketing Cloud",
            email="%%=URLEncode(emailaddr, 1, 1)=%%",
            email_plain="%%emailaddr%%",
            send_id="%%jobid%%",
            encodes=True,
            doc="https://developer.salesforce.com/docs/marketing/marketing-cloud-ampscript/references/mc-ampscript-http/mc-ampscript-reference-http-url-encode.md",
        ),
        # Standard attribute {{${email_address}}}; campaign attribute {{campaign.${dispatch_id}}}:
        # https://www.braze.com/docs/user_guide/personalization_and_dynamic_content/liquid/supported_personalization_tags/
        # https://braze.com/docs/user_guide/messaging/messaging_fundamentals/dispatch_id/
        # url_encode (CGI-style: '@' -> %40, '+' -> %2B) rather than url_escape/url_param_escape,
        # which leave '+' alone:
        # https://braze.com/docs/user_guide/personalization_and_dynamic_content/liquid/advanced_filters
        "braze": EspTags(
            name="Braze",
            email="{{${email_address} | url_encode}}",
            email_plain="{{${email_address}}}",
            send_id="{{campaign.${dispatch_id}}}",
            encodes=True,
            doc="https://braze.com/docs/user_guide/personalization_and_dynamic_content/liquid/advanced_filters",
        ),
        # Django-template variables; {{ person.email }} and "most built-in Django filters" (Django's
        # urlencode quotes '+' and '@'):
        # https://developers.klaviyo.com/en/docs/glossary_of_variable_filters
        # No send-id variable is documented for campaigns there.
        "klaviyo": EspTags(
            name="Klaviyo",
            email="{{ person.email|urlencode }}",
            email_plain="{{ email }}",
            send_id=None,
            encodes=True,
            doc="https://developers.klaviyo.com/en/docs/glossary_of_variable_filters",
        ),
        # Person token {{lead.Email Address}}:
        # https://experienceleague.adobe.com/docs/marketo/using/product-docs/demand-generation/landing-pages/personalizing-landing-pages/tokens-overview.html
        # Classic tokens have no encoding filter (an email script token with $esc.url would);
        # the received value is repaired instead. Campaign tokens ({{campaign.id}}) are listed on
        # the same page.
        "marketo": EspTags(
            name="Marketo",
            email="{{lead.Email Address}}",
            email_plain="{{lead.Email Address}}",
            send_id="{{campaign.id}}",
            encodes=False,
            doc="https://experienceleague.adobe.com/docs/marketo/using/product-docs/demand-generation/landing-pages/personalizing-landing-pages/tokens-overview.html",
        ),
        # {{email}}, {{campaignId}}: https://support.iterable.com/hc/en-us/articles/206514205
        # {{#urlEncode}}…{{/urlEncode}}: https://support.iterable.com/hc/en-us/articles/205480365
        "iterable": EspTags(
            name="Iterable",
            email="{{#urlEncode}}{{email}}{{/urlEncode}}",
            email_plain="{{email}}",
            send_id="{{campaignId}}",
            encodes=True,
            doc="https://support.iterable.com/hc/en-us/articles/205480365",
        ),
        # HubL contact tokens ({{ contact.email }}) and the urlencode filter:
        # https://developers.hubspot.com/docs/cms/hubl/filters (urlencode)
        # https://developers.hubspot.com/docs/guides/cms/content/data-driven-content/emails-with-programmable-content
        "hubspot": EspTags(
            name="HubSpot",
            email="{{ contact.email|urlencode }}",
            email_plain="{{ contact.email }}",
            send_id=None,
            encodes=True,
            doc="https://developers.hubspot.com/docs/cms/hubl/filters",
        ),
        # Dynamic templates are Handlebars over the sender's dynamic_template_data; Marketing
        # Campaigns offer {{email}} as a reserved field. The supported helpers include no URL
        # encoder, so the value arrives raw and is repaired:
        # https://twilio.com/docs/sendgrid/for-developers/sending-email/using-handlebars
        "sendgrid": EspTags(
            name="SendGrid",
            email="{{email}}",
            email_plain="{{email}}",
            send_id=None,
            encodes=False,
            doc="https://twilio.com/docs/sendgrid/for-developers/sending-email/using-handlebars",
        ),
        # Any other ESP: a placeholder to replace by hand.
        "generic": EspTags(
            name="Other ESP",
            email="{{email}}",
            email_plain="{{email}}",
            send_id=None,
            encodes=False,
            doc="",
        ),
    }
)

#: Image formats a block serves.
FORMATS = frozenset({"png", "jpg", "gif"})

MAX_SIDE = 4000  # pixels; an email image wider than this is a mistake


def creative_tag(
    base_url: str,
    block_id: str,
    esp: str,
    *,
    width: int,
    height: int | None,
    alt: str,
    slot: int | None = None,
    fmt: str = "png",
    utm: Mapping[str, str] | None = None,
) -> str:
    """The HTML snippet for one block (or one slot of it) in an email sent with ``esp``.

    Raises ``ValueError`` naming the argument for an unknown ESP or format, a size outside
    1..4000 or a negative slot. ``height=None`` leaves the attribute out (the email client
    then keeps the image's own proportions: for blocks whose variants differ in height).
    ``utm`` parameters go on the click URL only (the click endpoint carries them on to the
    product page).
    """
    tags = ESPS.get(esp)
    if tags is None:
        raise ValueError(f"esp: unknown ESP {esp!r}; one of {', '.join(ESPS)}")
    # The merge tags stay literal: the ESP substitutes them before the email leaves.
    query = f"u={tags.email}"
    if tags.send_id is not None:
        query += f"&s={tags.send_id}"
    return _tag(base_url, block_id, query, width, height, alt, slot, fmt, utm)


def recipient_tag(
    base_url: str,
    block_id: str,
    *,
    recipient: str,
    send_id: str,
    width: int,
    height: int | None,
    alt: str,
    slot: int | None = None,
    fmt: str = "png",
    utm: Mapping[str, str] | None = None,
) -> str:
    """The creative tag of an email tidings sends itself: the recipient's real address (or
    user id) and the send id are written in, URL-encoded (``+`` as ``%2B``), instead of an
    ESP's merge tags. Raises ``ValueError`` as :func:`creative_tag` does."""
    query = f"u={quote(recipient, safe='')}&s={quote(send_id, safe='')}"
    return _tag(base_url, block_id, query, width, height, alt, slot, fmt, utm)


def _tag(
    base_url: str,
    block_id: str,
    query: str,
    width: int,
    height: int | None,
    alt: str,
    slot: int | None,
    fmt: str,
    utm: Mapping[str, str] | None,
) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"fmt: {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
    for name, side in (("width", width), ("height", height)):
        if side is not None and not 1 <= side <= MAX_SIDE:
            raise ValueError(f"{name}: {side} is outside 1..{MAX_SIDE}")
    if slot is not None and slot < 0:
        raise ValueError(f"slot: {slot} is negative")
    base = base_url.rstrip("/")
    path = quote(block_id, safe="")
    if slot is not None:
        path = f"{path}/{slot}"
    click_query = query
    if utm:
        click_query += "&" + urlencode(sorted(utm.items()))
    src = f"{base}/i/{path}.{fmt}?{query}"
    href = f"{base}/c/{path}?{click_query}"
    size = f'width="{width}"' + (f' height="{height}"' if height is not None else "")
    return (
        f'<a href="{_attr(href)}"><img src="{_attr(src)}" alt="{_attr(alt)}" '
        f'{size} style="display:block;border:0"></a>'
    )


def _attr(value: str) -> str:
    return html.escape(value, quote=True)


# -- what arrives ---------------------------------------------------------------------------------

# A plain address: nothing but an '@' and a dotted LDH domain after it. Merge tags never end so
# (a default value inside a tag leaves the tag's closing braces after the domain).
_EMAIL = re.compile(
    r"[^@\s]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)

# Most specific first: several ESPs share the {{ … }} shape.
_UNSUBSTITUTED: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("mailchimp", re.compile(r"\*\|[^|]*\|\*")),
    ("sfmc", re.compile(r"%%=?.+?=?%%", re.S)),
    ("braze", re.compile(r"\{\{[^}]*\$\{[^}]*\}")),
    ("iterable", re.compile(r"\{\{#urlEncode\}\}", re.I)),
    ("marketo", re.compile(r"\{\{\s*(?:lead|my|campaign|company|mktmail)\.", re.I)),
    ("hubspot", re.compile(r"\{\{\s*contact\.", re.I)),
    ("klaviyo", re.compile(r"\{\{\s*person\.", re.I)),
    ("generic", re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\[\[.*?\]\]", re.S)),
    # Other template languages' shapes: ${email}, <%= email %>, [email], %email%.
    ("generic", re.compile(r"\$\{.*?\}|<%.*?%>|^\[[^\]]*\]$|^%[A-Za-z_][\w.-]*%$", re.S)),
)


def is_unsubstituted_merge_tag(value: str) -> str | None:
    """Which ESP's merge tag ``value`` still is (the ESP did not substitute it), else None.

    Checks the value as received and once more percent-decoded (a proxy or an ESP may have
    encoded it on the way). A plain email address is never reported, whatever its local part
    holds. Never raises.
    """
    if not value:
        return None
    candidates = [value]
    decoded = unquote(value)
    if decoded != value:
        candidates.append(decoded)
    for text in candidates:
        if _EMAIL.fullmatch(text.strip()):
            return None
    for text in candidates:
        for esp, pattern in _UNSUBSTITUTED:
            if pattern.search(text):
                return esp
    return None


def restore_plus_signs(value: str) -> str:
    """The address an ESP substituted raw into a query string, with its ``+`` signs back.

    A form-encoded query reads a raw ``+`` as a space, and an email address has no spaces, so a
    value with an ``@`` gets its inner spaces back as ``+``. Anything else is returned trimmed.
    """
    value = value.strip()
    if "@" in value and " " in value:
        return value.replace(" ", "+")
    return value
