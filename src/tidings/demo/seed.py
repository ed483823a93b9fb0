"""Seed the demo shop once: a catalog, simulated shoppers, content blocks and a campaign.

``tidings demo`` (and so ``make run``) calls :func:`seed_demo`. It is idempotent: what was
seeded is recorded in ``data_dir/demo-seeded.json`` together with the demo source, and a
second run with the same database does nothing; delete the database and the file to start
over. The shoppers' events go into the events log through the collection layer (as
``tidings simulate --via direct`` does), so the pipeline builds their profiles when the server
starts, exactly as it does for real traffic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from tidings.campaigns.schemas import CampaignIn
from tidings.catalog.service import CatalogService
from tidings.catalog.store import CatalogStore
from tidings.content.schemas import BlockIn
from tidings.core.clock import Clock
from tidings.core.db import Database
from tidings.profiles.state import ProfileState
from tidings.simulate import generate_catalog, simulate
from tidings.simulate.catalog import SHOP_URL, CatalogProduct
from tidings.simulate.send import send_direct

from .pictures import Pictures

if TYPE_CHECKING:
    from tidings.core.deps import Container

SEED: Final = 1
SHOPPERS: Final = 2000
DAYS: Final = 30
PRODUCTS: Final = 240
MARKER: Final = "demo-seeded.json"


@dataclass
class DemoSeed:
    """What the demo holds, as recorded in the marker file."""

    source_id: str
    base_url: str
    products: int = 0
    events: int = 0
    shoppers: int = 0
    recipients: dict[str, str] = field(default_factory=dict)  # role → email
    blocks: dict[str, str] = field(default_factory=dict)  # role → block id
    user_ids: dict[str, str] = field(default_factory=dict)  # role → the shopper's userId
    campaign: str | None = None  # the sample campaign's id


def marker_path(data_dir: Path) -> Path:
    return Path(data_dir) / MARKER


def load_seed(data_dir: Path) -> DemoSeed | None:
    """The recorded seed, or ``None`` when there is none (or it cannot be read)."""
    try:
        data = json.loads(marker_path(data_dir).read_text())
        return DemoSeed(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def read_seed(data_dir: Path, source_id: str) -> DemoSeed | None:
    """The recorded seed of this demo source, or ``None`` when it has not been seeded."""
    seed = load_seed(data_dir)
    return seed if seed is not None and seed.source_id == source_id else None


def write_seed(data_dir: Path, seed: DemoSeed) -> None:
    path = marker_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(seed), fh, indent=2)
    os.replace(tmp, path)


def catalog_feed(products: list[CatalogProduct]) -> bytes:
    """The simulated catalog as a JSON feed, as a shop would upload it."""
    return orjson.dumps(
        [
            {
                "id": p.product_id,
                "sku": p.sku,
                "title": p.name,
                "brand": p.brand,
                "category": p.category,
                "price": p.price,
                "sale_price": p.sale_price,
                "currency": p.currency,
                "link": p.url,
                "image_link": p.image_url,
                "in_stock": p.in_stock,
            }
            for p in products
        ]
    )


def demo_blocks(now: datetime, shop_url: str = SHOP_URL) -> dict[str, dict[str, Any]]:
    """The demo's content blocks (as the blocks API takes them), by role."""
    grid = {"columns": 3, "rows": 1, "width": 600, "title": None}
    deadline = (now + timedelta(days=5)).replace(hour=23, minute=59, second=0, microsecond=0)
    return {
        "headline": {
            "name": "Demo: headline",
            "variants": [
                {
                    "id": "cart",
                    "rule": {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0},
                    "creative": {
                        "app": "text",
                        "config": {
                            "template": "Still thinking about it, "
                            "{{ first_name | default('there') }}?",
                            "style": {"height": 70},
                        },
                    },
                },
                {
                    "id": "everyone",
                    "creative": {
                        "app": "text",
                        "config": {
                            "template": "Picked for you, {{ first_name | default('friend') }}",
                            "style": {"height": 70},
                        },
                    },
                },
            ],
            "fallback": {"kind": "collapse"},
        },
        "picks": {
            "name": "Demo: picked for you (waterfall)",
            "variants": [
                {
                    "id": "cart",
                    "rule": {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0},
                    "creative": {"app": "cart_items", "config": {"layout": grid}},
                },
                {
                    "id": "viewed",
                    "rule": {"type": "event", "event": "Product Viewed", "within": "14d"},
                    "creative": {"app": "recently_viewed", "config": {"layout": grid}},
                },
                {
                    "id": "bestsellers",
                    "creative": {
                        "app": "recommended",
                        "config": {"layout": grid, "bestsellers_fallback": True},
                    },
                },
            ],
            "fallback": {"kind": "collapse", "link_url": f"{shop_url}/"},
            "utm": {"campaign": "demo-winter"},
        },
        "countdown": {
            "name": "Demo: sale countdown",
            "variants": [
                {
                    "id": "countdown",
                    "creative": {
                        "app": "countdown",
                        "config": {
                            "deadline": deadline.replace(tzinfo=None).isoformat(),
                            "url": f"{shop_url}/sale",
                            "style": {"height": 120, "background": "#1f2a44"},
                        },
                    },
                }
            ],
            "fallback": {"kind": "collapse", "link_url": f"{shop_url}/sale"},
        },
    }


