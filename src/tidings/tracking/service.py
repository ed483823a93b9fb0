"""The tracking service: opens, clicks and ESP webhooks into the events log; wrapping emails.

Every event goes through ``CollectService.ingest_internal`` under a built-in source (one for
tidings' own links and pixels, one per ESP webhook), so it is validated, deduplicated,
committed and applied by the pipeline like any collected event, and a refused token or
payload is kept as a rejection that the source's debugger shows.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tidings.collect.service import CollectService, RequestFacts
from tidings.collect.sources import SourceService
from tidings.collect.store import SourceRecord
from tidings.core.clock import Clock
from tidings.core.errors import FieldError, TidingsError
from tidings.core.settings import Settings
from tidings.core.signing import BadToken, Signer

from .events import EMAIL_LINK_CLICKED, EMAIL_OPENED, UNSUBSCRIBED, EmailEvent, ip_class
from .links import UnsafeTarget, fill, raw_params, recipient_from, with_utm
from .machine import FetchClassifier
from .tokens import PURPOSE, TrackingToken, decode
from .webhooks import BadSignature, Esp, InvalidPayload, Normalized, WebhookRequest, esp_for
from .wrap import (
    Campaign,
    Recipient,
    WrapOptions,
    Wrapped,
    campaign_of,
    recipient_for,
    unsubscribe_url,
    wrap_html,
)

log = logging.getLogger(__name__)

EMAIL_SOURCE_ID = "src_email"
EMAIL_SOURCE_NAME = "Email tracking (tidings links and pixels)"
MAX_TOKEN_CHARS_STORED = 300


@dataclass(frozen=True, slots=True)
class Fetch:
    """What the HTTP layer knows about an open or a click."""

    token: str
    query_string: str
    user_agent: str | None
    client_ip: str | None


@dataclass(slots=True)
class TrackingStats:
    opens: int = 0
    clicks: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    accepted: int
    ignored: dict[str, int]
    rejected: list[dict[str, Any]]


class TrackingService:
    def __init__(
        self,
        collect: CollectService,
        sources: SourceService,
        signer: Signer | None,
        clock: Clock,
        settings: Settings,
        esps: dict[str, Esp],
        classifier: FetchClassifier | None = None,
    ) -> None:
        self.collect = collect
        self.sources = sources
        self._signer = signer
        self.clock = clock
        self.settings = settings
        self.esps = esps
        self.classifier = classifier or FetchClassifier.from_settings(settings)
        self.stats = TrackingStats()
        self._sources: dict[str, SourceRecord] = {}

    @classmethod
    def from_settings(
        cls, collect: CollectService, sources: SourceService, clock: Clock, settings: Settings
    ) -> TrackingService:
        from .webhooks import configured_esps

        return cls(
            collect,
            sources,
            None,  # made on first use: reading or generating the secret key touches data_dir
            clock,
            settings,
            configured_esps(settings),
        )

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = Signer.from_settings(self.settings, PURPOSE)
        return self._signer

    def source(self, source_id: str, name: str) -> SourceRecord:
        """A built-in source, made on first use."""
        record = self._sources.get(source_id)
        if record is None:
            record = self._sources[source_id] = self.sources.builtin(source_id, name)
        return record

    # -- wrapping ---------------------------------------------------------------------------------
    def wrap(
        self, html: str, options: WrapOptions, base_url: str, recipient: Recipient | None = None
    ) -> Wrapped:
        """``html`` with its links wrapped and the pixel added. Without ``recipient`` it is for
        an ESP to send, the recipient being the ESP's merge tag (see ``tokens`` on the
        trade-off); with one, that address or user id is signed into every link."""
        if recipient is None:
            try:
                recipient = recipient_for(options.esp, options.recipient_tag)
            except ValueError as exc:
                raise TidingsError("missing_field", str(exc), "recipient_tag") from None
        return wrap_html(
            html,
            base_url=self.settings.public_url or base_url,
            signer=self.signer,
            campaign=campaign_of(
                options, self.clock.now(), self.settings.tracking_link_max_age_days
            ),
            recipient=recipient,
            skip_unsubscribe=options.skip_unsubscribe,
            add_pixel=options.add_pixel,
        )

    def unsubscribe_link(self, base_url: str, campaign: Campaign, recipient: str) -> str:
        """The signed one-click unsubscribe URL of one recipient's email."""
        return unsubscribe_url(
            self.settings.public_url or base_url, self.signer, campaign, recipient
        )

    # -- events tidings makes itself (sending, replies) -----------------------------------------
    async def record_events(self, events: list[EmailEvent], endpoint: str) -> int:
        """Collect Email spec events about tidings' own emails (delivered, bounced, replied)
        under the email source, like its opens and clicks; returns how many were stored (a
        repeated messageId is skipped)."""
        if not events:
            return 0
        source = self.source(EMAIL_SOURCE_ID, EMAIL_SOURCE_NAME)
        facts = RequestFacts(endpoint, None, None, 0)
        outcome = await self.collect.ingest_internal(source, [e.message() for e in events], facts)
        return len(outcome.rows)

    async def reject(self, endpoint: str, code: str, message: str, raw: Any) -> None:
        """Keep a refused payload (an inbound email nobody can be matched to, say) as a
        rejection of the email source, for its debugger."""
        source = self.source(EMAIL_SOURCE_ID, EMAIL_SOURCE_NAME)
        facts = RequestFacts(endpoint, None, None, 0)
        await self.collect.record_rejection(source.id, facts, FieldError(code, message), raw)

    def email_events(
        self, names: list[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """``(seq, timestamp, event, payload)`` of the email source's events called one of
        ``names`` after ``after_seq``, in log order (a report's read)."""
        return self.collect.events_of_source(EMAIL_SOURCE_ID, names, after_seq, limit)

    def campaign_email_events(
        self, campaign_id: str, names: list[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """Like :meth:`email_events`, only the events of one campaign (``properties.
        campaign_id``), through an index: other campaigns' events are never read."""
        return self.collect.campaign_events_of_source(
            EMAIL_SOURCE_ID, campaign_id, names, after_seq, limit
        )

    def email_events_since(
        self, names: list[str], received_ms: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """Like :meth:`email_events`, from the first event received at or after
        ``received_ms`` (the dashboard's "today")."""
        first = self.collect.first_seq_since(received_ms)
        return [] if first is None else self.email_events(names, first - 1, limit)

    async def unsubscribe(self, fetch: Fetch) -> TrackingToken:
        """Record ``Unsubscribed`` for a genuine unsubscribe link (once per email: repeats are
        deduplicated). A forged or altered link raises a 400."""
        try:
            token = self._token(fetch, "unsubscribe", check_expiry=False)
        except BadToken as exc:
            await self._reject(fetch, "t/u", exc.code, exc.message)
            raise TidingsError(
                exc.code, f"this unsubscribe link is not valid: {exc.message}", "token"
            ) from None
        message = EmailEvent(
            UNSUBSCRIBED,
            email=token.recipient if token.recipient_type == "email" else None,
            user_id=token.recipient if token.recipient_type == "user_id" else None,
            properties={
                "email_id": token.email_id,
                "email_subject": token.email_subject,
                "campaign_id": token.campaign_id,
                "campaign_name": token.campaign_name,
            },
            message_id=f"unsubscribe-{token.email_id or token.campaign_id}-{token.recipient}"[:100],
            ip=fetch.client_ip,
            user_agent=fetch.user_agent,
        ).message()
        source = self.source(EMAIL_SOURCE_ID, EMAIL_SOURCE_NAME)
        await self.collect.ingest_internal(
            source, [message], RequestFacts("t/u", None, fetch.client_ip, 0)
        )
        return token

    # -- opens and clicks -----------------------------------------------------------------------
    async def record_open(self, fetch: Fetch) -> None:
        """Record ``Email Opened`` for a genuine open pixel. Never raises: a forged, expired or
        unattributable token is counted and kept as a rejection, and nothing is recorded."""
        try:
            token = self._token(fetch, "open")
        except BadToken as exc:
            await self._reject(fetch, "t/o", exc.code, exc.message)
            return
        await self._record(token, fetch, EMAIL_OPENED, "t/o", {})
        self.stats.opens += 1

    async def click(self, fetch: Fetch) -> str:
        """Record ``Email Link Clicked`` and return where to redirect (the signed target with
        UTM parameters). A forged or altered token raises a 400 and redirects nowhere."""
        try:
            token = self._token(fetch, "click", check_expiry=False)
        except BadToken as exc:
            await self._reject(fetch, "t/c", exc.code, exc.message)
            raise TidingsError(
                exc.code, f"this tracking link is not valid: {exc.message}", "token"
            ) from None
        assert token.target is not None
        params = raw_params(fetch.query_string)
        try:
            target = fill(token.target, params)
        except UnsafeTarget as exc:
            await self._reject(fetch, "t/c", "unsafe_target", str(exc))
            raise TidingsError("unsafe_target", str(exc), "token") from None
        if self._expired(token):
            await self._reject(fetch, "t/c", "token_expired", "the link is older than allowed")
        else:
            extra = {"link_url": target, "link_id": token.link_id}
            await self._record(token, fetch, EMAIL_LINK_CLICKED, "t/c", extra)
            self.stats.clicks += 1
        utm = {
            "utm_source": token.utm_source or self.settings.tracking_utm_source,
            "utm_medium": "email",
            "utm_campaign": token.campaign_name or token.campaign_id,
            "utm_content": token.utm_content or "",
        }
        return with_utm(target, utm)

    def _token(self, fetch: Fetch, kind: str, *, check_expiry: bool = True) -> TrackingToken:
        token = decode(fetch.token, self.signer)
        if token.kind != kind:
            raise BadToken("wrong_kind", f"this is a {token.kind} token, not a {kind} token")
        if check_expiry and self._expired(token):
            raise BadToken("token_expired", "the link is older than allowed")
        return token

    def _expired(self, token: TrackingToken) -> bool:
        return token.expires_at is not None and self.clock.now().timestamp() > token.expires_at

    async def _record(
        self, token: TrackingToken, fetch: Fetch, event: str, endpoint: str, extra: dict[str, Any]
    ) -> None:
        recipient = token.recipient
        if token.recipient_in_query:
            recipient = recipient_from(raw_params(fetch.query_string))
        if recipient is None:
            await self._reject(
                fetch, endpoint, "no_recipient", "the link names no recipient (u= is missing)"
            )
            return
        props: dict[str, Any] = {
            "email_id": token.email_id,
            "email_subject": token.email_subject,
            "campaign_id": token.campaign_id,
            "campaign_name": token.campaign_name,
            **extra,
            "recipient_verified": not token.recipient_in_query,
            "ip_class": ip_class(fetch.client_ip),
        }
        since = self.clock.now().timestamp() - token.sent_at if token.sent_at is not None else None
        verdict = self.classifier.classify(
            fetch.user_agent,
            fetch.client_ip,
            seconds_since_delivery=since,
            fetch="open" if event == EMAIL_OPENED else "click",
        )
        if verdict.machine:
            flag = "machine_open" if event == EMAIL_OPENED else "machine_click"
            props[flag] = True
            props["machine_kind"] = verdict.kind
            props["machine_reason"] = verdict.reason
        email = recipient if token.recipient_type == "email" else None
        user_id = recipient if token.recipient_type == "user_id" else None
        message = EmailEvent(
            event,
            email=email,
            user_id=user_id,
            properties=props,
            ip=fetch.client_ip,
            user_agent=fetch.user_agent,
        ).message()
        facts = RequestFacts(endpoint, None, fetch.client_ip, 0)
        source = self.source(EMAIL_SOURCE_ID, EMAIL_SOURCE_NAME)
        try:
            await self.collect.ingest_internal(source, [message], facts)
        except TidingsError as exc:  # queue full or storage down: the redirect must still work
            log.warning("%s not recorded: %s", event, exc.error.message)

    async def _reject(self, fetch: Fetch, endpoint: str, code: str, message: str) -> None:
        self.stats.rejected[code] += 1
        facts = RequestFacts(endpoint, None, fetch.client_ip, 0)
        raw = {"token": fetch.token[:MAX_TOKEN_CHARS_STORED], "userAgent": fetch.user_agent}
        try:
            source = self.source(EMAIL_SOURCE_ID, EMAIL_SOURCE_NAME)
            await self.collect.record_rejection(
                source.id, facts, FieldError(code, message, "token"), raw
            )
        except TidingsError:
            log.warning("tracking rejection not recorded: queue unavailable")

    # -- ESP webhooks -----------------------------------------------------------------------------
    async def webhook(
        self, esp_name: str, request: WebhookRequest, client_ip: str | None
    ) -> WebhookOutcome:
        """Verify and record one ESP webhook post. A bad signature (401) or an unreadable body
        (400) raises after the payload is kept as a rejection of the ESP's source."""
        esp = esp_for(self.esps, esp_name)
        source = self.source(f"src_webhook_{esp.name}", f"{esp.label} webhook")
        facts = RequestFacts(f"webhooks/{esp_name}", None, client_ip, len(request.body))
        try:
            esp.verify(request)
            normalized = esp.parse(request)
        except (BadSignature, InvalidPayload) as exc:
            await self.collect.record_rejection(
                source.id, facts, exc.error, request.body.decode("utf-8", "replace")
            )
            raise
        return await self._ingest_webhook(source, normalized, facts)

    async def _ingest_webhook(
        self, source: SourceRecord, normalized: Normalized, facts: RequestFacts
    ) -> WebhookOutcome:
        messages = [event.message() for event in normalized.events]
        rejected: list[dict[str, Any]] = []
        for raw, error in normalized.invalid:
            await self.collect.record_rejection(source.id, facts, error, raw)
            rejected.append(error.as_dict())
        accepted = 0
        if messages:
            outcome = await self.collect.ingest_internal(source, messages, facts)
            accepted = len(outcome.rows)
            rejected.extend(r.as_dict() for r in outcome.rejected)
        return WebhookOutcome(accepted, dict(normalized.ignored), rejected)
