"""ESP webhooks: verify each ESP's signature and normalise its events to the Email spec.

- **SendGrid** Event Webhook: a JSON array; signed with ECDSA P-256 / SHA-256 over the
  ``X-Twilio-Email-Event-Webhook-Timestamp`` header's value followed by the raw body, the
  signature (base64 DER) in ``X-Twilio-Email-Event-Webhook-Signature``; the verification key is
  the base64 DER public key SendGrid shows (a PEM block works too).
- **Mailchimp Transactional (Mandrill)**: a form post whose ``mandrill_events`` field is a JSON
  array; ``X-Mandrill-Signature`` is base64 HMAC-SHA1, keyed by the webhook key, over the
  webhook's URL followed by each POST field's name and value, sorted by name.
- **Postmark**: one JSON record per request (``RecordType`` Delivery, Bounce, SpamComplaint,
  Open, Click, SubscriptionChange); Postmark signs nothing, so tidings checks HTTP Basic
  credentials in the webhook URL or a secret header.
- **Generic JSON**: configured field paths (``TIDINGS_WEBHOOK_MAPPINGS``), a secret header.

Each parser returns :class:`Normalized`: the Email spec events, the ESP events it does not map
(``processed``, ``deferral``, …, counted as ignored), and the ones it could not read (kept as
rejections). Each event's messageId derives from the ESP's own event id, so a redelivered
webhook is deduplicated by the events log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tidings.core.errors import FieldError, NotFound, TidingsError, Unauthorized
from tidings.core.settings import Settings, WebhookMapping

from .events import (
    EMAIL_BOUNCED,
    EMAIL_DELIVERED,
    EMAIL_EVENTS,
    EMAIL_LINK_CLICKED,
    EMAIL_MARKED_AS_SPAM,
    EMAIL_OPENED,
    UNSUBSCRIBED,
    EmailEvent,
)

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
MANDRILL_SIGNATURE = "X-Mandrill-Signature"
POSTMARK_TOKEN_HEADER = "X-Tidings-Webhook-Token"  # noqa: S105 (a header name)
MAX_ID_CHARS = 100


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """What a webhook handler needs of the HTTP request."""

    body: bytes
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    url: str  # the URL the ESP posted to, as configured there
    authorization: str | None = None


@dataclass(slots=True)
class Normalized:
    events: list[EmailEvent] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[Any, FieldError]] = field(default_factory=list)

    def ignore(self, esp_event: str) -> None:
        self.ignored[esp_event] = self.ignored.get(esp_event, 0) + 1


class InvalidPayload(TidingsError):
    """The body is not what this ESP sends: 400, and the payload is kept."""


class BadSignature(Unauthorized):
    """The request is not from the ESP: 401, and the payload is kept."""


def _event_id(esp: str, *parts: Any) -> str:
    """A messageId from the ESP's own ids: the same event delivered twice gets the same one."""
    digest = hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{esp}-{digest[:40]}"


