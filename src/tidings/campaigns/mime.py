"""A campaign email written straight to the bytes SMTP carries.

``email.message.EmailMessage`` parses every header it is given into a tree (the header
registry), folds it back and picks a transfer encoding by trying several: about 0.9 ms of CPU
for a campaign email, most of a send's own work at thousands of recipients. A campaign email
is always the same shape (a handful of headers and one HTML part), so it is written here
directly: headers as given when they are ASCII (folded at spaces past 78 characters, never
turned into encoded words: a ``List-Unsubscribe`` URL must stay a URL), RFC 2047 encoded words
for non-ASCII text and display names, the HTML as UTF-8 quoted-printable, CRLF line ends.

:func:`message_bytes` returns None for what it does not write (an address that does not
parse, one with a non-ASCII mailbox that needs SMTPUTF8, a header word longer than a line may
be); the caller then builds an ``EmailMessage`` as before.
"""

from __future__ import annotations

import re
from binascii import b2a_qp
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr, getaddresses
from functools import lru_cache

ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})
FOLD_AT = 78
MAX_LINE = 998  # RFC 5322's limit on a line, line end excluded


def message_bytes(headers: Sequence[tuple[str, str]], html: str) -> bytes | None:
    """The message with these headers (in order) and ``html`` as its only part."""
    lines: list[str] = []
    for name, value in headers:
        if "\r" in value or "\n" in value:
            return None
        if name.lower() in ADDRESS_HEADERS:
            written = _address(name, value)
            if written is None:
                return None
        elif value.isascii():
            written = _fold(name, value)
        else:
            encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
            written = f"{name}: {encoded}"
        if len(written) > MAX_LINE and any(len(x) > MAX_LINE for x in written.split("\r\n")):
            return None  # a word too long for SMTP's lines: the email package encodes it
        lines.append(written)
    lines.append("MIME-Version: 1.0")
    lines.append('Content-Type: text/html; charset="utf-8"')
    lines.append("Content-Transfer-Encoding: quoted-printable")
    # binascii's quoted-printable (C) keeps the text's line ends: CRLF throughout, first.
    # The part ends with one line end, as the email package writes it.
    text = html.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if not text.endswith("\r\n"):
        text += "\r\n"
    body = b2a_qp(text.encode("utf-8"), istext=True)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


# A bare address that needs no quoting (most recipients): written as it is.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


@lru_cache(maxsize=256)  # the From of a send is the same for every message
def _address(name: str, value: str) -> str | None:
    if _PLAIN_ADDRESS.fullmatch(value):
        return f"{name}: {value}"
    found = getaddresses([value])
    if len(found) != 1:
        return None
    display, address = found[0]
    if not address or "@" not in address or not address.isascii():
        return None
    return _fold(name, formataddr((display, address), charset="utf-8"))


def _fold(name: str, value: str) -> str:
    """``name: value`` folded at spaces so that its lines stay within 78 characters where a
    space allows it (a long URL stays whole: RFC 5322 allows 998)."""
    words = value.split(" ")
    current = f"{name}: {words[0]}"
    if len(current) + len(value) - len(words[0]) <= FOLD_AT:
        return f"{name}: {value}"
    out: list[str] = []
    for word in words[1:]:
        if word and len(current) + 1 + len(word) > FOLD_AT:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}"
    out.append(current)
    return "\r\n".join(out)
