"""The app's secret key, and compact signed tokens made with it (HMAC-SHA256, key ids).

**The secret key** is ``TIDINGS_SECRET_KEY``; when that is empty, one is generated once into
``data_dir/secret_key`` (mode 0600) and read from there afterwards, so a single-host install
needs no configuration and its links keep working across restarts. Several hosts sharing one
database must share the key: set ``TIDINGS_SECRET_KEY`` on each.

**Rotation.** ``TIDINGS_SECRET_KEYS_PREVIOUS`` (a JSON list) holds retired keys: tokens they
signed still verify, new tokens are signed with the current key only. Each token names its
key by a 3-byte key id (a hash of the derived key, not the key), so verification tries one key.

**Tokens** are ``base64url(version ‖ key id ‖ payload ‖ MAC)`` without padding. The MAC is
HMAC-SHA256 over version, key id, purpose and payload, truncated to 16 bytes (128 bits), and
compared in constant time. Each purpose (``"tracking"``, …) signs with its own key derived
from the secret key, so a token made for one purpose never verifies for another. Tokens are
signed, not encrypted: whoever holds one can read its payload.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from tidings.core.settings import Settings

VERSION = 1
KEY_ID_BYTES = 3
MAC_BYTES = 16  # 128 bits
SECRET_KEY_FILE = "secret_key"  # noqa: S105 (a file name)
MIN_KEY_CHARS = 32


class BadToken(Exception):
    """A token that is malformed, signed by no known key, or altered. ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def secret_key(settings: Settings) -> bytes:
    """The current secret key: ``TIDINGS_SECRET_KEY``, else ``data_dir/secret_key``, which is
    created (32 random bytes, base64url, mode 0600) when absent. Safe against several processes
    starting at once: the file appears whole or not at all, and the first one written wins."""
    configured = settings.secret_key.get_secret_value()
    if configured:
        if len(configured) < MIN_KEY_CHARS:
            raise ValueError(f"TIDINGS_SECRET_KEY must be at least {MIN_KEY_CHARS} characters")
        return configured.encode("utf-8")
    path = Path(settings.data_dir) / SECRET_KEY_FILE
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process got there first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    key = path.read_text("utf-8").strip()
    if not key:
        raise RuntimeError(f"{path} is empty; delete it to generate a new secret key")
    return key.encode("utf-8")


def all_secret_keys(settings: Settings) -> list[bytes]:
    """The current key first, then the retired ones that still verify."""
    keys = [secret_key(settings)]
    for old in settings.secret_keys_previous:
        value = old.get_secret_value().encode("utf-8")
        if value and value not in keys:
            keys.append(value)
    return keys


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or len(text) > 8192:
        raise BadToken("malformed_token", "the token is empty or too long")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("malformed_token", "the token is not base64url") from None


class Signer:
    """Seals payloads into tokens for one purpose, and opens tokens sealed by any known key."""

    def __init__(self, keys: Sequence[bytes], purpose: str) -> None:
        if not keys:
            raise ValueError("a signer needs at least one key")
        self.purpose = purpose.encode("utf-8")
        derived = [hmac.new(k, b"tidings-purpose:" + self.purpose, "sha256").digest() for k in keys]
        self._current = derived[0]
        self.key_id = self._key_id(derived[0])
        self._by_id: dict[bytes, list[bytes]] = {}
        for key in derived:
            self._by_id.setdefault(self._key_id(key), []).append(key)

    @classmethod
    def from_settings(cls, settings: Settings, purpose: str) -> Signer:
        return cls(all_secret_keys(settings), purpose)

    @staticmethod
    def _key_id(derived: bytes) -> bytes:
        return hashlib.sha256(b"tidings-key-id:" + derived).digest()[:KEY_ID_BYTES]

    def _mac(self, key: bytes, header: bytes, payload: bytes) -> bytes:
        msg = header + self.purpose + b"\x00" + payload
        return hmac.new(key, msg, "sha256").digest()[:MAC_BYTES]

    def seal(self, payload: bytes) -> str:
        header = bytes([VERSION]) + self.key_id
        return _b64encode(header + payload + self._mac(self._current, header, payload))

    def open(self, token: str) -> bytes:
        """The payload of a token this signer (or a retired key of it) sealed; else BadToken."""
        raw = _b64decode(token)
        head = 1 + KEY_ID_BYTES
        if len(raw) < head + MAC_BYTES:
            raise BadToken("malformed_token", "the token is too short")
        if raw[0] != VERSION:
            raise BadToken("unknown_version", f"token version {raw[0]} is not supported")
        header, payload, mac = raw[:head], raw[head:-MAC_BYTES], raw[-MAC_BYTES:]
        keys = self._by_id.get(header[1:])
        if not keys:
            raise BadToken("unknown_key", "the token was signed by a key this server does not hold")
        for key in keys:
            if hmac.compare_digest(self._mac(key, header, payload), mac):
                return payload
        raise BadToken("bad_signature", "the token's signature does not match: it was altered")
