"""Shoppers who behave like real ones, as the Segment messages a shop would send about them.

:func:`simulate` is pure and deterministic: the same seed, shoppers, days, start and catalog
give the same messages (messageIds included: ``sim-<seed>-<n>``, ``n`` counting emitted
events), in timestamp order, streamed one at a time.

**How a shopper behaves.** Each person arrives at a random moment of the window, in their
local evening more often than at night, and comes back after an exponential gap (a few days
on average); after each visit they churn with a personal probability, so the number of visits
is geometric. A visit (session) lands on the home page, a category or a product (the product
page and ``Product Viewed``); some visits bounce. Product choice mixes the person's favourite
categories with the shop's Zipf-skewed popularity. Viewed products are added to the cart (rarely
removed), a cart is viewed, checked out and completed or abandoned; the cart survives to later
visits. Anonymous visitors sign up (``identify`` with userId and traits email, names, sometimes
``timezone``) or identify at checkout; a quarter of people also use a second device, which is
anonymous until they log in there, so one person has two anonymousIds joined by one userId.
Buyers become more likely to buy again.

**Email.** Identified, subscribed people get a weekly campaign and abandoned-cart reminders
from the email service provider (``Email Delivered``, server side). People whose mail is read
through Apple Mail Privacy Protection produce an ``Email Opened`` seconds after delivery from
Apple's proxy (``context.userAgent`` ``Mozilla/5.0``, an address in Apple's 17.0.0.0/8) whether
or not they read it; real opens come hours later from the person's mail client; some are
clicked (``Email Link Clicked``) and start a visit on the shop (``context.campaign``, and the
link's ``ajs_uid`` identifies a device that was still anonymous) that often ends in an order.

**Imperfect data.** A share of product events (``messy_rate``, 2 % by default) is sent the way
careless real sites do: the price as a string (``"$19.99"``), ``sku`` without ``product_id``,
or no ``url``, so that downstream normalisation and validation flags have work to do.

**Streaming.** Behaviour is computed action by action in time order (visits, deliveries,
opens, campaigns; kept in a calendar of one list per minute); each action only creates events
at or after its own time and only plans actions after it, so events waiting in a heap can be
released as soon as the next action starts later than them. Memory is the people's state plus
the events of the visits in progress. About 100,000 events/s on one core of a small VM.
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from heapq import heapify, heappop, heappush
from math import exp, log
from typing import Any, NamedTuple

from tidings.core.clock import iso

from .catalog import CATEGORIES, SHOP_URL, CatalogProduct
from .truth import GroundTruth, PersonTruth

SHOP_URL_LEN = len(SHOP_URL)

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

FIRST_NAMES = (
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Radia", "Linus",
    "Frances", "John", "Katherine", "Dennis", "Hedy", "Tim", "Sophie", "Guido", "Annie", "Niklaus",
    "Mary", "James", "Olivia", "Noah", "Emma", "Liam", "Ava", "Lucas", "Mia", "Ethan",
    "Zoe", "Mateo", "Priya", "Arjun", "Mei", "Hiro", "Fatima", "Omar", "Ines", "Tomas",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson",
    "Perlman", "Torvalds", "Allen", "Backus", "Johnson", "Ritchie", "Lamarr", "Berners-Lee",
    "Wilson", "van Rossum", "Easley", "Wirth", "Garcia", "Nguyen", "Smith", "Okafor", "Kowalski",
    "Rossi", "Novak", "Silva", "Tanaka", "Haddad", "Patel", "Kim", "Larsen", "Moreau", "Jensen",
)  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example")

# (IANA zone, standard UTC offset in hours, share of shoppers). Offsets ignore DST: the
# simulator only needs people to shop in their own evenings.
TIMEZONES = (
    ("America/New_York", -5, 0.34),
    ("America/Chicago", -6, 0.18),
    ("America/Denver", -7, 0.07),
    ("America/Los_Angeles", -8, 0.21),
    ("Europe/London", 0, 0.08),
    ("Europe/Berlin", 1, 0.06),
    ("Australia/Sydney", 10, 0.06),
)
# How busy each local hour of the day is (evenings peak), for visits and real email opens.
LOCAL_HOUR_WEIGHTS = (
    1, 1, 0.5, 0.3, 0.3, 0.5, 1.5, 3, 4, 4, 4, 4.5, 5, 4.5, 4, 4, 4.5, 5, 6, 7.5, 8, 7.5, 5, 2.5,
)  # fmt: skip

HOUR_TABLE_SIZE = 1024
# Devices: (kind, browser user agent, mail client user agent, share).
DEVICES = (
    (
        "desktop",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
        0.30,
    ),
    (
        "desktop",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        0.15,
    ),
    (
        "mobile",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        0.35,
    ),
    (
        "mobile",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Version/4.0 Chrome/124.0.0.0 Mobile Safari/537.36",
        0.20,
    ),
)
# The version (4) and variant (RFC 4122) bits of a random UUID.
_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)
TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")
# What Apple's Mail Privacy Protection proxy sends when it prefetches an email's images.
APPLE_PROXY_USER_AGENT = "Mozilla/5.0"
ANALYTICS_JS = "analytics-next"
ANALYTICS_JS_VERSION = "1.84.3"
ESP_LIBRARY = "esp-webhooks"

CAMPAIGN_SUBJECTS = (
    "New in: {category} we think you'll love",
    "Your weekend edit: {category}",
    "Up to 40% off {category}",
    "Back in stock: {category} favourites",
    "The {category} everyone is buying",
)
SEARCH_REFERRERS = ("https://www.google.com/", "https://duckduckgo.com/", "https://www.bing.com/")

# Kinds of scheduled actions.
_VISIT, _DELIVER, _OPEN, _CAMPAIGN = 0, 1, 2, 3


@dataclass(frozen=True, slots=True)
class ShopperModel:
    """The behaviour's knobs; the defaults give about ten events per shopper per month.

    Probabilities are per visit unless said otherwise; a person's own purchase intent and
    engagement scale them.
    """

    bounce_rate: float = 0.4
    mean_product_views: float = 1.8
    add_to_cart: float = 0.16  # per product view
    remove_from_cart: float = 0.1  # per visit with a cart
    view_cart: float = 0.55  # per visit with a cart
    checkout: float = 0.38  # per visit with a cart
    complete_checkout: float = 0.65  # per checkout started
    search: float = 0.15
    sign_up: float = 0.10  # per visit of an anonymous visitor who did not bounce
    log_in: float = 0.45  # per visit of a known person on a device not yet identified
    mean_churn: float = 0.32  # mean of the per-person churn probability after each visit
    mean_return_days: float = 4.0
    second_device_share: float = 0.25
    second_device_visit: float = 0.4
    subscribed_share: float = 0.85
    apple_mail_share: float = 0.45
    open_rate: float = 0.3  # real opens, per delivered email
    click_rate: float = 0.22  # per real open
    link_identifies: float = 0.6  # share of clicked links that carry ajs_uid
    campaign_every_days: int = 7
    abandoned_cart_email: float = 0.8  # per abandoned cart of a subscribed person
    timezone_trait: float = 0.4
    messy_rate: float = 0.02


class SimEvent(NamedTuple):
    """One simulated Segment message and the true person behind it.

    ``message`` is the dict a Segment library would send (type, event/name, properties or
    traits, userId and/or anonymousId, context, timestamp as ISO 8601 UTC with a ``Z``,
    messageId). It is the receiver's to change at the top level (the collection layer adds
    ``receivedAt``); its nested dicts may be shared with other messages of the same page view
    (``context``) and must be replaced, not changed. ``timestamp_ms`` is the timestamp as epoch
    milliseconds; ``seq`` the order in which events were made, which breaks ties: a stream is
    sorted by ``(timestamp_ms, seq)``. A named tuple, not a dataclass: a million of them are
    made per benchmark run, and each is also the entry of the heap that orders them.
    """

    timestamp_ms: int
    seq: int
    message: dict[str, Any]
    person_id: str


_new_tuple = tuple.__new__  # SimEvent(...) without the Python-level __new__ of a NamedTuple


class _Device:
    __slots__ = ("anonymous_id", "identified", "ip", "kind", "mail_agent", "user_agent")

    def __init__(self, rng: random.Random, device: tuple[str, str, str, float]) -> None:
        # A random (version 4) UUID, as analytics.js makes anonymousIds, from the run's seed:
        # what str(uuid.UUID(int=bits, version=4)) gives, three times faster.
        bits = rng.getrandbits(128) & _UUID_CLEAR | _UUID_SET
        h = f"{bits:032x}"
        self.anonymous_id = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        self.kind, self.user_agent, self.mail_agent, _ = device
        # Documentation address ranges (RFC 5737): realistic shape, nobody's real address.
        number = int(rng.random() * 3 * 254)
        self.ip = f"{TEST_NETS[number // 254]}.{number % 254 + 1}"
        self.identified = False


@dataclass(slots=True, eq=False)
class _Person:
    """One shopper's traits (fixed at birth) and state (changing as they shop)."""

    person_id: str
    first_name: str
    last_name: str
    email: str
    user_id: str
    timezone: str
    offset_h: int  # standard UTC offset of the timezone
    share_timezone: bool  # whether their identify calls carry the timezone trait
    favorites: tuple[str, ...]  # categories
    intent: float  # purchase intent, around 1
    engagement: float  # how much they browse and read, around 1
    churn: float  # probability of never returning after a visit
    return_days: float  # mean days between visits
    multi_device: bool
    subscribed: bool
    apple_mail: bool
    devices: list[_Device] = field(default_factory=list)
    cart: list[list[Any]] = field(default_factory=list)  # [product, quantity]
    cart_id: str = ""
    reminded: str = ""  # the cart id an abandoned-cart email was planned for
    known: bool = False  # signed up or identified at checkout
    churned: bool = False
    orders: int = 0


