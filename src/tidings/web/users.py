"""Admin UI accounts: Argon2id password hashes, sign-in checks and session versions."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tidings.core.clock import Clock, to_ms
from tidings.core.errors import Conflict, NotFound, TidingsError
from tidings.core.ids import new_id
from tidings.identity.graph import normalize_email

from .store import UserRecord, UserStore

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True, slots=True)
class User:
    """An account as the UI sees it: never its hash."""

    id: str
    email: str
    session_version: int
    created_at: int
    last_login_at: int | None


def _public(record: UserRecord) -> User:
    return User(
        record.id, record.email, record.session_version, record.created_at, record.last_login_at
    )


def check_password(password: str) -> None:
    """Raise a 400 naming the rule a new password breaks."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise TidingsError(
            "weak_password", f"use at least {MIN_PASSWORD_CHARS} characters", "password"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise TidingsError(
            "password_too_long", f"use at most {MAX_PASSWORD_CHARS} characters", "password"
        )


def _email(email: str) -> str:
    value = normalize_email(email)
    local, at, domain = value.partition("@")
    if not at or not local or not domain or len(value) > 320 or any(c.isspace() for c in value):
        raise TidingsError("invalid_email", f"{email!r} is not an email address", "email")
    return value


class UserService:
    """Creates, lists and deletes accounts; checks passwords in constant-ish time."""

    def __init__(self, store: UserStore, clock: Clock, hasher: PasswordHasher | None = None):
        self.store = store
        self.clock = clock
        # argon2-cffi's defaults are RFC 9106's second recommendation (Argon2id, t=3, 64 MiB).
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    def _dummy_hash(self) -> str:
        """Verified against when the email is unknown, so both answers take as long."""
        if self._dummy is None:
            self._dummy = self.hasher.hash("not a password: evens out timing")
        return self._dummy

    def create(self, email: str, password: str) -> User:
        """Make an account; the email is case-insensitive and unique."""
        address = _email(email)
        check_password(password)
        if self.store.by_email(address) is not None:
            raise Conflict("user_exists", f"a user with the email {address!r} exists", "email")
        record = UserRecord(
            id=new_id("usr"),
            email=address,
            password_hash=self.hasher.hash(password),
            session_version=1,
            created_at=to_ms(self.clock.now()),
            last_login_at=None,
        )
        self.store.insert(record)
        return _public(record)

    def list(self) -> list[User]:
        return [_public(r) for r in self.store.list()]

    def delete(self, email: str) -> None:
        """Delete an account; its sessions stop working at their next request."""
        if not self.store.delete(normalize_email(email)):
            raise NotFound("user_not_found", f"no user with the email {email!r}", "email")

    def set_password(self, email: str, password: str) -> User:
        """Replace a password and sign the user out everywhere."""
        check_password(password)
        record = self.store.by_email(normalize_email(email))
        if record is None:
            raise NotFound("user_not_found", f"no user with the email {email!r}", "email")
        self.store.set_password(record.id, self.hasher.hash(password), revoke=True)
        return self.get(record.id) or _public(record)

    def get(self, user_id: str) -> User | None:
        record = self.store.by_id(user_id)
        return _public(record) if record else None

    def authenticate(self, email: str, password: str) -> User | None:
        """The user whose email and password these are, or None (either may be wrong: the
        caller must not say which). Records the sign-in."""
        user = self.password_matches(email, password)
        if user is not None:
            self.store.logged_in(user.id, to_ms(self.clock.now()))
        return user

    def password_matches(self, email: str, password: str) -> User | None:
        """``authenticate`` without recording a sign-in."""
        record = self.store.by_email(normalize_email(email))
        candidate = record.password_hash if record else self._dummy_hash()
        try:
            self.hasher.verify(candidate, password[:MAX_PASSWORD_CHARS])
        except (VerificationError, InvalidHashError):
            return None
        if record is None:
            return None
        if self.hasher.check_needs_rehash(record.password_hash):
            self.store.set_password(record.id, self.hasher.hash(password), revoke=False)
        return _public(record)

    def revoke_sessions(self, user_id: str) -> None:
        """Every session of this user stops working (a logout signs out everywhere)."""
        self.store.bump_session_version(user_id)
