"""``tidings users``: the admin UI's accounts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tidings.core.clock import SystemClock, from_ms, iso
from tidings.core.errors import TidingsError
from tidings.core.settings import Settings

from .users import UserService, check_password

users_app = typer.Typer(no_args_is_help=True, help="Admin UI accounts (sign in at /admin).")
console = Console()

DbOption = Annotated[
    str | None, typer.Option("--db", help="Database URL (default: TIDINGS_DATABASE_URL)")
]
PasswordStdinOption = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from standard input's first line"),
]


@contextmanager
def _users(db: str | None) -> Iterator[UserService]:
    from tidings.core import migrate
    from tidings.core.db import Database

    from .store import UserStore

    settings = Settings()
    if db:
        settings = settings.model_copy(update={"database_url": db})
    database = Database.from_settings(settings)
    try:
        migrate.upgrade(database.engine)
        yield UserService(UserStore(database.engine), SystemClock())
    finally:
        database.close()


def _fail(exc: TidingsError) -> typer.Exit:
    where = f" ({exc.error.field})" if exc.error.field else ""
    console.print(f"[red]{exc.error.message}[/]{where}")
    return typer.Exit(1)


def read_password(from_stdin: bool) -> str:
    """The password from standard input's first line, or asked twice at a terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        console.print("[red]no terminal to ask for a password: use --password-stdin[/]")
        raise typer.Exit(2)
    while True:
        password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            check_password(password)
        except TidingsError as exc:
            console.print(f"[yellow]{exc.error.message}[/]")
            continue
        return password


@users_app.command("create")
def users_create(
    email: str,
    password_stdin: PasswordStdinOption = False,
    db: DbOption = None,
) -> None:
    """Create an account for the admin UI (asks for the password twice)."""
    password = read_password(password_stdin)
    with _users(db) as users:
        try:
            user = users.create(email, password)
        except TidingsError as exc:
            raise _fail(exc) from None
    console.print(f"user [bold]{user.email}[/] ({user.id}); sign in at /admin")


@users_app.command("password")
def users_password(
    email: str,
    password_stdin: PasswordStdinOption = False,
    db: DbOption = None,
) -> None:
    """Set a new password (signs the user out everywhere)."""
    password = read_password(password_stdin)
    with _users(db) as users:
        try:
            user = users.set_password(email, password)
        except TidingsError as exc:
            raise _fail(exc) from None
    console.print(f"new password for [bold]{user.email}[/]; their sessions were signed out")


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List accounts."""
    with _users(db) as users:
        table = Table("email", "id", "created", "last sign-in")
        for u in users.list():
            last = iso(from_ms(u.last_login_at)) if u.last_login_at else "never"
            table.add_row(u.email, u.id, iso(from_ms(u.created_at)), last)
    console.print(table)


@users_app.command("delete")
def users_delete(email: str, db: DbOption = None) -> None:
    """Delete an account; its sessions stop working at once."""
    with _users(db) as users:
        try:
            users.delete(email)
        except TidingsError as exc:
            raise _fail(exc) from None
    console.print(f"deleted {email}")
