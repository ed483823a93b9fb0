"""Signed tracking tokens: tamper, forge, rotate keys, purposes; the generated secret key."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from tidings.core.settings import Settings
from tidings.core.signing import MAC_BYTES, BadToken, Signer, all_secret_keys, secret_key
from tidings.tracking.tokens import PURPOSE, TrackingToken, decode, encode

CLICK = TrackingToken(
    kind="click",
    campaign_id="spring",
    campaign_name="Spring sale",
    email_id="em_1",
    recipient="ada@example.com",
    target="https://shop.example/p/1?x=1#top",
    link_id="hero",
    utm_content="hero",
    issued_at=1_790_000_000,
    sent_at=1_790_000_005,
)


def signer(*keys: bytes) -> Signer:
    return Signer(list(keys) or [b"k" * 32], PURPOSE)


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip_keeps_every_field() -> None:
    s = signer()
    assert decode(encode(CLICK, s), s) == CLICK


def test_token_is_compact_url_safe_text() -> None:
    text = encode(CLICK, signer())
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(text) < 250


@given(st.integers(min_value=0))
def test_any_flipped_bit_is_refused(position: int) -> None:
    s = signer()
    text = encode(CLICK, s)
    raw_len = len(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    with pytest.raises(BadToken) as caught:
        decode(_flip(text, position % raw_len), s)
    assert caught.value.code in {"bad_signature", "unknown_key", "unknown_version"}


def test_a_changed_target_is_refused() -> None:
    s = signer()
    evil = TrackingToken(**{**_fields(CLICK), "target": "https://evil.example/"})
    text = encode(CLICK, s)
    forged = encode(evil, signer(b"another key"))
    # The same header with the other payload: the MAC no longer matches.
    raw = base64.urlsafe_b64decode(forged + "=" * (-len(forged) % 4))
    own = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    spliced = own[:4] + raw[4:]
    with pytest.raises(BadToken, match="altered"):
        decode(base64.urlsafe_b64encode(spliced).rstrip(b"=").decode(), s)


def _fields(token: TrackingToken) -> dict[str, object]:
    return {f: getattr(token, f) for f in token.__slots__}  # type: ignore[attr-defined]


def test_a_token_from_another_key_is_unknown() -> None:
    with pytest.raises(BadToken) as caught:
        decode(encode(CLICK, signer(b"theirs")), signer(b"ours"))
    assert caught.value.code == "unknown_key"


@pytest.mark.parametrize("text", ["", "!!!", "AAAA", "A" * 9000, "AQ" + "A" * 40])
def test_garbage_is_refused_not_crashing(text: str) -> None:
    with pytest.raises(BadToken):
        decode(text, signer())


def test_truncated_mac_is_128_bits_and_truncation_fails() -> None:
    assert MAC_BYTES * 8 >= 128
    text = encode(CLICK, signer())
    with pytest.raises(BadToken):
        decode(text[:-3], signer())


def test_rotation_old_tokens_verify_new_ones_use_the_new_key() -> None:
    old, new = b"old key", b"new key"
    issued_before = encode(CLICK, signer(old))
    rotated = signer(new, old)
    assert decode(issued_before, rotated) == CLICK
    issued_after = encode(CLICK, rotated)
    assert decode(issued_after, signer(new)) == CLICK
    with pytest.raises(BadToken):
        decode(issued_after, signer(old))
    # Retire the old key completely: its tokens stop verifying.
    with pytest.raises(BadToken):
        decode(issued_before, signer(new))


def test_purposes_do_not_share_tokens() -> None:
    other = Signer([b"k" * 32], "cookies")
    with pytest.raises(BadToken):
        decode(encode(CLICK, signer()), other)


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    s = signer()
    with pytest.raises(BadToken, match="kind"):
        decode(s.seal(b'{"c":"x"}'), s)
    with pytest.raises(BadToken, match="JSON"):
        decode(s.seal(b"not json"), s)
    with pytest.raises(BadToken, match="target"):
        decode(s.seal(b'{"k":"c","c":"x"}'), s)


def test_secret_key_is_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    first = secret_key(settings)
    path = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(base64.urlsafe_b64decode(first)) == 32
    assert secret_key(settings) == first
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]  # no temp files left


def test_configured_key_wins_and_previous_keys_follow(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        secret_key=SecretStr("current-" + "k" * 32),
        secret_keys_previous=[SecretStr("old-" + "k" * 32), SecretStr("current-" + "k" * 32)],
    )
    assert all_secret_keys(settings) == [b"current-" + b"k" * 32, b"old-" + b"k" * 32]
    assert not (tmp_path / "secret_key").exists()
