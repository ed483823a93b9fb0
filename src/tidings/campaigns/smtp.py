"""Sending over SMTP (aiosmtplib, on the event loop) at a steady rate (a token bucket).

One connection is kept for a whole send and opened again when the server drops it. Each
message's outcome is a value, never an exception: ``accepted``, ``bounced`` (a 5xx for the
recipient or the data: the address or the message is refused for good) or ``failed`` (a 4xx
deferral or a connection problem: not delivered, worth trying again).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from tidings.core.settings import Settings

Verdict = Literal["accepted", "bounced", "failed"]


@dataclass(frozen=True, slots=True)
class SmtpOutcome:
    verdict: Verdict
    code: int | None = None
    message: str | None = None


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. ``take()`` waits for one.

    ``monotonic`` and ``sleep`` are the clock it reads and the way it waits: the real ones by
    default, a test's own to check the rate without timing anything."""

    def __init__(
        self,
        rate: float,
        burst: int = 1,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = float(burst)
        self._at = monotonic()

    async def take(self) -> None:
        while True:
            now = self._monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await self._sleep((1 - self._tokens) / self.rate)


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    username: str | None
    password: str | None
    timeout_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        if not settings.smtp_host:
            return None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_security,
            settings.smtp_username,
            settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            settings.smtp_timeout_s,
        )


class SmtpSender:
    """One SMTP session for a send; reconnects when the server hangs up."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        c = self.config
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            timeout=c.timeout_s,
            use_tls=c.security == "tls",
            start_tls=c.security == "starttls",
            tls_context=ssl.create_default_context() if c.security != "none" else None,
        )
        await client.connect()
        if c.username and c.password is not None:
            await client.login(c.username, c.password)
        return client

    async def send(self, message: bytes | EmailMessage, sender: str, recipient: str) -> SmtpOutcome:
        """Send one message (its bytes, or an ``EmailMessage`` to flatten) to ``recipient``."""
        for attempt in range(2):
            try:
                if self._client is None or not self._client.is_connected:
                    self._client = await self._connect()
                if isinstance(message, bytes):
                    errors, response = await self._client.sendmail(sender, [recipient], message)
                else:
                    errors, response = await self._client.send_message(
                        message, sender=sender, recipients=[recipient]
                    )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0] if exc.recipients else None
                code = refused.code if refused else None
                text = refused.message if refused else str(exc)
                return _refused(code, text)
            except aiosmtplib.SMTPServerDisconnected as exc:
                self._client = None
                if attempt == 0:
                    continue  # the server closed an idle session: once more on a new one
                return SmtpOutcome("failed", None, str(exc)[:500])
            except aiosmtplib.SMTPResponseException as exc:
                return _refused(exc.code, exc.message)
            except (aiosmtplib.SMTPException, OSError) as exc:
                self._client = None
                return SmtpOutcome("failed", None, f"{type(exc).__name__}: {exc}"[:500])
            if recipient in errors:
                code, text = errors[recipient].code, errors[recipient].message
                return _refused(code, text)
            return SmtpOutcome("accepted", 250, response[:500])
        return SmtpOutcome("failed", None, "not sent")  # pragma: no cover (the loop returns)

    async def close(self) -> None:
        if self._client is not None and self._client.is_connected:
            try:
                await self._client.quit()
            except (aiosmtplib.SMTPException, OSError):
                self._client.close()
        self._client = None


def _refused(code: int | None, text: str) -> SmtpOutcome:
    verdict: Verdict = "bounced" if code is not None and 500 <= code < 600 else "failed"
    return SmtpOutcome(verdict, code, text[:500])
