"""Migrations build exactly the schema the stores declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tidings.collect.store import INDEXES_OUTSIDE_METADATA
from tidings.core import migrate
from tidings.core.db import Database, metadata


def _declared(name: str | None, type_: str, parent: Any) -> bool:
    return not (type_ == "index" and name in INDEXES_OUTSIDE_METADATA)


# SQLAlchemy does not reflect SQLite's expression indexes (it says so, and skips them); the
# migration creates them, and a query plan test checks they are used.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
def test_migrated_schema_matches_the_tables_the_code_uses(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision(db.engine)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"include_name": _declared})
            diff = compare_metadata(context, metadata)
        assert diff == []
    finally:
        db.close()


def test_upgrade_is_idempotent_and_downgrade_reverses_it(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        migrate.upgrade(db.engine)
        migrate.upgrade(db.engine)
        from alembic import command

        command.downgrade(migrate.alembic_config(db.engine), "base")
        assert migrate.current_revision(db.engine) is None
        migrate.upgrade(db.engine)
        assert migrate.current_revision(db.engine) == migrate.head_revision(db.engine)
    finally:
        db.close()
