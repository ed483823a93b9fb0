"""``tidings users`` and the demo's admin account, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tidings.cli import app
from tidings.core.clock import SystemClock
from tidings.core.db import Database
from tidings.web.store import UserStore
from tidings.web.users import UserService

runner = CliRunner()


def users_of(db_url: str) -> UserService:
    database = Database.from_url(db_url)
    return UserService(UserStore(database.engine), SystemClock())


def test_create_list_password_and_delete_users(db_url: str) -> None:
    r = runner.invoke(
        app,
        ["users", "create", "Ada@Example.com", "--password-stdin", "--db", db_url],
        input="correct horse battery\n",
    )
    assert r.exit_code == 0, r.output
    assert "user ada@example.com" in r.output
    users = users_of(db_url)
    try:
        assert users.password_matches("ada@example.com", "correct horse battery") is not None
        assert users.password_matches("ada@example.com", "correct horse batter") is None
        hashed = users.store.by_email("ada@example.com")
        assert hashed is not None and hashed.password_hash.startswith("$argon2id$")
        assert "correct horse" not in hashed.password_hash

        again = runner.invoke(
            app,
            ["users", "create", "ada@example.com", "--password-stdin", "--db", db_url],
            input="another long password\n",
        )
        assert again.exit_code == 1 and "exists" in again.output
        weak = runner.invoke(
            app,
            ["users", "create", "bob@example.com", "--password-stdin", "--db", db_url],
            input="short\n",
        )
        assert weak.exit_code == 1 and "at least 10 characters" in weak.output
        bad = runner.invoke(
            app,
            ["users", "create", "not-an-email", "--password-stdin", "--db", db_url],
            input="long enough password\n",
        )
        assert bad.exit_code == 1 and "is not an email address" in bad.output

        listed = runner.invoke(app, ["users", "list", "--db", db_url])
        assert listed.exit_code == 0 and "ada@example.com" in listed.output
        assert "never" in listed.output

        version = users.store.by_email("ada@example.com").session_version  # type: ignore[union-attr]
        changed = runner.invoke(
            app,
            ["users", "password", "ada@example.com", "--password-stdin", "--db", db_url],
            input="a brand new password\n",
        )
        assert changed.exit_code == 0, changed.output
        assert users.password_matches("ada@example.com", "a brand new password") is not None
        after = users.store.by_email("ada@example.com")
        assert after is not None and after.session_version == version + 1

        gone = runner.invoke(app, ["users", "delete", "ada@example.com", "--db", db_url])
        assert gone.exit_code == 0 and users.list() == []
        missing = runner.invoke(app, ["users", "delete", "ada@example.com", "--db", db_url])
        assert missing.exit_code == 1 and "no user" in missing.output
    finally:
        users.store.engine.dispose()


def test_without_a_terminal_the_password_must_come_on_stdin(sqlite_url: str) -> None:
    r = runner.invoke(app, ["users", "create", "ada@example.com", "--db", sqlite_url], input="")
    assert r.exit_code == 2
    assert "--password-stdin" in r.output


def test_the_demo_prints_a_working_admin_account_and_keeps_it(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_DATA_DIR", str(tmp_path / "data"))
    first = runner.invoke(app, ["demo", "--db", sqlite_url])
    assert first.exit_code == 0, first.output
    assert "http://127.0.0.1:8000/admin" in first.output
    creds = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
    assert creds["admin_email"] in first.output and creds["admin_password"] in first.output
    users = users_of(sqlite_url)
    try:
        assert users.password_matches(creds["admin_email"], creds["admin_password"]) is not None
        second = runner.invoke(app, ["demo", "--db", sqlite_url])
        assert creds["admin_password"] in second.output  # the same account, not a new one
        assert len(users.list()) == 1
        # A changed password (or a new database) gets a fresh one that works.
        users.set_password(creds["admin_email"], "changed by someone")
        third = runner.invoke(app, ["demo", "--db", sqlite_url])
        renewed = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
        assert renewed["admin_password"] != creds["admin_password"]
        assert renewed["admin_password"] in third.output
        assert users.password_matches(renewed["admin_email"], renewed["admin_password"])
    finally:
        users.store.engine.dispose()
