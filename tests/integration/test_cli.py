"""The ``tidings`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tidings.cli import app
from tidings.collect.sources import SourceService
from tidings.collect.store import CollectStore
from tidings.core import migrate
from tidings.core.auth import TokenService
from tidings.core.clock import SystemClock
from tidings.core.db import Database

runner = CliRunner()


def test_migrate_sources_and_tokens(db_url: str) -> None:
    r = runner.invoke(app, ["migrate", "--db", db_url])
    assert r.exit_code == 0, r.output
    database = Database.from_url(db_url)
    try:
        head = migrate.head_revision(database.engine)
        assert migrate.current_revision(database.engine) == head
    finally:
        database.close()
    assert f"schema at {head}" in r.output

    r = runner.invoke(app, ["sources", "create", "Web shop", "--db", db_url])
    assert r.exit_code == 0, r.output
    key = r.output.strip().splitlines()[-1]
    assert key.startswith("wk_")

    r = runner.invoke(app, ["tokens", "create", "--name", "ci", "--db", db_url])
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]

    db = Database.from_url(db_url)
    try:
        source = SourceService(CollectStore(db.engine), SystemClock()).by_write_key(key)
        assert source is not None
        assert source.name == "Web shop"
        tokens = TokenService(db.engine, SystemClock())
        assert tokens.is_valid(token)
        [listed] = tokens.list()
    finally:
        db.close()

    r = runner.invoke(app, ["sources", "list", "--db", db_url])
    assert "Web shop" in r.output
    assert key not in r.output  # only the hint

    r = runner.invoke(app, ["tokens", "revoke", listed.id, "--db", db_url])
    assert r.exit_code == 0
    r = runner.invoke(app, ["tokens", "revoke", listed.id, "--db", db_url])
    assert r.exit_code == 1


def test_demo_keeps_its_credentials_and_renews_them_for_a_new_database(tmp_path: Path) -> None:
    env_db = f"sqlite:///{tmp_path / 'demo.db'}"
    args = ["demo", "--db", env_db]
    runner_env = {"TIDINGS_DATA_DIR": str(tmp_path / "data")}
    first = runner.invoke(app, args, env=runner_env)
    assert first.exit_code == 0, first.output
    creds = json.loads((tmp_path / "data" / "demo-credentials.json").read_text())
    assert oct((tmp_path / "data" / "demo-credentials.json").stat().st_mode & 0o777) == "0o600"
    assert creds["write_key"] in first.output
    again = runner.invoke(app, args, env=runner_env)
    assert json.loads((tmp_path / "data" / "demo-credentials.json").read_text()) == creds
    assert again.exit_code == 0
    (tmp_path / "demo.db").unlink()
    renewed = runner.invoke(app, args, env=runner_env)
    assert renewed.exit_code == 0
    assert json.loads((tmp_path / "data" / "demo-credentials.json").read_text()) != creds


def test_the_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "tidings", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("serve", "migrate", "sources", "tokens", "demo"):
        assert command in out.stdout


def test_blocks_create_list_and_show(db_url: str) -> None:
    r = runner.invoke(
        app,
        [
            "blocks",
            "create",
            "Cart",
            "--app",
            "cart_items",
            "--format",
            "jpeg",
            "--fallback-link",
            "https://shop.example/",
            "--lock",
            "--db",
            db_url,
        ],
    )
    assert r.exit_code == 0, r.output
    block_id = r.output.split()[1]
    assert block_id.startswith("blk_") and f"/i/{block_id}.jpg" in r.output

    r = runner.invoke(app, ["blocks", "list", "--db", db_url])
    assert r.exit_code == 0 and block_id in r.output and "cart_items" in r.output

    r = runner.invoke(app, ["blocks", "show", block_id, "--db", db_url])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown["lock_after_first_open"] is True and shown["format"] == "jpeg"
    assert shown["fallback"] == {"kind": "collapse", "link_url": "https://shop.example/"}

    r = runner.invoke(app, ["blocks", "create", "Bad", "--app", "countdown", "--db", db_url])
    assert r.exit_code == 1 and "deadline" in r.output
    r = runner.invoke(app, ["blocks", "show", "blk_00000000000000000000", "--db", db_url])
    assert r.exit_code == 1 and "no block" in r.output
