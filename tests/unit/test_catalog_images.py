"""The image cache against a real local HTTP server: formats, fits, limits, redirects, refusing
private addresses, the failure cache, the disk cache shared across instances, single flight."""

from __future__ import annotations

import io
import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from tidings.catalog.images import ImageCache, is_public_address, placeholder
from tidings.core.settings import Settings

RED = (255, 0, 0)
BLUE = (0, 0, 255)


def png(width: int, height: int, *, halves: bool = True, alpha: bool = False) -> bytes:
    """Left half red, right half blue (so a centre crop keeps both)."""
    image = Image.new("RGBA" if alpha else "RGB", (width, height), RED)
    if halves:
        image.paste(BLUE, (width // 2, 0, width, height))
    if alpha:
        image.putpixel((0, 0), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg(width: int, height: int, orientation: int | None = None) -> bytes:
    image = Image.new("RGB", (width, height), (0, 160, 0))
    out = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


class Server:
    """A local HTTP server whose paths each misbehave in one way; counts requests per path."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.lock = threading.Lock()
        self.delay_s = 0.0
        self.bodies: dict[str, tuple[str, bytes]] = {
            "/red.png": ("image/png", png(400, 200)),
            "/alpha.png": ("image/png", png(40, 40, alpha=True)),
            "/photo.jpg": ("image/jpeg", jpeg(120, 80)),
            "/rotated.jpg": ("image/jpeg", jpeg(40, 20, orientation=6)),
            "/page.html": ("text/html; charset=utf-8", b"<html>hello</html>"),
            "/fake.png": ("image/png", b"this is not a png at all"),
            "/empty.png": ("image/png", b""),
            "/wide.png": ("image/png", png(3000, 3000, halves=False)),
        }
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with server.lock:
                    server.hits[parts.path] += 1
                    server.hosts.append(self.headers.get("Host", ""))
                if server.delay_s:
                    time.sleep(server.delay_s)
                query = parse_qs(parts.query)
                if parts.path in server.bodies:
                    kind, body = server.bodies[parts.path]
                    self.send_response(200)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif parts.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", query["to"][0])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path == "/loop":
                    self.send_response(301)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif parts.path == "/huge-declared.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(50 * 1024 * 1024))
                    self.end_headers()
                    self.wfile.write(b"\x89PNG" * 1024)
                elif parts.path == "/huge-streamed.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()  # no length: HTTP/1.0 reads until the close
                    for _ in range(40):
                        self.wfile.write(b"\0" * 65536)
                elif parts.path == "/slow.png":
                    time.sleep(1.5)
                    self.send_response(200)
                    self.end_headers()
                elif parts.path == "/drip.png":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.end_headers()
                    for _ in range(30):
                        self.wfile.write(b"\0" * 100)
                        self.wfile.flush()
                        time.sleep(0.1)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hanging up on purpose (limits, timeouts)

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(autouse=True)
def _reset(server: Server) -> None:
    server.hits.clear()
    server.hosts.clear()
    server.delay_s = 0.0


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": "sqlite:///:memory:",
        "data_dir": tmp_path / "data",
        "images_allow_private": True,
        "images_connect_timeout_s": 1.0,
        "images_read_timeout_s": 0.5,
        "images_total_timeout_s": 1.5,
        "images_max_bytes": 1024 * 1024,
        "images_max_pixels": 4_000_000,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def cache(tmp_path: Path) -> ImageCache:
    return ImageCache(make_settings(tmp_path))


# -- formats and fits -----------------------------------------------------------------------------


def test_fetched_once_and_resized_once_per_size(cache: ImageCache, server: Server) -> None:
    url = server.url("/red.png")
    first = cache.get(url, 100, 50)
    assert first is not None and first.size == (100, 50) and first.mode == "RGB"
    again = cache.get(url, 100, 50)
    assert again is not None and again.tobytes() == first.tobytes()
    assert again is not first  # each caller gets its own copy to draw on
    other = cache.get(url, 30, 30)
    assert other is not None and other.size == (30, 30)
    assert server.hits["/red.png"] == 1
    assert cache.stats.as_dict() | {} == {
        "fetches": 1,
        "fetch_failures": 0,
        "resizes": 2,
        "memory_hits": 1,
        "disk_hits": 0,
        "negative_hits": 0,
    }


def test_renders_may_read_the_cached_image_itself(cache: ImageCache, server: Server) -> None:
    url = server.url("/red.png")
    shared = cache.get(url, 40, 40, copy=False)
    assert shared is not None and cache.get(url, 40, 40, copy=False) is shared
    own = cache.get(url, 40, 40)
    assert own is not None and own is not shared and own.tobytes() == shared.tobytes()
    assert server.hits["/red.png"] == 1


def test_cover_crops_the_middle_and_contain_fits_inside(cache: ImageCache, server: Server) -> None:
    url = server.url("/red.png")  # 400x200, left red, right blue
    cover = cache.get(url, 100, 100)
    assert cover is not None and cover.size == (100, 100)
    assert cover.getpixel((5, 50)) == RED and cover.getpixel((95, 50)) == BLUE
    contain = cache.get(url, 100, 100, fit="contain")
    assert contain is not None and contain.size == (100, 50)


def test_jpeg_exif_orientation_and_transparency(cache: ImageCache, server: Server) -> None:
    photo = cache.get(server.url("/photo.jpg"), 60, 40)
    assert photo is not None and photo.mode == "RGB"
    rotated = cache.get(server.url("/rotated.jpg"), 100, 100, fit="contain")
    assert rotated is not None and rotated.size == (50, 100)  # 40x20 turned upright
    alpha = cache.get(server.url("/alpha.png"), 20, 20)
    assert alpha is not None and alpha.mode == "RGBA"


def test_sizes_out_of_range_are_a_programming_error(cache: ImageCache, server: Server) -> None:
    for width, height in ((0, 10), (10, -1), (5000, 10)):
        with pytest.raises(ValueError):
            cache.get(server.url("/red.png"), width, height)


# -- what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/page.html", "not_an_image"),
        ("/fake.png", "undecodable"),
        ("/empty.png", "empty"),
        ("/missing.png", "http_status"),
        ("/huge-declared.png", "too_large"),
        ("/huge-streamed.png", "too_large"),
        ("/wide.png", "too_many_pixels"),
        ("/loop", "too_many_redirects"),
        ("/redirect?to=ftp://example.com/x.png", "invalid_url"),
    ],
)
def test_broken_images_give_none(cache: ImageCache, server: Server, path: str, code: str) -> None:
    assert cache.get(server.url(path), 50, 50) is None
    assert cache.failure(server.url(path)) == code
    assert not list((cache.dir).rglob("*.png"))  # nothing broken is cached on disk


def test_slow_servers_time_out(cache: ImageCache, server: Server) -> None:
    started = time.monotonic()
    assert cache.get(server.url("/slow.png"), 50, 50) is None
    assert cache.failure(server.url("/slow.png")) == "fetch_failed"  # the read timeout
    assert cache.get(server.url("/drip.png"), 50, 50) is None
    assert cache.failure(server.url("/drip.png")) == "timeout"  # the whole-download deadline
    assert time.monotonic() - started < 3.5


def test_redirects_are_followed(cache: ImageCache, server: Server) -> None:
    image = cache.get(server.url("/redirect?to=/red.png"), 40, 40)
    assert image is not None
    assert server.hits["/redirect"] == 1 and server.hits["/red.png"] == 1


def test_private_addresses_are_refused_unless_allowed(tmp_path: Path, server: Server) -> None:
    strict = ImageCache(make_settings(tmp_path, images_allow_private=False))
    for url in (
        server.url("/red.png"),
        f"http://localhost:{server.port}/red.png",
        "http://10.0.0.1/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x.png",
        "http://[::ffff:127.0.0.1]/x.png",
        "http://0.0.0.0/x.png",
    ):
        assert strict.get(url, 10, 10) is None, url
        assert strict.failure(url) == "private_address", url
    assert sum(server.hits.values()) == 0  # refused before connecting


def test_every_resolved_address_and_every_redirect_is_checked(
    tmp_path: Path, server: Server
) -> None:
    """Here only 127.0.0.1 counts as public; ``images.test`` resolves to it."""
    names = {"images.test": ["127.0.0.1"], "mixed.test": ["127.0.0.1", "10.1.2.3"]}
    cache = ImageCache(
        make_settings(tmp_path, images_allow_private=False),
        resolve=lambda host, port: names[host],
        address_allowed=lambda ip: str(ip) == "127.0.0.1",
    )
    good = f"http://images.test:{server.port}/red.png"
    assert cache.get(good, 20, 20) is not None
    assert server.hosts == [f"images.test:{server.port}"]  # connected by address, Host kept

    assert cache.get(f"http://mixed.test:{server.port}/red.png", 20, 20) is None
    assert cache.failure(f"http://mixed.test:{server.port}/red.png") == "private_address"

    hop = f"http://images.test:{server.port}/redirect?to=http://127.0.0.2:{server.port}/x.png"
    assert cache.get(hop, 20, 20) is None
    assert cache.failure(hop) == "private_address"
    assert server.hits["/redirect"] == 1 and server.hits["/x.png"] == 0


def test_paths_resolve_against_the_public_url_which_is_trusted(
    tmp_path: Path, server: Server
) -> None:
    own = ImageCache(
        make_settings(tmp_path, images_allow_private=False, public_url=server.url("/"))
    )
    assert own.absolute("/red.png") == server.url("/red.png")
    assert own.get("/red.png", 20, 20) is not None
    without = ImageCache(make_settings(tmp_path, images_allow_private=False))
    assert without.absolute("/red.png") is None
    assert without.get("/red.png", 20, 20) is None
    assert without.absolute("//cdn.example/x.png") == "https://cdn.example/x.png"
    for bad in ("javascript:alert(1)", "data:image/png;base64,AAAA", "file:///etc/passwd", ""):
        assert without.absolute(bad) is None
        assert without.get(bad, 20, 20) is None


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("::", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


# -- caches ---------------------------------------------------------------------------------------


def test_failures_are_remembered_briefly(tmp_path: Path, server: Server) -> None:
    ticker = Ticker()
    cache = ImageCache(make_settings(tmp_path), monotonic=ticker)
    url = server.url("/page.html")
    assert cache.get(url, 10, 10) is None
    assert cache.get(url, 20, 20) is None
    assert server.hits["/page.html"] == 1
    assert cache.stats.negative_hits >= 1
    ticker.now += 61
    assert cache.get(url, 10, 10) is None
    assert server.hits["/page.html"] == 2


def test_the_disk_cache_serves_other_instances(tmp_path: Path, server: Server) -> None:
    url = server.url("/photo.jpg")
    first = ImageCache(make_settings(tmp_path))
    made = first.get(url, 64, 64)
    assert made is not None
    files = sorted(p.name for p in first.dir.rglob("*") if p.is_file())
    assert len(files) == 2
    assert {name.split("-", 1)[-1].rsplit(".", 1)[-1] for name in files} == {"orig", "png"}
    assert any(name.endswith("-64x64-cover.png") for name in files)

    second = ImageCache(make_settings(tmp_path))
    again = second.get(url, 64, 64)
    assert again is not None and again.tobytes() == made.tobytes()
    assert second.stats.disk_hits == 1 and second.stats.resizes == 0
    assert second.get(url, 32, 32) is not None  # a new size: resized from the original on disk
    assert second.stats.resizes == 1 and second.stats.fetches == 0
    assert server.hits["/photo.jpg"] == 1

    # Only cached content with fetch=False: nothing is downloaded for an unknown image.
    assert second.get(server.url("/red.png"), 10, 10, fetch=False) is None
    assert server.hits["/red.png"] == 0


def test_a_damaged_cache_file_is_made_again(tmp_path: Path, server: Server) -> None:
    url = server.url("/red.png")
    ImageCache(make_settings(tmp_path)).get(url, 16, 16)
    [resized] = (tmp_path / "data" / "images").rglob("*.png")
    resized.write_bytes(b"garbage")
    fresh = ImageCache(make_settings(tmp_path))
    image = fresh.get(url, 16, 16)
    assert image is not None and image.size == (16, 16)
    assert fresh.stats.resizes == 1 and server.hits["/red.png"] == 1


def test_memory_is_bounded_by_bytes(tmp_path: Path, server: Server) -> None:
    cache = ImageCache(make_settings(tmp_path, images_memory_bytes=100 * 100 * 3 * 2))
    for side in (100, 99, 98, 97):
        assert cache.get(server.url("/red.png"), side, side) is not None
    memory = cache._memory
    assert memory.bytes <= memory.max_bytes
    assert len(memory) == 2


def test_concurrent_requests_share_one_fetch_and_one_resize(
    cache: ImageCache, server: Server
) -> None:
    server.delay_s = 0.3
    url = server.url("/red.png")
    results: list[Image.Image | None] = []
    lock = threading.Lock()

    def render() -> None:
        image = cache.get(url, 80, 80)
        with lock:
            results.append(image)

    threads = [threading.Thread(target=render) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16 and all(r is not None and r.size == (80, 80) for r in results)
    assert len({id(r) for r in results}) == 16  # separate copies
    assert server.hits["/red.png"] == 1
    assert cache.stats.fetches == 1 and cache.stats.resizes == 1


def test_prefetch_warms_the_cache(cache: ImageCache, server: Server) -> None:
    urls = [server.url("/red.png"), server.url("/photo.jpg"), server.url("/page.html")]
    assert cache.prefetch([*urls, urls[0]], sizes=[(50, 50)]) == 2
    assert cache.get(urls[1], 50, 50, fetch=False) is not None
    assert cache.get(urls[0], 25, 25, fetch=False) is not None  # resized from the original
    assert server.hits["/red.png"] == 1 and server.hits["/photo.jpg"] == 1
    assert cache.prefetch([]) == 0


# -- placeholder ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "text"),
    [
        (300, 300, "Trail Runner"),
        (600, 200, "A very long product name that needs wrapping over several lines " * 3),
        (40, 40, "tiny"),
        (1, 1, ""),
        (120, 80, ""),
    ],
)
def test_placeholder(width: int, height: int, text: str) -> None:
    image = placeholder(width, height, text)
    assert image.size == (width, height) and image.mode == "RGB"
    if width > 2:
        assert image.getpixel((width // 2, 1)) == (238, 238, 238)
    if text and width >= 120:
        colours = image.getcolors(maxcolors=1 << 16)
        assert colours is not None and len(colours) > 3  # some drawing besides the frame


def test_placeholder_sizes_are_checked() -> None:
    with pytest.raises(ValueError):
        placeholder(0, 10)


def test_placeholders_are_cached(cache: ImageCache) -> None:
    first = cache.placeholder(100, 100, "x")
    second = cache.placeholder(100, 100, "x")
    assert first is not second and first.tobytes() == second.tobytes()
