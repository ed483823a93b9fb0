"""``core.db.insert_rows`` on a real database: what every hot write path relies on.

On PostgreSQL rows go through ``COPY`` (into a session's temporary table first when they need
``ON CONFLICT``); on SQLite through multi-row INSERTs. Both must store the same rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
)

from tidings.core.db import Database, Serial, insert_rows

meta = MetaData()
things = Table(
    "things",
    meta,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("key", String(40), nullable=False, unique=True),
    Column("body", Text, nullable=True),
    Column("n", Integer, nullable=True),
    Column("amount", Float, nullable=True),
    Column("at", BigInteger, nullable=True),
)
COLUMNS = ("key", "body", "n", "amount", "at")
KEEP_FIRST = "ON CONFLICT (key) DO NOTHING"
TAKE_NEW = "ON CONFLICT (key) DO UPDATE SET body = excluded.body, n = things.n + excluded.n"


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.from_url(db_url)
    meta.create_all(db.engine)
    yield db
    db.close()


def stored(db: Database) -> dict[str, tuple[Any, ...]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(*(things.c[c] for c in COLUMNS)).order_by(things.c.id))
        return {row[0]: tuple(row) for row in rows}


def test_awkward_values_arrive_unchanged(database: Database) -> None:
    # Text that COPY's format must escape, mixed int and float in one float column, NULLs.
    awkward = 'tab\there, newline\nthere, back\\slash, "quotes", ünïcödé 🛒, \\N, \\.'
    rows = [
        ("a", awkward, 1, 0, 2**40),
        ("b", None, None, 12.5, None),
        ("c", "", -3, 1e-9, -1),
        ("d", "x" * 20_000, 0, None, 0),
    ]
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, rows)
    assert stored(database) == {row[0]: row for row in rows}


def test_keep_first_on_conflict_inside_a_call_and_against_stored_rows(database: Database) -> None:
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("a", "old", 1, None, None)], KEEP_FIRST)
    with database.engine.begin() as conn:
        insert_rows(
            conn,
            things,
            COLUMNS,
            [
                ("a", "new", 2, None, None),
                ("b", "first", 3, None, None),
                ("b", "second", 4, None, None),
            ],
            KEEP_FIRST,
        )
    assert stored(database) == {
        "a": ("a", "old", 1, None, None),
        "b": ("b", "first", 3, None, None),
    }


def test_updates_on_conflict_with_distinct_keys_and_without(database: Database) -> None:
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("a", "v1", 1, None, None)], TAKE_NEW)
    with database.engine.begin() as conn:
        insert_rows(
            conn,
            things,
            COLUMNS,
            [("a", "v2", 10, None, None), ("b", "v1", 5, None, None)],
            TAKE_NEW,
            distinct_keys=True,
        )
        # The same key twice: one statement per row, in order.
        insert_rows(
            conn,
            things,
            COLUMNS,
            [("b", "v2", 1, None, None), ("b", "v3", 1, None, None)],
            TAKE_NEW,
        )
    assert stored(database) == {
        "a": ("a", "v2", 11, None, None),
        "b": ("b", "v3", 7, None, None),
    }


def test_several_calls_in_one_transaction_and_after_a_rollback(database: Database) -> None:
    """Rows staged for one call never reach the next, nor survive a rolled-back transaction
    on the same connection."""
    with database.engine.connect() as conn:
        with conn.begin():
            insert_rows(
                conn, things, COLUMNS, [("a", "1", 1, None, None)], TAKE_NEW, distinct_keys=True
            )
            insert_rows(
                conn, things, COLUMNS, [("b", "1", 1, None, None)], TAKE_NEW, distinct_keys=True
            )
        transaction = conn.begin()
        insert_rows(conn, things, COLUMNS, [("c", "1", 1, None, None)], KEEP_FIRST)
        transaction.rollback()
        with conn.begin():
            insert_rows(conn, things, COLUMNS, [("d", "1", 1, None, None)], KEEP_FIRST)
            insert_rows(
                conn, things, COLUMNS, [("a", "2", 1, None, None)], TAKE_NEW, distinct_keys=True
            )
    assert stored(database) == {
        "a": ("a", "2", 2, None, None),
        "b": ("b", "1", 1, None, None),
        "d": ("d", "1", 1, None, None),
    }


def test_a_failed_insert_rolls_back_with_its_transaction(database: Database) -> None:
    with pytest.raises(Exception, match=r"(?i)null"), database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("a", "1", 1, None, None)], KEEP_FIRST)
        insert_rows(conn, things, COLUMNS, [(None, "1", 1, None, None)])
    assert stored(database) == {}
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("a", "ok", 1, None, None)], KEEP_FIRST)
    assert stored(database) == {"a": ("a", "ok", 1, None, None)}


def test_rows_promised_new_that_are_not_meet_the_conflict_clause(database: Database) -> None:
    """``new_keys`` copies straight in; a key that was already stored falls back to the
    conflict clause inside the same transaction, with the same result and nothing doubled."""
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("a", "old", 1, None, None)], KEEP_FIRST)
    with database.engine.begin() as conn:
        insert_rows(conn, things, COLUMNS, [("b", "new", 2, None, None)], KEEP_FIRST, new_keys=True)
        insert_rows(
            conn,
            things,
            COLUMNS,
            [("c", "new", 3, None, None), ("a", "again", 4, None, None)],
            KEEP_FIRST,
            new_keys=True,
        )
    assert stored(database) == {
        "a": ("a", "old", 1, None, None),
        "b": ("b", "new", 2, None, None),
        "c": ("c", "new", 3, None, None),
    }
