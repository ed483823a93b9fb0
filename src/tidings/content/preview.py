"""Checking a block before the send: a preview for one recipient, a simulation over everyone.

Both walk the same waterfall as an open (:meth:`ContentService.choose`) with the profile as it
is now, at the moment asked for (rules on time, countdowns), and record nothing: no decision,
no lock, no alarm.

A preview says which variant the recipient would see, the trace of every rule evaluated (which
condition was true or false, and why) and the image as an inbox would show it:

- ``normal``: a person's mail app fetching the image directly;
- ``apple_mpp``: Apple Mail Privacy Protection, which fetches every image from Apple's proxy
  when the email is delivered (a machine fetch: the block's ``machine_opens`` decides);
- ``gmail_proxy``: Gmail's image proxy, fetching on the person's behalf when they open it;
- ``outlook``: Outlook for Windows, which shows only the first frame of an animated GIF.

A simulation runs the waterfall over every profile (or a seeded sample) without drawing, and
counts who would see each variant, with examples.
"""

from __future__ import annotations

import base64
import io
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from PIL import Image

from tidings.core.clock import iso
from tidings.core.errors import TidingsError
from tidings.rules import describe
from tidings.tracking.machine import FetchKind, classify_fetch

from .blocks import CompiledBlock
from .recipients import ProfileView, Recipient, read_recipient, recipient_key
from .render.profile import RenderProfile
from .service import ContentService, _Open

Inbox = Literal["normal", "apple_mpp", "gmail_proxy", "outlook"]
GMAIL_PROXY_UA: Final = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
OUTLOOK_UA: Final = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
INBOXES: Final[dict[str, tuple[str | None, str]]] = {
    "normal": (None, "a person's mail app fetching the image when they open the email"),
    "apple_mpp": (
        "Mozilla/5.0",
        "Apple Mail Privacy Protection fetches every image from Apple's proxy at delivery",
    ),
    "gmail_proxy": (GMAIL_PROXY_UA, "Gmail's image proxy fetches when the person opens it"),
    "outlook": (OUTLOOK_UA, "Outlook for Windows shows only the first frame of an animated GIF"),
}
MAX_EXAMPLES: Final = 10


@dataclass(frozen=True, slots=True)
class _Shown:
    data: bytes
    content_type: str


