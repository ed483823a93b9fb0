"""Signed-cookie sessions with a session-bound CSRF token.

Every browser that reaches the admin UI holds one cookie, signed with the app's secret key
(itsdangerous, HMAC-SHA1 over a salted derived key): before sign-in it carries only a CSRF
token (so the login form is protected too), after sign-in also the user id, the user's session
version and an expiry. Nothing is stored server-side except the version per user, which a logout
bumps: every cookie issued before stops working, in every process.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from tidings.core.clock import Clock, to_ms

COOKIE = "tidings_session"
COOKIE_PATH = "/admin"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class Session:
    """What a cookie says. ``user_id`` is None before sign-in."""

    csrf: str
    user_id: str | None = None
    version: int = 0
    expires_ms: int = 0

    def csrf_matches(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf, token or "")


class SessionCodec:
    """Encodes sessions into cookie values and back; expiry is read from the app's clock."""

    def __init__(self, secret_key: bytes, clock: Clock, lifetime: timedelta) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="tidings.admin.session")
        self.clock = clock
        self.lifetime = lifetime

    def anonymous(self) -> Session:
        return Session(csrf=secrets.token_urlsafe(32))

    def signed_in(self, user_id: str, version: int) -> Session:
        """A fresh session (new CSRF token: nothing from before sign-in carries over)."""
        expires = to_ms(self.clock.now() + self.lifetime)
        return Session(secrets.token_urlsafe(32), user_id, version, expires)

    def dumps(self, session: Session) -> str:
        data: dict[str, Any] = {"c": session.csrf}
        if session.user_id is not None:
            data.update(u=session.user_id, v=session.version, e=session.expires_ms)
        return str(self._serializer.dumps(data))

    def loads(self, value: str | None) -> Session | None:
        """The session in a cookie, None if it is missing, forged or malformed. An expired
        signed-in session comes back anonymous (its CSRF token still protects the login form)."""
        if not value or len(value) > 4096:
            return None
        try:
            data = self._serializer.loads(value)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        session = Session(csrf=data["c"])
        user_id, version, expires = data.get("u"), data.get("v"), data.get("e")
        if (
            isinstance(user_id, str)
            and isinstance(version, int)
            and isinstance(expires, int)
            and expires > to_ms(self.clock.now())
        ):
            session = Session(data["c"], user_id, version, expires)
        return session
