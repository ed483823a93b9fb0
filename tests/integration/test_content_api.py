"""Content blocks and the open-time endpoints over HTTP, on SQLite and PostgreSQL.

Events go in through the collection API; each test applies the log itself (the app runs
without its in-process pipeline) so what a render reads is deterministic. Images are decoded
with Pillow.
"""

from __future__ import annotations

import base64
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tidings.content.recipients import ProfileView, ProfileViews, Recipient, read_recipient
from tidings.core.clock import FrozenClock
from tidings.testing import Credentials

NO_STORE = "no-cache, no-store, max-age=0, must-revalidate"


def send(client: TestClient, creds: Credentials, *events: dict[str, Any]) -> None:
    basic = base64.b64encode(f"{creds.write_key}:".encode()).decode()
    r = client.post(
        "/v1/batch", json={"batch": list(events)}, headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 200, r.text


def apply(client: TestClient) -> int:
    return int(client.app.state.container.pipeline.drain())  # type: ignore[attr-defined]


def identify(user: str, email: str, **traits: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user,
        "messageId": f"id-{user}",
        "timestamp": "2026-11-20T10:00:00.000Z",
        "traits": {"email": email, **traits},
    }


def viewed(user: str, sku: str, minute: int, price: float = 49.5) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": user,
        "messageId": f"view-{user}-{sku}-{minute}",
        "timestamp": f"2026-11-20T10:{minute:02d}:00.000Z",
        "properties": {
            "product_id": sku,
            "name": f"Trail Shoe {sku}",
            "price": price,
            "currency": "USD",
            "url": f"https://shop.example/p/{sku}?ref=feed",
            "category": "Shoes",
        },
    }


def added(user: str, sku: str, minute: int) -> dict[str, Any]:
    event = viewed(user, sku, minute)
    event["event"] = "Product Added"
    event["messageId"] = f"add-{user}-{sku}-{minute}"
    event["properties"]["quantity"] = 2
    return event


def block_body(app: str = "recently_viewed", **options: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"layout": {"columns": 3, "rows": 1, "width": 600}}
    return {
        "name": "Recently viewed, footer",
        "variants": [{"rule": None, "creative": {"app": app, "config": config}}],
        "fallback": {"kind": "collapse", "link_url": "https://shop.example/sale"},
        "utm": {"source": "tidings", "medium": "email", "campaign": "winter"},
        **options,
    }


