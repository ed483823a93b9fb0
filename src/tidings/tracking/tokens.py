"""What a tracking link or pixel carries, signed: campaign, email, recipient and click target.

The payload is a small JSON object with one- or two-letter keys (orjson), sealed by
:class:`tidings.core.signing.Signer` under the ``"tracking"`` purpose: base64url, a key id and a
128-bit HMAC-SHA256 tag. Nobody without the secret key can make or alter one, so tidings never
records a forged event and never redirects anywhere it did not sign (no open redirect).

**Recipients that an ESP fills in.** When tidings wraps an email that an ESP sends, the
recipient is not known yet: it is the ESP's merge tag (``*|EMAIL|*``), substituted per
recipient *after* signing. So such tokens sign everything except the recipient and set
``recipient_in_query``: the recipient rides beside the token as ``?u=…``, which the ESP fills
in. The trade-off: someone holding one recipient's link can change ``u=`` and record opens or
clicks of *that campaign* in another address's name (never a redirect elsewhere, never another
campaign). Events carry ``recipient_verified: false`` so reports can tell them apart. Tokens
made per recipient (the Python API with ``recipient=``, or tidings' own sending) sign the
recipient and are ``recipient_verified: true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

import orjson

from tidings.core.signing import BadToken, Signer

Kind = Literal["open", "click", "unsubscribe"]
RecipientType = Literal["email", "user_id"]
PURPOSE = "tracking"

# dataclass field → payload key. Short keys keep links short; never reuse a retired key.
_KEYS = {
    "kind": "k",
    "campaign_id": "c",
    "campaign_name": "cn",
    "email_id": "e",
    "email_subject": "es",
    "recipient": "r",
    "recipient_type": "rt",
    "recipient_in_query": "rq",
    "target": "t",
    "merge_slots": "m",
    "link_id": "l",
    "utm_source": "us",
    "utm_content": "uc",
    "issued_at": "i",
    "expires_at": "x",
    "sent_at": "d",
}
_FIELDS = {v: k for k, v in _KEYS.items()}
_KINDS = {"o": "open", "c": "click", "u": "unsubscribe"}
_KIND_CODES = {v: k for k, v in _KINDS.items()}


@dataclass(frozen=True, slots=True)
class TrackingToken:
    """One link's or pixel's signed facts. ``target`` is the click's URL as a template: the
    ESP merge tags it contained are slots ``\\x00<n>\\x00``, filled from ``?m<n>=`` at click
    time (see :mod:`tidings.tracking.links`); ``merge_slots`` counts them."""

    kind: Kind
    campaign_id: str
    campaign_name: str | None = None
    email_id: str | None = None
    email_subject: str | None = None
    recipient: str | None = None
    recipient_type: RecipientType = "email"
    recipient_in_query: bool = False
    target: str | None = None
    merge_slots: int = 0
    link_id: str | None = None
    utm_source: str | None = None
    utm_content: str | None = None
    issued_at: int = 0  # epoch seconds
    expires_at: int | None = field(default=None)  # epoch seconds
    #: When tidings handed this email to its SMTP relay (epoch seconds), on the emails it sends
    #: itself; unknown (None) for emails an ESP sends. A click or open within
    #: ``scanner_click_window_s`` of it is a scanner's.
    sent_at: int | None = None

    def __post_init__(self) -> None:
        if self.kind == "click" and not self.target:
            raise ValueError("a click token needs a target")
        if self.recipient is not None and self.recipient_in_query:
            raise ValueError("a token signs its recipient or takes it from ?u=, not both")


def encode(token: TrackingToken, signer: Signer) -> str:
    payload: dict[str, Any] = {}
    for f in fields(token):
        value = getattr(token, f.name)
        if value is None or value is False or (value == f.default and f.name != "kind"):
            continue
        if f.name == "kind":
            value = _KIND_CODES[value]
        elif f.name == "recipient_in_query":
            value = 1
        payload[_KEYS[f.name]] = value
    return signer.seal(orjson.dumps(payload))


def _malformed(message: str) -> BadToken:
    return BadToken("malformed_payload", message)


def decode(text: str, signer: Signer) -> TrackingToken:
    """The token's facts; ``BadToken`` when it is forged, altered or not a tracking token."""
    try:
        payload = orjson.loads(signer.open(text))
    except orjson.JSONDecodeError:
        raise _malformed("the signed payload is not JSON") from None
    if not isinstance(payload, dict):
        raise _malformed("the signed payload is not an object")
    values: dict[str, Any] = {}
    for key, value in payload.items():
        name = _FIELDS.get(key)
        if name is None:
            continue  # a field from a newer version: ignore, the signature covers it anyway
        values[name] = value
    kind = _KINDS.get(values.pop("kind", None) or "")
    if kind is None:
        raise _malformed("the token names no kind")
    for name in ("campaign_id",):
        if not isinstance(values.get(name), str):
            raise _malformed(f"the token has no {name}")
    for name in ("campaign_name", "email_id", "email_subject", "recipient", "target", "link_id"):
        if not isinstance(values.get(name, ""), str):
            raise _malformed(f"{name} is not a string")
    for name in ("utm_source", "utm_content"):
        if not isinstance(values.get(name, ""), str):
            raise _malformed(f"{name} is not a string")
    for name in ("merge_slots", "issued_at", "expires_at", "sent_at"):
        value = values.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _malformed(f"{name} is not a whole number")
    if values.get("recipient_type", "email") not in ("email", "user_id"):
        raise _malformed("recipient_type is not email or user_id")
    values["recipient_in_query"] = values.get("recipient_in_query") == 1
    try:
        return TrackingToken(kind=kind, **values)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise _malformed(str(exc)) from None
