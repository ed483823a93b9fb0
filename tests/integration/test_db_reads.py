"""``core.db``'s many-value reads on a real database: ``values_in``, ``pairs_in`` and
``driver_rows_in`` (one array parameter on PostgreSQL, ``IN`` lists on SQLite) must find the
same rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import BigInteger, Column, MetaData, String, Table, insert, select

from tidings.core.db import Database, driver_rows_in, pairs_in, values_in

meta = MetaData()
items = Table(
    "items",
    meta,
    Column("seq", BigInteger, primary_key=True),
    Column("kind", String(40), nullable=False),
    Column("name", String(500), nullable=False),
)
ROWS = [{"seq": n, "kind": "odd" if n % 2 else "even", "name": f"n-{n}"} for n in range(1, 1201)]


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database.from_url(db_url)
    meta.create_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(insert(items), ROWS)
    yield db
    db.close()


def test_values_in_finds_exactly_the_given_values(database: Database) -> None:
    wanted = [*range(0, 1300, 3), 10**12]  # absent values too, more than one IN chunk
    query = select(items.c.seq).where(values_in(database.engine, items.c.seq, wanted))
    with database.engine.connect() as conn:
        found = sorted(seq for (seq,) in conn.execute(query))
        names = select(items.c.seq).where(values_in(database.engine, items.c.name, ["n-7", "x"]))
        assert [seq for (seq,) in conn.execute(names)] == [7]
        empty = select(items.c.seq).where(values_in(database.engine, items.c.seq, []))
        assert list(conn.execute(empty)) == []
    assert found == [n for n in range(3, 1201, 3)]


def test_pairs_in_finds_exactly_the_given_pairs(database: Database) -> None:
    pairs = [("odd", "n-1"), ("even", "n-2"), ("odd", "n-2"), ("even", "n-1000"), ("x", "n-3")]
    query = select(items.c.seq).where(pairs_in(items.c.kind, items.c.name, pairs, database.engine))
    with database.engine.connect() as conn:
        assert sorted(seq for (seq,) in conn.execute(query)) == [1, 2, 1000]
        nothing = select(items.c.seq).where(
            pairs_in(items.c.kind, items.c.name, [], database.engine)
        )
        assert list(conn.execute(nothing)) == []


def test_driver_rows_in_reads_every_matching_row(database: Database) -> None:
    names = [f"n-{n}" for n in range(1, 1201, 2)] + ["missing"]
    rows = driver_rows_in(database.engine, "SELECT seq, kind FROM items", "name", names)
    assert sorted(rows) == [(n, "odd") for n in range(1, 1201, 2)]
    assert driver_rows_in(database.engine, "SELECT seq FROM items", "name", []) == []
