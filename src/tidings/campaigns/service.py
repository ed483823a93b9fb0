"""The campaigns service: campaigns, sending them over SMTP, matching replies, the report.

Reads people through the profiles service, blocks and render decisions through the content
service, and records every email event (delivered, bounced, replied) through the tracking
service, so they enter the events log by the same path as opens and clicks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import orjson

from tidings.content.recipients import MAX_RECIPIENT_CHARS, read_recipient, recipient_key
from tidings.content.recipients import Recipient as ReadRecipient
from tidings.content.service import ContentService
from tidings.content.tags import is_unsubstituted_merge_tag, recipient_tag
from tidings.core.clock import Clock, from_ms, iso, to_ms
from tidings.core.db import Database
from tidings.core.errors import Conflict, NotFound, TidingsError
from tidings.core.ids import new_id
from tidings.core.settings import Settings
from tidings.profiles.service import ProfileService
from tidings.tracking.events import (
    EMAIL_BOUNCED,
    EMAIL_DELIVERED,
    EMAIL_LINK_CLICKED,
    EMAIL_OPENED,
    EMAIL_REPLIED,
    UNSUBSCRIBED,
    EmailEvent,
)
from tidings.tracking.service import TrackingService
from tidings.tracking.wrap import Recipient, WrapOptions, campaign_of

from .mime import message_bytes
from .replies import InboundMail, snippet
from .report import (
    ORDER_COMPLETED,
    Engagement,
    Totals,
    attribute,
    engagement_of,
    touches_and_orders,
)
from .schemas import CampaignIn, Recipients
from .smtp import SmtpConfig, SmtpOutcome, SmtpSender, TokenBucket
from .store import CampaignRow, CampaignStore, MessageRow
from .template import CampaignTemplate, TemplateError

log = logging.getLogger(__name__)
MAX_LIST = 200
DAY_MS = 86_400_000
REPORT_EVENTS = [EMAIL_OPENED, EMAIL_LINK_CLICKED, UNSUBSCRIBED, EMAIL_REPLIED]
DONE = ("sent", "bounced", "unknown")  # a recipient with one of these is never sent again

Progress = Callable[[int, int], None]  # (messages handled so far, total)


@dataclass(frozen=True, slots=True)
class ReplyMatch:
    matched: bool
    campaign_id: str | None = None
    email_id: str | None = None
    matched_by: str | None = None


def _token() -> str:
    # Lower-case hex (80 bits): mail systems may fold the case of a local part.
    return secrets.token_hex(10)


class CampaignService:
    def __init__(
        self,
        db: Database,
        store: CampaignStore,
        profiles: ProfileService,
        content: ContentService,
        tracking: TrackingService,
        clock: Clock,
        settings: Settings,
    ) -> None:
        self.db = db
        self.store = store
        self.profiles = profiles
        self.content = content
        self.tracking = tracking
        self.clock = clock
        self.settings = settings
        self.bucket_factory: Callable[[], TokenBucket] = lambda: TokenBucket(
            settings.campaign_send_rate, settings.campaign_send_burst
        )
        self._jobs: dict[str, asyncio.Task[dict[str, Any]]] = {}

    # -- campaigns ------------------------------------------------------------------------------
    def _spec(self, body: CampaignIn) -> dict[str, Any]:
        for name, value in (("html", body.html), ("subject", body.subject)):
            try:
                CampaignTemplate(value)
            except TemplateError as exc:
                raise TidingsError("invalid_template", str(exc), name, status=422) from None
        return {
            "subject": body.subject,
            "from_address": body.from_address,
            "html": body.html,
            "recipients": body.recipients.model_dump(),
            "attribution_days": body.attribution_days or self.settings.campaign_attribution_days,
        }

    def create(self, body: CampaignIn) -> dict[str, Any]:
        at = to_ms(self.clock.now())
        row = CampaignRow(new_id("cmp"), body.name, self._spec(body), at, at)
        self.store.insert(row)
        return campaign_json(row)

    def replace(self, campaign_id: str, body: CampaignIn) -> dict[str, Any]:
        self._row(campaign_id)
        if not self.store.update(campaign_id, body.name, self._spec(body), to_ms(self.clock.now())):
            raise _not_found(campaign_id)
        return campaign_json(self._row(campaign_id))

    def get(self, campaign_id: str) -> dict[str, Any]:
        return campaign_json(self._row(campaign_id))

    def recent(self, limit: int = MAX_LIST) -> list[dict[str, Any]]:
        return [campaign_json(r) for r in self.store.recent(max(1, min(limit, MAX_LIST)))]

    def overview(self, limit: int = 50) -> list[dict[str, Any]]:
        """The newest campaigns, each with its send's status, how many were delivered, and its
        unique human opens and clicks: each campaign's own email events since its send (the
        report reads the same events; this one does not attribute orders)."""
        rows = self.store.recent(max(1, min(limit, MAX_LIST)))
        sends = {r.id: self.store.get_send(r.id) for r in rows}
        engaged: dict[str, dict[str, Engagement]] = {r.id: {} for r in rows}
        for campaign_id, send in sends.items():
            if send is None:
                continue
            names = [EMAIL_OPENED, EMAIL_LINK_CLICKED]
            for page in self._event_pages(campaign_id, names, send["log_seq"]):
                engagement_of([(event, props) for _ts, event, props in page], engaged[campaign_id])
        out = []
        for row in rows:
            send = sends[row.id]
            totals = Totals()
            for e in engaged[row.id].values():
                totals.add(e)
            out.append(
                {
                    **campaign_json(row),
                    "status": send["status"] if send is not None else "not_sent",
                    "delivered": self.store.status_counts(row.id).get("sent", 0) if send else 0,
                    "unique_opens": totals.unique_opens,
                    "unique_clicks": totals.unique_clicks,
                }
            )
        return out

    def delete(self, campaign_id: str) -> None:
        if campaign_id in self._jobs and not self._jobs[campaign_id].done():
            raise Conflict("send_running", "the campaign is being sent", "id")
        if not self.store.delete(campaign_id):
            raise _not_found(campaign_id)

    def _row(self, campaign_id: str) -> CampaignRow:
        row = self.store.get(campaign_id)
        if row is None:
            raise _not_found(campaign_id)
        return row

    # -- sending --------------------------------------------------------------------------------
    def status(self, campaign_id: str) -> dict[str, Any]:
        """Where the campaign's send is: not_sent, queued, sending (n of N), done or failed."""
        self._row(campaign_id)
        send = self.store.get_send(campaign_id)
        if send is None:
            return {"campaign_id": campaign_id, "status": "not_sent"}
        counts = self.store.status_counts(campaign_id)
        return {
            "campaign_id": campaign_id,
            "status": send["status"],
            "total": send["total"],
            "sent": send["sent"],
            "bounced": send["bounced"],
            "failed": send["failed"],
            "skipped": send["skipped"],
            "unknown": counts.get("unknown", 0),
            "error": send["error"],
            "started_at": iso(from_ms(send["started_at"])),
            "finished_at": iso(from_ms(send["finished_at"])) if send["finished_at"] else None,
        }

    def _check_sendable(self, row: CampaignRow) -> tuple[CampaignTemplate, CampaignTemplate, str]:
        if SmtpConfig.from_settings(self.settings) is None:
            raise TidingsError(
                "smtp_not_configured", "set TIDINGS_SMTP_HOST to send campaigns", "smtp_host"
            )
        sender = row.spec.get("from_address") or self.settings.smtp_from
        if not sender:
            raise TidingsError(
                "missing_from", "the campaign has no from_address and TIDINGS_SMTP_FROM is unset"
            )
        body = CampaignTemplate(row.spec["html"])
        for block_id in body.blocks:
            if self.content.blocks.find(block_id) is None:
                raise TidingsError(
                    "unknown_block",
                    f"the template names block {block_id!r}, which does not exist",
                    "html",
                )
        return body, CampaignTemplate(row.spec["subject"]), sender

    async def start_send(self, campaign_id: str, base_url: str) -> dict[str, Any]:
        """Queue the campaign's send as a background job of this process; a 409 while one
        runs. Recipients already sent to are skipped, so starting again resumes."""
        row = self._row(campaign_id)
        self._check_sendable(row)
        running = self._jobs.get(campaign_id)
        if running is not None and not running.done():
            raise Conflict("send_running", "the campaign is being sent", "id")
        await self._begin(row)
        self._jobs[campaign_id] = asyncio.create_task(
            self._run_logged(campaign_id, base_url), name=f"tidings-send-{campaign_id}"
        )
        return self.status(campaign_id)

    async def _run_logged(self, campaign_id: str, base_url: str) -> dict[str, Any]:
        try:
            return await self.send(campaign_id, base_url, begun=True)
        except Exception as exc:
            log.exception("send of %s failed", campaign_id)
            await self.db.run_write(
                self.store.update_send,
                campaign_id,
                status="failed",
                error=f"{type(exc).__name__}: {exc}"[:500],
                finished_at=to_ms(self.clock.now()),
            )
            return self.status(campaign_id)

    async def _begin(self, row: CampaignRow) -> None:
        at = to_ms(self.clock.now())
        values = {
            "campaign_id": row.id,
            "status": "queued",
            "total": 0,
            "sent": 0,
            "bounced": 0,
            "failed": 0,
            "skipped": 0,
            "error": None,
            "log_seq": self.tracking.collect.head_seq(),
            "rate": self.settings.campaign_send_rate,
            "started_at": at,
            "finished_at": None,
        }
        previous = self.store.get_send(row.id)
        if previous is not None:  # a resumed send keeps where its events begin
            values["log_seq"] = min(values["log_seq"], previous["log_seq"])
        await self.db.run_write(self.store.put_send, values)
        await self.db.run_write(self.store.abandon_claims, row.id, at)

    async def stop(self) -> None:
        """Cancel this process's running sends (at shutdown); their claims become unknown."""
        for task in self._jobs.values():
            task.cancel()
        await asyncio.gather(*self._jobs.values(), return_exceptions=True)

    async def send(
        self,
        campaign_id: str,
        base_url: str,
        progress: Progress | None = None,
        *,
        begun: bool = False,
    ) -> dict[str, Any]:
        """Send the campaign to every recipient not sent to yet, at the configured rate, and
        return the final status. Each message is claimed (committed) before it is handed to
        SMTP and its outcome recorded after, so a crash never sends anyone twice."""
        row = self._row(campaign_id)
        body_t, subject_t, sender = self._check_sendable(row)
        if not begun:
            await self._begin(row)
        targets, skipped = self._targets(row)
        existing = self.store.messages_of(row.id, [r for r, _ in targets])
        todo = [
            (r, p) for r, p in targets if existing.get(r) is None or existing[r].status not in DONE
        ]
        skipped += len(targets) - len(todo)
        total = len(todo)
        await self.db.run_write(
            self.store.update_send, row.id, status="sending", total=total, skipped=skipped
        )
        counts = {"sent": 0, "bounced": 0, "failed": 0}
        mailers = [self._mailer() for _ in range(self.settings.smtp_connections)]
        bucket = self.bucket_factory()
        chunk = max(1, min(50, self.settings.campaign_send_burst * 5))
        done = 0
        try:
            for start in range(0, total, chunk):
                part = todo[start : start + chunk]
                outcomes = await self._send_part(
                    row, body_t, subject_t, sender, part, existing, mailers, bucket, base_url
                )
                for outcome in outcomes:
                    key = {"accepted": "sent"}.get(outcome.status, outcome.status)
                    counts[key] = counts.get(key, 0) + 1
                done += len(part)
                await self.db.run_write(self.store.update_send, row.id, **counts)
                if progress is not None:
                    progress(done, total)
        finally:
            await asyncio.gather(*(m.close() for m in mailers))
        await self.db.run_write(
            self.store.update_send,
            row.id,
            status="done",
            finished_at=to_ms(self.clock.now()),
            **counts,
        )
        return self.status(row.id)

    def _mailer(self) -> SmtpSender:
        config = SmtpConfig.from_settings(self.settings)
        assert config is not None  # checked by _check_sendable
        return SmtpSender(config)

    def _targets(self, row: CampaignRow) -> tuple[list[tuple[str, str | None]], int]:
        """``(email, profile_id)`` of every recipient who may be sent to, and how many were
        left out (no email, deleted and suppressed, unsubscribed)."""
        spec = Recipients.model_validate(row.spec["recipients"])
        wanted: dict[str, str | None] = {}
        skipped = 0
        if spec.all_with_email:
            for pid, email in self.profiles.with_email():
                wanted.setdefault(email.lower(), pid)
        if spec.emails:
            found = self.profiles.profiles_for(spec.emails)
            for email in spec.emails:
                wanted.setdefault(email.lower(), found.get(email))
        if spec.profile_ids:
            emails = self.profiles.email_of(spec.profile_ids)
            skipped += len(set(spec.profile_ids) - set(emails))
            for pid, email in emails.items():
                wanted.setdefault(email.lower(), pid)
        suppressed = self.profiles.suppressed(list(wanted))
        unsubscribed = self._unsubscribed([p for p in wanted.values() if p is not None])
        out = [
            (email, pid)
            for email, pid in wanted.items()
            if email not in suppressed and (pid is None or pid not in unsubscribed)
        ]
        return out, skipped + len(wanted) - len(out)

    def _unsubscribed(self, profile_ids: list[str]) -> set[str]:
        """People who unsubscribed: an ``Unsubscribed`` event in their timeline, or a trait
        ``unsubscribed: true`` (set by the operator's own systems)."""
        out = {
            pid
            for pid, state in self.profiles.states_of(profile_ids).items()
            if state.traits.get("unsubscribed") is True
        }
        far = to_ms(self.clock.now()) + DAY_MS
        out.update(self.profiles.events_of_many(profile_ids, [UNSUBSCRIBED], 0, far))
        return out

    async def _send_part(
        self,
        row: CampaignRow,
        body_t: CampaignTemplate,
        subject_t: CampaignTemplate,
        sender: str,
        part: list[tuple[str, str | None]],
        existing: dict[str, MessageRow],
        mailers: list[SmtpSender],
        bucket: TokenBucket,
        base_url: str,
    ) -> list[MessageRow]:
        at = to_ms(self.clock.now())
        domain = self.settings.reply_domain or parseaddr(sender)[1].rpartition("@")[2] or "tidings"
        claims: list[MessageRow] = []
        for email, pid in part:
            before = existing.get(email)
            if before is not None:  # a failed message tried again keeps its ids
                claims.append(
                    replace(
                        before,
                        status="sending",
                        attempts=before.attempts + 1,
                        profile_id=pid,
                        claimed_at=at,
                        done_at=None,
                    )
                )
                continue
            email_id = new_id("em")
            claims.append(
                MessageRow(
                    row.id,
                    email,
                    email_id,
                    pid,
                    _token(),
                    f"<{email_id}@{domain}>",
                    "sending",
                    None,
                    None,
                    1,
                    at,
                    None,
                )
            )
        await self.db.run_write(self.store.claim, claims)
        states = self.profiles.states_of([c.profile_id for c in claims if c.profile_id])
        # Each message is built while the ones before it are in their SMTP conversations, on
        # one of the send's connections (TIDINGS_SMTP_CONNECTIONS): the event loop builds the
        # next email instead of waiting for the server's answers.
        envelope_from = parseaddr(sender)[1]
        free: asyncio.Queue[SmtpSender] = asyncio.Queue()
        for mailer in mailers:
            free.put_nowait(mailer)

        async def deliver(
            mailer: SmtpSender, message: bytes | EmailMessage, claim: MessageRow, subject: str
        ) -> tuple[MessageRow, str]:
            try:
                result = await mailer.send(message, envelope_from, claim.recipient)
            finally:
                free.put_nowait(mailer)
            return self._outcome(claim, result), subject

        sends: list[asyncio.Task[tuple[MessageRow, str]] | MessageRow] = []
        tasks: list[asyncio.Task[tuple[MessageRow, str]]] = []
        try:
            for claim in claims:
                state = states.get(claim.profile_id) if claim.profile_id else None
                traits = state.traits if state is not None else {}
                await bucket.take()  # before building: the email's sent_at is its hand-off time
                try:
                    message, subject = self._message(
                        row, body_t, subject_t, sender, claim, traits, base_url
                    )
                except TemplateError as exc:
                    sends.append(self._outcome(claim, SmtpOutcome("failed", None, str(exc))))
                    continue
                mailer = await free.get()
                tasks.append(asyncio.create_task(deliver(mailer, message, claim, subject)))
                sends.append(tasks[-1])
                await asyncio.sleep(0)  # let it start its conversation before the next build
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        outcomes: list[MessageRow] = []
        events: list[EmailEvent] = []
        for sent in sends:
            if isinstance(sent, MessageRow):  # not built: no event
                outcomes.append(sent)
                continue
            outcome, subject = sent.result()
            outcomes.append(outcome)
            event = self._send_event(row, outcome, subject)
            if event is not None:
                events.append(event)
        await self.db.run_write(self.store.record, outcomes)
        try:
            await self.tracking.record_events(events, "campaigns/send")
        except TidingsError as exc:  # queue full: the outcome is kept, the event is lost
            log.warning("send events of %s not recorded: %s", row.id, exc.error.message)
        return outcomes

    def _outcome(self, claim: MessageRow, result: SmtpOutcome) -> MessageRow:
        status = {"accepted": "sent"}.get(result.verdict, result.verdict)
        return replace(
            claim,
            status=status,
            smtp_code=result.code,
            error=result.message if status != "sent" else None,
            done_at=to_ms(self.clock.now()),
        )

    def _send_event(self, row: CampaignRow, m: MessageRow, subject: str) -> EmailEvent | None:
        props: dict[str, Any] = {
            "email_id": m.email_id,
            "email_subject": subject,
            "campaign_id": row.id,
            "campaign_name": row.name,
        }
        if m.status == "sent":
            return EmailEvent(
                EMAIL_DELIVERED,
                email=m.recipient,
                properties=props,
                message_id=f"delivered-{m.email_id}",
            )
        if m.status == "bounced":
            props.update(smtp_code=m.smtp_code, smtp_error=m.error)
            return EmailEvent(
                EMAIL_BOUNCED,
                email=m.recipient,
                properties=props,
                message_id=f"bounced-{m.email_id}",
            )
        return None

    def _message(
        self,
        row: CampaignRow,
        body_t: CampaignTemplate,
        subject_t: CampaignTemplate,
        sender: str,
        m: MessageRow,
        traits: dict[str, Any],
        base_url: str,
    ) -> tuple[bytes | EmailMessage, str]:
        """One recipient's email, as bytes (``mime.py``): merge fields filled, creative tags
        with their address and the send id, every link wrapped and signed, the open pixel, a
        Reply-To token."""
        base = self.settings.public_url or base_url
        extra: dict[str, Any] = {"email": m.recipient}
        subject = " ".join(subject_t.render(traits, extra, lambda *_: "").split())
        now = self.clock.now()
        # Built just before its SMTP hand-off: the moment signed into its links as sent_at.
        options = WrapOptions(
            row.id, "generic", row.name, m.email_id, subject, sent_at=int(now.timestamp())
        )
        campaign = campaign_of(options, now, self.settings.tracking_link_max_age_days)
        unsubscribe = self.tracking.unsubscribe_link(base, campaign, m.recipient)
        extra["unsubscribe_url"] = unsubscribe
        html = body_t.render(
            traits,
            extra,
            lambda b, alt, slot: self._block_tag(base, b, m.recipient, row.id, alt, slot),
        )
        wrapped = self.tracking.wrap(html, options, base, Recipient(value=m.recipient))
        headers = [
            ("From", sender),
            ("To", m.recipient),
            ("Subject", subject),
            ("Date", format_datetime(now.astimezone(UTC).replace(microsecond=0))),
            ("Message-ID", m.message_id),
        ]
        if self.settings.reply_domain:
            headers.append(("Reply-To", f"reply+{m.reply_token}@{self.settings.reply_domain}"))
        headers += [
            ("List-Unsubscribe", f"<{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Tidings-Campaign", row.id),
        ]
        raw = message_bytes(headers, wrapped.html)
        if raw is not None:
            return raw, subject
        # What the writer leaves out (an address that needs SMTPUTF8, say): the email package.
        message = EmailMessage()
        for name, value in headers:
            message[name] = value
        message.set_content(wrapped.html, subtype="html")
        return message, subject

    def _block_tag(
        self,
        base: str,
        block_id: str,
        recipient: str,
        send_id: str,
        alt: str | None,
        slot: int | None,
    ) -> str:
        block = self.content.blocks.get(block_id)
        width, height = self.content.tag_size(block, slot)
        try:
            return recipient_tag(
                base,
                block.id,
                recipient=recipient,
                send_id=send_id,
                width=width,
                height=height,
                alt=alt if alt is not None else block.name,
                slot=slot,
                fmt=block.extension,
            )
        except ValueError as exc:
            raise TemplateError(f"block({block_id!r}): {exc}") from None

    # -- replies --------------------------------------------------------------------------------
    async def record_reply(self, mail: InboundMail, endpoint: str) -> ReplyMatch:
        """Match an inbound email to the campaign email it answers (the reply-to token, else
        In-Reply-To / References) and record ``Email Replied`` for its recipient. An email
        nothing matches is kept as a rejection (without its body) and answered 2xx, so the
        ESP does not retry it."""
        matched_by = "token"
        found: MessageRow | None = None
        for token in mail.reply_tokens(self.settings.reply_domain):
            found = self.store.by_reply_token(token)
            if found is not None:
                break
        if found is None:
            matched_by = "in_reply_to"
            for message_id in mail.in_reply_to:
                found = self.store.by_message_id(message_id)
                if found is not None:
                    break
        if found is None:
            await self.tracking.reject(
                endpoint,
                "reply_not_matched",
                "no reply token or In-Reply-To matches an email tidings sent",
                {"to": list(mail.to), "subject": mail.subject, "in_reply_to": mail.in_reply_to},
            )
            return ReplyMatch(False)
        row = self.store.get(found.campaign_id)
        props: dict[str, Any] = {
            "email_id": found.email_id,
            "campaign_id": found.campaign_id,
            "campaign_name": row.name if row else None,
            "email_subject": row.spec.get("subject") if row else None,
            "reply_subject": (mail.subject or "")[:500],
            "snippet": snippet(mail.text, self.settings.reply_snippet_chars),
            "matched_by": matched_by,
        }
        if self.settings.reply_store_body:
            props["body"] = mail.text[:16_000]
        key = mail.message_id or orjson.dumps([mail.subject, mail.text[:2000]]).decode()
        digest = hashlib.sha256(key.encode()).hexdigest()[:40]
        event = EmailEvent(
            EMAIL_REPLIED, email=found.recipient, properties=props, message_id=f"reply-{digest}"
        )
        await self.tracking.record_events([event], endpoint)
        return ReplyMatch(True, found.campaign_id, found.email_id, matched_by)

    # -- the report -----------------------------------------------------------------------------
    async def report(self, campaign_id: str) -> dict[str, Any]:
        """Delivered, bounced, human and machine opens and clicks, unsubscribes, replies,
        attributed conversions and revenue, overall and per open-time variant."""
        started = time.perf_counter()
        row = self._row(campaign_id)
        window_ms = int(float(row.spec["attribution_days"]) * DAY_MS)
        messages = self.store.all_messages(campaign_id)
        by_email_id = {m.email_id: m for m in messages}
        send = self.store.get_send(campaign_id)
        engaged: dict[str, Engagement] = {}
        first_touch: int | None = None
        last_touch = 0
        pages = self._event_pages(campaign_id, REPORT_EVENTS, send["log_seq"]) if send else ()
        for page in pages:
            batch: list[tuple[str, dict[str, Any]]] = []
            for ts, event, props in page:
                if (
                    props.get("campaign_id") != campaign_id
                    or props.get("email_id") not in by_email_id
                ):
                    continue
                batch.append((event, props))
                first_touch = ts if first_touch is None else min(first_touch, ts)
                last_touch = max(last_touch, ts)
            engagement_of(batch, engaged)
        self._attribute(row.id, by_email_id, engaged, first_touch, last_touch, window_ms)
        totals = Totals()
        delivered = bounced = 0
        for m in messages:
            delivered += m.status == "sent"
            bounced += m.status == "bounced"
            totals.add(engaged.get(m.email_id, NO_ENGAGEMENT))
        variants = await self._variants(row, messages, engaged)
        return {
            "campaign_id": row.id,
            "name": row.name,
            "delivered": delivered,
            "bounced": bounced,
            "unique_opens": totals.unique_opens,
            "machine_opens": totals.machine_opens,
            "unique_clicks": totals.unique_clicks,
            "machine_clicks": totals.machine_clicks,
            "click_to_open_rate": (
                round(totals.unique_clicks / totals.unique_opens, 4)
                if totals.unique_opens
                else None
            ),
            "unsubscribes": totals.unsubscribes,
            "replies": totals.replies,
            "conversions": totals.conversions,
            "revenue": round(totals.revenue, 2),
            "attribution_days": float(row.spec["attribution_days"]),
            "variants": variants,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }

    def _event_pages(
        self, campaign_id: str, names: list[str], after_seq: int
    ) -> Iterator[list[tuple[int, str, dict[str, Any]]]]:
        """The campaign's own email events called one of ``names`` logged after
        ``after_seq`` (its send's start), as ``(timestamp, event, properties)``, a page of up
        to 5,000 at a time."""
        while True:
            page = self.tracking.campaign_email_events(campaign_id, names, after_seq, 5000)
            if not page:
                return
            after_seq = page[-1][0]
            yield [
                (ts, event, orjson.loads(payload).get("properties") or {})
                for _, ts, event, payload in page
            ]

    def _attribute(
        self,
        campaign_id: str,
        by_email_id: dict[str, MessageRow],
        engaged: dict[str, Engagement],
        first_touch: int | None,
        last_touch: int,
        window_ms: int,
    ) -> None:
        """Credit each order of the people who opened or clicked to its latest touch (see
        ``report``), adding the campaign's to its messages' engagement."""
        if first_touch is None:
            return
        touched = [by_email_id[e] for e, g in engaged.items() if g.opened]
        pids = self.profiles.profiles_for([m.recipient for m in touched])
        if not pids:
            return
        names = [ORDER_COMPLETED, EMAIL_OPENED, EMAIL_LINK_CLICKED]
        # Touches up to a window before the first one of this campaign can still win an order.
        rows = self.profiles.events_of_many(
            sorted(set(pids.values())), names, first_touch - window_ms, last_touch + window_ms + 1
        )
        for person_rows in rows.values():
            touches, orders = touches_and_orders(person_rows)
            for at_ms, _key, total in orders:
                touch = attribute(touches, at_ms, window_ms)
                if touch is None or touch.campaign_id != campaign_id:
                    continue
                e = engaged.get(touch.email_id or "")
                if e is not None:
                    e.conversions += 1
                    e.revenue += total

    async def _variants(
        self, row: CampaignRow, messages: list[MessageRow], engaged: dict[str, Engagement]
    ) -> list[dict[str, Any]]:
        blocks = CampaignTemplate(row.spec["html"]).blocks
        if not blocks:
            return []
        seen = await self.content.variants_seen(row.id)
        groups: dict[tuple[str, str], Totals] = {}
        nothing: dict[str, str] = {}
        for m in messages:
            if m.status != "sent":
                continue
            shown = seen.get(_recipient_key(m.recipient), nothing) if seen else nothing
            for block_id in blocks:
                variant = shown.get(block_id, "not_rendered")
                groups.setdefault((block_id, variant), Totals()).add(
                    engaged.get(m.email_id, NO_ENGAGEMENT)
                )
        return [
            {
                "block_id": block_id,
                "variant": variant,
                "recipients": t.recipients,
                "unique_opens": t.unique_opens,
                "unique_clicks": t.unique_clicks,
                "conversions": t.conversions,
                "revenue": round(t.revenue, 2),
            }
            for (block_id, variant), t in sorted(groups.items())
        ]


NO_ENGAGEMENT = Engagement()  # what a message nobody engaged with did (only read)


def _recipient_key(value: str) -> str:
    """The key render decisions keep ``value``'s opens under: ``read_recipient``'s, with a
    short cut for what it takes as it is (a printable ASCII address with no spaces that is
    no merge tag: its key is itself in lower case)."""
    if (
        value
        and len(value) <= MAX_RECIPIENT_CHARS
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and is_unsubstituted_merge_tag(value) is None
    ):
        return recipient_key(value)
    recipient = read_recipient(value)
    return recipient.key if isinstance(recipient, ReadRecipient) else value.lower()


def campaign_json(row: CampaignRow) -> dict[str, Any]:
    spec = row.spec
    return {
        "id": row.id,
        "name": row.name,
        "subject": spec["subject"],
        "from_address": spec.get("from_address"),
        "html": spec["html"],
        "recipients": spec["recipients"],
        "attribution_days": spec["attribution_days"],
        "created_at": iso(from_ms(row.created_at)),
        "updated_at": iso(from_ms(row.updated_at)),
    }


def _not_found(campaign_id: str) -> NotFound:
    return NotFound("campaign_not_found", f"no campaign {campaign_id!r}", "id")
