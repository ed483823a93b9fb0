"""SQL for the web context: the admin UI's user accounts."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, Integer, String, Table, delete, select, update
from sqlalchemy.engine import Engine

from tidings.core.db import metadata

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    # Bumped on logout (and password change): every session cookie carries the version it was
    # issued under, so one logout revokes all of that user's sessions on every process.
    Column("session_version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_login_at", BigInteger, nullable=True),
)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    email: str
    password_hash: str
    session_version: int
    created_at: int
    last_login_at: int | None


class UserStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, record: UserRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                users.insert().values(
                    id=record.id,
                    email=record.email,
                    password_hash=record.password_hash,
                    session_version=record.session_version,
                    created_at=record.created_at,
                    last_login_at=record.last_login_at,
                )
            )

    def by_email(self, email: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.email == email)).first()
        return UserRecord(**row._mapping) if row else None

    def by_id(self, user_id: str) -> UserRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return UserRecord(**row._mapping) if row else None

    def list(self) -> list[UserRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.created_at, users.c.email))
            return [UserRecord(**r._mapping) for r in rows]

    def delete(self, email: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(users).where(users.c.email == email)).rowcount == 1

    def set_password(self, user_id: str, password_hash: str, *, revoke: bool) -> None:
        values: dict[str, object] = {"password_hash": password_hash}
        if revoke:
            values["session_version"] = users.c.session_version + 1
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(**values))

    def logged_in(self, user_id: str, at: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(last_login_at=at))

    def bump_session_version(self, user_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(session_version=users.c.session_version + 1)
            )
