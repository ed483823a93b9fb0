"""The demo email: what an ESP would send, with tidings' open-time blocks and tracked links.

``/demo/email?u=…`` is the email one recipient receives: each block is an ``<img>`` of
``/i/{block}.png?u=…`` inside a link to ``/c/{block}?u=…``, every other link is wrapped in a
signed tracking link and the open pixel is added (the tracking context's ``wrap``), exactly as
``POST /v1/emails/wrap`` would do it for a real send. ``/demo/email`` shows it for the three
sample shoppers side by side. What the demo holds comes from ``data_dir/demo-seeded.json``
(:mod:`.seed`), written by ``tidings demo``.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from tidings.core.errors import NotFound, TidingsError
from tidings.core.settings import Settings
from tidings.simulate.catalog import SHOP_URL
from tidings.tracking.service import TrackingService
from tidings.tracking.wrap import Recipient, WrapOptions

from .seed import DemoSeed, load_seed, marker_path

SUBJECT: Final = "Your winter picks are here"
CAMPAIGN_ID: Final = "demo-winter"
ROLES: Final = {"cart": "Left a cart", "browsed": "Browsed lately", "bought": "Bought before"}
BLOCK_TEXT: Final = {
    "headline": ("A note for you", None),
    "picks": (
        "Products picked for you",
        "Free returns for 60 days on everything above. Our winter sale ends soon:",
    ),
    "countdown": ("The winter sale ends soon", None),
}


@dataclass(frozen=True, slots=True)
class _Marker:
    mtime: float
    seed: DemoSeed | None


class DemoEmails:
    def __init__(self, settings: Settings, tracking: TrackingService) -> None:
        self.settings = settings
        self.tracking = tracking
        self._env = Environment(
            loader=PackageLoader("tidings.demo", "templates"),
            autoescape=select_autoescape(["html"]),
        )
        self._marker: _Marker | None = None

    def seed(self) -> DemoSeed:
        """The seeded demo (re-read when ``tidings demo`` rewrites it); 404 before."""
        path = marker_path(Path(self.settings.data_dir))
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0
        if self._marker is None or self._marker.mtime != mtime:
            self._marker = _Marker(mtime, load_seed(Path(self.settings.data_dir)))
        if self._marker.seed is None or not self._marker.seed.blocks:
            raise NotFound(
                "no_demo", "the demo is not seeded here: run `tidings demo` (make run does)", None
            )
        return self._marker.seed

    def email(self, u: str, base_url: str) -> str:
        """The email ``u`` receives, links wrapped and the pixel added."""
        seed = self.seed()
        u = u.strip()
        if not 0 < len(u) <= 320:
            raise TidingsError("invalid_recipient", "u must be 1 to 320 characters", "u")
        base = (self.settings.public_url or base_url).rstrip("/")
        q = quote(u, safe="@")
        blocks = []
        for role in ("headline", "picks", "countdown"):
            block_id = seed.blocks.get(role)
            if block_id is None:
                continue
            alt, after = BLOCK_TEXT[role]
            blocks.append(
                {
                    "image": f"{base}/i/{block_id}.png?u={q}&s={CAMPAIGN_ID}",
                    "click": f"{base}/c/{block_id}?u={q}&s={CAMPAIGN_ID}",
                    "alt": alt,
                    "after": after,
                }
            )
        html = self._env.get_template("email.html").render(
            subject=SUBJECT,
            preheader="New this week, and a few things you looked at.",
            blocks=blocks,
            shop_url=SHOP_URL,
        )
        options = WrapOptions(
            campaign_id=CAMPAIGN_ID,
            esp="generic",
            campaign_name="Winter sale (demo)",
            email_id=f"{CAMPAIGN_ID}-1",
            email_subject=SUBJECT,
        )
        return self.tracking.wrap(html, options, base, Recipient(value=u)).html

    def three_up(self, base_url: str) -> str:
        """The three sample shoppers' emails side by side."""
        seed = self.seed()
        recipients = [(ROLES.get(role, role), email) for role, email in seed.recipients.items()]
        curl = ""
        if "browsed" in seed.user_ids:
            event = {
                "userId": seed.user_ids["browsed"],
                "event": "Product Added",
                "properties": {
                    "product_id": "prod-00007",
                    "url": f"{SHOP_URL}/p/demo",
                    "price": 49,
                    "quantity": 1,
                },
            }
            base = (self.settings.public_url or base_url).rstrip("/")
            curl = (
                f"curl -u \"$WRITE_KEY:\" {base}/v1/track -H 'Content-Type: application/json' "
                f"-d {shlex.quote(json.dumps(event))}"
            )
        return self._env.get_template("emails.html").render(recipients=recipients, curl=curl)
