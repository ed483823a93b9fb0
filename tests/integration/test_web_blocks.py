"""The admin UI's blocks pages over real HTTP (TestClient), on SQLite and PostgreSQL: the list,
the editor's form (saved through the API's validation, errors shown at the field they name),
CSRF, the live preview's JSON route, the simulation, creative tags and a profile's blocks."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from tests.integration.test_content_api import added, apply, identify, send
from tests.integration.test_web_auth import csrf_of
from tests.integration.test_web_pages import text_of
from tidings.testing import Credentials


def two_variant_form(token: str, **changes: str) -> dict[str, str]:
    """The editor's fields for: cart not empty → cart items; else → a text headline."""
    form = {
        "csrf_token": token,
        "op": "save",
        "name": "Cart or hello",
        "machine_opens": "render",
        "timezone": "Europe/Berlin",
        "utm.source": "tidings",
        "utm.medium": "email",
        "utm.campaign": "winter",
        "utm.content": "",
        "fallback.kind": "collapse",
        "fallback.image_url": "",
        "fallback.link_url": "https://shop.example/",
        "variants.0.id": "cart",
        "variants.0.creative.app": "cart_items",
        "variants.0.creative.format": "",
        "variants.0.columns": "3",
        "variants.0.rows": "1",
        "variants.0.width": "600",
        "variants.0.rule.kind": "cart_not_empty",
        "variants.1.id": "hello",
        "variants.1.creative.app": "text",
        "variants.1.creative.format": "png",
        "variants.1.template": "Hello {{ first_name | default('there') }}",
        "variants.1.width": "600",
        "variants.1.rule.kind": "always",
    }
    form.update(changes)
    return form


def new_token(client: TestClient) -> str:
    return csrf_of(client.get("/admin/blocks/new").text)


def save_new(client: TestClient, **changes: str) -> str:
    r = client.post(
        "/admin/blocks/new",
        data=two_variant_form(new_token(client), **changes),
        follow_redirects=False,
    )
    assert r.status_code == 303, text_of(r.text)[:2000]
    found = re.match(r"^/admin/blocks/(blk_[0-9a-f]{20})\?saved=true$", r.headers["location"])
    assert found
    return found.group(1)


def spec_of(client: TestClient, block_id: str) -> dict[str, Any]:
    block = client.app.state.container.content.blocks.get(block_id)  # type: ignore[attr-defined]
    spec: dict[str, Any] = block.spec.model_dump(mode="json")
    return spec


def error_at(page: str, anchor: str) -> str:
    """The message shown under the input ``anchor``, which is marked invalid."""
    assert re.search(
        rf'id="{anchor}"[^>]*aria-invalid="true" aria-describedby="{anchor}-error"', page
    ), f"{anchor} is not marked invalid"
    found = re.search(rf'<p class="field-error" id="{anchor}-error">(.*?)</p>', page, re.S)
    assert found, f"no error under {anchor}"
    return text_of(found.group(1))


def test_the_form_saves_a_waterfall_the_api_reads_back(ui: TestClient) -> None:
    block_id = save_new(ui)
    spec = spec_of(ui, block_id)
    assert spec["name"] == "Cart or hello" and spec["timezone"] == "Europe/Berlin"
    assert spec["utm"] == {
        "source": "tidings",
        "medium": "email",
        "campaign": "winter",
        "content": None,
    }
    assert spec["fallback"] == {"kind": "collapse", "link_url": "https://shop.example/"}
    cart, hello = spec["variants"]
    assert cart["rule"]["type"] == "state" and cart["rule"]["field"] == "cart_quantity"
    assert cart["creative"] == {
        "app": "cart_items",
        "config": {"layout": {"columns": 3, "rows": 1, "width": 600}},
        "format": None,
        "quality": None,
    }
    assert hello["rule"] is None
    assert hello["creative"]["config"]["template"].startswith("Hello {{ first_name")

    page = ui.get(f"/admin/blocks/{block_id}?saved=true")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Saved. Opens show version 1 from now on." in words
    assert "Reads: cart quantity > 0" in words and "Reads: always" in words
    assert 'value="cart_not_empty" selected' in page.text
    # The list: name, each variant's app, format, version.
    listed = text_of(ui.get("/admin/blocks").text)
    assert "Cart or hello" in listed and "cart Cart items hello Text headline" in listed
    assert "PNG 1" in listed

    # Editing keeps what the form does not show (the app's other settings) and bumps the version.
    form = two_variant_form(csrf_of(page.text))
    form["variants.0.config"] = '{"layout": {"title": "Still thinking it over?"}}'
    form["variants.0.rule.kind"] = "cart_value_gt"
    form["variants.0.rule.x"] = "50"
    r = ui.post(f"/admin/blocks/{block_id}", data=form, follow_redirects=False)
    assert r.status_code == 303
    spec = spec_of(ui, block_id)
    assert spec["variants"][0]["creative"]["config"]["layout"]["title"] == "Still thinking it over?"
    assert spec["variants"][0]["rule"]["field"] == "cart_value"
    page = ui.get(f"/admin/blocks/{block_id}").text
    assert "version 2" in text_of(page) and "Reads: cart value > 50" in text_of(page)
    assert "Still thinking it over?" in page