class _Email(NamedTuple):
    email_id: str
    campaign_id: str
    campaign_name: str
    subject: str
    link_url: str
    landing: CatalogProduct | None  # the product a click lands on
    category: str | None  # else the category page it lands on; neither: the cart


def _cumulative(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


class _Shop:
    """The catalog as sampling tables: popularity-weighted products, overall and by category."""

    def __init__(self, catalog: Sequence[CatalogProduct], rng: random.Random) -> None:
        if not catalog:
            raise ValueError("the catalog is empty")
        self.products = list(catalog)
        self.categories = sorted({p.category for p in catalog})
        weights = [p.popularity for p in self.products]
        self.table = rng.choices(self.products, weights, k=4096)
        self.by_category: dict[str, list[CatalogProduct]] = {}
        for category in self.categories:
            members = [p for p in self.products if p.category == category]
            self.by_category[category] = rng.choices(
                members, [p.popularity for p in members], k=1024
            )
        self.category_urls = {c: f"{SHOP_URL}/c/{c.lower()}" for c in self.categories}
        self.properties = {p.product_id: p.segment_properties() for p in self.products}


class _Engine:
    """The state of one run: people, the calendar of actions, the heap of events not yet
    released. Used through :class:`Simulation`."""

    def __init__(
        self,
        seed: int,
        shoppers: int,
        days: int,
        start: datetime,
        catalog: Sequence[CatalogProduct],
        model: ShopperModel,
    ) -> None:
        if shoppers < 0 or days < 1:
            raise ValueError("shoppers must be >= 0 and days >= 1")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.seed = seed
        self.days = days
        self.model = model
        self.start_ms = int(start.timestamp() * 1000)
        self.end_ms = self.start_ms + days * DAY
        self.start_iso = iso(start.astimezone(UTC))
        self.rng = rng = random.Random(f"tidings-simulate-{seed}")
        self.random = rng.random
        # Shared by the messages of the run: nested dicts of messages are read-only.
        self.library = {"name": ANALYTICS_JS, "version": ANALYTICS_JS_VERSION}
        self.run_tag = f"{rng.getrandbits(24):06x}"
        self.shop = _Shop(catalog, rng)
        # Scheduled actions in a calendar queue: a list per minute, made a heap when its minute
        # comes. (One heap of every person's next visit made each pop cost 17 levels of cache
        # misses at 100,000 people.) Actions run in (time, scheduling order) order either way.
        self.calendar: dict[int, list[tuple[int, int, int, Any, Any]]] = {}
        self.today: list[tuple[int, int, int, Any, Any]] = []  # the current minute's heap
        self.minute = -1 << 62  # the current minute (none before the run)
        self.pending: list[SimEvent] = []  # made, not yet released: a heap
        self.tick = itertools.count(1).__next__  # tie-breaker of both heaps: arrival order
        self.emitted = 0
        self.checkouts = 0
        self.emails = 0
        self.hour_table = _quantiles(LOCAL_HOUR_WEIGHTS, HOUR_TABLE_SIZE)
        self._zones = _cumulative([z[2] for z in TIMEZONES])
        self._devices = _cumulative([d[3] for d in DEVICES])
        self.people = [self._person(i) for i in range(shoppers)]
        window = days * DAY
        for person in self.people:  # everyone's first visit, at a busy hour of theirs
            hour = self.hour_table[int(rng.random() * HOUR_TABLE_SIZE)] - person.offset_h
            local = int(rng.random() * days) * DAY + hour * HOUR + int(rng.random() * HOUR)
            self._schedule(self.start_ms + local % window, _VISIT, person, None)
        first_campaign = self.start_ms + DAY + 15 * HOUR
        for k in range(0, days, max(model.campaign_every_days, 1)):
            at = first_campaign + k * DAY
            if at < self.end_ms:
                self._schedule(at, _CAMPAIGN, None, k // max(model.campaign_every_days, 1))

    # -- people -------------------------------------------------------------------------------
    def _person(self, index: int) -> _Person:
        m, random, gauss = self.model, self.random, self.rng.gauss
        first = FIRST_NAMES[int(random() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(random() * len(LAST_NAMES))]
        domain = EMAIL_DOMAINS[int(random() * len(EMAIL_DOMAINS))]
        local = f"{first}.{last}".lower().replace(" ", "")
        zone, offset_h, _ = TIMEZONES[_pick(self._zones, random())]
        categories = self.shop.categories
        favorite = categories[int(random() * len(categories))]
        second = categories[int(random() * len(categories))]
        # Positional, in _Person's field order (a hundred thousand people per benchmark).
        return _Person(
            f"person-{index}",
            first,
            last,
            f"{local}.{self.run_tag}{index}@{domain}",
            f"cust_{self.run_tag}{index:06d}",
            zone,
            offset_h,
            random() < m.timezone_trait,
            (favorite,) if random() < 0.6 or second == favorite else (favorite, second),
            # Intent and engagement are skewed: most people browse, a few buy a lot.
            min(exp(0.6 * gauss(0.0, 1.0)), 4.0),
            min(exp(0.5 * gauss(0.0, 1.0)), 3.0),
            min(max(m.mean_churn * 2 * random(), 0.02), 0.95),
            m.mean_return_days * exp(0.5 * gauss(0.0, 1.0)),
            random() < m.second_device_share,
            random() < m.subscribed_share,
            random() < m.apple_mail_share,
            [],
            [],
        )

    def _new_device(self, p: _Person, other_than: str | None = None) -> _Device:
        """A device of the person's; ``other_than``: not of this kind (a phone, a laptop)."""
        rng = self.rng
        while True:
            spec = DEVICES[_pick(self._devices, rng.random())]
            if spec[0] != other_than:
                break
        device = _Device(rng, spec)
        p.devices.append(device)
        return device

    def _device_for_visit(self, p: _Person) -> _Device:
        devices = p.devices
        if not devices:
            return self._new_device(p)
        if p.multi_device and self.random() < self.model.second_device_visit:
            if len(devices) == 1:
                return self._new_device(p, other_than=devices[0].kind)
            return devices[1]
        return devices[0]

    # -- time ---------------------------------------------------------------------------------
    def _schedule(self, at: int, kind: int, person: _Person | None, arg: Any) -> None:
        """Run an action at ``at``, which is never before the action running now."""
        minute = at // MINUTE
        item = (at, self.tick(), kind, person, arg)
        if minute == self.minute:
            heappush(self.today, item)
        else:
            planned = self.calendar.get(minute)
            if planned is None:
                self.calendar[minute] = [item]
            else:
                planned.append(item)

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> Iterator[SimEvent]:
        calendar, pending = self.calendar, self.pending
        prefix = f"sim-{self.seed}-"
        # ISO 8601 text from tables ("SS.mmmZ" for every millisecond of a minute, "HH:MM:" for
        # every minute of a day, dates as met): formatting each instant was the costliest step.
        seconds = [f"{s:02d}.{ms:03d}Z" for s in range(60) for ms in range(1000)]
        hours_minutes = [f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60)]
        dates: dict[int, str] = {}
        last_minute, text = None, ""
        visit, deliver, open_, campaign = self._visit, self._deliver, self._open, self._campaign
        n = self.emitted
        # Every action is scheduled before the window's end; the last minute drains the rest.
        first, last = self.start_ms // MINUTE, (self.end_ms - 1) // MINUTE
        for minute in range(first, last + 2):
            today = calendar.pop(minute, None) if minute <= last else []
            if today is None:
                continue
            heapify(today)
            self.today, self.minute = today, minute
            while True:
                # Release the events no later action can precede, then run the next action.
                if today:
                    until, _, kind, person, arg = heappop(today)
                else:
                    kind, until = -1, (minute + 1) * MINUTE - 1 if minute <= last else 1 << 62
                while pending and pending[0][0] <= until:
                    event = heappop(pending)
                    ts, msg = event[0], event[2]
                    minute_of, rest = divmod(ts, MINUTE)
                    if minute_of != last_minute:  # events come in order: a minute at a time
                        last_minute = minute_of
                        day, of_day = divmod(minute_of, 1440)
                        date = dates.get(day)
                        if date is None:
                            date = dates[day] = datetime.fromtimestamp(day * 86400, UTC).strftime(
                                "%Y-%m-%dT"
                            )
                        text = date + hours_minutes[of_day]
                    msg["timestamp"] = text + seconds[rest]
                    msg["messageId"] = f"{prefix}{n}"
                    n += 1
                    yield event
                self.emitted = n
                if kind == _VISIT:
                    visit(person, until, arg)
                elif kind == _DELIVER:
                    deliver(person, until, arg)
                elif kind == _OPEN:
                    open_(person, until, arg)
                elif kind == _CAMPAIGN:
                    campaign(until, arg)
                else:
                    break
        assert not calendar, "an action was scheduled outside the window"

    # -- messages -----------------------------------------------------------------------------
    # Messages of one page view (the page call and the track calls made on that page) share
    # their ``context`` dict, and a page's ``properties`` is its ``context.page``: a million
    # fewer dicts per benchmark. Nested dicts are therefore read-only (Segment's client only
    # sets ``context.library``, to the same value for every message).

    def _page(
        self,
        p: _Person,
        d: _Device,
        at: int,
        name: str,
        url: str,
        title: str,
        referrer: str,
        campaign: dict[str, str] | None,
        category: str | None = None,
        search: str = "",
    ) -> dict[str, Any]:
        """A page view; returns its context for the track calls made on the page."""
        page = {
            "path": url[SHOP_URL_LEN:] or "/",
            "referrer": referrer,
            "search": search,
            "title": title,
            "url": url + search if search else url,
        }
        ctx: dict[str, Any] = {
            "ip": d.ip,
            "userAgent": d.user_agent,
            "locale": "en-US",
            "library": self.library,
            "page": page,
        }
        if campaign is not None:
            ctx["campaign"] = campaign
        props = page if category is None else {**page, "category": category}
        # Every message is made with its timestamp and messageId keys (filled when released):
        # adding them later made each dict resize.
        msg: dict[str, Any]
        if d.identified:
            msg = {
                "type": "page",
                "name": name,
                "properties": props,
                "userId": p.user_id,
                "anonymousId": d.anonymous_id,
                "context": ctx,
                "timestamp": "",
                "messageId": "",
            }
        else:
            msg = {
                "type": "page",
                "name": name,
                "properties": props,
                "anonymousId": d.anonymous_id,
                "context": ctx,
                "timestamp": "",
                "messageId": "",
            }
        if category is not None:
            msg["category"] = category
        heappush(self.pending, _new_tuple(SimEvent, (at, self.tick(), msg, p.person_id)))
        return ctx

    def _track(
        self,
        p: _Person,
        d: _Device,
        at: int,
        event: str,
        properties: dict[str, Any],
        ctx: dict[str, Any],
    ) -> None:
        msg: dict[str, Any]
        if d.identified:
            msg = {
                "type": "track",
                "event": event,
                "properties": properties,
                "userId": p.user_id,
                "anonymousId": d.anonymous_id,
                "context": ctx,
                "timestamp": "",
                "messageId": "",
            }
        else:
            msg = {
                "type": "track",
                "event": event,
                "properties": properties,
                "anonymousId": d.anonymous_id,
                "context": ctx,
                "timestamp": "",
                "messageId": "",
            }
        heappush(self.pending, _new_tuple(SimEvent, (at, self.tick(), msg, p.person_id)))

    def _push(self, at: int, msg: dict[str, Any], p: _Person) -> None:
        heappush(self.pending, _new_tuple(SimEvent, (at, self.tick(), msg, p.person_id)))

    def _product(self, product: CatalogProduct, **extra: Any) -> dict[str, Any]:
        """A product's event properties, now and then as imperfect as real sites send them."""
        base = self.shop.properties[product.product_id]
        random = self.random
        if random() >= self.model.messy_rate:
            return {**base, **extra} if extra else base  # read-only, like every nested dict
        props = {**base, **extra}
        flaw = random()
        if flaw < 0.4:
            props["price"] = f"${product.current_price:.2f}"
        elif flaw < 0.7:
            del props["product_id"]
        else:
            del props["url"]
        return props

    def _identify(
        self, p: _Person, d: _Device, at: int, ctx: dict[str, Any], event: str | None
    ) -> int:
        """``identify`` from device ``d`` (sign-up, log-in, checkout or an email link)."""
        traits: dict[str, Any] = {
            "email": p.email,
            "first_name": p.first_name,
            "last_name": p.last_name,
        }
        if p.share_timezone:
            traits["timezone"] = p.timezone
        first_time = not p.known
        p.known = True
        d.identified = True
        msg: dict[str, Any] = {
            "type": "identify",
            "userId": p.user_id,
            "anonymousId": d.anonymous_id,
            "traits": traits,
            "context": ctx,
            "timestamp": "",
            "messageId": "",
        }
        self._push(at, msg, p)
        if event is not None:
            at += 150
            name = event if event != "Signed Up" or first_time else "Signed In"
            self._track(p, d, at, name, {"method": "email"}, ctx)
        return at

    def _cart_products(self, p: _Person) -> list[dict[str, Any]]:
        return [
            self._product(product, quantity=qty, position=i + 1)
            for i, (product, qty) in enumerate(p.cart)
        ]

    # -- actions ------------------------------------------------------------------------------
    def _pick_product(self, p: _Person) -> CatalogProduct:
        random, shop = self.random, self.shop
        if random() < 0.65:
            table = shop.by_category[p.favorites[int(random() * len(p.favorites))]]
        else:
            table = shop.table
        return table[int(random() * len(table))]

    def _wait(self, least: int, mean: int) -> int:
        """Milliseconds until a shopper's next step: ``least`` plus an exponential wait."""
        return least + int(-mean * log(1.0 - self.random()))

    def _visit(self, p: _Person, at: int, email: _Email | None) -> None:
        """One session on the shop; ``email`` when it starts from a clicked email link."""
        random, m = self.random, self.model
        if email is None:
            d = self._device_for_visit(p)
        else:
            d = p.devices[int(random() * len(p.devices))]
        campaign = None
        search = referrer = ""
        link_identifies = False
        if email is not None:
            campaign = {
                "name": email.campaign_name,
                "source": "email",
                "medium": "email",
                "content": email.email_id,
            }
            search = f"?utm_source=email&utm_medium=email&utm_campaign={email.campaign_id}"
            if not d.identified and random() < m.link_identifies:
                # The ESP's link carries analytics.js's query-string API: it identifies.
                link_identifies = True
                search += f"&ajs_uid={p.user_id}"
        elif random() < 0.6:
            referrer = SEARCH_REFERRERS[int(random() * len(SEARCH_REFERRERS))]
        intent = p.intent * (1.6 if email is not None else 1.0)

        # Landing.
        t = at
        if email is None:
            r = random()
            if r < 0.45:
                ctx = self._page(p, d, t, "Home", f"{SHOP_URL}/", "Shop", referrer, None)
            elif r < 0.7:
                category = p.favorites[0]
                url = self.shop.category_urls[category]
                ctx = self._page(p, d, t, "Category", url, category, referrer, None, category)
            else:
                ctx = self._product_page(p, d, t, self._pick_product(p), referrer, None, "")
        elif email.landing is not None:
            ctx = self._product_page(p, d, t, email.landing, "", campaign, search)
        elif email.category is not None:
            ctx = self._page(
                p, d, t, "Category", email.link_url, email.category, "", campaign,
                email.category, search,
            )  # fmt: skip
        else:
            ctx = self._page(
                p, d, t, "Cart", email.link_url, "Your cart", "", campaign, None, search
            )
        if link_identifies:
            t = self._identify(p, d, t + 300, ctx, None)

        if email is not None or random() >= m.bounce_rate:
            from_cart_email = email is not None and email.landing is None and not email.category
            t = self._browse(p, d, t, ctx, campaign, intent, from_cart_email)
        if p.cart and p.known and p.subscribed and p.reminded != p.cart_id:
            self._maybe_remind(p, t)
        if email is None:
            self._next_visit(p, t)

    def _product_page(
        self,
        p: _Person,
        d: _Device,
        t: int,
        product: CatalogProduct,
        referrer: str,
        campaign: dict[str, str] | None,
        search: str,
    ) -> dict[str, Any]:
        ctx = self._page(
            p, d, t, "Product", product.url, product.name, referrer, campaign, None, search
        )
        at = t + 80 + int(self.random() * 300)
        self._track(p, d, at, "Product Viewed", self._product(product), ctx)
        return ctx

    def _browse(
        self,
        p: _Person,
        d: _Device,
        t: int,
        ctx: dict[str, Any],
        campaign: dict[str, str] | None,
        intent: float,
        from_cart_email: bool,
    ) -> int:
        """Product views, cart, sign-up and checkout after the landing page; returns the end."""
        random, m, wait, track = self.random, self.model, self._wait, self._track
        if random() < m.search:
            t += wait(4000, 15000)
            query = CATEGORIES[int(random() * len(CATEGORIES))].nouns[0].lower()
            track(p, d, t, "Products Searched", {"query": query}, ctx)
        views = int(-m.mean_product_views * log(1.0 - random()) * min(p.engagement, 2.0))
        add_p = min(m.add_to_cart * intent, 0.9)
        for _ in range(views):
            t += wait(2000, 35000)
            product = self._pick_product(p)
            ctx = self._product_page(p, d, t, product, ctx["page"]["url"], campaign, "")
            t += 500
            if product.in_stock and random() < add_p:
                t += wait(3000, 12000)
                qty = 1 if random() < 0.85 else 2
                self._add(p, product, qty)
                props = self._product(product, quantity=qty, cart_id=p.cart_id)
                track(p, d, t, "Product Added", props, ctx)
        if not d.identified:
            if p.known and random() < m.log_in:
                t = self._identify(p, d, t + 5000, ctx, "Signed In")
            elif not p.known and random() < m.sign_up:
                t = self._identify(p, d, t + 20000, ctx, "Signed Up")
        if p.cart and random() < m.remove_from_cart:
            product, qty = p.cart.pop(int(random() * len(p.cart)))
            t += wait(4000, 10000)
            props = self._product(product, quantity=qty, cart_id=p.cart_id)
            track(p, d, t, "Product Removed", props, ctx)
        if not p.cart:
            return t
        cart_url = f"{SHOP_URL}/cart"
        if from_cart_email or random() < m.view_cart:
            t += wait(3000, 8000)
            if not from_cart_email:
                referrer = ctx["page"]["url"]
                ctx = self._page(p, d, t, "Cart", cart_url, "Your cart", referrer, campaign)
            props = {"cart_id": p.cart_id, "products": self._cart_products(p)}
            track(p, d, t + 200, "Cart Viewed", props, ctx)
        if random() >= min(m.checkout * intent * (1.5 if from_cart_email else 1.0), 0.95):
            return t
        t += wait(5000, 20000)
        checkout_url = f"{SHOP_URL}/checkout"
        ctx = self._page(p, d, t, "Checkout", checkout_url, "Checkout", cart_url, campaign)
        if not d.identified:  # checkout asks for an email: a sign-up or a log-in
            t = self._identify(p, d, t + 15000, ctx, "Signed Up")
        self.checkouts += 1
        order_id = f"ord-{self.run_tag}-{self.checkouts}"
        products = self._cart_products(p)
        subtotal = round(sum(pr.current_price * qty for pr, qty in p.cart), 2)
        props = {
            "order_id": order_id,
            "value": subtotal,
            "revenue": subtotal,
            "currency": "USD",
            "products": products,
        }
        track(p, d, t + 300, "Checkout Started", props, ctx)
        if random() >= min(m.complete_checkout * (0.8 + 0.2 * intent), 0.97):
            return t + 300
        t += wait(30000, 60000)
        discount = round(subtotal * 0.1, 2) if p.orders == 0 and random() < 0.3 else 0.0
        revenue = round(subtotal - discount, 2)
        shipping = 0.0 if revenue >= 75 else 6.95
        tax = round(revenue * 0.08, 2)
        props = {
            "order_id": order_id,
            "checkout_id": f"chk-{self.run_tag}-{self.checkouts}",
            "total": round(revenue + shipping + tax, 2),
            "subtotal": subtotal,
            "revenue": revenue,
            "shipping": shipping,
            "tax": tax,
            "discount": discount,
            "currency": "USD",
            "products": [dict(x) for x in products],
        }
        if discount:
            props["coupon"] = "WELCOME10"
        ctx = self._page(
            p, d, t, "Order Confirmation", f"{SHOP_URL}/checkout/thanks", "Thank you",
            checkout_url, campaign,
        )  # fmt: skip
        track(p, d, t + 250, "Order Completed", props, ctx)
        p.orders += 1
        p.cart = []
        p.cart_id = ""
        p.intent = min(p.intent * 1.3, 4.0)  # buyers come back to buy
        return t + 250

    def _add(self, p: _Person, product: CatalogProduct, qty: int) -> None:
        if not p.cart_id:
            p.cart_id = f"cart-{self.run_tag}-{self.tick()}"
        for line in p.cart:
            if line[0] is product:
                line[1] += qty
                return
        p.cart.append([product, qty])

    def _next_visit(self, p: _Person, t: int) -> None:
        """Plan the person's next visit after one ending at ``t``, unless they churn now."""
        random = self.random
        if random() < p.churn:
            p.churned = True
            return
        gap = int(-log(1.0 - random()) * p.return_days * DAY)
        if gap < 6 * HOUR:  # back the same day, an hour or a few later
            at = t + HOUR + int(random() * 5 * HOUR)
        else:  # a busy local hour of the day the gap lands on
            day = (t + gap - self.start_ms) // DAY * DAY + self.start_ms
            hour = self.hour_table[int(random() * HOUR_TABLE_SIZE)] - p.offset_h
            at = day + hour * HOUR + int(random() * HOUR)
            while at <= t + HOUR:
                at += DAY
        if at < self.end_ms:
            self._schedule(at, _VISIT, p, None)

    def _maybe_remind(self, p: _Person, t: int) -> None:
        """An abandoned-cart email a few hours after a visit that left a cart behind."""
        p.reminded = p.cart_id
        if self.rng.random() < self.model.abandoned_cart_email:
            at = t + HOUR + int(self.rng.random() * 5 * HOUR)
            if at < self.end_ms:
                self._schedule(at, _DELIVER, p, None)

    def _campaign(self, at: int, number: int) -> None:
        """A weekly campaign to every subscribed person known by then, sent over 20 minutes."""
        rng = self.rng
        category = rng.choice(self.shop.categories)
        subject = rng.choice(CAMPAIGN_SUBJECTS).format(category=category.lower())
        campaign_id = f"cmp-{self.run_tag}-{number + 1}"
        name = f"Weekly {number + 1}: {category}"
        featured = self.shop.by_category[category][0]
        for p in self.people:
            if p.known and p.subscribed:
                self.emails += 1
                email_id = f"em-{self.run_tag}-{self.emails}"
                if rng.random() < 0.5:
                    email = _Email(
                        email_id, campaign_id, name, subject, featured.url, featured, None
                    )
                else:
                    link = self.shop.category_urls[category]
                    email = _Email(email_id, campaign_id, name, subject, link, None, category)
                self._schedule(at + int(rng.random() * 20 * MINUTE), _DELIVER, p, email)

    def _deliver(self, p: _Person, at: int, email: _Email | None) -> None:
        rng, m = self.rng, self.model
        if email is None:  # an abandoned-cart reminder: only if the cart is still there
            if not p.cart:
                return
            self.emails += 1
            product = p.cart[0][0]
            email = _Email(
                f"em-{self.run_tag}-{self.emails}",
                "cmp-abandoned-cart",
                "Abandoned cart",
                f"Still thinking about the {product.name}?",
                f"{SHOP_URL}/cart",
                None,
                None,
            )
        props = {
            "email_id": email.email_id,
            "email_subject": email.subject,
            "campaign_id": email.campaign_id,
            "campaign_name": email.campaign_name,
        }
        esp = {"library": {"name": ESP_LIBRARY, "version": "1.0"}}
        msg = {
            "type": "track",
            "event": "Email Delivered",
            "userId": p.user_id,
            "properties": props,
            "context": esp,
            "timestamp": "",
            "messageId": "",
        }
        self._push(at, msg, p)
        if p.apple_mail:  # the proxy fetches the images within a minute or two
            self._push(at + 2000 + int(rng.random() * 90000), self._opened(p, email, None), p)
        rate = m.open_rate * min(p.engagement, 2.0) * (0.2 if p.churned else 1.0)
        if rng.random() < rate:
            delay = int(rng.lognormvariate(0, 1.2) * 2 * HOUR) + MINUTE
            if at + delay < self.end_ms:
                self._schedule(at + delay, _OPEN, p, email)

    def _opened(self, p: _Person, email: _Email, device: _Device | None) -> dict[str, Any]:
        if device is None:
            rng = self.rng
            context = {
                "userAgent": APPLE_PROXY_USER_AGENT,
                "ip": f"17.{rng.randrange(56, 60)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            }
        else:
            context = {"userAgent": device.mail_agent, "ip": device.ip}
        return {
            "type": "track",
            "event": "Email Opened",
            "userId": p.user_id,
            "properties": {
                "email_id": email.email_id,
                "email_subject": email.subject,
                "campaign_id": email.campaign_id,
                "campaign_name": email.campaign_name,
            },
            "context": context,
            "timestamp": "",
            "messageId": "",
        }

    def _open(self, p: _Person, at: int, email: _Email) -> None:
        """A person reads an email. Behind Apple's proxy the images come from its cache, so
        the read itself is not seen (only the proxy's open at delivery); a click always is."""
        random = self.random
        device = p.devices[int(random() * len(p.devices))]
        if not p.apple_mail:
            self._push(at, self._opened(p, email, device), p)
        if random() >= self.model.click_rate * (1.5 if p.intent > 1.5 else 1.0):
            return
        at += 5000 + int(random() * 60000)
        link_id = f"lnk-{email.email_id}"
        msg = {
            "type": "track",
            "event": "Email Link Clicked",
            "userId": p.user_id,
            "properties": {
                "email_id": email.email_id,
                "email_subject": email.subject,
                "campaign_id": email.campaign_id,
                "campaign_name": email.campaign_name,
                "link_id": link_id,
                "link_url": email.link_url,
            },
            "context": {"userAgent": device.user_agent, "ip": device.ip},
            "timestamp": "",
            "messageId": "",
        }
        self._push(at, msg, p)
        self._visit(p, at + 1500, email)

    # -- ground truth -------------------------------------------------------------------------
    def truth(self) -> GroundTruth:
        persons = tuple(
            PersonTruth(
                person_id=p.person_id,
                anonymous_ids=tuple(d.anonymous_id for d in p.devices),
                linked_anonymous_ids=tuple(d.anonymous_id for d in p.devices if d.identified),
                user_id=p.user_id if p.known else None,
                email=p.email if p.known else None,
                churned=p.churned,
                converted=p.orders > 0,
                orders=p.orders,
                apple_mail_privacy=p.apple_mail,
            )
            for p in self.people
        )
        return GroundTruth(
            seed=self.seed,
            shoppers=len(self.people),
            days=self.days,
            start=self.start_iso,
            events=self.emitted,
            persons=persons,
        )


def _quantiles(weights: Sequence[float], size: int) -> list[int]:
    """``size`` indexes spread over ``weights`` in proportion: sampling one of them uniformly is
    sampling an index by weight, with one random number and no search."""
    cumulative = _cumulative(weights)
    return [_pick(cumulative, (i + 0.5) / size) for i in range(size)]


def _pick(cumulative: Sequence[float], u: float) -> int:
    """The index a uniform ``u`` in [0, 1) falls on, for cumulative weights."""
    return min(bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)


class Simulation(Iterator[SimEvent]):
    """The events of one run, in timestamp order, and its ground truth once consumed.

    Iterate it (once) for the :class:`SimEvent` stream; :attr:`ground_truth` is complete when
    the stream is exhausted (before that it describes the people as simulated so far).
    """

    def __init__(
        self,
        seed: int,
        shoppers: int,
        days: int,
        start: datetime,
        catalog: Sequence[CatalogProduct],
        model: ShopperModel | None = None,
    ) -> None:
        self._engine = _Engine(seed, shoppers, days, start, catalog, model or ShopperModel())
        self._events = self._engine.run()

    def __iter__(self) -> Iterator[SimEvent]:
        return self._events  # the generator itself: no extra call per event in a for loop

    def __next__(self) -> SimEvent:
        return next(self._events)

    @property
    def emitted(self) -> int:
        """Events yielded so far."""
        return self._engine.emitted

    @property
    def ground_truth(self) -> GroundTruth:
        return self._engine.truth()


def simulate(
    seed: int,
    shoppers: int,
    days: int,
    start: datetime,
    catalog: Sequence[CatalogProduct],
    *,
    model: ShopperModel | None = None,
) -> Simulation:
    """Simulate ``shoppers`` people over ``days`` days from ``start`` (timezone-aware).

    Returns an iterator of :class:`SimEvent` in non-decreasing timestamp order; its
    ``ground_truth`` is complete once the iterator is exhausted.
    """
    return Simulation(seed, shoppers, days, start, catalog, model)
