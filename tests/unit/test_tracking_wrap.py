"""Wrapping an HTML email: what is wrapped, what is kept byte for byte, merge tags intact."""

from __future__ import annotations

import html as html_lib
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.core.signing import Signer
from tidings.tracking.links import fill, raw_params, recipient_from, with_utm
from tidings.tracking.tokens import PURPOSE, decode
from tidings.tracking.wrap import Campaign, Recipient, recipient_for, wrap_html

BASE = "https://t.example"
SIGNER = Signer([b"test key"], PURPOSE)
CAMPAIGN = Campaign("spring", "Spring sale", email_id="em_1")


def wrap(html: str, *, esp: str = "mailchimp", **kw: object) -> object:
    return wrap_html(
        html,
        base_url=BASE,
        signer=SIGNER,
        campaign=CAMPAIGN,
        recipient=recipient_for(esp, None),
        **kw,  # type: ignore[arg-type]
    )


def hrefs(html: str) -> list[str]:
    return [html_lib.unescape(h) for h in re.findall(r'(?i)href="([^"]*)"', html)]


def resolve(url: str, email: str = "ada+1@example.com") -> tuple[str, str | None]:
    """What a click on ``url`` (after the ESP filled *|EMAIL|*) redirects to, and for whom."""
    url = url.replace("*|EMAIL|*", email)
    parts = urlsplit(url)
    token = decode(parts.path.rsplit("/", 1)[1], SIGNER)
    params = raw_params(parts.query)
    assert token.target is not None
    return fill(token.target, params), recipient_from(params)


def test_links_are_wrapped_and_everything_else_is_kept() -> None:
    source = (
        "<!doctype html>\n<html><head><style>a{color:red}</style></head>\r\n"
        "<body>\n  <p class='x'>Hi *|FNAME|* &amp; welcome</p>\n"
        "  <a class=\"btn\" href='https://shop.example/p/1?a=1&amp;b=2#top' title='a href=\"x\"'>"
        "Shop</a>\n  <A HREF=https://shop.example/q>Q</A>\n</body>\n</html>\n"
    )
    out = wrap(source)
    assert out.links_wrapped == 2  # type: ignore[attr-defined]
    wrapped = out.html  # type: ignore[attr-defined]
    targets = [resolve(h)[0] for h in hrefs(wrapped) if h.startswith(BASE)]
    assert targets == ["https://shop.example/p/1?a=1&b=2#top", "https://shop.example/q"]
    # Outside the two href values and the pixel, the text is the original, byte for byte.
    restored = re.sub(r'(href|HREF)="https://t\.example/t/c/[^"]*"', r"\1", wrapped)
    restored = re.sub(r"<img src=\"https://t\.example/t/o/[^>]*/>", "", restored)
    expected = re.sub(r"href='[^']*'", "href", source, count=1).replace(
        "HREF=https://shop.example/q", "HREF"
    )
    assert restored == expected
    assert "title='a href=\"x\"'" in wrapped


def test_pixel_goes_before_the_last_body_end_tag() -> None:
    out = wrap("<html><body><p>x</p></body></html>")
    html = out.html  # type: ignore[attr-defined]
    assert re.search(r'<img src="https://t\.example/t/o/[\w-]+\.gif\?u=\*\|EMAIL\|\*"', html)
    assert html.endswith("/></body></html>")
    assert wrap("<p>no body</p>").html.startswith("<p>no body</p><img ")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("href", "reason"),
    [
        ("mailto:shop@example.com", "mailto"),
        ("tel:+441234", "tel"),
        ("#section", "anchor"),
        ("*|UNSUB|*", "unsubscribe"),
        ("https://shop.example/unsubscribe?e=*|EMAIL|*", "unsubscribe"),
        ("{{{pm:unsubscribe}}}", "unsubscribe"),
        ("*|ARCHIVE|*", "merge tag"),
        ("https://*|DOMAIN|*/p", "host"),
        ("/relative/path", "http"),
        ("javascript:alert(1)", "http"),
        (f"{BASE}/t/c/abc", "already"),
        ("", "empty"),
    ],
)
def test_links_left_alone_say_why(href: str, reason: str) -> None:
    source = f'<body><a href="{href}">x</a></body>'
    out = wrap(source, add_pixel=False)
    assert out.html == source  # type: ignore[attr-defined]
    assert out.links_wrapped == 0  # type: ignore[attr-defined]
    assert reason in out.skipped[0].reason  # type: ignore[attr-defined]


def test_unsubscribe_links_can_be_tracked_too() -> None:
    out = wrap('<a href="https://shop.example/unsubscribe">u</a>', skip_unsubscribe=False)
    assert out.links_wrapped == 1  # type: ignore[attr-defined]


def test_marked_links_and_comments_and_scripts_are_left_alone() -> None:
    source = (
        '<a data-tidings-skip href="https://a.example/">a</a>'
        '<!-- <a href="https://b.example/">b</a> -->'
        "<script>var s = '<a href=\"https://c.example/\">';</script>"
    )
    out = wrap(source, add_pixel=False)
    assert out.html == source  # type: ignore[attr-defined]


