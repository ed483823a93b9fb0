"""Pixel API, the analytics.js settings document, CORS, sources and the debugger list."""

from __future__ import annotations

import base64
import io
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tidings.testing import Credentials


def events(client: TestClient, source_id: str, admin: dict[str, str]) -> list[dict[str, Any]]:
    r = client.get(f"/v1/sources/{source_id}/events?limit=100", headers=admin)
    assert r.status_code == 200, r.text
    return [e["payload"] for e in reversed(r.json()["events"])]


def assert_pixel(r: Any) -> None:
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/gif"
    assert "no-cache" in r.headers["cache-control"]
    assert "no-store" in r.headers["cache-control"]
    assert r.content.startswith(b"GIF89a")
    # Decoded by a real image library: a 1x1 image with a transparent pixel.

    with Image.open(io.BytesIO(r.content)) as img:
        assert img.size == (1, 1)
        assert "transparency" in img.info


def b64(data: dict[str, Any], *, urlsafe: bool = False, padding: bool = False) -> str:
    raw = orjson.dumps(data)
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return text if padding else text.rstrip("=")


# -- Pixel API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("urlsafe", [False, True])
@pytest.mark.parametrize("padding", [False, True])
def test_pixel_with_base64_data(
    client: TestClient,
    creds: Credentials,
    admin: dict[str, str],
    urlsafe: bool,
    padding: bool,
) -> None:
    data = {
        "writeKey": creds.write_key,
        "userId": "025pikachu025",
        "event": "Email Opened",
        # Characters whose base64 contains + and / (or - and _ in the URL-safe form).
        "properties": {"subject": "The Electric Daily ~~~???>>>", "email": "jane@example.com"},
    }
    r = client.get("/v1/pixel/track", params={"data": b64(data, urlsafe=urlsafe, padding=padding)})
    assert_pixel(r)
    [event] = events(client, creds.source_id, admin)
    assert event["event"] == "Email Opened"
    assert event["properties"]["subject"] == "The Electric Daily ~~~???>>>"
    assert "writeKey" not in event


