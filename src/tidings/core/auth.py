"""Admin API tokens: every API except collection takes one as ``Authorization: Bearer``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, String, Table, select, update
from sqlalchemy.engine import Engine

from tidings.core.clock import Clock, to_ms
from tidings.core.db import metadata
from tidings.core.errors import Unauthorized
from tidings.core.ids import new_id, new_secret, secret_hash, secret_hint

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("token_hint", String(20), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
)

TOKEN_PREFIX = "tdk"  # noqa: S105 (a prefix, not a secret)
# A revoked token stops working in other processes within this many seconds.
CACHE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: str
    name: str
    hint: str
    created_at: int


@dataclass(frozen=True, slots=True)
class NewToken:
    token: ApiToken
    secret: str


class TokenService:
    """Creates and checks admin tokens; only their SHA-256 is stored."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._valid: dict[str, float] = {}

    def create(self, name: str) -> NewToken:
        """Make a token; its secret is returned once and never again."""
        secret = new_secret(TOKEN_PREFIX, 32)
        token = ApiToken(new_id("tok"), name, secret_hint(secret), to_ms(self.clock.now()))
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.insert().values(
                    id=token.id,
                    name=name,
                    token_hash=secret_hash(secret),
                    token_hint=token.hint,
                    created_at=token.created_at,
                )
            )
        return NewToken(token, secret)

    def revoke(self, token_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=to_ms(self.clock.now()))
            )
        self._valid.clear()
        return result.rowcount == 1

    def list(self) -> list[ApiToken]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(api_tokens).where(api_tokens.c.revoked_at.is_(None))
            ).mappings()
            return [ApiToken(r["id"], r["name"], r["token_hint"], r["created_at"]) for r in rows]

    def is_valid(self, secret: str) -> bool:
        digest = secret_hash(secret)
        if self._valid.get(digest, 0.0) > time.monotonic():
            return True
        with self.engine.connect() as conn:
            found = conn.execute(
                select(api_tokens.c.id).where(
                    api_tokens.c.token_hash == digest, api_tokens.c.revoked_at.is_(None)
                )
            ).first()
        if found:
            self._valid[digest] = time.monotonic() + CACHE_SECONDS
        return found is not None

    def check_header(self, authorization: str | None) -> None:
        """Raise 401 unless the header is ``Bearer <valid admin token>``."""
        if not authorization:
            raise Unauthorized(
                "missing_token", "this API needs an admin token: Authorization: Bearer <token>"
            )
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("bad_auth_scheme", "use Authorization: Bearer <admin token>")
        if not self.is_valid(value.strip()):
            raise Unauthorized("invalid_token", "the admin token is unknown or revoked")