def test_a_422_shows_the_apis_field_next_to_its_input(ui: TestClient) -> None:
    token = new_token(ui)
    bad_rule = (
        '{"type": "all", "rules": '
        '[{"type": "state", "field": "cart_value", "op": "gt", "value": "abc"}]}'
    )
    r = ui.post(
        "/admin/blocks/new",
        data=two_variant_form(
            token, **{"variants.1.rule.kind": "json", "variants.1.rule.json": bad_rule}
        ),
    )
    assert r.status_code == 422
    assert (
        error_at(r.text, "v1-rule-json")
        == "Value error, gt needs a number variants.1.rule.all.rules.0.state"
    )
    # What was typed stays in the form.
    assert "Cart or hello" in r.text and "&#34;abc&#34;" in r.text

    r = ui.post("/admin/blocks/new", data=two_variant_form(token, **{"variants.0.columns": "9"}))
    assert r.status_code == 422
    assert "variants.0.creative.config.layout.columns" in error_at(r.text, "v0-columns")

    r = ui.post(
        "/admin/blocks/new", data=two_variant_form(token, **{"variants.1.template": "{% if %}"})
    )
    assert r.status_code == 422
    assert "variants.1.creative.config.template" in error_at(r.text, "v1-template")

    r = ui.post("/admin/blocks/new", data=two_variant_form(token, **{"variants.1.id": "cart"}))
    assert r.status_code == 422
    assert "two variants have the id 'cart'" in text_of(r.text)

    r = ui.post(
        "/admin/blocks/new",
        data=two_variant_form(token, **{"fallback.kind": "image", "fallback.image_url": "ftp://x"}),
    )
    assert r.status_code == 422
    assert "must be an absolute http:// or https:// URL" in error_at(r.text, "fallback-image")

    r = ui.post(
        "/admin/blocks/new",
        data=two_variant_form(
            token, **{"variants.0.rule.kind": "viewed_within", "variants.0.rule.days": "soon"}
        ),
    )
    assert r.status_code == 422
    assert error_at(r.text, "v0-rule-days").startswith("the number of days")
    assert ui.app.state.container.content.blocks.list() == []  # type: ignore[attr-defined]


