"""Is an image fetch a person opening an email, or a machine fetching it ahead of them?

A minimal stand-in with the signature the tracking context will keep
(``classify_fetch(user_agent, client_ip, settings) -> FetchKind``): Apple Mail Privacy
Protection fetches images through Apple's proxy (addresses in ``17.0.0.0/8``, a bare
``Mozilla/5.0`` user agent), and mail security scanners announce themselves in their user
agents. Gmail's and Yahoo's image proxies fetch when the person opens, so they count as human.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from tidings.core.settings import Settings

APPLE_PROXY: Final = ipaddress.ip_network("17.0.0.0/8")
SCANNERS: Final = ("barracuda", "mimecast", "proofpoint", "symantec", "forcepoint", "trendmicro")


@dataclass(frozen=True, slots=True)
class FetchKind:
    """``machine``: nobody is looking; ``kind`` names who fetched; ``reason`` says why."""

    machine: bool
    kind: str
    reason: str


def classify_fetch(user_agent: str | None, client_ip: str | None, settings: Settings) -> FetchKind:
    """What fetched an image (see the module)."""
    agent = (user_agent or "").strip()
    lowered = agent.lower()
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(client_ip) if client_ip else None
    except ValueError:
        address = None
    if address is not None and address.version == 4 and address in APPLE_PROXY:
        return FetchKind(True, "apple_mpp", "the address is in Apple's 17.0.0.0/8")
    if agent == "Mozilla/5.0":
        return FetchKind(True, "apple_mpp", "the bare user agent Apple's image proxy sends")
    for name in SCANNERS:
        if name in lowered:
            return FetchKind(True, "scanner", f"the user agent names {name}")
    if "googleimageproxy" in lowered or "yahoomailproxy" in lowered:
        return FetchKind(False, "mail_proxy", "a webmail proxy fetches when the person opens")
    return FetchKind(False, "client", "a mail client")