def _epoch(value: Any) -> datetime | None:
    """Epoch seconds (or milliseconds, for values past year 5000 as seconds) as a datetime."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = value / 1000 if value > 1e11 else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(body: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload("invalid_json", f"{what} is not JSON: {exc}", None) from None


class Esp:
    """One ESP's webhook: ``verify`` raises ``BadSignature``; ``parse`` raises
    ``InvalidPayload`` for a body it cannot read at all."""

    name: str = ""
    label: str = ""

    def verify(self, request: WebhookRequest) -> None:
        raise NotImplementedError

    def parse(self, request: WebhookRequest) -> Normalized:
        raise NotImplementedError


# -- SendGrid ---------------------------------------------------------------------------------
SENDGRID_EVENTS = {
    "delivered": EMAIL_DELIVERED,
    "open": EMAIL_OPENED,
    "click": EMAIL_LINK_CLICKED,
    "bounce": EMAIL_BOUNCED,
    "spamreport": EMAIL_MARKED_AS_SPAM,
    "unsubscribe": UNSUBSCRIBED,
    "group_unsubscribe": UNSUBSCRIBED,
}


def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key: base64 DER (as its settings page shows it) or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(
            f"TIDINGS_WEBHOOK_SENDGRID_PUBLIC_KEY is not a public key: {exc}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("TIDINGS_WEBHOOK_SENDGRID_PUBLIC_KEY is not an elliptic-curve key")
    return key


class SendGrid(Esp):
    name = "sendgrid"
    label = "SendGrid"

    def __init__(self, public_key: ec.EllipticCurvePublicKey) -> None:
        self.public_key = public_key

    def verify(self, request: WebhookRequest) -> None:
        signature = request.headers.get(SENDGRID_SIGNATURE)
        timestamp = request.headers.get(SENDGRID_TIMESTAMP)
        if not signature or not timestamp:
            raise BadSignature(
                "missing_signature",
                "SendGrid signs each post: enable the Signed Event Webhook in SendGrid",
                SENDGRID_SIGNATURE if not signature else SENDGRID_TIMESTAMP,
            )
        try:
            der = base64.b64decode(signature, validate=True)
            self.public_key.verify(
                der, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256())
            )
        except (InvalidSignature, binascii.Error, ValueError):
            raise BadSignature(
                "bad_signature",
                "the signature does not match the body and timestamp under the configured key",
                SENDGRID_SIGNATURE,
            ) from None

    def parse(self, request: WebhookRequest) -> Normalized:
        events = _json(request.body, "the body")
        if not isinstance(events, list):
            raise InvalidPayload("invalid_payload", "SendGrid posts a JSON array of events", None)
        out = Normalized()
        for raw in events:
            if not isinstance(raw, dict) or not isinstance(raw.get("event"), str):
                out.invalid.append(
                    (raw, FieldError("invalid_event", "not a SendGrid event", "event"))
                )
                continue
            name = SENDGRID_EVENTS.get(raw["event"])
            if name is None:
                out.ignore(raw["event"])
                continue
            props: dict[str, Any] = {
                "email_id": _text(raw.get("email_id")) or _text(raw.get("sg_message_id")),
                "email_subject": _text(raw.get("email_subject")),
                "campaign_id": _text(raw.get("campaign_id"))
                or _text(raw.get("singlesend_id"))
                or _text(raw.get("marketing_campaign_id")),
                "campaign_name": _text(raw.get("campaign_name"))
                or _text(raw.get("singlesend_name"))
                or _text(raw.get("marketing_campaign_name")),
                "esp": self.name,
            }
            if name == EMAIL_LINK_CLICKED:
                props["link_url"] = _text(raw.get("url"))
            if name == EMAIL_BOUNCED:
                props["bounce_type"] = _text(raw.get("type")) or "bounce"
                props["reason"] = _text(raw.get("reason"))
                props["status"] = _text(raw.get("status"))
            if name == UNSUBSCRIBED and raw.get("asm_group_id") is not None:
                props["list_id"] = _text(raw.get("asm_group_id"))
            if name == EMAIL_OPENED and raw.get("sg_machine_open") is True:
                # SendGrid's flag for opens by Apple Mail Privacy Protection.
                props["machine_open"] = True
                props["machine_kind"] = "apple_mpp"
            event_id = _text(raw.get("sg_event_id"))
            out.events.append(
                EmailEvent(
                    name,
                    email=_text(raw.get("email")),
                    properties=props,
                    timestamp=_epoch(raw.get("timestamp")),
                    message_id=f"sendgrid-{event_id}"[:MAX_ID_CHARS]
                    if event_id
                    else _event_id(self.name, raw),
                    ip=_text(raw.get("ip")),
                    user_agent=_text(raw.get("useragent")),
                )
            )
        return out


# -- Mailchimp Transactional (Mandrill) ---------------------------------------------------------
MANDRILL_EVENTS = {
    "send": EMAIL_DELIVERED,
    "open": EMAIL_OPENED,
    "click": EMAIL_LINK_CLICKED,
    "hard_bounce": EMAIL_BOUNCED,
    "soft_bounce": EMAIL_BOUNCED,
    "spam": EMAIL_MARKED_AS_SPAM,
    "unsub": UNSUBSCRIBED,
}


def mandrill_signature(key: str, url: str, params: list[tuple[str, str]]) -> str:
    """Mandrill's signature: base64(HMAC-SHA1(key, url + name1 + value1 + …)), names sorted."""
    signed = url + "".join(k + v for k, v in sorted(params, key=lambda p: p[0]))
    digest = hmac.new(key.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class Mandrill(Esp):
    name = "mandrill"
    label = "Mailchimp Transactional (Mandrill)"

    def __init__(self, key: str, url: str | None) -> None:
        self.key = key
        self.url = url

    def _params(self, request: WebhookRequest) -> list[tuple[str, str]]:
        try:
            return parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
        except (UnicodeDecodeError, ValueError):
            raise InvalidPayload(
                "invalid_form", "Mandrill posts a form (application/x-www-form-urlencoded)", None
            ) from None

    def verify(self, request: WebhookRequest) -> None:
        given = request.headers.get(MANDRILL_SIGNATURE)
        if not given:
            raise BadSignature("missing_signature", "Mandrill signs each post", MANDRILL_SIGNATURE)
        try:
            params = self._params(request)
        except InvalidPayload:
            params = []
        expected = mandrill_signature(self.key, self.url or request.url, params)
        if not hmac.compare_digest(expected.encode(), given.strip().encode()):
            raise BadSignature(
                "bad_signature",
                "the signature does not match (is TIDINGS_WEBHOOK_MANDRILL_URL the URL "
                "registered in Mandrill?)",
                MANDRILL_SIGNATURE,
            )

    def parse(self, request: WebhookRequest) -> Normalized:
        fields = dict(self._params(request))
        if "mandrill_events" not in fields:
            raise InvalidPayload("missing_field", "no mandrill_events field", "mandrill_events")
        events = _json(fields["mandrill_events"], "mandrill_events")
        if not isinstance(events, list):
            raise InvalidPayload("invalid_payload", "must be a JSON array", "mandrill_events")
        out = Normalized()
        for raw in events:
            if not isinstance(raw, dict):
                out.invalid.append((raw, FieldError("invalid_event", "not an event", None)))
                continue
            kind = raw.get("event") or raw.get("type")
            name = MANDRILL_EVENTS.get(kind) if isinstance(kind, str) else None
            msg = raw.get("msg")
            if name is None or not isinstance(msg, dict):
                out.ignore(str(kind))
                continue
            metadata = _obj(msg.get("metadata"))
            tags = [t for t in msg.get("tags") or [] if isinstance(t, str)]
            props: dict[str, Any] = {
                "email_id": _text(metadata.get("email_id")) or _text(msg.get("_id")),
                "email_subject": _text(msg.get("subject")),
                "campaign_id": _text(metadata.get("campaign_id")),
                "campaign_name": _text(metadata.get("campaign_name")),
                "tags": tags or None,
                "esp": self.name,
            }
            if name == EMAIL_LINK_CLICKED:
                props["link_url"] = _text(raw.get("url"))
            if name == EMAIL_BOUNCED:
                props["bounce_type"] = "hard" if kind == "hard_bounce" else "soft"
                props["reason"] = _text(msg.get("bounce_description"))
                props["status"] = _text(msg.get("diag"))
            out.events.append(
                EmailEvent(
                    name,
                    email=_text(msg.get("email")),
                    properties=props,
                    timestamp=_epoch(raw.get("ts")),
                    message_id=_event_id(
                        self.name, kind, raw.get("_id"), raw.get("ts"), raw.get("url")
                    ),
                    ip=_text(raw.get("ip")),
                    user_agent=_text(raw.get("user_agent")),
                )
            )
        return out


# -- Postmark -----------------------------------------------------------------------------------
class Postmark(Esp):
    name = "postmark"
    label = "Postmark"

    def __init__(self, credentials: str | None, token: str | None) -> None:
        self.credentials = credentials
        self.token = token

    def verify(self, request: WebhookRequest) -> None:
        if self.token:
            given = request.headers.get(POSTMARK_TOKEN_HEADER)
            if given and hmac.compare_digest(given.encode(), self.token.encode()):
                return
        if self.credentials and request.authorization:
            scheme, _, value = request.authorization.partition(" ")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            if scheme.lower() == "basic" and hmac.compare_digest(
                decoded.encode(), self.credentials.encode()
            ):
                return
        raise BadSignature(
            "bad_credentials",
            "Postmark webhooks need the configured Basic credentials in the webhook URL "
            f"or the {POSTMARK_TOKEN_HEADER} header",
            "Authorization",
        )

    def parse(self, request: WebhookRequest) -> Normalized:
        raw = _json(request.body, "the body")
        if not isinstance(raw, dict) or not isinstance(raw.get("RecordType"), str):
            raise InvalidPayload(
                "invalid_payload", "Postmark posts one JSON object with a RecordType", "RecordType"
            )
        out = Normalized()
        record = raw["RecordType"]
        metadata = _obj(raw.get("Metadata"))
        props: dict[str, Any] = {
            "email_id": _text(metadata.get("email_id")) or _text(raw.get("MessageID")),
            "email_subject": _text(raw.get("Subject")),
            "campaign_id": _text(metadata.get("campaign_id")),
            "campaign_name": _text(metadata.get("campaign_name")),
            "tag": _text(raw.get("Tag")),
            "message_stream": _text(raw.get("MessageStream")),
            "esp": self.name,
        }
        email = _text(raw.get("Recipient")) or _text(raw.get("Email"))
        geo = _obj(raw.get("Geo"))
        when: Any = None
        name: str | None = None
        if record == "Delivery":
            name, when = EMAIL_DELIVERED, raw.get("DeliveredAt")
        elif record == "Bounce":
            name, when = EMAIL_BOUNCED, raw.get("BouncedAt")
            props["bounce_type"] = _text(raw.get("Type"))
            props["reason"] = _text(raw.get("Description"))
            props["status"] = _text(raw.get("Details"))
        elif record == "SpamComplaint":
            name, when = EMAIL_MARKED_AS_SPAM, raw.get("BouncedAt")
        elif record == "Open":
            name, when = EMAIL_OPENED, raw.get("ReceivedAt")
            props["first_open"] = (
                raw.get("FirstOpen") if isinstance(raw.get("FirstOpen"), bool) else None
            )
        elif record == "Click":
            name, when = EMAIL_LINK_CLICKED, raw.get("ReceivedAt")
            props["link_url"] = _text(raw.get("OriginalLink"))
        elif (
            record == "SubscriptionChange"
            and raw.get("SuppressSending") is True
            and raw.get("SuppressionReason") == "ManualSuppression"
        ):
            # Postmark reports every suppression here; only a recipient's own choice is an
            # unsubscribe (bounces and complaints arrive as their own records).
            name, when = UNSUBSCRIBED, raw.get("ChangedAt")
        if name is None:
            out.ignore(record)
            return out
        out.events.append(
            EmailEvent(
                name,
                email=email,
                properties=props,
                timestamp=_text(when),
                message_id=_event_id(
                    self.name,
                    record,
                    raw.get("ID"),
                    raw.get("MessageID"),
                    when,
                    raw.get("OriginalLink"),
                ),
                ip=_text(geo.get("IP")),
                user_agent=_text(raw.get("UserAgent")),
            )
        )
        return out


# -- Generic JSON ----------------------------------------------------------------------------
def path_get(value: Any, path: str) -> Any:
    """``a.b.0.c`` into nested objects and arrays; None where the path leads nowhere."""
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


class GenericJson(Esp):
    label = "Generic JSON"

    def __init__(self, name: str, mapping: WebhookMapping) -> None:
        self.name = name
        self.mapping = mapping
        for esp_name, spec_name in mapping.types.items():
            if spec_name not in EMAIL_EVENTS:
                raise ValueError(
                    f"webhook mapping {name!r}: {esp_name!r} maps to {spec_name!r}, "
                    "not one of " + ", ".join(EMAIL_EVENTS)
                )

    def verify(self, request: WebhookRequest) -> None:
        given = request.headers.get(self.mapping.secret_header)
        secret = self.mapping.secret.get_secret_value()
        if not given or not hmac.compare_digest(given.encode(), secret.encode()):
            raise BadSignature(
                "bad_secret",
                f"send the mapping's secret in the {self.mapping.secret_header} header",
                self.mapping.secret_header,
            )

    def parse(self, request: WebhookRequest) -> Normalized:
        body = _json(request.body, "the body")
        found = path_get(body, self.mapping.events)
        events = found if isinstance(found, list) else [found] if isinstance(found, dict) else None
        if events is None:
            raise InvalidPayload(
                "invalid_payload",
                f"no event object or array at {self.mapping.events or 'the top level'}",
                self.mapping.events or None,
            )
        out = Normalized()
        m = self.mapping
        for raw in events:
            kind = _text(path_get(raw, m.event_type))
            if kind is None:
                out.invalid.append(
                    (raw, FieldError("missing_field", "no event type", m.event_type))
                )
                continue
            name = m.types.get(kind)
            if name is None:
                out.ignore(kind)
                continue
            props: dict[str, Any] = {p: path_get(raw, path) for p, path in m.properties.items()}
            props["esp"] = self.name
            when = path_get(raw, m.timestamp) if m.timestamp else None
            event_id = _text(path_get(raw, m.event_id)) if m.event_id else None
            out.events.append(
                EmailEvent(
                    name,
                    email=_text(path_get(raw, m.email)),
                    properties=props,
                    timestamp=when if isinstance(when, str) else _epoch(when),
                    message_id=_event_id(self.name, event_id or raw),
                )
            )
        return out


def configured_esps(settings: Settings) -> dict[str, Esp]:
    """The webhooks this installation accepts, by the ``{esp}`` of their URL. An ESP without
    its secret configured is not accepted at all. Raises ``ValueError`` for a bad setting."""
    esps: dict[str, Esp] = {}
    if settings.webhook_sendgrid_public_key:
        esps["sendgrid"] = SendGrid(load_sendgrid_key(settings.webhook_sendgrid_public_key))
    if settings.webhook_mandrill_key is not None:
        mandrill = Mandrill(
            settings.webhook_mandrill_key.get_secret_value(), settings.webhook_mandrill_url
        )
        esps["mandrill"] = esps["mailchimp"] = mandrill
    pm_basic = settings.webhook_postmark_credentials
    pm_token = settings.webhook_postmark_token
    if pm_basic is not None or pm_token is not None:
        esps["postmark"] = Postmark(
            pm_basic.get_secret_value() if pm_basic else None,
            pm_token.get_secret_value() if pm_token else None,
        )
    for name, mapping in settings.webhook_mappings.items():
        if name in ("sendgrid", "mandrill", "mailchimp", "postmark"):
            raise ValueError(f"webhook mapping {name!r} would hide the built-in {name} webhook")
        esps[name] = GenericJson(name, mapping)
    return esps


def esp_for(esps: Mapping[str, Esp], name: str) -> Esp:
    esp = esps.get(name)
    if esp is None:
        known = ("sendgrid", "mandrill", "mailchimp", "postmark")
        hint = (
            f"the {name} webhook is not configured (see TIDINGS_WEBHOOK_* in docs/api.md)"
            if name in known
            else f"no webhook named {name!r}; configured: " + (", ".join(sorted(esps)) or "none")
        )
        raise NotFound("webhook_not_configured", hint, "esp")
    return esp