def test_merge_tags_stay_literal_for_the_esp_and_are_filled_at_click() -> None:
    source = '<a href="https://shop.example/r?e=*|EMAIL|*&amp;n=*|FNAME|*#*|ID|*">me</a>'
    out = wrap(source, add_pixel=False)
    (url,) = hrefs(out.html)  # type: ignore[attr-defined]
    assert url.count("*|EMAIL|*") == 2 and "*|FNAME|*" in url and "*|ID|*" in url
    filled = url.replace("*|FNAME|*", "Ada").replace("*|ID|*", "42")
    target, recipient = resolve(filled)
    assert target == "https://shop.example/r?e=ada+1@example.com&n=Ada#42"
    assert recipient == "ada+1@example.com"


def test_handlebars_tags_for_sendgrid() -> None:
    out = wrap('<a href="https://shop.example/?e={{ email }}">x</a>', esp="sendgrid")
    url = hrefs(out.html)[0]  # type: ignore[attr-defined]
    assert "u={{email}}" in url and "m0={{ email }}" in url


def test_filled_values_cannot_move_the_link_to_another_host() -> None:
    out = wrap('<a href="https://shop.example?q=*|Q|*">x</a>', add_pixel=False)
    url = hrefs(out.html)[0]  # type: ignore[attr-defined]
    target, _ = resolve(url.replace("*|Q|*", "@evil.example/"))
    assert urlsplit(target).hostname == "shop.example"


def test_a_data_attribute_names_the_link() -> None:
    out = wrap('<a data-tidings-link="hero" href="https://a.example/">a</a>', add_pixel=False)
    token = decode(urlsplit(hrefs(out.html)[0]).path.rsplit("/", 1)[1], SIGNER)  # type: ignore[attr-defined]
    assert token.link_id == "hero" and token.utm_content == "hero"


def test_a_signed_recipient_needs_no_query_parameter() -> None:
    out = wrap_html(
        '<a href="https://a.example/">a</a>',
        base_url=BASE,
        signer=SIGNER,
        campaign=CAMPAIGN,
        recipient=Recipient(value="u_42", type="user_id"),
    )
    url = hrefs(out.html)[0]
    assert "?" not in url
    token = decode(urlsplit(url).path.rsplit("/", 1)[1], SIGNER)
    assert (token.recipient, token.recipient_type, token.recipient_in_query) == (
        "u_42",
        "user_id",
        False,
    )


def test_esps_without_a_standard_tag_need_one() -> None:
    with pytest.raises(ValueError, match="recipient_tag"):
        recipient_for("postmark", None)
    assert recipient_for("postmark", "{{email}}").tag == "{{email}}"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://s.example/p",
            "https://s.example/p?utm_source=nl&utm_medium=email&utm_campaign=Spring%20sale",
        ),
        (
            "https://s.example/p?a=1&utm_source=own#frag",
            "https://s.example/p?a=1&utm_source=own&utm_medium=email"
            "&utm_campaign=Spring%20sale#frag",
        ),
        (
            "https://s.example/p?",
            "https://s.example/p?utm_source=nl&utm_medium=email&utm_campaign=Spring%20sale",
        ),
    ],
)
def test_utm_parameters_are_added_without_overriding(url: str, expected: str) -> None:
    utm = {"utm_source": "nl", "utm_medium": "email", "utm_campaign": "Spring sale"}
    assert with_utm(url, utm) == expected


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text_of(html: str) -> list[str]:
    parser = _Text()
    try:
        parser.feed(html)
        parser.close()
    except (AssertionError, AttributeError, ValueError, IndexError):
        pass
    return parser.parts


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet=list("<>a/=\"' &;!-[]hrefbody:#*|{}\nhttps.x")), st.text()))
def test_wrapping_never_raises_and_keeps_the_text(html: str) -> None:
    out = wrap_html(
        html,
        base_url=BASE,
        signer=SIGNER,
        campaign=CAMPAIGN,
        recipient=recipient_for("mailchimp", None),
        add_pixel=False,
    )
    assert _text_of(out.html) == _text_of(html)
    if out.links_wrapped == 0:
        assert out.html == html


LINK_TEXT = st.text(alphabet=st.characters(blacklist_characters="<>&\"'\x00"), max_size=20)
URLS = st.builds(
    lambda host, path, q: f"https://{host}.example/{path}" + (f"?q={q}" if q else ""),
    st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9/_.-]{0,20}", fullmatch=True),
    st.from_regex(r"[a-z0-9*|]{0,10}", fullmatch=True),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(LINK_TEXT, URLS, LINK_TEXT), min_size=1, max_size=6))
def test_every_generated_link_redirects_to_its_own_url(parts: list[tuple[str, str, str]]) -> None:
    source = "<body>" + "".join(f'{a}<a href="{u}">{b}</a>' for a, u, b in parts) + "</body>"
    out = wrap_html(
        source,
        base_url=BASE,
        signer=SIGNER,
        campaign=CAMPAIGN,
        recipient=recipient_for("mailchimp", None),
    )
    found = [h for h in hrefs(out.html) if h.startswith(BASE + "/t/c/")]
    assert len(found) == len(parts)
    for (_, url, _), wrapped in zip(parts, found, strict=True):
        assert resolve(wrapped, "ada@example.com")[0] == url.replace("*|EMAIL|*", "ada@example.com")