def test_every_form_needs_its_csrf_token_and_a_session(ui: TestClient) -> None:
    block_id = save_new(ui)
    for path in (
        "/admin/blocks/new",
        f"/admin/blocks/{block_id}",
        f"/admin/blocks/{block_id}/simulate",
    ):
        r = ui.post(path, data=two_variant_form("forged"))
        assert r.status_code == 403, path
        assert "This form has expired" in r.text
    r = ui.post("/admin/blocks/rule", data={"kind": "always"})
    assert r.status_code == 403 and r.json()["code"] == "csrf_failed"
    assert spec_of(ui, block_id)["name"] == "Cart or hello"

    ui.cookies.clear()
    r = ui.get(f"/admin/blocks/{block_id}/preview", params={"recipient": "a@b.c"})
    assert r.status_code == 401 and r.json()["code"] == "login_required"
    r = ui.get("/admin/blocks", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/admin/login")


def test_variants_are_added_moved_and_removed_without_saving(ui: TestClient) -> None:
    token = new_token(ui)
    r = ui.post("/admin/blocks/new", data=two_variant_form(token, op="add"))
    assert r.status_code == 200
    ids = re.findall(r'id="v\d-id" name="variants\.\d\.id" type="text" value="([^"]*)"', r.text)
    assert ids == ["cart", "hello", "variant-3"]
    r = ui.post("/admin/blocks/new", data=two_variant_form(token, op="down.0"))
    ids = re.findall(r'id="v\d-id" name="variants\.\d\.id" type="text" value="([^"]*)"', r.text)
    assert ids == ["hello", "cart"]
    # The moved variant keeps its rule and app.
    assert re.search(r'id="v1-rule-kind"[^>]*>.*?value="cart_not_empty" selected', r.text, re.S)
    r = ui.post("/admin/blocks/new", data=two_variant_form(token, op="remove.0"))
    ids = re.findall(r'id="v\d-id" name="variants\.\d\.id" type="text" value="([^"]*)"', r.text)
    assert ids == ["hello"]
    assert ui.app.state.container.content.blocks.list() == []  # type: ignore[attr-defined]


def test_the_rule_check_reads_a_rule_back_or_says_why_not(ui: TestClient) -> None:
    token = new_token(ui)
    r = ui.post(
        "/admin/blocks/rule",
        data={"csrf_token": token, "kind": "local_hours", "from_hour": "18", "to_hour": "23"},
    )
    assert r.json() == {
        "ok": True,
        "text": "local hour between 18 and 23",
        "rule": {"type": "context", "field": "hour", "op": "between", "value": [18, 23]},
    }
    r = ui.post(
        "/admin/blocks/rule", data={"csrf_token": token, "kind": "json", "json": '{"type": "nope"}'}
    )
    body = r.json()
    assert body["ok"] is False and "does not match any of the expected tags" in body["message"]
    r = ui.post("/admin/blocks/rule", data={"csrf_token": token, "kind": "json", "json": "{"})
    assert r.json()["ok"] is False and r.json()["field"] == "rule.json"


def _decoded(data_url: str) -> Image.Image:
    head, _, data = data_url.partition(",")
    assert head == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def test_preview_simulation_tags_and_a_profiles_blocks(ui: TestClient, creds: Credentials) -> None:
    block_id = save_new(ui)
    send(
        ui,
        creds,
        identify("ada", "ada@example.com", first_name="Ada"),
        added("ada", "sku-2", 5),
        identify("bob", "bob@example.com", first_name="Bob"),
    )
    apply(ui)

    seen = {}
    for who in ("ada@example.com", "bob@example.com"):
        r = ui.get(
            f"/admin/blocks/{block_id}/preview", params={"recipient": who, "inbox": "gmail_proxy"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        seen[who] = body["variant"]
        image = _decoded(body["image"]["data_url"])
        assert image.width == 600
        assert 'id="preview-img"' in body["html"] and "Waterfall" in body["html"]
    assert seen == {"ada@example.com": "cart", "bob@example.com": "hello"}
    steps = body["waterfall"]["steps"]
    assert [(s["name"], s["outcome"]) for s in steps] == [("cart", "no_match"), ("hello", "chosen")]
    assert "cart no match false cart quantity > 0 · cart quantity is 0" in text_of(body["html"])

    r = ui.get(
        f"/admin/blocks/{block_id}/preview", params={"recipient": "x@y.z", "at": "yesterday"}
    )
    assert r.status_code == 400 and r.json()["field"] == "at"
    # Without JavaScript the same panel comes with the page.
    page = ui.get(f"/admin/blocks/{block_id}", params={"recipient": "ada@example.com"}).text
    assert "cart</span> variant shown" in page
    # The recipients seen last are suggested.
    assert '<option value="ada@example.com">' in page or '<option value="bob@example.com">' in page

    token = csrf_of(page)
    r = ui.post(f"/admin/blocks/{block_id}/simulate", data={"csrf_token": token, "sample": ""})
    assert r.status_code == 200
    table = re.search(r'<table class="bars" id="simulation">(.*?)</table>', r.text, re.S)
    assert table
    words = text_of(table.group(1))
    assert "cart cart quantity > 0 1 50.0%" in words and "hello always 1 50.0%" in words
    assert 'href="/admin/profiles/email:ada@example.com"' in table.group(1)
    assert '<rect class="bar-fill" width="50.0"' in table.group(1)
    r = ui.post(f"/admin/blocks/{block_id}/simulate", data={"csrf_token": token, "sample": "-3"})
    assert r.status_code == 422 and "a whole number of profiles" in r.text

    # One creative tag per ESP, the chosen one shown, with its merge tag.
    page = ui.get(f"/admin/blocks/{block_id}", params={"esp": "mailchimp"}).text
    assert re.search(r'<div class="tag" data-esp="mailchimp">', page)
    assert re.search(r'<div class="tag" data-esp="generic" hidden>', page)
    assert f"/i/{block_id}.png?u=*|URL:EMAIL|*" in page and 'data-copy="#tag-mailchimp"' in page

    profile = ui.get("/admin/profiles/email:ada@example.com").text
    panel = re.search(
        r'<section class="card wide" aria-labelledby="shows-title">(.*?)</section>', profile, re.S
    )
    assert panel
    assert "Cart or hello" in panel.group(
        1
    ) and '<span class="badge ok">cart</span>' in panel.group(1)
    thumb = re.search(r'<img src="(data:image/png;base64,[^"]+)"', panel.group(1))
    assert thumb and _decoded(thumb.group(1)).width == 600
    bob = ui.get("/admin/profiles/email:bob@example.com").text
    assert '<span class="badge ok">hello</span>' in bob


def test_the_list_shows_merge_tag_alarms_and_the_pages_keep_the_basics(ui: TestClient) -> None:
    block_id = save_new(ui)
    r = ui.get(f"/i/{block_id}.png", params={"u": "*|EMAIL|*"})
    assert r.status_code == 200
    listed = ui.get("/admin/blocks").text
    assert re.search(
        r'<span class="badge warn" title="[^"]*merge tag[^"]*">merge tag × 1</span>', listed
    )
    assert "literal merge tag" in text_of(ui.get(f"/admin/blocks/{block_id}").text)
    for path in ("/admin/blocks", "/admin/blocks/new", f"/admin/blocks/{block_id}"):
        page = ui.get(path)
        assert page.status_code == 200, path
        body = re.sub(r"<textarea\b[^>]*>.*?</textarea>", "", page.text, flags=re.S)
        assert 'aria-current="page"' in body and ">Blocks</a>" in body
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", page.text):
            if 'type="hidden"' in tag:
                continue
            found = re.search(r'id="([^"]+)"', tag)
            assert found, f"{path}: an input without an id: {tag}"
            assert f'for="{found.group(1)}"' in page.text, f"{path}: no label for {tag}"
        assert "<script>" not in body and "style=" not in body
    assert ui.get("/admin/blocks/blk_00000000000000000000").status_code == 404
