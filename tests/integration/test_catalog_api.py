"""The catalog over HTTP and the CLI, on SQLite and PostgreSQL: feed import, products, the feed
winning over events, popularity."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tidings.app import create_app
from tidings.catalog.service import CatalogService
from tidings.catalog.store import CatalogStore
from tidings.cli import app as cli_app
from tidings.core.clock import FrozenClock
from tidings.core.db import Database
from tidings.core.deps import Container
from tidings.core.settings import Settings
from tidings.profiles.ecommerce import Product
from tidings.testing import Credentials

FEED = (
    "id,title,price,sale_price,link,image_link,product_type,brand,availability,color\n"
    "SKU-1,Trail Runner,89.00 USD,69.00 USD,https://shop.example/p/1,"
    "https://cdn.example/1.jpg,Shoes,Kestrel,in stock,red\n"
    "SKU-2,Rain Jacket,120.00 USD,,https://shop.example/p/2,,Outerwear,Tidewater,out of stock,\n"
    "SKU-3,Tote,abc,,https://shop.example/p/3,,Bags,Quill,in stock,\n"
    "SKU-4,Wool Coat,240.00 USD,,https://shop.example/p/4,,Outerwear,Marlow,in stock,\n"
)


def container(client: TestClient) -> Container:
    c: Container = client.app.state.container  # type: ignore[attr-defined]
    return c


def post_feed(
    client: TestClient,
    admin: dict[str, str],
    body: bytes | str,
    content_type: str = "text/csv",
    status: int = 200,
    **params: str,
) -> Any:
    r = client.post(
        "/v1/catalog/import",
        content=body,
        headers={**admin, "Content-Type": content_type},
        params=params,
    )
    assert r.status_code == status, r.text
    return r.json()


def get(client: TestClient, admin: dict[str, str], path: str, status: int = 200) -> Any:
    r = client.get(path, headers=admin)
    assert r.status_code == status, r.text
    return r.json()


def learn(client: TestClient, *products: Product, count_views: bool = True) -> None:
    c = container(client)
    with c.db.engine.begin() as conn:
        c.catalog.store.learn(conn, products, 1_700_000_000_000, count_views=count_views)
    c.catalog._changed()


def test_import_a_csv_feed_then_read_edit_and_delete(
    client: TestClient, admin: dict[str, str]
) -> None:
    summary = post_feed(client, admin, FEED)
    assert (summary["rows"], summary["inserted"], summary["updated"], summary["rejected"]) == (
        4,
        3,
        0,
        1,
    )
    [issue] = summary["issues"]
    assert (issue["line"], issue["product_id"], issue["field"], issue["code"]) == (
        4,
        "SKU-3",
        "price",
        "invalid_price",
    )
    assert summary["format"] == "csv"

    one = get(client, admin, "/v1/catalog/products/SKU-1")
    assert one["name"] == "Trail Runner"
    assert (one["price"], one["sale_price"], one["currency"]) == (89.0, 69.0, "USD")
    assert one["in_stock"] is True
    assert one["extra"] == {"color": "red"}
    assert one["source"] == "feed"
    assert one["origins"] == {
        f: "feed"
        for f in (
            "name",
            "price",
            "sale_price",
            "currency",
            "image_url",
            "url",
            "category",
            "brand",
            "in_stock",
        )
    }
    assert one["created_at"] == "2026-11-23T12:00:00.000Z"

    again = post_feed(client, admin, FEED)
    assert (again["inserted"], again["updated"], again["rejected"]) == (0, 3, 1)

    r = client.put(
        "/v1/catalog/products/SKU-3",
        json={"name": "Tote", "price": "35,00 €", "url": "/p/3", "in_stock": "preorder"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["price"], r.json()["currency"], r.json()["in_stock"]) == (35.0, "EUR", False)
    assert get(client, admin, "/v1/catalog/products/SKU-3")["url"] == "/p/3"

    # PUT replaces: what is left out is cleared.
    r = client.put("/v1/catalog/products/SKU-3", json={"name": "Tote"}, headers=admin)
    assert r.status_code == 200
    assert r.json()["price"] is None and r.json()["origins"] == {"name": "feed"}

    r = client.delete("/v1/catalog/products/SKU-3", headers=admin)
    assert r.status_code == 200
    assert r.json() == {"product_id": "SKU-3", "deleted": True}
    assert get(client, admin, "/v1/catalog/products/SKU-3", 404)["code"] == "product_not_found"
    assert client.delete("/v1/catalog/products/SKU-3", headers=admin).status_code == 404


def test_ids_with_slashes_and_spaces_are_addressable(
    client: TestClient, admin: dict[str, str]
) -> None:
    r = client.put("/v1/catalog/products/shoes/42 b", json={"name": "X"}, headers=admin)
    assert r.status_code == 200, r.text
    assert get(client, admin, "/v1/catalog/products/shoes/42%20b")["product_id"] == "shoes/42 b"


def test_json_feeds(client: TestClient, admin: dict[str, str]) -> None:
    items = [
        {"id": "J-1", "title": "Candle", "price": {"value": "18", "currency": "GBP"}},
        {"id": "J-2", "title": "Vase", "price": 40, "currency": "GBP", "availability": "nope"},
        7,
    ]
    summary = post_feed(client, admin, orjson.dumps({"products": items}), "application/json")
    assert (summary["format"], summary["inserted"], summary["rejected"]) == ("json", 1, 2)
    assert [(i["index"], i["field"], i["code"]) for i in summary["issues"]] == [
        (1, "in_stock", "invalid_availability"),
        (2, None, "not_an_object"),
    ]
    # The format from the query, whatever the Content-Type; gzip bodies.
    body = gzip.compress(orjson.dumps(items[:1]))
    r = client.post(
        "/v1/catalog/import?format=json",
        content=body,
        headers={**admin, "Content-Type": "text/plain", "Content-Encoding": "gzip"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated"] == 1
    assert get(client, admin, "/v1/catalog/products/J-1")["currency"] == "GBP"


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        ("", "text/csv", "empty_feed"),
        ("   \n", "text/csv", "empty_feed"),
        ("title,price\nTote,5\n", "text/csv", "missing_id_column"),
        ("{nope", "application/json", "invalid_json"),
        ('{"products": 3}', "application/json", "invalid_feed"),
    ],
)
def test_bodies_that_are_not_feeds_are_400(
    client: TestClient, admin: dict[str, str], body: str, content_type: str, code: str
) -> None:
    error = post_feed(client, admin, body, content_type, status=400)
    assert error["code"] == code
    assert error["message"]


def test_auth_and_bad_parameters(client: TestClient, admin: dict[str, str]) -> None:
    r = client.post("/v1/catalog/import", content=FEED, headers={"Content-Type": "text/csv"})
    assert r.status_code == 401
    assert client.get("/v1/catalog/products").status_code == 401
    assert get(client, admin, "/v1/catalog/products?cursor=%%%", 400)["field"] == "cursor"
    assert get(client, admin, "/v1/catalog/products?limit=0", 422)["field"] == "limit"
    assert post_feed(client, admin, FEED, status=422, format="xml")["field"] == "format"
    assert get(client, admin, "/v1/catalog/products/" + "x" * 300, 404)["field"] == "product_id"

    r = client.put("/v1/catalog/products/P", json={"price": "cheap", "url": "x"}, headers=admin)
    assert r.status_code == 422
    body = r.json()
    assert (body["code"], body["field"]) == ("invalid_price", "price")
    assert {e["field"] for e in body["errors"]} == {"price", "url"}
    r = client.put("/v1/catalog/products/P", json={"titel": "typo"}, headers=admin)
    assert r.status_code == 422 and r.json()["field"] == "titel"
    r = client.put("/v1/catalog/products/" + "x" * 201, json={}, headers=admin)
    assert r.status_code == 422 and r.json()["code"] == "too_long"


def test_import_size_is_capped(
    db_url: str, tmp_path: Path, creds: Credentials, clock: FrozenClock, admin: dict[str, str]
) -> None:
    settings = Settings(
        database_url=db_url, data_dir=tmp_path / "data", catalog_import_max_bytes=100
    )
    with TestClient(create_app(settings, clock)) as small:
        error = post_feed(small, admin, FEED, status=400)
        assert error["code"] == "payload_too_large"


def test_list_pages_filters_and_search(client: TestClient, admin: dict[str, str]) -> None:
    rows = "\n".join(
        f"P-{i:02d},Item {i},{i}.00,{('Bags', 'Shoes')[i % 2]},{'Kestrel' if i < 3 else 'Quill'}"
        for i in range(1, 8)
    )
    post_feed(client, admin, "id,title,price,category,brand\n" + rows + "\n")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = get(
            client,
            admin,
            "/v1/catalog/products?limit=3" + (f"&cursor={cursor}" if cursor else ""),
        )
        seen += [p["product_id"] for p in page["data"]]
        if not page["cursor"]["has_more"]:
            assert page["cursor"]["next"] is None
            break
        cursor = page["cursor"]["next"]
    assert seen == [f"P-{i:02d}" for i in range(1, 8)]

    shoes = get(client, admin, "/v1/catalog/products?category=shoes")["data"]
    assert [p["product_id"] for p in shoes] == ["P-01", "P-03", "P-05", "P-07"]
    kestrel = get(client, admin, "/v1/catalog/products?q=KESTREL")["data"]
    assert [p["product_id"] for p in kestrel] == ["P-01", "P-02"]
    assert get(client, admin, "/v1/catalog/products?q=item%205")["data"][0]["product_id"] == "P-05"
    assert get(client, admin, "/v1/catalog/products?q=%25")["data"] == []  # % is literal


def test_the_feed_wins_over_events_field_by_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    # Events first: the product exists from events only.
    learn(
        client,
        Product(
            "SKU-1",
            name="Runner (event)",
            price=79.0,
            image_url="https://cdn.example/event.jpg",
            category="Shoes",
            currency="usd",
        ),
    )
    learned = get(client, admin, "/v1/catalog/products/SKU-1")
    assert learned["source"] == "events"
    assert learned["origins"] == {
        "name": "events",
        "price": "events",
        "image_url": "events",
        "category": "events",
        "currency": "events",
    }
    assert learned["views"] == 1

    # The feed overwrites what events taught, for the fields it gives.
    post_feed(client, admin, "id,title,price\nSKU-1,Trail Runner,89.00 USD\n")
    merged = get(client, admin, "/v1/catalog/products/SKU-1")
    assert (merged["name"], merged["price"], merged["currency"]) == ("Trail Runner", 89.0, "USD")
    assert merged["image_url"] == "https://cdn.example/event.jpg"  # the feed has none
    assert merged["source"] == "feed"
    assert merged["origins"]["name"] == "feed" and merged["origins"]["image_url"] == "events"
    assert merged["views"] == 1  # kept

    # Events never overwrite the feed's fields, but fill and update the others.
    learn(
        client,
        Product(
            "SKU-1",
            name="Other name",
            price=1.0,
            image_url="https://cdn.example/newer.jpg",
            brand="Kestrel",
            url="javascript:alert(1)",
        ),
        Product("SKU-1"),
    )
    after = get(client, admin, "/v1/catalog/products/SKU-1")
    assert (after["name"], after["price"]) == ("Trail Runner", 89.0)
    assert after["image_url"] == "https://cdn.example/newer.jpg"
    assert after["brand"] == "Kestrel"
    assert after["url"] is None  # not a URL a render may link
    assert after["views"] == 3

    # A feed that stops giving a value retracts it; events may then fill it.
    post_feed(client, admin, "id,title,sale_price\nSKU-1,Trail Runner,59\n")
    assert get(client, admin, "/v1/catalog/products/SKU-1")["sale_price"] == 59.0
    post_feed(client, admin, "id,title,sale_price\nSKU-1,Trail Runner,\n")
    retracted = get(client, admin, "/v1/catalog/products/SKU-1")
    assert retracted["sale_price"] is None
    assert retracted["price"] is None  # the second feed had no price either
    assert retracted["image_url"] == "https://cdn.example/newer.jpg"  # events' value stays
    learn(client, Product("SKU-1", price=75.0, sale_price=70.0), count_views=False)
    refilled = get(client, admin, "/v1/catalog/products/SKU-1")
    assert (refilled["price"], refilled["sale_price"]) == (75.0, 70.0)
    assert refilled["origins"]["price"] == "events"
    assert refilled["views"] == 3


def test_learn_skips_what_columns_cannot_hold(client: TestClient, admin: dict[str, str]) -> None:
    learn(
        client,
        Product("x" * 201, name="too long an id"),
        Product("", name="empty"),
        Product("NUL\x00ID", name="a\x00b" + "n" * 600, price=-1.0, currency="EURO"),
        Product("OK", url="//shop.example/p", image_url="/demo/products/OK.png"),
    )
    c = container(client)
    assert c.catalog.count() == 2
    stored = c.catalog.get("NULID")
    assert stored.name == "ab" + "n" * 498
    assert stored.price is None and stored.currency is None
    ok = c.catalog.get("OK")
    assert (ok.url, ok.image_url) == ("https://shop.example/p", "/demo/products/OK.png")


def test_learn_many_products_in_one_call(client: TestClient, admin: dict[str, str]) -> None:
    products = [Product(f"B-{i % 1200}", name=f"Item {i}", category="Bags") for i in range(2500)]
    learn(client, *products)
    c = container(client)
    assert c.catalog.count() == 1200
    assert c.catalog.get("B-7").views == 3
    assert c.catalog.get("B-7").name == "Item 2407"  # the latest wins


def test_most_popular_products_per_category(client: TestClient, admin: dict[str, str]) -> None:
    post_feed(
        client,
        admin,
        "id,title,category,availability\n"
        "S1,Shoe 1,Shoes,in stock\nS2,Shoe 2,Shoes,in stock\nS3,Shoe 3,Shoes,out of stock\n"
        "B1,Bag 1,Bags,in stock\nC1,Coat 1,Outerwear,\n",
    )
    views = {"S1": 5, "S2": 9, "S3": 20, "B1": 7, "C1": 1}
    learn(client, *(Product(pid) for pid, n in views.items() for _ in range(n)))
    c = container(client)
    store: CatalogStore = c.catalog.store

    def ids(found: list[Any]) -> list[str]:
        return [p.product_id for p in found]

    assert ids(store.top_in_categories(["Shoes"], [], 5)) == ["S2", "S1"]  # S3 out of stock
    assert ids(store.top_in_categories(["Shoes"], [], 5, in_stock_only=False)) == [
        "S3",
        "S2",
        "S1",
    ]
    assert ids(store.top_in_categories(["Shoes", "Bags"], ["S2"], 5)) == ["B1", "S1"]
    assert ids(store.top_in_categories([], [], 2)) == ["S2", "B1"]
    assert ids(store.top_in_categories(["Shoes"], [f"x{i}" for i in range(600)], 1)) == ["S2"]
    service: CatalogService = c.catalog
    assert ids(service.popular(["Shoes", "Bags"], ["S2"], 2)) == ["B1", "S1"]
    assert ids(service.popular(["Outerwear"], [], 3)) == ["C1"]
    assert set(service.products(["S1", "nope", "B1"])) == {"S1", "B1"}


def test_render_reads_are_cached_and_writes_clear_the_cache(
    client: TestClient, admin: dict[str, str]
) -> None:
    post_feed(client, admin, "id,title\nK1,First\n")
    c = container(client)
    assert c.catalog.products(["K1"])["K1"].name == "First"
    assert c.catalog.products(["K2"]) == {}  # a miss is cached too
    # A write behind the service's back (as another process would) shows after the TTL ...
    with c.db.engine.begin() as conn:
        c.catalog.store.learn(conn, [Product("K2", name="Second")], 1)
    assert c.catalog.products(["K2"]) == {}
    # ... while this process's own writes clear the cache at once.
    post_feed(client, admin, "id,title\nK1,Renamed\n")
    found = c.catalog.products(["K1", "K2"])
    assert (found["K1"].name, found["K2"].name) == ("Renamed", "Second")


# -- the CLI --------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture
def feed_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "feed.csv"
    path.write_text(FEED)
    yield path


def test_cli_import(db_url: str, feed_file: Path, tmp_path: Path) -> None:
    r = runner.invoke(cli_app, ["catalog", "import", str(feed_file), "--db", db_url])
    assert r.exit_code == 0, r.output
    assert "inserted" in r.output and "rejected" in r.output
    assert "SKU-3" in r.output and "price" in r.output  # the rejected row and why
    database = Database.from_url(db_url)
    try:
        store = CatalogStore(database.engine)
        assert store.count() == 3
        product = store.get("SKU-1")
        assert product is not None and product.price == 89.0
    finally:
        database.close()

    json_file = tmp_path / "feed.json"
    json_file.write_text('[{"id": "SKU-1", "title": "Renamed"}, {"id": "J-9"}]')
    r = runner.invoke(cli_app, ["catalog", "import", str(json_file), "--db", db_url])
    assert r.exit_code == 0, r.output
    database = Database.from_url(db_url)
    try:
        store = CatalogStore(database.engine)
        assert store.count() == 4
        product = store.get("SKU-1")
        assert product is not None and product.name == "Renamed"
    finally:
        database.close()

    r = runner.invoke(
        cli_app, ["catalog", "import", str(json_file), "--format", "csv", "--db", db_url]
    )
    assert r.exit_code == 1
    assert "not a csv feed" in r.output
