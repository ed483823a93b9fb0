"""Targeting rules in blocks over HTTP, on SQLite and PostgreSQL: the waterfall an open walks,
saving rules, previews, simulations and creative tags."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from tests.integration.test_content_api import (
    added,
    apply,
    create_block,
    identify,
    open_image,
    send,
    viewed,
)
from tidings.testing import Credentials

GRID = {"layout": {"columns": 3, "rows": 1, "width": 600}}
HEADLINE = {"template": "Hello {{ first_name | default('there') }}", "style": {"width": 600}}


def variant(vid: str, app: str, rule: dict[str, Any] | None, config: Any = None) -> dict[str, Any]:
    return {"id": vid, "rule": rule, "creative": {"app": app, "config": config or GRID}}


def waterfall_block(**options: Any) -> dict[str, Any]:
    """Cart if there is one; else recently viewed if they viewed in the last 7 days; else a
    VIP headline; else a headline for everyone."""
    return {
        "name": "Abandoned cart waterfall",
        "variants": [
            variant(
                "cart",
                "cart_items",
                {"type": "state", "field": "cart_quantity", "op": "gt", "value": 0},
            ),
            variant(
                "viewed",
                "recently_viewed",
                {"type": "event", "event": "Product Viewed", "within": "7d"},
            ),
            variant(
                "vip",
                "text",
                {"type": "trait", "trait": "tier", "op": "eq", "value": "vip"},
                HEADLINE,
            ),
            variant("everyone", "text", None, HEADLINE),
        ],
        "fallback": {"kind": "collapse", "link_url": "https://shop.example/"},
        **options,
    }


def decisions(client: TestClient, admin: dict[str, str], block: str, u: str) -> list[dict]:
    r = client.get(f"/v1/blocks/{block}/decisions", params={"u": u}, headers=admin)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def test_each_open_walks_the_waterfall_and_events_change_the_variant(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block = create_block(app_client, admin, waterfall_block())
    send(app_client, creds, identify("ada", "ada@example.com"), viewed("ada", "sku-1", 1))
    send(app_client, creds, identify("bob", "bob@example.com", tier="vip"))
    apply(app_client)

    _, served = open_image(app_client, f"/i/{block}.png", u="ada@example.com")
    assert served == "render"
    [latest] = decisions(app_client, admin, block, "ada@example.com")
    assert latest["variant"] == "viewed"
    assert latest["waterfall"] == "cart:no_match viewed:chosen"
    assert latest["rules_ms"] >= 0

    # she adds to her cart: the very next open shows the cart
    send(app_client, creds, added("ada", "sku-2", 5))
    apply(app_client)
    open_image(app_client, f"/i/{block}.png", u="ada@example.com")
    newest = decisions(app_client, admin, block, "ada@example.com")[0]
    assert newest["variant"] == "cart"
    assert [s["product_id"] for s in newest["shown"]] == ["sku-2"]

    open_image(app_client, f"/i/{block}.png", u="bob@example.com")
    [bob] = decisions(app_client, admin, block, "bob@example.com")
    assert bob["variant"] == "vip"
    assert bob["waterfall"] == "cart:no_match viewed:no_match vip:chosen"


def test_a_matching_variant_with_nothing_to_show_falls_through(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = {
        "name": "Viewed, else a headline",
        "variants": [
            variant(
                "viewed", "recently_viewed", {"type": "trait", "trait": "email", "op": "exists"}
            ),
            variant("headline", "text", None, HEADLINE),
        ],
        "fallback": {"kind": "collapse"},
    }
    block = create_block(app_client, admin, body)
    send(app_client, creds, identify("cy", "cy@example.com", first_name="Cy"))
    apply(app_client)
    image, served = open_image(app_client, f"/i/{block}.png", u="cy@example.com")
    assert served == "render" and image.size[0] == 600
    [decision] = decisions(app_client, admin, block, "cy@example.com")
    assert decision["variant"] == "headline"
    assert decision["waterfall"] == "viewed:fell_through headline:chosen"


def test_no_variant_matches_then_the_fallback(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    body = waterfall_block()
    body["variants"] = body["variants"][:3]  # no catch-all
    block = create_block(app_client, admin, body)
    send(app_client, creds, identify("dee", "dee@example.com"))
    apply(app_client)
    image, served = open_image(app_client, f"/i/{block}.png", u="dee@example.com")
    assert served == "no_variant"
    assert image.size == (1, 1)


def test_saving_a_bad_rule_names_the_node_and_the_reason(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    body = waterfall_block()
    body["variants"][1]["rule"] = {
        "type": "all",
        "rules": [
            {"type": "always"},
            {"type": "event", "event": "Product Viewed", "within": "a week"},
        ],
    }
    r = app_client.post("/v1/blocks", json=body, headers=admin)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["field"].startswith("variants.1.rule.all.rules.1.event")
    assert "not a duration" in err["message"]

    twins = waterfall_block()
    twins["variants"][1]["id"] = "cart"
    r = app_client.post("/v1/blocks", json=twins, headers=admin)
    assert r.status_code == 422
    assert r.json()["field"] == "variants"
    assert "ids must differ" in r.json()["message"]

    no_fallback = waterfall_block()
    del no_fallback["fallback"]
    r = app_client.post("/v1/blocks", json=no_fallback, headers=admin)
    assert r.status_code == 422
    assert r.json()["field"] == "fallback"


def test_a_block_reads_its_waterfall_in_words(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    block = create_block(app_client, admin, waterfall_block())
    r = app_client.get(f"/v1/blocks/{block}", headers=admin)
    assert r.json()["waterfall"] == [
        {"id": "cart", "rule": "cart quantity > 0"},
        {"id": "viewed", "rule": "performed 'Product Viewed' in the last 7d"},
        {"id": "vip", "rule": "tier = 'vip'"},
        {"id": "everyone", "rule": "always"},
    ]


# -- previews ----------------------------------------------------------------------------------


def preview(client: TestClient, admin: dict[str, str], block: str, **body: Any) -> dict:
    r = client.post(f"/v1/blocks/{block}/preview", json=body, headers=admin)
    assert r.status_code == 200, r.text
    return dict(r.json())


def data_image(preview_body: dict[str, Any]) -> Image.Image:
    url = preview_body["image"]["data_url"]
    head, _, data = url.partition(",")
    assert head == f"data:{preview_body['image']['content_type']};base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def test_preview_shows_the_choice_the_trace_and_the_image_and_records_nothing(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block = create_block(app_client, admin, waterfall_block())
    send(app_client, creds, identify("ada", "ada@example.com"), viewed("ada", "sku-1", 1))
    apply(app_client)
    body = preview(app_client, admin, block, recipient="Ada@Example.com")
    assert (body["served"], body["variant"]) == ("render", "viewed")
    steps = body["waterfall"]["steps"]
    assert [s["outcome"] for s in steps] == ["no_match", "chosen"]
    assert steps[0]["trace"]["rule"] == "cart quantity > 0"
    assert steps[0]["trace"]["reason"] == "cart quantity is 0"
    assert steps[1]["trace"]["reason"] == "1 × Product Viewed in the last 7d"
    assert [s["product_id"] for s in body["shown"]] == ["sku-1"]
    assert data_image(body).size == (body["image"]["width"], body["image"]["height"])
    # a moment three weeks later: the view is out of the 7-day window
    later = preview(
        app_client, admin, block, recipient="ada@example.com", at="2026-12-14T12:00:00Z"
    )
    assert later["variant"] == "everyone"
    assert decisions(app_client, admin, block, "ada@example.com") == []


def test_preview_for_unknown_and_broken_recipients(
    app_client: TestClient, admin: dict[str, str]
) -> None:
    block = create_block(app_client, admin, waterfall_block())
    assert preview(app_client, admin, block, recipient="nobody@example.com")["reason"] == (
        "unknown_recipient"
    )
    assert preview(app_client, admin, block, recipient="*|EMAIL|*")["reason"] == "merge_tag"
    r = app_client.post(f"/v1/blocks/{block}/preview", json={"inbox": "aol"}, headers=admin)
    assert r.status_code == 422


def test_preview_in_inboxes_outlook_first_frame_and_apple_prefetch(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    countdown = {
        "name": "Sale ends",
        "variants": [
            variant("count", "countdown", None, {"deadline": "2026-11-30T00:00:00Z"}),
        ],
        "fallback": {"kind": "collapse"},
        "machine_opens": "fallback",
    }
    block = create_block(app_client, admin, countdown)
    send(app_client, creds, identify("ada", "ada@example.com"))
    apply(app_client)
    normal = preview(app_client, admin, block, recipient="ada@example.com")
    assert normal["image"]["content_type"] == "image/gif"
    assert normal["image"]["frames"] > 1
    outlook = preview(app_client, admin, block, recipient="ada@example.com", inbox="outlook")
    assert outlook["image"]["shown_frames"] == 1
    assert outlook["image"]["content_type"] == "image/png"
    assert data_image(outlook).size == data_image(normal).size
    apple = preview(app_client, admin, block, recipient="ada@example.com", inbox="apple_mpp")
    assert apple["fetch"]["machine"] is True
    assert (apple["served"], apple["reason"]) == ("fallback", "machine_open")


def test_preview_uses_the_recipients_time_zone(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    evening = {"type": "context", "field": "hour", "op": "between", "value": [18, 23]}
    body = {
        "name": "Evening",
        "variants": [
            variant("evening", "text", evening, HEADLINE),
            variant("day", "text", None, HEADLINE),
        ],
        "fallback": {"kind": "collapse"},
    }
    block = create_block(app_client, admin, body)
    send(
        app_client,
        creds,
        identify("ana", "ana@example.com", timezone="Asia/Tokyo"),
        identify("lon", "lon@example.com", timezone="Europe/London"),
    )
    apply(app_client)
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).isoformat()  # 19:00 in Tokyo
    assert preview(app_client, admin, block, recipient="ana@example.com", at=at)["variant"] == (
        "evening"
    )
    assert preview(app_client, admin, block, recipient="lon@example.com", at=at)["variant"] == (
        "day"
    )


# -- simulations -------------------------------------------------------------------------------


def test_simulation_counts_who_sees_what(
    app_client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    block = create_block(app_client, admin, waterfall_block())
    events: list[dict[str, Any]] = []
    for i in range(6):
        events.append(identify(f"u{i}", f"u{i}@example.com", tier="vip" if i == 5 else "std"))
    events += [viewed("u0", "sku-1", 1), viewed("u1", "sku-1", 2), added("u2", "sku-3", 3)]
    send(app_client, creds, *events)
    apply(app_client)
    r = app_client.post(f"/v1/blocks/{block}/simulate", json={"examples": 5}, headers=admin)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["profiles"] == 6
    counts = {v["id"]: v["count"] for v in body["variants"]}
    assert counts == {"cart": 1, "viewed": 2, "vip": 1, "everyone": 2}
    examples = {v["id"]: v["examples"] for v in body["variants"]}
    assert examples["cart"] == ["u2@example.com"]
    assert sorted(examples["viewed"]) == ["u0@example.com", "u1@example.com"]
    assert body["fallback"]["count"] == 0
    assert abs(sum(v["share"] for v in body["variants"]) - 1.0) < 1e-9
    # a seeded sample is a subset, and the same one each time
    sample = {"sample": 3, "seed": 7}
    one = app_client.post(f"/v1/blocks/{block}/simulate", json=sample, headers=admin).json()
    two = app_client.post(f"/v1/blocks/{block}/simulate", json=sample, headers=admin).json()
    assert one["profiles"] == 3 and one["sampled"] is True
    assert one["variants"] == two["variants"]


# -- creative tags -----------------------------------------------------------------------------


def test_the_creative_tag_for_each_esp(app_client: TestClient, admin: dict[str, str]) -> None:
    body = waterfall_block()
    body["variants"] = [variant("grid", "recently_viewed", None)]
    block = create_block(app_client, admin, body)
    r = app_client.get(f"/v1/blocks/{block}/tag", params={"esp": "mailchimp"}, headers=admin)
    assert r.status_code == 200, r.text
    tag = r.json()
    assert tag["merge_tag"] == "*|URL:EMAIL|*"
    html = tag["html"]
    assert f'src="http://testserver/i/{block}.png?u=*|URL:EMAIL|*&amp;s=*|CAMPAIGN_UID|*"' in html
    assert f'href="http://testserver/c/{block}?u=*|URL:EMAIL|*&amp;s=*|CAMPAIGN_UID|*"' in html
    assert 'width="600"' in html and 'height="' in html
    slot = app_client.get(
        f"/v1/blocks/{block}/tag", params={"esp": "sfmc", "slot": 1}, headers=admin
    ).json()
    assert f"/i/{block}/1.png?u=%%=URLEncode(emailaddr, 1, 1)=%%" in slot["html"]
    assert f"/c/{block}/1?" in slot["html"]
    r = app_client.get(f"/v1/blocks/{block}/tag", params={"esp": "aol"}, headers=admin)
    assert r.status_code == 422
    assert r.json()["field"] == "esp"
    # the height of a grid: what an open renders
    image, _ = open_image(app_client, f"/i/{block}.png", u="nobody@example.com")
    assert image.size == (1, 1)  # the fallback collapses; a real render has the tag's height
