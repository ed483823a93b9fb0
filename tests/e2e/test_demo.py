"""The first five minutes, as a new user has them: ``tidings demo`` seeds a shop, ``tidings
serve`` serves it, and ``/demo/email`` shows one email for three shoppers with open-time
images, wrapped links and the open pixel; an event changes what a shopper sees on the next open.

The browser test loads the page in headless Chromium and saves ``demo-email.png`` into
``test-artifacts/screenshots/`` (and, with ``TIDINGS_UPDATE_SCREENSHOTS=1``, into
``docs/screenshots/``, which the README shows).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from tests.support import chromium, require
from tidings.testing import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Demo:
    server: ServerProcess
    creds: dict[str, Any]
    seed: dict[str, Any]
    first_output: str
    second_output: str

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.creds['admin_token']}"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": f"sqlite:///{root / 'tidings.db'}",
        "TIDINGS_DATA_DIR": str(root / "var"),
        "TIDINGS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "tidings", "demo", "--port", str(port), "--shoppers", "300"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stdout + second.stderr
    server = ServerProcess(
        env["TIDINGS_DATABASE_URL"],
        port=port,
        env={k: env[k] for k in ("TIDINGS_DATA_DIR", "TIDINGS_PUBLIC_URL")},
        log_path=root / "serve.log",
    ).start()
    try:
        yield Demo(
            server,
            json.loads((root / "var" / "demo-credentials.json").read_text()),
            json.loads((root / "var" / "demo-seeded.json").read_text()),
            first.stdout,
            second.stdout,
        )
    finally:
        server.stop()


def test_the_demo_is_seeded_once_and_says_where_to_look(demo: Demo) -> None:
    assert "seeding the demo shop" in demo.first_output
    assert "seeding the demo shop" not in demo.second_output  # idempotent
    assert f"{demo.url}/demo/email" in demo.first_output
    assert demo.creds["admin_password"] in demo.first_output
    assert set(demo.seed["recipients"]) == {"cart", "browsed", "bought"}
    assert set(demo.seed["blocks"]) == {"headline", "picks", "countdown"}
    assert demo.seed["campaign"].startswith("cmp_")
    assert demo.seed["events"] > 1000


def test_each_shopper_gets_the_email_with_live_images_and_tracked_links(demo: Demo) -> None:
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        page = client.get("/demo/email")
        assert page.status_code == 200
        for email in demo.seed["recipients"].values():
            assert f"/demo/email?u={quote(email)}" in page.text
        cart = demo.seed["recipients"]["cart"]
        r = client.get("/demo/email", params={"u": cart})
        assert r.status_code == 200
        html = r.text
        images = re.findall(r'<img src="([^"]+)"', html)
        blocks = [src for src in images if "/i/blk_" in src]
        assert len(blocks) == 3
        assert any("/t/o/" in src for src in images), "the open pixel"
        assert re.search(r'href="[^"]*/t/c/[^"]+"', html), "shop links are wrapped"
        for src in blocks:
            shown = client.get(src.replace("&amp;", "&"))
            assert shown.status_code == 200
            image = Image.open(io.BytesIO(shown.content))
            assert image.width == 600 and image.height > 1, shown.headers["x-tidings-served"]
        picks = demo.seed["blocks"]["picks"]
        decisions = client.get(
            f"/v1/blocks/{picks}/decisions", params={"u": cart}, headers=demo.admin()
        ).json()["data"]
        assert decisions[0]["variant"] == "cart"
        assert decisions[0]["waterfall"] == "cart:chosen"


@pytest.mark.browser
def test_the_demo_email_in_a_browser(demo: Demo, artifacts: Path) -> None:
    require(None if shutil.which("chromium") else "chromium is not installed (make test-deps)")
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 2040, "height": 1300})
        page.goto(f"{demo.url}/demo/email", wait_until="networkidle")
        frames = [f for f in page.frames if "/demo/email?u=" in f.url]
        assert len(frames) == 3
        for frame in frames:
            sizes = frame.eval_on_selector_all(
                "img[src*='/i/blk_']", "els => els.map(e => [e.complete, e.naturalWidth])"
            )
            assert sizes and all(done and width == 600 for done, width in sizes), sizes
        shots = artifacts / "screenshots"
        shots.mkdir(exist_ok=True)
        path = shots / "demo-email.png"
        page.screenshot(path=str(path))
        if os.environ.get("TIDINGS_UPDATE_SCREENSHOTS") == "1":
            docs = ROOT / "docs" / "screenshots"
            docs.mkdir(exist_ok=True)
            shutil.copyfile(path, docs / path.name)


def test_an_event_changes_what_the_browsing_shopper_sees_next(demo: Demo) -> None:
    browsed = demo.seed["recipients"]["browsed"]
    picks = demo.seed["blocks"]["picks"]
    event = {
        "userId": demo.seed["user_ids"]["browsed"],
        "event": "Product Added",
        "properties": {
            "product_id": "prod-00007",
            "price": 49,
            "quantity": 1,
            "url": "https://shop.example/p/x",
        },
    }
    with httpx.Client(base_url=demo.url, timeout=10) as client:
        client.get(f"/i/{picks}.png", params={"u": browsed})
        before = client.get(
            f"/v1/blocks/{picks}/decisions", params={"u": browsed}, headers=demo.admin()
        ).json()["data"][0]
        assert before["variant"] == "viewed"
        r = client.post("/v1/track", json=event, auth=(demo.creds["write_key"], ""))
        assert r.status_code == 200
        deadline = time.monotonic() + 20
        while True:
            client.get(f"/i/{picks}.png", params={"u": browsed})
            latest = client.get(
                f"/v1/blocks/{picks}/decisions", params={"u": browsed}, headers=demo.admin()
            ).json()["data"][0]
            if latest["variant"] == "cart" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert latest["variant"] == "cart"
        assert [s["product_id"] for s in latest["shown"]] == ["prod-00007"]
        click = client.get(f"/c/{picks}", params={"u": browsed}, follow_redirects=False)
        assert click.status_code == 302
        assert click.headers["location"].startswith("https://shop.example/p/")
