"""Inbound email, as the ESPs' inbound webhooks and the built-in SMTP receiver hand it over.

Every shape becomes one :class:`InboundMail` (who it was sent to, who sent it, the subject, the
plain text, the ids it replies to), which the campaign service matches to the email it answers:
first the token in a ``reply+<token>@<reply domain>`` address it was sent to, else the
``In-Reply-To`` (then ``References``) ids against the ``Message-ID`` tidings gave each email.

- SendGrid Inbound Parse posts ``multipart/form-data`` with ``to``, ``from``, ``subject``,
  ``text``, ``html``, ``headers`` (the raw header block), ``envelope`` (JSON: ``to`` list and
  ``from``), ``charsets``, ``dkim``, ``SPF``. It signs nothing: tidings checks a shared secret
  in the URL (``?secret=``) or as the HTTP Basic password.
- Mailgun routes (``forward()``) post form fields ``recipient`` and ``sender`` (the SMTP
  envelope), ``from``, ``subject``, ``body-plain``, ``stripped-text``, ``message-headers``
  (JSON list of pairs), the headers themselves (``Message-Id``, ``In-Reply-To``,
  ``References``), and ``timestamp``, ``token``, ``signature``: the hex HMAC-SHA256 of
  timestamp + token under the webhook signing key.
- The SMTP receiver gets the raw RFC 5322 message and the envelope recipients.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import HeaderParser
from email.utils import getaddresses

import orjson

from tidings.core.errors import TidingsError, Unauthorized

MAILGUN_MAX_SKEW_S = 15 * 60
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
_QUOTE_INTRO = re.compile(r"^On .{1,200} wrote:\s*$")


@dataclass(frozen=True, slots=True)
class InboundMail:
    to: tuple[str, ...]
    sender: str | None
    subject: str | None
    text: str
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = field(default_factory=tuple)

    def reply_tokens(self, domain: str | None) -> list[str]:
        """The tokens of the ``reply+<token>@domain`` addresses it was sent to."""
        found: list[str] = []
        for address in self.to:
            local, _, host = address.rpartition("@")
            if domain and host.lower() != domain.lower():
                continue
            tag, plus, token = local.partition("+")
            if plus and tag.lower() == "reply" and token:
                found.append(token.lower())
        return found


def _addresses(*values: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for _, address in getaddresses([v for v in values if v]):
        address = address.strip()
        if "@" in address and address.lower() not in (a.lower() for a in out):
            out.append(address)
    return tuple(out)


def _ids(*values: str | None) -> tuple[str, ...]:
    out: list[str] = []
    for value in values:
        for found in _MSGID.findall(value or ""):
            if found not in out:
                out.append(found)
    return tuple(out)


def from_sendgrid(form: Mapping[str, str]) -> InboundMail:
    """A SendGrid Inbound Parse post (its form fields as text)."""
    headers = HeaderParser(policy=policy.compat32).parsestr(form.get("headers", ""))
    envelope_to: list[str] = []
    try:
        envelope = orjson.loads(form.get("envelope") or "{}")
        if isinstance(envelope, dict) and isinstance(envelope.get("to"), list):
            envelope_to = [str(a) for a in envelope["to"]]
    except orjson.JSONDecodeError:
        raise TidingsError("invalid_envelope", "envelope must be JSON", "envelope") from None
    if not form.get("to") and not envelope_to:
        raise TidingsError("missing_field", "an inbound email names whom it is to", "to")
    return InboundMail(
        to=_addresses(*envelope_to, form.get("to"), form.get("cc")),
        sender=next(iter(_addresses(form.get("from"))), None),
        subject=form.get("subject"),
        text=form.get("text", ""),
        message_id=next(iter(_ids(headers.get("Message-ID"))), None),
        in_reply_to=_ids(headers.get("In-Reply-To"), headers.get("References")),
    )


def verify_mailgun(form: Mapping[str, str], key: str, now: float | None = None) -> None:
    """Mailgun's signature: hex HMAC-SHA256 of ``timestamp + token`` under the signing key,
    the timestamp within 15 minutes. Raises 401."""
    timestamp, token, signature = (form.get(k, "") for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and signature):
        raise Unauthorized("missing_signature", "timestamp, token and signature are required")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        raise Unauthorized("bad_signature", "the signature does not match", "signature")
    try:
        skew = abs((now if now is not None else time.time()) - float(timestamp))
    except ValueError:
        raise Unauthorized("bad_signature", "timestamp is not a number", "timestamp") from None
    if skew > MAILGUN_MAX_SKEW_S:
        raise Unauthorized("stale_signature", "the timestamp is too old", "timestamp")


def from_mailgun(form: Mapping[str, str]) -> InboundMail:
    """A Mailgun route's forward() post (its form fields as text)."""
    headers: dict[str, str] = {}
    try:
        pairs = orjson.loads(form.get("message-headers") or "[]")
        for pair in pairs if isinstance(pairs, list) else []:
            if isinstance(pair, list) and len(pair) == 2:
                headers.setdefault(str(pair[0]).lower(), str(pair[1]))
    except orjson.JSONDecodeError:
        pass  # the headers are also fields of their own

    def header(name: str) -> str | None:
        return form.get(name) or headers.get(name.lower())

    if not form.get("recipient") and not form.get("To"):
        raise TidingsError("missing_field", "an inbound email names whom it is to", "recipient")
    return InboundMail(
        to=_addresses(form.get("recipient"), header("To")),
        sender=next(iter(_addresses(form.get("sender"), form.get("from"))), None),
        subject=form.get("subject"),
        text=form.get("stripped-text") or form.get("body-plain", ""),
        message_id=next(iter(_ids(header("Message-Id"))), None),
        in_reply_to=_ids(header("In-Reply-To"), header("References")),
    )


def from_mime(raw: bytes, envelope_to: Sequence[str] = ()) -> InboundMail:
    """A whole RFC 5322 message, as the SMTP receiver gets it."""
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(preferencelist=("plain",))
    text = ""
    if body is not None:
        try:
            text = str(body.get_content())
        except (LookupError, ValueError):
            text = ""
    return InboundMail(
        to=_addresses(*envelope_to, str(message.get("To") or "")),
        sender=next(iter(_addresses(str(message.get("From") or ""))), None),
        subject=str(message.get("Subject") or "") or None,
        text=text,
        message_id=next(iter(_ids(str(message.get("Message-ID") or ""))), None),
        in_reply_to=_ids(
            str(message.get("In-Reply-To") or ""), str(message.get("References") or "")
        ),
    )


def snippet(text: str, limit: int) -> str:
    """The reply's own words: quoted lines (``>``) and what follows an ``On … wrote:`` line
    left out, whitespace collapsed, cut to ``limit`` characters."""
    kept: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if _QUOTE_INTRO.match(stripped) or stripped == "-- ":
            break
        if stripped.startswith(">"):
            continue
        kept.append(stripped)
    words = " ".join(" ".join(kept).split())
    return words if len(words) <= limit else words[: max(0, limit - 1)].rstrip() + "…"
