"""Creative tags: the snippet per ESP, what substitution delivers, and unsubstituted tags."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.content.tags import (
    ESPS,
    creative_tag,
    is_unsubstituted_merge_tag,
    restore_plus_signs,
)

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE = "https://t.example.com/"


class _Tag(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(snippet: str) -> tuple[dict[str, str | None], dict[str, str | None]]:
    parser = _Tag()
    parser.feed(snippet)
    (a_tag, a), (img_tag, img) = parser.tags
    assert (a_tag, img_tag) == ("a", "img")
    return a, img


@pytest.mark.parametrize("esp", list(ESPS))
def test_every_esp_gets_its_own_merge_tags_in_both_urls(esp: str) -> None:
    tags = ESPS[esp]
    a, img = parse(creative_tag(BASE, "blk_1", esp, width=600, height=300, alt="Picks"))
    href, src = a["href"], img["src"]
    assert href is not None and src is not None
    assert href.startswith("https://t.example.com/c/blk_1?u=")
    assert src.startswith("https://t.example.com/i/blk_1.png?u=")
    for url in (href, src):
        # The merge tags are literal (after HTML unescaping), so the ESP finds them.
        assert f"u={tags.email}" in url
        if tags.send_id is None:
            assert "&s=" not in url
        else:
            assert url.endswith(f"&s={tags.send_id}")
    assert (img["width"], img["height"], img["alt"]) == ("600", "300", "Picks")
    assert img["style"] == "display:block;border:0"


def test_documented_tags() -> None:
    assert ESPS["mailchimp"].email_plain == "*|EMAIL|*"
    assert ESPS["mailchimp"].email == "*|URL:EMAIL|*"
    assert ESPS["mailchimp"].send_id == "*|CAMPAIGN_UID|*"
    assert ESPS["sfmc"].email_plain == "%%emailaddr%%"
    assert ESPS["sfmc"].send_id == "%%jobid%%"
    assert ESPS["braze"].email_plain == "{{${email_address}}}"
    assert ESPS["marketo"].email_plain == "{{lead.Email Address}}"
    assert ESPS["iterable"].email_plain == "{{email}}"
    assert ESPS["hubspot"].email_plain == "{{ contact.email }}"
    assert all(t.doc.startswith("https://") for name, t in ESPS.items() if name != "generic")


def test_html_attributes_are_escaped() -> None:
    snippet = creative_tag(
        BASE, "b", "mailchimp", width=10, height=10, alt='"><script>x</script>', utm={"a": "&"}
    )
    assert "<script>" not in snippet
    assert "&amp;s=" in snippet  # the raw '&' between parameters is escaped in the attribute
    a, img = parse(snippet)
    assert img["alt"] == '"><script>x</script>'
    assert a["href"] is not None and a["href"].endswith("&a=%26")


def test_slot_format_and_utm() -> None:
    a, img = parse(
        creative_tag(
            BASE,
            "blk/../x",
            "sfmc",
            width=300,
            height=300,
            alt="",
            slot=2,
            fmt="gif",
            utm={"utm_campaign": "spring sale", "utm_source": "esp"},
        )
    )
    # The block id cannot escape its path segment.
    assert img["src"] is not None and img["src"].startswith(
        "https://t.example.com/i/blk%2F..%2Fx/2.gif?u="
    )
    assert a["href"] is not None
    assert a["href"].startswith("https://t.example.com/c/blk%2F..%2Fx/2?u=")
    assert a["href"].endswith("&utm_campaign=spring+sale&utm_source=esp")
    assert "utm_" not in img["src"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"esp": "aol"}, "esp"),
        ({"fmt": "svg"}, "fmt"),
        ({"width": 0}, "width"),
        ({"height": 4001}, "height"),
        ({"slot": -1}, "slot"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"esp": "braze", "width": 1, "height": 1, "alt": ""} | kwargs
    esp = args.pop("esp")
    with pytest.raises(ValueError, match=f"^{field}:"):
        creative_tag(BASE, "b", esp, **args)  # type: ignore[arg-type]


# -- what reaches tidings after the ESP substitutes -----------------------------------------------

# How each encoding form behaves on substitution, as its documentation describes it.
SUBSTITUTE = {
    "mailchimp": quote_plus,  # *|URL:EMAIL|*
    "sfmc": quote_plus,  # URLEncode(…, 1, 1)
    "braze": quote_plus,  # url_encode is Ruby's CGI.escape
    "klaviyo": lambda v: quote(v, safe="/"),  # Django's urlencode
    "iterable": quote_plus,
    "hubspot": lambda v: quote(v, safe="/"),
    "marketo": lambda v: v,  # raw
    "sendgrid": lambda v: v,
    "generic": lambda v: v,
}


def received_u(esp: str, address: str) -> str:
    """Substitute ``address`` like the ESP does, then parse the query like the endpoint does."""
    _, img = parse(creative_tag(BASE, "b", esp, width=1, height=1, alt=""))
    assert img["src"] is not None
    tags = ESPS[esp]
    url = img["src"].replace(tags.email, SUBSTITUTE[esp](address))
    if tags.send_id:
        url = url.replace(tags.send_id, "123")
    return parse_qs(urlsplit(url).query)["u"][0]


@pytest.mark.parametrize("esp", list(ESPS))
@pytest.mark.parametrize("address", ["ann+shop@example.com", "o'neil@example.co.uk", "a.b@x.io"])
def test_the_address_arrives_intact(esp: str, address: str) -> None:
    assert restore_plus_signs(received_u(esp, address)) == address


def test_a_raw_plus_arrives_as_a_space_without_repair() -> None:
    # Why the repair exists: an ESP that does not encode hands tidings a space.
    assert received_u("sendgrid", "ann+shop@example.com") == "ann shop@example.com"
    assert received_u("mailchimp", "ann+shop@example.com") == "ann+shop@example.com"


def test_restore_plus_signs_leaves_other_values() -> None:
    assert restore_plus_signs("  user 42 ") == "user 42"
    assert restore_plus_signs(" ann@example.com ") == "ann@example.com"


# -- unsubstituted merge tags ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "esp"),
    [
        ("*|EMAIL|*", "mailchimp"),
        ("*|URL:EMAIL|*", "mailchimp"),
        ("*%7CEMAIL%7C*", "mailchimp"),  # encoded once more on the way
        ("%%emailaddr%%", "sfmc"),
        ("%%=URLEncode(emailaddr, 1, 1)=%%", "sfmc"),
        ("{{${email_address}}}", "braze"),
        ("{{${email_address} | url_encode}}", "braze"),
        ("{{lead.Email Address}}", "marketo"),
        ("{{lead.Email Address:default=noemail@example.com}}", "marketo"),
        ("{{ contact.email }}", "hubspot"),
        ("{{ person.email|urlencode }}", "klaviyo"),
        ("{{#urlEncode}}{{email}}{{/urlEncode}}", "iterable"),
        ("{{email}}", "generic"),
        ("{{ email }}", "generic"),
    ],
)
def test_unsubstituted_tags_are_recognised(value: str, esp: str) -> None:
    assert is_unsubstituted_merge_tag(value) == esp


@pytest.mark.parametrize("esp", list(ESPS))
def test_every_tag_we_emit_is_recognised_when_left_alone(esp: str) -> None:
    tags = ESPS[esp]
    for tag in (tags.email, tags.email_plain, tags.send_id):
        if tag is not None:
            assert is_unsubstituted_merge_tag(tag) is not None, tag


@pytest.mark.parametrize(
    "value", ["", "ann@example.com", "user_42", "*|x|*@example.com", "%%a%%@example.org"]
)
def test_real_values_are_not_flagged(value: str) -> None:
    assert is_unsubstituted_merge_tag(value) is None


@PROPS
@given(st.emails())
def test_real_email_addresses_are_never_flagged(address: str) -> None:
    assert is_unsubstituted_merge_tag(address) is None
    assert is_unsubstituted_merge_tag(quote(address, safe="")) is None


@PROPS
@given(st.text())
def test_never_raises(value: str) -> None:
    result = is_unsubstituted_merge_tag(value)
    assert result is None or result in ESPS
    assert isinstance(restore_plus_signs(value), str)