class Previewer:
    """Previews and simulations of blocks (see the module)."""

    def __init__(self, content: ContentService) -> None:
        self.content = content

    def _fetch(self, inbox: str) -> FetchKind:
        user_agent, _ = INBOXES[inbox]
        if user_agent is None:
            return FetchKind(False, "human", "a person opening the email")
        return classify_fetch(user_agent, None, self.content.settings)

    def _moment(self, at: datetime | None) -> datetime:
        if at is None:
            return self.content.clock.now()
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)

    # -- one recipient ------------------------------------------------------------------------
    def preview(
        self,
        block_id: str,
        recipient: str,
        *,
        at: datetime | None = None,
        inbox: Inbox = "normal",
        slot: int | None = None,
        country: str | None = None,
    ) -> dict[str, Any]:
        block = self.content.blocks.get(block_id)
        now = self._moment(at)
        fetch = self._fetch(inbox)
        body: dict[str, Any] = {
            "block_id": block.id,
            "block_version": block.version,
            "recipient": recipient,
            "profile_id": None,
            "at": iso(now),
            "inbox": {"name": inbox, "note": INBOXES[inbox][1]},
            "fetch": {"machine": fetch.machine, "kind": fetch.kind, "client": fetch.client},
            "served": "fallback",
            "reason": "",
            "variant": None,
            "waterfall": None,
            "shown": [],
        }
        who = read_recipient(recipient)
        if not isinstance(who, Recipient):
            return self._with_image(body, block, slot, who, inbox)
        if fetch.machine and block.spec.machine_opens == "fallback":
            return self._with_image(body, block, slot, "machine_open", inbox)
        view = self.content.views.get(who)
        if view is None:
            return self._with_image(body, block, slot, "unknown_recipient", inbox)
        body["profile_id"] = view.profile_id
        opening = _Open(block, who, "", slot, 0, INBOXES[inbox][0], None, fetch, country)
        choice = self.content.choose(block, view, opening.context(now, view), slot=slot)
        body["waterfall"] = choice.waterfall.as_dict()
        if choice.variant is None or choice.rendered is None or choice.rendered.empty:
            reason = choice.reason if choice.variant is None else "empty_slot"
            return self._with_image(body, block, slot, reason, inbox)
        rendered = choice.rendered
        body.update(
            served="render",
            reason="render",
            variant=choice.variant.id,
            shown=[
                {"index": s.index, "product_id": s.product_id, "name": s.name, "url": s.url}
                for s in rendered.slots
            ],
        )
        body["image"] = _image_json(_Shown(rendered.data, rendered.content_type), inbox)
        return body

    def _with_image(
        self, body: dict[str, Any], block: CompiledBlock, slot: int | None, reason: str, inbox: str
    ) -> dict[str, Any]:
        data, content_type = self.content.fallback_image(block, slot)
        body["reason"] = reason
        body["image"] = _image_json(_Shown(data, content_type), inbox)
        return body

    # -- everyone -----------------------------------------------------------------------------
    def simulate(
        self,
        block_id: str,
        *,
        sample: int | None = None,
        at: datetime | None = None,
        inbox: Inbox = "normal",
        seed: int = 0,
        examples: int = 3,
    ) -> dict[str, Any]:
        block = self.content.blocks.get(block_id)
        limit = self.content.settings.content_simulate_max
        if sample is not None and sample > limit:
            raise TidingsError(
                "sample_too_large", f"a simulation walks at most {limit} profiles", "sample"
            )
        started = time.perf_counter()
        now = self._moment(at)
        fetch = self._fetch(inbox)
        people = self.content.views.profiles.sample(sample if sample is not None else limit, seed)
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        found: dict[str, list[str]] = {}
        rules_ms = 0.0
        keep = max(0, min(examples, MAX_EXAMPLES))
        for profile_id, recipient, state in people:
            outcome = "fallback"
            if fetch.machine and block.spec.machine_opens == "fallback":
                reasons["machine_open"] += 1
            else:
                view = ProfileView(profile_id, RenderProfile.from_state(state), state)
                who = Recipient(recipient, recipient_key(recipient))
                opening = _Open(block, who, "", None, 0, INBOXES[inbox][0], None, fetch)
                choice = self.content.choose(block, view, opening.context(now, view), draw=False)
                rules_ms += choice.waterfall.rules_ms
                if choice.variant is not None:
                    outcome = choice.variant.id
                else:
                    reasons[choice.reason] += 1
            counts[outcome] += 1
            if len(found.setdefault(outcome, [])) < keep:
                found[outcome].append(recipient)
        total = len(people)

        def share(n: int) -> float:
            return round(n / total, 4) if total else 0.0

        return {
            "block_id": block.id,
            "block_version": block.version,
            "at": iso(now),
            "inbox": inbox,
            "profiles": total,
            "sampled": sample is not None and total >= sample,
            "variants": [
                {
                    "id": v.id,
                    "rule": describe(v.rule),
                    "count": counts[v.id],
                    "share": share(counts[v.id]),
                    "examples": found.get(v.id, []),
                }
                for v in block.variants
            ],
            "fallback": {
                "count": counts["fallback"],
                "share": share(counts["fallback"]),
                "examples": found.get("fallback", []),
                "reasons": dict(reasons),
            },
            "rules_ms_per_profile": round(rules_ms / total, 4) if total else 0.0,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
        }


def _image_json(shown: _Shown, inbox: str) -> dict[str, Any]:
    """The image as the inbox shows it: Outlook, only an animated GIF's first frame."""
    data, content_type = shown.data, shown.content_type
    with Image.open(io.BytesIO(data)) as image:
        frames = getattr(image, "n_frames", 1)
        size = image.size
        if inbox == "outlook" and frames > 1:
            image.seek(0)
            out = io.BytesIO()
            image.convert("RGBA").save(out, "PNG")
            data, content_type = out.getvalue(), "image/png"
    return {
        "content_type": content_type,
        "width": size[0],
        "height": size[1],
        "frames": frames,
        "shown_frames": 1 if inbox == "outlook" else frames,
        "bytes": len(data),
        "data_url": f"data:{content_type};base64,{base64.b64encode(data).decode()}",
    }