def test_pixel_with_dotted_query_parameters(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    r = client.get(
        f"/v1/pixel/track?writeKey={creds.write_key}&userId=user_123&event=Email%20Opened"
        "&properties.subject=The%20Electric%20Daily&properties.email=jane.kim%40example.com"
        "&context.campaign.name=spring"
    )
    assert_pixel(r)
    [event] = events(client, creds.source_id, admin)
    assert event["type"] == "track"
    assert event["userId"] == "user_123"
    assert event["properties"] == {
        "subject": "The Electric Daily",
        "email": "jane.kim@example.com",
    }
    assert event["context"] == {"campaign": {"name": "spring"}}


@pytest.mark.parametrize("method", ["identify", "group", "alias", "page", "screen", "track"])
def test_pixel_methods(
    client: TestClient, creds: Credentials, admin: dict[str, str], method: str
) -> None:
    fields = {
        "identify": "traits.name=Brantley",
        "group": "groupId=g1",
        "alias": "previousId=anon-9",
        "page": "name=Home",
        "screen": "name=Cart",
        "track": "event=Opened",
    }[method]
    r = client.get(f"/v1/pixel/{method}?writeKey={creds.write_key}&userId=u1&{fields}")
    assert_pixel(r)
    [event] = events(client, creds.source_id, admin)
    assert event["type"] == method


@pytest.mark.parametrize(
    "query",
    [
        "data=%%%not-base64",
        "data=" + base64.b64encode(b"not json").decode(),
        "data=" + base64.b64encode(b"[1,2]").decode(),
        "event=Opened&userId=u",  # no write key at all
        "writeKey=unknown&event=Opened&userId=u",
        "a..b=1",
    ],
)
def test_pixel_bad_input_still_answers_the_gif(client: TestClient, query: str) -> None:
    assert_pixel(client.get(f"/v1/pixel/track?{query}"))


def test_pixel_errors_are_recorded_for_the_source(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    assert_pixel(client.get(f"/v1/pixel/track?writeKey={creds.write_key}&userId=u"))
    assert_pixel(client.get("/v1/pixel/bogus?userId=u"))
    body = client.get(f"/v1/sources/{creds.source_id}/events", headers=admin).json()
    assert body["events"] == []
    [rejection] = body["rejections"]
    assert rejection["endpoint"] == "pixel/track"
    assert rejection["field"] == "event"
    assert rejection["payload"] == {"userId": "u", "type": "track"}


# -- analytics.js settings and CORS --------------------------------------------------------------


def test_settings_document_points_analytics_js_back_here(
    client: TestClient, creds: Credentials
) -> None:
    r = client.get(
        f"/v1/projects/{creds.write_key}/settings", headers={"Origin": "https://shop.example"}
    )
    assert r.status_code == 200
    segment = r.json()["integrations"]["Segment.io"]
    assert segment["apiKey"] == creds.write_key
    assert segment["apiHost"] == "testserver/v1"
    assert segment["protocol"] == "http"
    assert list(r.json()["integrations"]) == ["Segment.io"]
    assert r.json()["metrics"]["sampleRate"] == 0
    assert r.headers["access-control-allow-origin"] == "*"


def test_settings_for_an_unknown_key_is_401(client: TestClient) -> None:
    r = client.get("/v1/projects/nope/settings")
    assert r.status_code == 401
    assert r.json()["code"] == "invalid_write_key"


def test_settings_use_the_public_url_when_configured(
    settings: Any, creds: Credentials, clock: Any
) -> None:
    from tidings.app import create_app

    app = create_app(settings.model_copy(update={"public_url": "https://t.shop.example/"}), clock)
    with TestClient(app) as c:
        segment = c.get(f"/v1/projects/{creds.write_key}/settings").json()["integrations"]
    assert segment["Segment.io"]["apiHost"] == "t.shop.example/v1"
    assert segment["Segment.io"]["protocol"] == "https"


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/track"])
def test_cors_preflight_allows_browsers_to_post_with_basic_auth(
    client: TestClient, path: str
) -> None:
    r = client.options(
        path,
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-retry-count",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://shop.example")
    allowed = r.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "x-retry-count"):
        assert header in allowed
    assert "POST" in r.headers["access-control-allow-methods"]


def test_cors_header_on_the_post_itself(client: TestClient, creds: Credentials) -> None:
    r = client.post(
        "/v1/t",
        content=orjson.dumps({"anonymousId": "a", "event": "E", "writeKey": creds.write_key}),
        headers={"Origin": "https://shop.example", "Content-Type": "text/plain"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"


def test_analytics_js_files_need_configuring(client: TestClient, creds: Credentials) -> None:
    r = client.get(f"/analytics.js/v1/{creds.write_key}/analytics.min.js")
    assert r.status_code == 404
    assert r.json()["code"] == "analytics_js_not_configured"
    assert client.get("/analytics-next/bundles/..%2F..%2Fetc%2Fpasswd").status_code == 404


# -- sources and the debugger --------------------------------------------------------------------


def test_admin_apis_need_a_token(client: TestClient, creds: Credentials) -> None:
    for path in ("/v1/sources", f"/v1/sources/{creds.source_id}/events"):
        r = client.get(path)
        assert r.status_code == 401
        assert r.json()["code"] == "missing_token"
        wrong = client.get(path, headers={"Authorization": f"Bearer {creds.write_key}"})
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "invalid_token"


def test_source_keys_are_shown_once_and_rotate(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    made = client.post("/v1/sources", json={"name": "iOS app"}, headers=admin)
    assert made.status_code == 201
    key = made.json()["write_key"]
    listed = client.get("/v1/sources", headers=admin).json()
    assert {s["name"] for s in listed} == {"test source", "iOS app"}
    assert all("write_key" not in s for s in listed)
    assert key not in orjson.dumps(listed).decode()
    one = client.get(f"/v1/sources/{made.json()['id']}", headers=admin).json()
    assert one["write_key_hint"].startswith(key[:7])

    track = {"userId": "u", "event": "E"}
    assert client.post("/v1/track", json=track, auth=(key, "")).status_code == 200
    rotated = client.post(f"/v1/sources/{made.json()['id']}/rotate-key", headers=admin)
    assert rotated.status_code == 200
    new_key = rotated.json()["write_key"]
    assert new_key != key
    assert rotated.json()["rotated_at"] is not None
    assert client.post("/v1/track", json=track, auth=(key, "")).status_code == 401
    assert client.post("/v1/track", json=track, auth=(new_key, "")).status_code == 200


@pytest.mark.parametrize("body", [{}, {"name": ""}, {"name": "x" * 201}, {"name": 5}])
def test_bad_source_bodies_are_422_naming_the_field(
    client: TestClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    r = client.post("/v1/sources", json=body, headers=admin)
    assert r.status_code == 422
    assert r.json()["field"] == "name"


def test_unknown_source_is_404(client: TestClient, admin: dict[str, str]) -> None:
    for r in (
        client.get("/v1/sources/src_nope", headers=admin),
        client.get("/v1/sources/src_nope/events", headers=admin),
        client.post("/v1/sources/src_nope/rotate-key", headers=admin),
    ):
        assert r.status_code == 404
        assert r.json()["code"] == "source_not_found"


def test_debugger_lists_newest_first_and_filters_by_kind(
    client: TestClient, creds: Credentials, admin: dict[str, str]
) -> None:
    for n in range(3):
        client.post("/v1/track", json={"userId": "u", "event": f"E{n}"}, auth=(creds.write_key, ""))
    client.post("/v1/track", json={"userId": "u"}, auth=(creds.write_key, ""))
    url = f"/v1/sources/{creds.source_id}/events"
    body = client.get(f"{url}?limit=2", headers=admin).json()
    assert [e["event"] for e in body["events"]] == ["E2", "E1"]
    assert body["rejections"][0]["message"] == "track needs an event name"
    assert client.get(f"{url}?kind=event", headers=admin).json()["rejections"] == []
    assert client.get(f"{url}?kind=rejection", headers=admin).json()["events"] == []
    bad = client.get(f"{url}?limit=0", headers=admin)
    assert bad.status_code == 422
    assert bad.json()["field"] == "limit"


def test_healthz_and_openapi(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok"
    assert health["ingest_queue_depth"] == 0
    spec = client.get("/openapi.json").json()
    for path in (
        "/v1/track",
        "/v1/t",
        "/v1/batch",
        "/v1/import",
        "/v1/b",
        "/v1/pixel/{method}",
        "/v1/projects/{write_key}/settings",
        "/v1/sources/{source_id}/events/stream",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert {"TrackMessage", "BatchRequest", "ErrorResponse"} <= set(schemas)
    assert spec["paths"]["/v1/track"]["post"]["requestBody"]["content"]["text/plain"]


def test_unknown_paths_and_methods_are_json_errors(client: TestClient) -> None:
    r = client.get("/v1/nowhere")
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"
    r = client.get("/v1/track")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"