CAMPAIGN_HTML: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your winter picks are here</title></head>
<body style="margin:0;background:#f4f1ec;font-family:Helvetica,Arial,sans-serif;color:#222">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0"><tr><td align="center">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" style="background:#fff">
<tr><td style="padding:28px 24px 12px;text-align:center;letter-spacing:.25em;color:#1f2a44">
NORTHWIND &amp; CO.</td></tr>
<tr><td>{{{{ block('{headline}', alt='A note for you') }}}}</td></tr>
<tr><td>{{{{ block('{picks}', alt='Picked for you') }}}}</td></tr>
<tr><td style="padding:20px 24px 8px">Our winter sale ends soon:</td></tr>
<tr><td>{{{{ block('{countdown}', alt='The winter sale ends soon') }}}}</td></tr>
<tr><td align="center" style="padding:24px"><a href="{shop}/sale?src=email"
style="background:#1f2a44;color:#fff;padding:13px 30px;text-decoration:none">Shop the sale</a>
</td></tr>
<tr><td style="padding:20px;font-size:12px;color:#888;text-align:center">
<a href="{{{{ unsubscribe_url }}}}" style="color:#888">Unsubscribe</a></td></tr>
</table></td></tr></table></body></html>
"""


def demo_campaign(blocks: dict[str, str], recipients: Iterable[str]) -> dict[str, Any]:
    """The sample campaign (as the campaigns API takes it): the demo email to the three
    sample shoppers, its blocks inserted with ``block()``."""
    return {
        "name": "Winter sale (demo)",
        "subject": "Your winter picks are here, {{ first_name | default('friend') }}",
        "html": CAMPAIGN_HTML.format(shop=SHOP_URL, **blocks),
        "recipients": {"emails": list(recipients)},
    }


def seed_shop(
    database: Database,
    database_url: str,
    source_id: str,
    base_url: str,
    clock: Clock,
    *,
    shoppers: int = SHOPPERS,
    days: int = DAYS,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> DemoSeed:
    """Import the demo catalog and store the simulated shoppers' events for ``source_id``."""
    products = generate_catalog(SEED, PRODUCTS, base_url=base_url)
    catalog = CatalogService(database, CatalogStore(database.engine), clock)
    summary = catalog.write(catalog.parse(catalog_feed(products), "json"))
    say(f"catalog: {summary.inserted + summary.updated} products")
    today = clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=days - 1)
    sim = simulate(SEED, shoppers, days, start, products)
    result = send_direct(sim, database_url, source_id, progress=progress)
    say(f"shoppers: {shoppers:,} over {days} days, {result.stored or 0:,} events")
    return DemoSeed(
        source_id=source_id,
        base_url=base_url,
        products=len(products),
        events=result.stored or 0,
        shoppers=shoppers,
    )


def seed_demo(
    container: Container,
    source_id: str,
    base_url: str,
    *,
    drain: Callable[[], int],
    shoppers: int = SHOPPERS,
    progress: bool = False,
    say: Callable[[str], None] = lambda _: None,
) -> DemoSeed:
    """The whole demo, once: the shop (catalog and shoppers), their profiles (``drain``
    applies the log), the pictures drawn into the image cache, the blocks and the three sample
    recipients; recorded in the marker file."""
    settings = container.settings
    seed = seed_shop(
        container.db,
        settings.database_url,
        source_id,
        base_url,
        container.clock,
        shoppers=shoppers,
        progress=progress,
        say=say,
    )
    applied = drain()
    say(f"profiles built from {applied:,} events")
    pictures = Pictures(container.content.caches.fonts)
    for product in generate_catalog(SEED, PRODUCTS, base_url=base_url):
        png = pictures.get(product.product_id, product.name, product.category)
        container.images.store_original(product.image_url, png)
    for role, body in demo_blocks(container.clock.now()).items():
        block = container.content.blocks.create(BlockIn.model_validate(body))
        seed.blocks[role] = block.id
    now_ms = int(container.clock.now().timestamp() * 1000)
    seed.recipients = sample_recipients(container.profiles.sample(None), now_ms)
    for role, email in seed.recipients.items():
        ref = container.profiles.resolve(f"email:{email}")
        for identifier in ref.identifiers:
            if identifier.type == "user_id":
                seed.user_ids[role] = identifier.value
    campaign = demo_campaign(seed.blocks, seed.recipients.values())
    seed.campaign = container.campaigns.create(CampaignIn.model_validate(campaign))["id"]
    write_seed(Path(settings.data_dir), seed)
    return seed


def sample_recipients(
    people: Iterable[tuple[str, str, ProfileState]], now_ms: int
) -> dict[str, str]:
    """Three shoppers whose emails show different things: one with a cart, one who browsed in
    the last week without buying, one who bought; by role (``cart``, ``browsed``, ``bought``)."""
    found: dict[str, str] = {}
    week_ago = now_ms - 7 * 86_400_000
    for _, recipient, state in people:
        if "@" not in recipient:
            continue
        cart = state.cart()["quantity"] > 0
        viewed = state.recently_viewed(1)
        lately = bool(viewed) and int(viewed[0].get("viewed_at_ms") or 0) >= week_ago
        if cart and state.order_count == 0:
            found.setdefault("cart", recipient)
        elif not cart and state.order_count == 0 and lately:
            found.setdefault("browsed", recipient)
        elif not cart and state.order_count > 0:
            found.setdefault("bought", recipient)
        if len(found) == 3:
            break
    return {role: found[role] for role in ("cart", "browsed", "bought") if role in found}
