"""Segment's Email spec events, as tidings records them from links, pixels and ESP webhooks.

The spec (https://segment.com/docs/connections/spec/email/) names the events and their
properties (``email_id``, ``email_subject``, ``campaign_id``, ``campaign_name``, ``link_id``,
``link_url``, ``list_id``, ``list_name``) and puts the recipient's address in
``context.traits.email``, which is also how the identity graph reads an email identifier.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings import __version__
from tidings.core.clock import iso

EMAIL_DELIVERED = "Email Delivered"
EMAIL_OPENED = "Email Opened"
EMAIL_LINK_CLICKED = "Email Link Clicked"
EMAIL_BOUNCED = "Email Bounced"
EMAIL_MARKED_AS_SPAM = "Email Marked as Spam"
UNSUBSCRIBED = "Unsubscribed"
EMAIL_REPLIED = "Email Replied"
EMAIL_EVENTS = (
    EMAIL_DELIVERED,
    EMAIL_OPENED,
    EMAIL_LINK_CLICKED,
    EMAIL_BOUNCED,
    EMAIL_MARKED_AS_SPAM,
    UNSUBSCRIBED,
    EMAIL_REPLIED,
)
LIBRARY = {"name": "tidings-tracking", "version": __version__}


@dataclass(slots=True)
class EmailEvent:
    """One Email spec event about one recipient (an email address or a user id)."""

    event: str
    email: str | None = None
    user_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | str | None = None  # a string is ISO-8601 as the ESP wrote it
    message_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    def message(self) -> dict[str, Any]:
        """The Segment ``track`` message to collect. Empty properties are left out."""
        context: dict[str, Any] = {"library": LIBRARY}
        if self.email:
            context["traits"] = {"email": self.email}
        if self.ip:
            context["ip"] = self.ip
        if self.user_agent:
            context["userAgent"] = self.user_agent[:1000]
        msg: dict[str, Any] = {
            "type": "track",
            "event": self.event,
            "properties": {k: v for k, v in self.properties.items() if v is not None and v != ""},
            "context": context,
        }
        if self.user_id:
            msg["userId"] = self.user_id
        if self.message_id:
            msg["messageId"] = self.message_id
        if isinstance(self.timestamp, datetime):
            msg["timestamp"] = iso(self.timestamp)
        elif self.timestamp:
            msg["timestamp"] = self.timestamp
        return msg


def ip_class(ip: str | None) -> str:
    """What kind of address a fetch came from: ``public``, ``private``, ``loopback``,
    ``link_local``, ``reserved`` or ``unknown`` (no or an unparsable address)."""
    if not ip:
        return "unknown"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link_local"
    if addr.is_private:
        return "private"
    if addr.is_global:
        return "public"
    return "reserved"
