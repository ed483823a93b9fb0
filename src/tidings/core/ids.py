"""Identifiers and secrets: readable prefixes, random bodies, stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid


def new_id(prefix: str) -> str:
    """A sortable-enough unique id such as ``src_3f9a…``."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def new_secret(prefix: str, nbytes: int = 24) -> str:
    """A URL-safe secret such as a write key (``wk_…``) or an admin token (``tdk_…``)."""
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def secret_hash(secret: str) -> str:
    """What we store instead of a secret: SHA-256 of it, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def secret_hint(secret: str) -> str:
    """The part of a secret that may be shown again after creation."""
    return secret[:7] + "…" + secret[-4:]


def new_message_id() -> str:
    return f"tidings-{uuid.uuid4()}"
