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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from tidings.catalog.service import CatalogService
from tidings.catalog.store import CatalogStore
from tidings.core.clock import Clock
from tidings.core.db import Database
from tidings.simulate import generate_catalog, simulate
from tidings.simulate.catalog import CatalogProduct
from tidings.simulate.send import send_direct

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
    sample_recipients: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def marker_path(data_dir: Path) -> Path:
    return Path(data_dir) / MARKER


def read_seed(data_dir: Path, source_id: str) -> DemoSeed | None:
    """The recorded seed of this demo source, or ``None`` when it has not been seeded."""
    path = marker_path(data_dir)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("source_id") != source_id:
        return None
    try:
        return DemoSeed(**data)
    except TypeError:
        return None


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
    recipients = _sample_recipients(sim.ground_truth, clock.now())
    return DemoSeed(
        source_id=source_id,
        base_url=base_url,
        products=len(products),
        events=result.stored or 0,
        shoppers=shoppers,
        sample_recipients=recipients,
    )


def _sample_recipients(truth: Any, now: datetime) -> list[str]:
    """Three signed-up shoppers whose emails show different content: one with a cart, one who
    browsed, one who bought (the ground truth says who did what)."""
    chosen: list[str] = []
    people = [p for p in truth if getattr(p, "email", None)]
    people.sort(key=lambda p: str(p.email))
    for want in ("cart", "browsed", "bought"):
        for person in people:
            if person.email in chosen:
                continue
            if want == "cart" and getattr(person, "abandoned_cart", False):
                chosen.append(person.email)
                break
            if (
                want == "browsed"
                and not person.converted
                and not getattr(person, "abandoned_cart", False)
            ):
                chosen.append(person.email)
                break
            if want == "bought" and person.converted:
                chosen.append(person.email)
                break
    for person in people:  # fewer kinds than three: fill with anyone signed up
        if len(chosen) >= 3:
            break
        if person.email not in chosen:
            chosen.append(person.email)
    return chosen[:3]
