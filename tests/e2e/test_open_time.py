"""End to end against a live ``tidings serve`` (its own pipeline applying the log): a shopper
who adds a product to their cart sees it in the next open of a cart block, and a click on the
image leads to that product."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tidings.testing import Credentials, ServerProcess, prepare_database


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, Credentials]]:
    creds = prepare_database(sqlite_url)
    server = ServerProcess(
        sqlite_url,
        env={"TIDINGS_DATA_DIR": str(tmp_path / "data")},
        log_path=tmp_path / "serve.log",
    ).start()
    try:
        yield server, creds
    finally:
        server.stop()


def _open(client: httpx.Client, path: str, u: str, until: str, deadline_s: float = 20.0) -> bytes:
    """Open the image until the server serves ``until`` (the pipeline applies events a
    moment after they are acknowledged)."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = client.get(path, params={"u": u})
        assert r.status_code == 200
        if r.headers["x-tidings-served"] == until or time.monotonic() > deadline:
            assert r.headers["x-tidings-served"] == until, r.headers
            return r.content
        time.sleep(0.1)


def test_a_shopper_who_adds_to_cart_sees_it_in_the_next_open(
    live: tuple[ServerProcess, Credentials],
) -> None:
    server, creds = live
    admin = {"Authorization": f"Bearer {creds.admin_token}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.post(
            "/v1/blocks",
            headers=admin,
            json={
                "name": "Your cart",
                "variants": [{"creative": {"app": "cart_items"}}],
                "fallback": {"kind": "collapse", "link_url": "https://shop.example/"},
            },
        )
        assert r.status_code == 201, r.text
        image_path = r.json()["image_path"]
        click_path = r.json()["click_path"]

        auth = (creds.write_key, "")
        r = client.post(
            "/v1/identify",
            auth=auth,
            json={"userId": "u-9", "traits": {"email": "fay@example.com"}},
        )
        assert r.status_code == 200
        before = _open(client, image_path, "fay@example.com", until="nothing_to_show")
        assert Image.open(io.BytesIO(before)).size == (1, 1)

        r = client.post(
            "/v1/track",
            auth=auth,
            json={
                "userId": "u-9",
                "event": "Product Added",
                "properties": {
                    "product_id": "SKU-42",
                    "name": "Wool Wrap Coat",
                    "price": 189.0,
                    "quantity": 1,
                    "url": "https://shop.example/p/SKU-42",
                },
            },
        )
        assert r.status_code == 200
        after = _open(client, image_path, "fay@example.com", until="render")
        image = Image.open(io.BytesIO(after))
        assert image.format == "PNG" and image.width == 600

        r = client.get(click_path, params={"u": "fay@example.com"}, follow_redirects=False)
        assert r.status_code == 302
        assert r.headers["location"].startswith("https://shop.example/p/SKU-42?utm_source=")
