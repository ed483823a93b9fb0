"""Tell a person's open or click from a machine's, from the request alone.

Three signals, each documented where it is matched below:

- the user agent: image proxies name themselves (Gmail's ``GoogleImageProxy``, Yahoo's
  ``YahooMailProxy``); Apple Mail Privacy Protection's prefetch sends a bare ``Mozilla/5.0``;
  scripted clients and some scanners name their library or vendor;
- the client address: Apple's prefetch comes from Apple's network and the egress ranges it shares
  with iCloud Private Relay (``Settings.machine_ip_ranges``);
- timing: a security scanner follows links (and loads images) within seconds of delivery, long
  before a person could (``Settings.scanner_click_window_s``).

Gmail's and Yahoo's proxies fetch when the person opens the email, so their fetches are human
opens (``machine=False``); they cache, so a re-open may not reach tidings at all. Apple's prefetch
happens whether or not anyone reads the email: ``machine=True``.

Pure: no HTTP, no database. Build one :class:`FetchClassifier` per process from the settings (it
compiles the ranges and patterns once) and call :meth:`FetchClassifier.classify` per request.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from tidings.core.settings import Settings

__all__ = ["FetchClassifier", "FetchKind", "IpRanges", "classify_fetch"]

Fetch = Literal["open", "click"]

# A user agent longer than this is cut before matching (real ones are under 500 characters).
MAX_UA_CHARS = 1024


@dataclass(frozen=True, slots=True)
class FetchKind:
    """What made a request: a person (``machine=False``) or a machine, and why we think so."""

    machine: bool
    #: human | apple_mpp | gmail_proxy | yahoo_proxy | scanner | unknown_bot
    kind: str
    reason: str
    #: The email client, guessed from the user agent: apple_mail, gmail, yahoo, outlook, ...
    client: str | None = None
    #: mobile | desktop | tablet, when the user agent says.
    device: str | None = None


class IpRanges:
    """A set of IPv4 and IPv6 networks with a lookup costing one set probe per prefix length.

    Built for long lists (Apple's egress list has hundreds of thousands of ranges): networks are
    kept as integers grouped by prefix length, so a lookup masks the address once per distinct
    length instead of comparing it with every network.
    """

    __slots__ = ("_by_length",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        by_length: dict[tuple[int, int], set[int]] = {}
        for cidr in cidrs:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
            key = (network.version, network.prefixlen)
            by_length.setdefault(key, set()).add(int(network.network_address))
        # Longest prefixes first: the likelier hit for egress lists (nothing depends on it).
        self._by_length = sorted(
            ((version, length, frozenset(nets)) for (version, length), nets in by_length.items()),
            key=lambda item: -item[1],
        )

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        ip = _parse_ip(address)
        if ip is None:
            return False
        bits = 32 if ip.version == 4 else 128
        value = int(ip)
        for version, length, networks in self._by_length:
            if version != ip.version:
                continue
            shift = bits - length
            if (value >> shift) << shift in networks:
                return True
        return False

    def __len__(self) -> int:
        return sum(len(networks) for _, _, networks in self._by_length)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:17.1.2.3 from a dual-stack socket
    return ip


# -- user agents ----------------------------------------------------------------------------------

# Gmail: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
# (Gmail's image proxy, in service since 2013; the Firefox part is fixed and says nothing of the
# reader's device).
_GMAIL_PROXY = re.compile(r"GoogleImageProxy", re.I)
# Yahoo: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
_YAHOO_PROXY = re.compile(r"YahooMailProxy", re.I)
# Apple Mail Privacy Protection's prefetch: exactly "Mozilla/5.0", no platform, no engine.
_BARE_MOZILLA = "Mozilla/5.0"
# Link scanners that announce their vendor. Most do not (Microsoft Defender Safe Links,
# Mimecast and Proofpoint usually detonate links in an ordinary browser), hence the timing check.
_SCANNER_VENDORS = re.compile(
    r"barracuda|mimecast|proofpoint|safelinks|symantec|messagelabs|trendmicro|forcepoint"
    r"|ironport|fortiguard|sophos|zscaler|cloudmark|urldefense",
    re.I,
)
# Scripted and headless clients: no person reads email in these.
_AUTOMATION = re.compile(
    r"python-requests|python-urllib|aiohttp|httpx|\bcurl/|\bwget/|go-http-client|okhttp"
    r"|java/|apache-httpclient|libwww-perl|node-fetch|axios/|headlesschrome|phantomjs"
    r"|puppeteer|playwright|selenium|scrapy",
    re.I,
)
_GENERIC_BOT = re.compile(r"\bbot\b|bot/|crawler|spider|scanner", re.I)

_CLIENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gmail", _GMAIL_PROXY),
    ("yahoo", _YAHOO_PROXY),
    # Outlook desktop: "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.…; Pro)";
    # the mobile apps say Outlook-iOS / Outlook-Android.
    (
        "outlook",
        re.compile(r"Microsoft Outlook|\bms-office\b|MSOffice|Outlook-(?:iOS|Android)", re.I),
    ),
    ("thunderbird", re.compile(r"Thunderbird", re.I)),
    # Apple Mail loads images in WebKit without the "Safari/" token a browser adds.
    (
        "apple_mail",
        re.compile(
            r"^Mozilla/5\.0 \((?:iPhone|iPad|iPod|Macintosh)[^)]*\) AppleWebKit/[\d.]+"
            r"(?!.*(?:Safari/|Chrome/|CriOS/|FxiOS/|EdgiOS/))",
            re.I,
        ),
    ),
    ("webmail", re.compile(r"Chrome/|Firefox/|Safari/|Edg/|OPR/", re.I)),
)
_TABLET = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook", re.I)
_ANDROID = re.compile(r"Android", re.I)
_MOBILE = re.compile(r"iPhone|iPod|Mobile|Windows Phone|BlackBerry|Opera Mini", re.I)
_DESKTOP = re.compile(r"Windows NT|Macintosh|Mac OS X|X11|Linux|CrOS", re.I)


def _client(user_agent: str) -> str | None:
    if user_agent == _BARE_MOZILLA:
        return "apple_mail"
    for client, pattern in _CLIENTS:
        if pattern.search(user_agent):
            return client
    return None


def _device(user_agent: str) -> str | None:
    if _TABLET.search(user_agent):
        return "tablet"
    if _ANDROID.search(user_agent):
        return "mobile" if "mobile" in user_agent.lower() else "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    if _DESKTOP.search(user_agent):
        return "desktop"
    return None


class FetchClassifier:
    """Classifies image fetches and clicks; holds the compiled ranges and patterns."""

    def __init__(
        self,
        machine_ip_ranges: Iterable[str],
        machine_user_agents: Iterable[str] = (),
        scanner_click_window_s: float = 10.0,
    ) -> None:
        self.ip_ranges = IpRanges(machine_ip_ranges)
        self.user_agents = tuple(re.compile(p, re.I) for p in machine_user_agents)
        self.window_s = scanner_click_window_s

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchClassifier:
        return cls(
            settings.machine_ip_ranges,
            settings.machine_user_agents,
            settings.scanner_click_window_s,
        )

    def classify(
        self,
        user_agent: str | None,
        client_ip: str | None,
        *,
        seconds_since_delivery: float | None = None,
        fetch: Fetch = "open",
    ) -> FetchKind:
        """Who made this request. Never raises, whatever the strings hold.

        ``fetch`` says whether it loads an image (``open``) or follows a link (``click``): the
        IP ranges and Apple's bare user agent mark prefetched images only, because a person's
        click from Safari with iCloud Private Relay leaves from the very same addresses.
        """
        ua = (user_agent or "").strip()[:MAX_UA_CHARS]
        client = _client(ua) if ua else None
        device = _device(ua) if ua else None

        if _GMAIL_PROXY.search(ua):
            return FetchKind(
                False,
                "gmail_proxy",
                "Gmail's image proxy fetches when the person opens the email (and caches)",
                "gmail",
            )
        if _YAHOO_PROXY.search(ua):
            return FetchKind(
                False,
                "yahoo_proxy",
                "Yahoo's image proxy fetches when the person opens the email (and caches)",
                "yahoo",
            )
        if match := _SCANNER_VENDORS.search(ua):
            return FetchKind(True, "scanner", f"user agent names a scanner ({match[0]})", client)
        if match := _AUTOMATION.search(ua):
            return FetchKind(True, "scanner", f"scripted client ({match[0]})", client, device)
        for pattern in self.user_agents:
            if pattern.search(ua):
                return FetchKind(
                    True, "unknown_bot", f"user agent matches {pattern.pattern!r}", client, device
                )
        if fetch == "open":
            if client_ip and client_ip in self.ip_ranges:
                return FetchKind(
                    True,
                    "apple_mpp",
                    "fetched from a machine IP range (Apple Mail Privacy Protection)",
                    "apple_mail" if ua in ("", _BARE_MOZILLA) else client,
                )
            if ua == _BARE_MOZILLA:
                return FetchKind(
                    True,
                    "apple_mpp",
                    "bare 'Mozilla/5.0' user agent (Apple Mail Privacy Protection prefetch)",
                    "apple_mail",
                )
        if not ua:
            return FetchKind(True, "unknown_bot", "no user agent")
        if ua == _BARE_MOZILLA:
            return FetchKind(True, "unknown_bot", "bare 'Mozilla/5.0' user agent on a click")
        if _GENERIC_BOT.search(ua):
            return FetchKind(True, "unknown_bot", "user agent calls itself a bot", client, device)
        if seconds_since_delivery is not None and 0 <= seconds_since_delivery < self.window_s:
            return FetchKind(
                True,
                "scanner",
                f"{fetch} {seconds_since_delivery:.1f} s after delivery "
                f"(under scanner_click_window_s={self.window_s:g})",
                client,
                device,
            )
        return FetchKind(False, "human", "no machine signal", client, device)


@functools.lru_cache(maxsize=8)
def _classifier(ranges: tuple[str, ...], agents: tuple[str, ...], window: float) -> FetchClassifier:
    return FetchClassifier(ranges, agents, window)


def classify_fetch(
    user_agent: str | None,
    client_ip: str | None,
    settings: Settings,
    *,
    seconds_since_delivery: float | None = None,
    fetch: Fetch = "open",
) -> FetchKind:
    """:meth:`FetchClassifier.classify` with a classifier for these settings (built once per
    distinct configuration and reused)."""
    classifier = _classifier(
        tuple(settings.machine_ip_ranges),
        tuple(settings.machine_user_agents),
        settings.scanner_click_window_s,
    )
    return classifier.classify(
        user_agent, client_ip, seconds_since_delivery=seconds_since_delivery, fetch=fetch
    )
