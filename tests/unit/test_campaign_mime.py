"""A campaign email's bytes read back by the stdlib ``email`` package exactly as the
``EmailMessage`` tidings built before (headers, the HTML), and stay within SMTP's limits."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from tidings.campaigns.mime import message_bytes

LONG_URL = "https://t.shop.example/t/u/" + "a1B2" * 60
HTML = (
    "<!doctype html><p>Hellö Zoë — ünïcode ✓ 20% off</p>\n"
    ".a line that starts with a dot\n"
    f'<a href="{LONG_URL}">Unsubscribe</a>\r\n'
    "a = sign and\ttab   and trailing spaces   \n"
    "the end"
)


def headers(**changed: str) -> list[tuple[str, str]]:
    base = {
        "From": "Shop <news@shop.example>",
        "To": "ada+news@example.com",
        "Subject": "Spring is here, Ada",
        "Date": "Tue, 01 Dec 2026 21:31:13 +0000",
        "Message-ID": "<em_123@reply.shop.example>",
        "Reply-To": "reply+0123456789abcdef0123@reply.shop.example",
        "List-Unsubscribe": f"<{LONG_URL}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "X-Tidings-Campaign": "cmp_123",
    }
    base.update(changed)
    return list(base.items())


def read(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def built_before(pairs: list[tuple[str, str]], html: str) -> EmailMessage:
    message = EmailMessage()
    for name, value in pairs:
        message[name] = value
    message.set_content(html, subtype="html")
    return read(message.as_bytes(policy=policy.SMTP))


@pytest.mark.parametrize(
    "changed",
    [
        {},
        {"Subject": "Spring is here, Zoë — " + "and a long subject that has to fold " * 3},
        {"From": "Zoë's Shop <news@shop.example>"},
        {"From": '"Zoë\'s Shop, Inc." <news@shop.example>'},
        {"From": '"Shop" <news@shop.example>', "To": "bob@example.com"},
        {"Subject": "word " * 40},
    ],
)
def test_it_reads_back_as_the_email_package_wrote_it(changed: dict[str, str]) -> None:
    pairs = headers(**changed)
    raw = message_bytes(pairs, HTML)
    assert raw is not None
    ours, theirs = read(raw), built_before(pairs, HTML)
    for name, _ in pairs:
        if name == "List-Unsubscribe":
            continue  # see the next test
        assert str(ours[name]) == str(theirs[name]), name
    ours_body, theirs_body = ours.get_body(("html",)), theirs.get_body(("html",))
    assert ours_body is not None and theirs_body is not None
    assert ours_body.get_content() == theirs_body.get_content()
    assert ours_body.get_content_type() == "text/html"
    assert not ours.defects and not any(ours[name].defects for name, _ in pairs)
    lines = raw.split(b"\r\n")
    assert all(len(line) <= 998 for line in lines)
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    body = raw.partition(b"\r\n\r\n")[2].split(b"\r\n")
    assert all(len(line) <= 76 for line in body)


@pytest.mark.parametrize("html", ["", "x", "x\n", "x\r\n\r\n", "a\rb\n\nc   \n"])
def test_the_part_ends_as_the_email_package_ends_it(html: str) -> None:
    raw = message_bytes(headers(), html)
    assert raw is not None
    ours, theirs = read(raw).get_body(("html",)), built_before(headers(), html).get_body(("html",))
    assert ours is not None and theirs is not None
    assert ours.get_content() == theirs.get_content()


def test_a_long_list_unsubscribe_stays_a_url() -> None:
    raw = message_bytes(headers(), HTML)
    assert raw is not None
    assert f"List-Unsubscribe: <{LONG_URL}>\r\n".encode() in raw
    assert str(read(raw)["List-Unsubscribe"]) == f"<{LONG_URL}>"


@pytest.mark.parametrize(
    "changed",
    [
        {"To": "zoë@example.com"},
        {"To": "not an address"},
        {"From": "Shop, Inc. <news@shop.example>"},  # two addresses, or a typo: not ours to say
        {"To": "ada@example.com, bob@example.com"},
        {"List-Unsubscribe": "<https://t.shop.example/t/u/" + "a" * 1000 + ">"},
        {"Subject": "two\r\nlines"},
    ],
)
def test_what_it_does_not_write_is_left_to_the_email_package(changed: dict[str, str]) -> None:
    assert message_bytes(headers(**changed), HTML) is None