def create_block(client: TestClient, admin: dict[str, str], body: dict[str, Any]) -> str:
    r = client.post("/v1/blocks", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def open_image(client: TestClient, path: str, **params: str) -> tuple[Image.Image, str]:
    r = client.get(path, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == NO_STORE
    assert r.headers["pragma"] == "no-cache"
    assert r.headers["expires"] == "0"
    assert int(r.headers["content-length"]) == len(r.content)
    image = decode(r.content)
    assert r.headers["content-type"] == Image.MIME[image.format or ""]
    return image, r.headers["x-tidings-served"]


def click(client: TestClient, path: str, **params: str) -> str:
    r = client.get(path, params=params, follow_redirects=False)
    assert r.status_code == 302, r.text
    assert r.headers["cache-control"] == NO_STORE
    return r.headers["location"]


def target(location: str) -> tuple[str, dict[str, list[str]]]:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}", parse_qs(parts.query)


def pixels(image: Image.Image) -> bytes:
    return image.convert("RGB").tobytes()


# -- the blocks API ----------------------------------------------------------------------------


def test_blocks_are_created_read_replaced_and_deleted(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body())
    got = app_client.get(f"/v1/blocks/{block_id}", headers=admin).json()
    assert got["version"] == 1 and got["format"] == "png" and got["width"] == 600
    assert got["image_path"] == f"/i/{block_id}.png" and got["alarms"] == []
    assert got["variants"][0]["creative"]["app"] == "recently_viewed"

    listed = app_client.get("/v1/blocks", headers=admin).json()["data"]
    assert [b["id"] for b in listed] == [block_id]

    jpeg = block_body()
    jpeg["variants"][0]["creative"]["format"] = "jpeg"
    r = app_client.put(f"/v1/blocks/{block_id}", json=jpeg, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["image_path"].endswith(".jpg")

    assert app_client.delete(f"/v1/blocks/{block_id}", headers=admin).status_code == 200
    r = app_client.get(f"/v1/blocks/{block_id}", headers=admin)
    assert r.status_code == 404 and r.json()["code"] == "block_not_found"
    assert app_client.get("/v1/blocks").status_code == 401


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("fallback"), "fallback"),
        (lambda b: b["fallback"].update(kind="image"), "fallback.image.image_url"),
        (
            lambda b: b["variants"][0]["creative"]["config"]["layout"].update(columns=9),
            "variants.0.creative.config.layout.columns",
        ),
        (lambda b: b["variants"][0].update(rule={"if": "x"}), "variants.0.rule"),
        (lambda b: b["variants"][0]["creative"].update(format="gif"), "variants.0.creative.format"),
        (lambda b: b.update(timezone="Mars/Olympus"), "timezone"),
        (lambda b: b.update(variants=[]), "variants"),
        (
            lambda b: b["variants"][0]["creative"].update(
                app="text", config={"template": "{{ first_name "}
            ),
            "variants.0.creative.config.template",
        ),
    ],
)
def test_a_block_that_cannot_render_is_refused_naming_the_field(
    app_client: TestClient, admin: dict[str, str], change: Any, field: str
) -> None:
    body = block_body()
    change(body)
    r = app_client.post("/v1/blocks", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field, r.json()


# -- opens and clicks --------------------------------------------------------------------------


def test_an_open_shows_the_recipients_products_and_a_click_leads_to_the_one_shown(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body())
    send(
        app_client,
        creds,
        identify("u-1", "Ada@Example.com", first_name="Ada"),
        viewed("u-1", "SKU-1", 1),
        viewed("u-1", "SKU-2", 2),
    )
    apply(app_client)

    first, served = open_image(app_client, f"/i/{block_id}.png", u="  ADA@example.com ")
    assert served == "render" and first.format == "PNG"
    assert first.width == 600
    # The latest view comes first; the target keeps its own query and gains the UTMs.
    url, query = target(click(app_client, f"/c/{block_id}", u="ada@example.com"))
    assert url == "https://shop.example/p/SKU-2"
    assert query == {
        "ref": ["feed"],
        "utm_source": ["tidings"],
        "utm_medium": ["email"],
        "utm_campaign": ["winter"],
    }
    url, _ = target(click(app_client, f"/c/{block_id}/1", u="ada@example.com"))
    assert url == "https://shop.example/p/SKU-1"
    # Nothing was shown in slot 2: the fallback link, not some other product.
    url, query = target(click(app_client, f"/c/{block_id}/2", u="ada@example.com"))
    assert url == "https://shop.example/sale" and query["utm_campaign"] == ["winter"]
    # The tag may override a UTM parameter.
    _, query = target(click(app_client, f"/c/{block_id}", u="u-1", utm_campaign="dec"))
    assert query["utm_campaign"] == ["dec"]

    # By userId too; a new view changes the image and the click.
    send(app_client, creds, viewed("u-1", "SKU-3", 3, price=19.0))
    apply(app_client)
    second, _ = open_image(app_client, f"/i/{block_id}.png", u="u-1")
    assert second.size == first.size and pixels(second) != pixels(first)
    url, _ = target(click(app_client, f"/c/{block_id}", u="u-1"))
    assert url == "https://shop.example/p/SKU-3"

    # One product per slot image, each with its own link.
    slot, served = open_image(app_client, f"/i/{block_id}/1.png", u="u-1")
    assert served == "render" and slot.width < first.width
    url, _ = target(click(app_client, f"/c/{block_id}/1", u="u-1"))
    assert url == "https://shop.example/p/SKU-2"
    empty, served = open_image(app_client, f"/i/{block_id}/5.png", u="u-1")
    assert (empty.size, served) == ((1, 1), "empty_slot")

    decisions = app_client.get(
        f"/v1/blocks/{block_id}/decisions", params={"u": "u-1", "limit": 10}, headers=admin
    ).json()["data"]
    assert [d["served"] for d in decisions][:2] == ["fallback", "render"]
    latest_full = next(d for d in decisions if d["slot"] is None)
    assert [s["product_id"] for s in latest_full["shown"]] == ["SKU-3", "SKU-2", "SKU-1"]
    assert latest_full["profile_id"].startswith("prof_")
    assert latest_full["machine"] is False and latest_full["ip_class"] in ("unknown", "loopback")
    assert latest_full["variant"] == "default" and latest_full["duration_ms"] >= 0


class _ImageServer:
    """A local web server with one red banner, for image fallbacks."""

    def __init__(self) -> None:
        buffer = io.BytesIO()
        Image.new("RGB", (1200, 300), (200, 30, 30)).save(buffer, "PNG")
        body = buffer.getvalue()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/banner.png"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_reopen_shows_the_grid_drawn_for_the_first_open(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    server = _ImageServer()
    try:
        block_id = create_block(app_client, admin, block_body())
        events = [identify("u-1", "ada@example.com")]
        for minute, sku in enumerate(("SKU-1", "SKU-2"), start=1):
            event = viewed("u-1", sku, minute)
            event["properties"]["image_url"] = server.url + f"?{sku}"
            events.append(event)
        send(app_client, creds, *events)
        apply(app_client)
        grids = app_client.app.state.container.content.caches.grids  # type: ignore[attr-defined]

        r1 = app_client.get(f"/i/{block_id}.png", params={"u": "ada@example.com"})
        r2 = app_client.get(f"/i/{block_id}.png", params={"u": "u-1"})
        assert r1.headers["x-tidings-served"] == r2.headers["x-tidings-served"] == "render"
        # The product images were fetched, and the second open is the first one's grid.
        colours = decode(r1.content).convert("RGB").getcolors(1 << 16) or []
        assert any(r > 180 and g < 60 and b < 60 for _, (r, g, b) in colours)
        assert r2.content == r1.content and grids.hits == 1 and len(grids) == 1
    finally:
        server.close()


def test_an_unknown_recipient_gets_the_fallback_image_and_link(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    server = _ImageServer()
    try:
        body = block_body()
        body["fallback"] = {
            "kind": "image",
            "image_url": server.url,
            "link_url": "https://shop.example/new?x=1",
        }
        block_id = create_block(app_client, admin, body)
        image, served = open_image(app_client, f"/i/{block_id}.png", u="nobody@example.com")
    finally:
        server.close()
    assert served == "unknown_recipient"
    assert image.size == (600, 150)  # the block's width, the banner's shape
    assert image.convert("RGB").getpixel((300, 75)) == (200, 30, 30)
    url, query = target(click(app_client, f"/c/{block_id}", u="nobody@example.com"))
    assert url == "https://shop.example/new" and query["x"] == ["1"]


def test_unknown_blocks_and_bad_input_get_a_safe_image_or_a_clear_4xx(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body())
    for path, params, reason in [
        ("/i/blk_00000000000000000000.png", {"u": "a@b.co"}, "unknown_block"),
        ("/i/not-a-block.png", {}, "unknown_block"),
        (f"/i/{block_id}.bmp", {"u": "a@b.co"}, "bad_path"),
        (f"/i/{block_id}", {"u": "a@b.co"}, "bad_path"),
        (f"/i/{block_id}/..%2F..%2Fetc.png", {"u": "a@b.co"}, "bad_path"),
        (f"/i/{block_id}/99.png", {"u": "a@b.co"}, "unknown_slot"),
        (f"/i/{block_id}.png", {"u": "x" * 10_000}, "malformed_recipient"),
        (f"/i/{block_id}.png", {"u": "a@b.co\x00"}, "malformed_recipient"),
        (f"/i/{block_id}.png", {"u": "a@b.co", "s": "s" * 5000}, "unknown_recipient"),
    ]:
        image, served = open_image(app_client, path, **params)
        assert (image.size, served) == ((1, 1), reason), path
    r = app_client.get("/c/blk_00000000000000000000", params={"u": "a@b.co"})
    assert r.status_code == 404 and r.json()["code"] == "block_not_found"
    r = app_client.get(f"/c/{block_id}/99", params={"u": "a@b.co"})
    assert r.status_code == 422 and r.json()["field"] == "slot"
    collapse = block_body()
    collapse["fallback"] = {"kind": "collapse"}
    bare = create_block(app_client, admin, collapse)
    r = app_client.get(f"/c/{bare}", params={"u": "a@b.co"}, follow_redirects=False)
    assert r.status_code == 404 and r.json()["code"] == "no_link"


def test_a_literal_merge_tag_gets_the_fallback_and_raises_an_alarm(
    app_client: TestClient, admin: dict[str, str], clock: FrozenClock
) -> None:
    block_id = create_block(app_client, admin, block_body())
    for u in ("*|EMAIL|*", "%%emailaddr%%", "{{ email }}", "${email}", "[email]", "%email%"):
        image, served = open_image(app_client, f"/i/{block_id}.png", u=u)
        assert (image.size, served) == ((1, 1), "merge_tag"), u
    open_image(app_client, f"/i/{block_id}.png", u=" ")
    open_image(app_client, f"/i/{block_id}.png")

    alarms = app_client.get(f"/v1/blocks/{block_id}", headers=admin).json()["alarms"]
    by_code = {a["code"]: a for a in alarms}
    assert by_code["merge_tag"]["count"] == 6
    assert by_code["merge_tag"]["example"] == "%email%"
    assert by_code["merge_tag"]["first_seen"] == "2026-11-23T12:00:00.000Z"
    assert by_code["empty_recipient"]["count"] == 2
    listed = app_client.get(f"/v1/blocks/{block_id}/alarms", headers=admin).json()
    assert listed["data"] == alarms
    # Nobody was named, so nothing is recorded as a decision.
    decisions = app_client.get(f"/v1/blocks/{block_id}/decisions", headers=admin).json()
    assert decisions["data"] == []


def test_lock_after_first_open_shows_the_first_image_and_links_again(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body(lock_after_first_open=True))
    send(app_client, creds, identify("u-2", "bo@example.com"), viewed("u-2", "SKU-1", 1))
    apply(app_client)
    first = app_client.get(f"/i/{block_id}.png", params={"u": "bo@example.com"})
    assert first.headers["x-tidings-served"] == "render"

    send(app_client, creds, viewed("u-2", "SKU-9", 5))
    apply(app_client)
    again = app_client.get(f"/i/{block_id}.png", params={"u": "bo@example.com"})
    assert again.headers["x-tidings-served"] == "locked"
    assert again.content == first.content
    url, _ = target(click(app_client, f"/c/{block_id}", u="bo@example.com"))
    assert url == "https://shop.example/p/SKU-1"

    # Another send is another first open.
    other = app_client.get(f"/i/{block_id}.png", params={"u": "bo@example.com", "s": "c-2"})
    assert other.headers["x-tidings-served"] == "render"
    assert pixels(decode(other.content)) != pixels(decode(first.content))
    url, _ = target(click(app_client, f"/c/{block_id}", u="bo@example.com", s="c-2"))
    assert url == "https://shop.example/p/SKU-9"
    # A machine's fetch does not take the lock.
    robot = app_client.get(
        f"/i/{block_id}.png",
        params={"u": "bo@example.com", "s": "c-3"},
        headers={"User-Agent": "Mozilla/5.0"},
    )
    assert robot.headers["x-tidings-served"] == "render"
    person = app_client.get(f"/i/{block_id}.png", params={"u": "bo@example.com", "s": "c-3"})
    assert person.headers["x-tidings-served"] == "render"


def test_the_send_id_pairs_an_image_with_its_click(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body())
    send(app_client, creds, identify("u-3", "cy@example.com"), viewed("u-3", "SKU-1", 1))
    apply(app_client)
    open_image(app_client, f"/i/{block_id}.png", u="cy@example.com", s="monday")
    send(app_client, creds, viewed("u-3", "SKU-7", 4))
    apply(app_client)
    open_image(app_client, f"/i/{block_id}.png", u="cy@example.com", s="friday")

    monday, _ = target(click(app_client, f"/c/{block_id}", u="cy@example.com", s="monday"))
    friday, _ = target(click(app_client, f"/c/{block_id}", u="cy@example.com", s="friday"))
    latest, _ = target(click(app_client, f"/c/{block_id}", u="cy@example.com"))
    unknown, _ = target(click(app_client, f"/c/{block_id}", u="cy@example.com", s="never"))
    assert monday == "https://shop.example/p/SKU-1"
    assert friday == latest == unknown == "https://shop.example/p/SKU-7"


def test_machine_opens_can_be_served_the_fallback(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block_id = create_block(app_client, admin, block_body(machine_opens="fallback"))
    send(app_client, creds, identify("u-4", "di@example.com"), viewed("u-4", "SKU-1", 1))
    apply(app_client)
    _, served = open_image(app_client, f"/i/{block_id}.png", u="di@example.com", s="x")
    assert served == "render"
    r = app_client.get(
        f"/i/{block_id}.png",
        params={"u": "di@example.com"},
        headers={"User-Agent": "Mozilla/5.0"},
    )
    assert r.headers["x-tidings-served"] == "machine_open" and decode(r.content).size == (1, 1)
    decisions = app_client.get(
        f"/v1/blocks/{block_id}/decisions", params={"u": "DI@example.com"}, headers=admin
    ).json()["data"]
    assert decisions[0]["machine"] is True and decisions[0]["fetch_kind"] == "apple_mpp"
    assert decisions[0]["reason"] == "machine_open"
    # A person's open wins the click over a later machine fetch.
    url, _ = target(click(app_client, f"/c/{block_id}", u="di@example.com"))
    assert url == "https://shop.example/p/SKU-1"


def test_a_shopper_who_adds_to_cart_sees_their_cart_in_the_next_render(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = block_body("cart_items")
    body["variants"][0]["creative"]["format"] = "jpeg"
    block_id = create_block(app_client, admin, body)
    send(app_client, creds, identify("u-5", "ed@example.com"))
    apply(app_client)
    empty, served = open_image(app_client, f"/i/{block_id}.jpg", u="ed@example.com")
    assert (empty.size, served) == ((1, 1), "nothing_to_show")

    send(app_client, creds, added("u-5", "SKU-4", 2))
    apply(app_client)
    cart, served = open_image(app_client, f"/i/{block_id}.jpg", u="ed@example.com")
    assert served == "render" and cart.format == "JPEG" and cart.width == 600
    url, _ = target(click(app_client, f"/c/{block_id}", u="ed@example.com"))
    assert url == "https://shop.example/p/SKU-4"


def test_profile_views_are_kept_for_their_ttl_and_dropped_once_expired(
    app_client: TestClient, creds: Credentials
) -> None:
    """Expired views go as new ones come, not when the cache is full: each holds a parsed
    profile state, and a cache of dead ones slowed every full garbage collection."""
    client = app_client  # no in-process pipeline racing the test's own drain
    send(client, creds, *(identify(f"u{n}", f"p{n}@example.com") for n in range(30)))
    apply(client)
    now = [0.0]
    views = ProfileViews(
        client.app.state.container.profiles,  # type: ignore[attr-defined]
        ttl_s=1.0,
        monotonic=lambda: now[0],
    )

    def view(n: int) -> ProfileView | None:
        recipient = read_recipient(f"p{n}@example.com")
        assert isinstance(recipient, Recipient)
        return views.get(recipient)

    first = [view(n) for n in range(30)]
    assert all(v is not None for v in first)
    assert (views.misses, len(views._entries)) == (30, 30)
    assert view(7) is first[7] and views.hits == 1  # within the TTL: the same view
    now[0] = 1.5
    fresh = view(30 - 1)
    assert fresh is not None and fresh is not first[29]  # expired: read again
    assert len(views._entries) == 1  # the 29 other expired views are gone
    assert set(views._by_profile) == {fresh.profile_id}
