"""The collect service: from parsed request bodies to committed events, no HTTP here."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from tidings.core.clock import Clock, to_ms
from tidings.core.errors import FieldError, TidingsError, Unauthorized

from .auth import WriteKeyAuth
from .ingest import IngestQueue
from .messages import TYPES, Enricher, InvalidMessage, Limits, Outcome, Rejected, enrich_many
from .pixel import pixel_message
from .store import RejectionRow, SourceRecord

log = logging.getLogger(__name__)
MAX_STORED_REJECTION_BYTES = 32 * 1024


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the HTTP layer knows about a request, besides its body."""

    endpoint: str
    authorization: str | None
    client_ip: str | None
    body_bytes: int


class CollectService:
    def __init__(
        self, auth: WriteKeyAuth, queue: IngestQueue, clock: Clock, limits: Limits
    ) -> None:
        self.auth = auth
        self.queue = queue
        self.clock = clock
        self.limits = limits

    async def ingest_one(self, body: Any, type_: str, facts: RequestFacts) -> Outcome:
        """One message from /v1/track and friends. A bad message is recorded, then a 400."""
        source = self._source(body, facts)
        outcome, rejected = self._prepare(source, body, [body], type_, facts)
        del body  # see ingest_batch
        await self.queue.submit(outcome.rows, rejected)
        if outcome.rejected:
            err = outcome.rejected[0].error
            raise TidingsError(err.code, err.message, err.field)
        return outcome

    async def ingest_batch(self, body: Any, facts: RequestFacts) -> Outcome:
        """A /v1/batch body: good messages are committed, bad ones reported by index."""
        source = self._source(body, facts)
        batch = body.get("batch")
        if not isinstance(batch, list):
            raise TidingsError("invalid_batch", "batch must be an array of messages", "batch")
        if len(batch) > self.limits.max_batch_events:
            raise TidingsError(
                "batch_too_large",
                f"a batch may hold at most {self.limits.max_batch_events} events, "
                f"this one has {len(batch)}",
                "batch",
            )
        outcome, rejected = self._prepare(source, body, batch, None, facts)
        # Drop the parsed body before waiting for the commit: its thousands of dicts would
        # otherwise outlive several garbage collections each and be promoted to the old
        # generation, whose full collections then cost more than the rest of the request.
        del body, batch
        await self.queue.submit(outcome.rows, rejected)
        return outcome

    async def ingest_pixel(
        self, method: str, params: list[tuple[str, str]], facts: RequestFacts
    ) -> None:
        """A Pixel API hit. Never raises for bad input: the error is recorded instead."""
        try:
            msg = pixel_message(params)
        except InvalidMessage as exc:
            await self._record_unattributed(facts, exc.error, dict(params))
            return
        try:
            source = self._source(msg, facts)
        except Unauthorized as exc:
            await self._record_unattributed(facts, exc.error, msg)
            return
        try:
            await self._ingest(source, msg, [msg], method, facts)
        except TidingsError as exc:
            log.warning("pixel event not stored: %s", exc.error.message)

    async def ingest_internal(
        self, source: SourceRecord, messages: list[dict[str, Any]], facts: RequestFacts
    ) -> Outcome:
        """Events tidings itself made (email tracking, ESP webhooks) for one of its built-in
        sources: the same validation, enrichment, dedup and commit as any collected event, and
        an email in ``context.traits`` identifies the person (Segment's Email spec)."""
        outcome, rejected = self._prepare(source, {}, messages, None, facts, email_identifies=True)
        await self.queue.submit(outcome.rows, rejected)
        return outcome

    def head_seq(self) -> int:
        """The events log's newest ``seq`` (0 when empty)."""
        return self.queue.store.head_seq()

    def first_seq_since(self, received_ms: int) -> int | None:
        """The log position of the first event received at or after ``received_ms``."""
        return self.queue.store.first_seq_since(received_ms)

    def events_of_source(
        self, source_id: str, names: list[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """``(seq, timestamp, event, payload)`` of one source's track events called one of
        ``names`` after ``after_seq``, in log order, at most ``limit`` (an index range)."""
        return self.queue.store.source_events_named(source_id, names, after_seq, limit)

    def campaign_events_of_source(
        self, source_id: str, campaign_id: str, names: list[str], after_seq: int, limit: int
    ) -> list[tuple[int, int, str, str]]:
        """Like :meth:`events_of_source`, only those of one campaign (the email source's
        events by ``properties.campaign_id``, an index range)."""
        return self.queue.store.campaign_events_named(
            source_id, campaign_id, names, after_seq, limit
        )

    async def record_rejection(
        self, source_id: str | None, facts: RequestFacts, error: FieldError, raw: Any
    ) -> None:
        """Keep a refused payload with its reason, shown by the source's debugger."""
        row = self._rejection_row(
            source_id, to_ms(self.clock.now()), facts, Rejected(None, error, raw)
        )
        await self.queue.submit((), [row])

    def _source(self, body: Any, facts: RequestFacts) -> SourceRecord:
        body_key = body.get("writeKey") if isinstance(body, dict) else None
        return self.auth.source_for(facts.authorization, body_key)

    async def _ingest(
        self,
        source: SourceRecord,
        envelope: dict[str, Any],
        messages: list[Any],
        type_: str | None,
        facts: RequestFacts,
    ) -> Outcome:
        outcome, rejected = self._prepare(source, envelope, messages, type_, facts)
        await self.queue.submit(outcome.rows, rejected)
        return outcome

    def _prepare(
        self,
        source: SourceRecord,
        envelope: dict[str, Any],
        messages: list[Any],
        type_: str | None,
        facts: RequestFacts,
        *,
        email_identifies: bool = False,
    ) -> tuple[Outcome, list[RejectionRow]]:
        """Validate and enrich: the rows to commit and the rejections to record."""
        if type_ is not None and type_ not in TYPES:
            raise TidingsError("invalid_type", "must be one of " + ", ".join(TYPES), "type")
        received = self.clock.now()
        batch_context = envelope.get("context") if type_ is None else None
        if batch_context is not None and not isinstance(batch_context, dict):
            raise TidingsError("invalid_type", "must be a JSON object", "context")
        try:
            enricher = Enricher(
                source.id,
                received,
                self.limits,
                sent_at=envelope.get("sentAt") if type_ is None else None,
                batch_context=batch_context,
                client_ip=facts.client_ip,
                email_identifies=email_identifies,
            )
        except InvalidMessage as exc:
            raise TidingsError(exc.error.code, exc.error.message, exc.error.field) from None
        check_size = facts.body_bytes > self.limits.max_event_bytes
        outcome = enrich_many(enricher, messages, type_, check_size)
        rejected = [
            self._rejection_row(source.id, enricher.received_ms, facts, r) for r in outcome.rejected
        ]
        return outcome, rejected

    def _rejection_row(
        self, source_id: str | None, at_ms: int, facts: RequestFacts, rejected: Rejected
    ) -> RejectionRow:
        return (
            source_id,
            at_ms,
            facts.endpoint,
            rejected.index,
            rejected.error.code,
            rejected.error.field,
            rejected.error.message,
            _stored_payload(rejected.raw),
        )

    async def _record_unattributed(self, facts: RequestFacts, error: FieldError, raw: Any) -> None:
        """Record a pixel hit that names no known source (it has no source to show it under)."""
        row = self._rejection_row(None, to_ms(self.clock.now()), facts, Rejected(None, error, raw))
        try:
            await self.queue.submit((), [row])
        except TidingsError:
            log.warning("pixel rejection not recorded: queue unavailable")


def _stored_payload(raw: Any) -> str | None:
    """The rejected payload as kept for the debugger, without its write key."""
    if isinstance(raw, dict) and "writeKey" in raw:
        raw = {k: v for k, v in raw.items() if k != "writeKey"}
    try:
        text = orjson.dumps(raw).decode()
    except TypeError:
        text = repr(raw)
    return text[:MAX_STORED_REJECTION_BYTES]
