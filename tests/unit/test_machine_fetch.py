"""Machine-fetch detection over real user agents and addresses."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tidings.core.settings import Settings
from tidings.tracking.machine import FetchClassifier, FetchKind, IpRanges, classify_fetch

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = Settings(machine_ip_ranges=["17.0.0.0/8", "2620:149::/32"])

# Gmail's image proxy (documented since its 2013 launch: "via ggpht.com GoogleImageProxy").
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
# Yahoo's proxy, as it identifies itself (help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html).
YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
# Apple Mail Privacy Protection's prefetch.
MPP = "Mozilla/5.0"
# Apple Mail on iOS (WebKit, no "Safari/" token) and Safari on the same phone.
IOS_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
MAC_MAIL = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
IOS_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36"
)


def kind(ua: str | None, ip: str | None = "203.0.113.9", **kw: object) -> FetchKind:
    return classify_fetch(ua, ip, SETTINGS, **kw)  # type: ignore[arg-type]


def test_apple_mpp_bare_user_agent() -> None:
    result = kind(MPP)
    assert (result.machine, result.kind, result.client) == (True, "apple_mpp", "apple_mail")


@pytest.mark.parametrize(
    "ip", ["17.58.63.1", "::ffff:17.58.63.1", "2620:149:a:b::1", "[2620:149::9]"]
)
def test_apple_mpp_by_address(ip: str) -> None:
    result = kind(IOS_MAIL, ip)
    assert (result.machine, result.kind) == (True, "apple_mpp")


def test_a_click_from_apple_addresses_is_a_person() -> None:
    # Safari with iCloud Private Relay leaves from the same egress ranges as MPP.
    result = kind(IOS_SAFARI, "17.58.63.1", fetch="click")
    assert (result.machine, result.kind, result.device) == (False, "human", "mobile")
    assert kind(MPP, fetch="click").kind == "unknown_bot"


def test_gmail_and_yahoo_proxies_are_human_opens() -> None:
    gmail, yahoo = kind(GMAIL, "66.249.84.1"), kind(YAHOO, "98.137.1.1")
    assert (gmail.machine, gmail.kind, gmail.client, gmail.device) == (
        False,
        "gmail_proxy",
        "gmail",
        None,  # the proxy's fixed Windows/Firefox part says nothing of the reader
    )
    assert (yahoo.machine, yahoo.kind, yahoo.client) == (False, "yahoo_proxy", "yahoo")


@pytest.mark.parametrize(
    ("ua", "client", "device"),
    [
        (IOS_MAIL, "apple_mail", "mobile"),
        (MAC_MAIL, "apple_mail", "desktop"),
        (IOS_SAFARI, "webmail", "mobile"),
        (OUTLOOK, "outlook", "desktop"),
        (CHROME, "webmail", "desktop"),
        (ANDROID_TABLET, "webmail", "tablet"),
    ],
)
def test_people_with_client_and_device(ua: str, client: str, device: str) -> None:
    result = kind(ua)
    assert result == FetchKind(False, "human", "no machine signal", client, device)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        ("python-requests/2.31.0", "scanner"),
        ("curl/8.5.0", "scanner"),
        ("Wget/1.21.4", "scanner"),
        ("Go-http-client/1.1", "scanner"),
        (HEADLESS, "scanner"),
        ("Mozilla/5.0 (compatible; Barracuda Sentinel)", "scanner"),
        ("Mimecast URL Protect", "scanner"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "unknown_bot"),
        ("", "unknown_bot"),
        (None, "unknown_bot"),
    ],
)
def test_machines(ua: str | None, expected: str) -> None:
    result = kind(ua, fetch="click")
    assert (result.machine, result.kind) == (True, expected)


def test_clicks_right_after_delivery_are_scanners() -> None:
    early = kind(CHROME, fetch="click", seconds_since_delivery=2.0)
    assert (early.machine, early.kind) == (True, "scanner")
    assert "2.0 s after delivery" in early.reason
    assert kind(CHROME, fetch="click", seconds_since_delivery=10.0).kind == "human"
    assert kind(CHROME, fetch="click", seconds_since_delivery=-3.0).kind == "human"  # clock skew
    # Gmail's proxy only fetches when the person opens: never a scanner.
    assert kind(GMAIL, seconds_since_delivery=1.0).kind == "gmail_proxy"


def test_configured_user_agents_and_window() -> None:
    custom = Settings(
        machine_ip_ranges=["198.51.100.0/24"],
        machine_user_agents=[r"acme-linkcheck/\d"],
        scanner_click_window_s=0,
    )
    assert classify_fetch("ACME-LinkCheck/3", None, custom).kind == "unknown_bot"
    assert classify_fetch(CHROME, "198.51.100.7", custom).kind == "apple_mpp"
    assert classify_fetch(CHROME, "17.1.1.1", custom).kind == "human"
    assert classify_fetch(CHROME, None, custom, seconds_since_delivery=0.1).kind == "human"


def test_settings_reject_bad_ranges_and_patterns() -> None:
    with pytest.raises(ValidationError, match=r"machine_ip_ranges: '17\.0\.0\.0/33'"):
        Settings(machine_ip_ranges=["17.0.0.0/33"])
    with pytest.raises(ValidationError, match="machine_user_agents"):
        Settings(machine_user_agents=["(unclosed"])


def test_ip_ranges() -> None:
    ranges = IpRanges(["10.0.0.0/8", "192.0.2.0/24", "192.0.2.128/25", "2001:db8::/32", "::1/128"])
    assert len(ranges) == 5
    for inside in ["10.255.0.1", "192.0.2.200", "2001:db8:ffff::1", "::1", " 10.0.0.1 "]:
        assert inside in ranges
    for outside in ["11.0.0.1", "192.0.3.1", "2001:db9::1", "::2", "nonsense", "", "10.0.0.0/8"]:
        assert outside not in ranges
    assert 167772161 not in ranges  # only strings are addresses


def test_the_classifier_is_built_once_per_configuration() -> None:
    one = FetchClassifier.from_settings(SETTINGS)
    assert one.classify(MPP, None) == classify_fetch(MPP, None, SETTINGS)
    from tidings.tracking.machine import _classifier

    before = _classifier.cache_info().hits
    classify_fetch(CHROME, None, SETTINGS)
    classify_fetch(CHROME, None, SETTINGS)
    assert _classifier.cache_info().hits >= before + 2


@PROPS
@given(
    st.one_of(st.none(), st.text(), st.sampled_from([MPP, GMAIL, IOS_MAIL, OUTLOOK])),
    st.one_of(st.none(), st.text(), st.ip_addresses().map(str)),
    st.one_of(st.none(), st.floats(allow_nan=True)),
    st.sampled_from(["open", "click"]),
)
def test_never_raises(ua: str | None, ip: str | None, seconds: float | None, fetch: str) -> None:
    result = classify_fetch(ua, ip, SETTINGS, seconds_since_delivery=seconds, fetch=fetch)  # type: ignore[arg-type]
    assert result.kind in {
        "human",
        "apple_mpp",
        "gmail_proxy",
        "yahoo_proxy",
        "scanner",
        "unknown_bot",
    }
    assert result.device in {None, "mobile", "desktop", "tablet"}
    assert result.machine == (result.kind not in {"human", "gmail_proxy", "yahoo_proxy"})
