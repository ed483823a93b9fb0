"""The built-in SMTP receiver for replies (``tidings serve --smtp-port N``), with aiosmtpd.

It runs on the app's own event loop (``loop.create_server``), so a reply is matched and
recorded by the same campaign service as the inbound webhooks. It accepts mail only for the
reply domain (``RCPT TO`` anywhere else is a 550: it is no open relay) and answers 250 once the
reply is recorded, 451 when it cannot be (the sender retries). Point the reply domain's MX at
this host, or relay to it from your mail server. aiosmtpd is the optional ``smtp`` extra
(``pip install 'tidings[smtp]'``); without it the receiver does not start and says why.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from tidings.core.errors import TidingsError

from .replies import from_mime

if TYPE_CHECKING:
    from .service import CampaignService

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


class ReplyHandler:
    """aiosmtpd's handler: accepts ``RCPT`` for the reply domain, records each message."""

    def __init__(self, campaigns: CampaignService, domain: str | None) -> None:
        self.campaigns = campaigns
        self.domain = (domain or "").lower()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.domain and address.rpartition("@")[2].lower() != self.domain:
            return "550 5.7.1 not a reply address of this server"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        try:
            await self.campaigns.record_reply(from_mime(raw, envelope.rcpt_tos), "inbound/smtp")
        except TidingsError as exc:
            log.warning("reply not recorded: %s", exc.error.message)
            return "451 4.3.0 try again later"
        return "250 OK"


async def start_receiver(
    campaigns: CampaignService, host: str, port: int, domain: str | None
) -> asyncio.Server:
    """Listen for replies on ``host:port``; raises ``RuntimeError`` without aiosmtpd."""
    try:
        from aiosmtpd.smtp import SMTP
    except ImportError:  # pragma: no cover (the test extra installs it)
        raise RuntimeError(
            "the SMTP receiver needs aiosmtpd: pip install 'tidings[smtp]'"
        ) from None
    handler = ReplyHandler(campaigns, domain)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=MAX_MESSAGE_BYTES, enable_SMTPUTF8=True),
        host=host,
        port=port,
    )
