"""Product images for open-time renders: fetched safely, resized once per size, cached.

A render asks :meth:`ImageCache.get` for a product's image at the size of its slot and gets a
Pillow image, or ``None`` when there is none to be had (then it draws :func:`placeholder` or
skips the product): a missing or broken image never breaks a render.

**Caches.** The downloaded original is kept on disk (``data_dir/images/ab/<sha256 of the
URL>.orig``) and fetched once; each size is resized once and kept on disk as PNG
(``…-<w>x<h>-<fit>.png``) and in memory (an LRU bounded by decoded bytes), so later opens, and
other processes sharing the data directory, neither fetch nor resize again. Concurrent requests
for the same image or size wait for one fetch or resize (single flight). A failure is
remembered for ``TIDINGS_IMAGES_FAILURE_TTL_S`` (60 s), so a broken image is not fetched on
every open. Originals are kept until the directory is cleared: a shop that changes an image
usually changes its URL.

**Fetching safely.** Image URLs come from feeds and from events, and events come from browsers:
anyone with the public write key can send ``image_url: http://169.254.169.254/…``. So:

- only ``http`` and ``https``; at most ``TIDINGS_IMAGES_MAX_REDIRECTS`` redirects, each
  checked like the first URL;
- the host is resolved here and **every** address it resolves to must be public (not private,
  loopback, link-local, shared, multicast, reserved or unspecified, IPv4-mapped forms
  included); the connection then goes to the checked address (the ``Host`` header and TLS
  name stay the host's), so DNS cannot answer differently between check and connect;
- connect and read timeouts, a deadline for the whole download, a size limit enforced while
  streaming (and from ``Content-Length`` before), an ``image/*`` content type, and a limit on
  decoded pixels;
- no proxies from the environment.

``TIDINGS_IMAGES_ALLOW_PRIVATE=true`` lifts the address check (tests, intranets). Paths such as
``/demo/products/1.png`` resolve against ``TIDINGS_PUBLIC_URL``; that origin is tidings itself
and is trusted even when it is a private address. Without a public URL such paths have no
image.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal, TypeVar, cast
from urllib.parse import urljoin

import httpx
from PIL import Image, ImageDraw, ImageFont, ImageOps

from tidings import __version__
from tidings.core.settings import Settings

log = logging.getLogger("tidings.images")

Fit = Literal["cover", "contain"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
T = TypeVar("T")

REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
FONT_PATHS: Final = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


class FetchError(Exception):
    """Why an image could not be had; ``code`` is short and stable (for logs and stats)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- addresses ---------------------------------------------------------------------------------


def is_public_address(ip: IPAddress) -> bool:
    """Whether an address is on the public internet (what tidings may fetch images from)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public_address(embedded):
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, in the resolver's order."""
    found: list[str] = []
    for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope
        if address not in found:
            found.append(address)
    return found


# -- small thread-safe helpers -----------------------------------------------------------------


class _SingleFlight:
    """Runs ``fn`` once per key at a time; concurrent callers with the key share its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, Future[Any]] = {}

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = Future()
        if not leader:
            return cast(T, call.result())
        try:
            result = fn()
        except BaseException as exc:
            call.set_exception(exc)
            raise
        else:
            call.set_result(result)
            return result
        finally:
            with self._lock:
                del self._calls[key]


class _ByteLRU:
    """Images by key, least recently used dropped first, bounded by their decoded bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[Hashable, tuple[Image.Image, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Image.Image | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, image: Image.Image) -> None:
        size = image.width * image.height * len(image.getbands())
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._items[key] = (image, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class ImageStats:
    """Counters, for tests and operators."""

    fetches: int = 0
    fetch_failures: int = 0
    resizes: int = 0
    memory_hits: int = 0
    disk_hits: int = 0
    negative_hits: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# -- the cache ------------------------------------------------------------------------------------


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host.lower(), port


class ImageCache:
    """Product images by URL and size; thread-safe (renders run in a thread pool).

    ``resolve`` and ``address_allowed`` replace DNS and the address policy (tests);
    ``monotonic`` the clock of the failure cache.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        resolve: Resolver | None = None,
        address_allowed: Callable[[IPAddress], bool] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dir = Path(settings.data_dir) / "images"
        self.base_url = settings.public_url
        self.max_bytes = settings.images_max_bytes
        self.max_pixels = settings.images_max_pixels
        self.max_side = settings.images_max_side
        self.max_redirects = settings.images_max_redirects
        self.total_timeout_s = settings.images_total_timeout_s
        self.failure_ttl_s = settings.images_failure_ttl_s
        self.timeout = httpx.Timeout(
            connect=settings.images_connect_timeout_s,
            read=settings.images_read_timeout_s,
            write=settings.images_read_timeout_s,
            pool=settings.images_connect_timeout_s,
        )
        if address_allowed is None and not settings.images_allow_private:
            address_allowed = is_public_address
        self._allowed = address_allowed
        self._resolve: Resolver = resolve or system_resolve
        self._trusted: tuple[str, str, int] | None = None
        if self.base_url:
            try:
                self._trusted = _origin(httpx.URL(self.base_url))
            except (httpx.InvalidURL, ValueError):
                self._trusted = None
        self._monotonic = monotonic
        self._memory = _ByteLRU(settings.images_memory_bytes)
        self._flights = _SingleFlight()
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[float, str]] = {}
        self._ssl: ssl.SSLContext | None = None
        self.stats = ImageStats()

    # -- public API -----------------------------------------------------------------------------
    def get(
        self,
        url: str,
        width: int,
        height: int,
        *,
        fit: Fit = "cover",
        fetch: bool = True,
        copy: bool = True,
    ) -> Image.Image | None:
        """The image at ``url`` fitted to ``width`` x ``height``, or ``None`` if it cannot be had.

        ``cover`` fills the box exactly (cropping the middle); ``contain`` fits inside it
        (one side may be shorter). The result is the caller's to draw on (a copy); with
        ``copy=False`` it is the cached image itself, to be read only (renders paste it), and
        the same object for as long as the cache keeps it. With ``fetch=False`` only what is
        cached counts (nothing is downloaded).
        """
        if not (0 < width <= self.max_side and 0 < height <= self.max_side):
            raise ValueError(f"image sizes are 1..{self.max_side} pixels, not {width}x{height}")
        absolute = self.absolute(url)
        if absolute is None:
            return None
        key = (absolute, width, height, fit)
        image = self._memory.get(key)
        if image is not None:
            self._count("memory_hits")
            return image.copy() if copy else image
        if self._failed(absolute):
            return None
        image = self._flights.do(
            (*key, fetch), lambda: self._sized(absolute, width, height, fit, fetch)
        )
        return image.copy() if image is not None and copy else image

    def absolute(self, url: str) -> str | None:
        """The URL to fetch: http(s) as given, ``//host/…`` as https, ``/path`` against
        ``TIDINGS_PUBLIC_URL``; ``None`` for anything else."""
        url = url.strip() if isinstance(url, str) else ""
        if url.startswith("//"):
            return "https:" + url
        if url.startswith("/"):
            return urljoin(self.base_url, url) if self.base_url else None
        if url[:8].lower().startswith(("http://", "https://")):
            return url
        return None

    def prefetch(
        self, urls: Iterable[str], sizes: Sequence[tuple[int, int]] = (), workers: int = 8
    ) -> int:
        """Download (and resize to ``sizes``, cover fit) every image not cached yet, ``workers``
        at a time; returns how many are available."""
        unique = list(dict.fromkeys(urls))
        if not unique:
            return 0

        def warm(url: str) -> bool:
            absolute = self.absolute(url)
            if absolute is None or self._original(absolute) is None:
                return False
            return all(self.get(url, w, h) is not None for w, h in sizes)

        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(unique)))) as pool:
            return sum(pool.map(warm, unique))

    def store_original(self, url: str, data: bytes) -> bool:
        """Keep ``data`` as the downloaded original of ``url``, for images tidings draws itself
        (the demo shop's pictures): later renders resize it without fetching."""
        absolute = self.absolute(url)
        if absolute is None:
            return False
        self._write(self._path(absolute, ".orig"), data)
        return True

    def placeholder(self, width: int, height: int, text: str = "") -> Image.Image:
        """:func:`placeholder`, cached in memory."""
        key = ("placeholder", width, height, text)
        image = self._memory.get(key)
        if image is None:
            image = placeholder(width, height, text)
            self._memory.put(key, image)
        return image.copy()

    # -- sizes ----------------------------------------------------------------------------------
    def _sized(
        self, absolute: str, width: int, height: int, fit: Fit, fetch: bool
    ) -> Image.Image | None:
        key = (absolute, width, height, fit)
        image = self._memory.get(key)  # another thread may have just made it
        if image is not None:
            self._count("memory_hits")
            return image
        path = self._path(absolute, f"-{width}x{height}-{fit}.png")
        image = self._open(path)
        if image is not None:
            self._count("disk_hits")
            self._memory.put(key, image)
            return image
        data = self._original(absolute) if fetch else self._read(self._path(absolute, ".orig"))
        if data is None:
            return None
        try:
            image = self._resize(data, width, height, fit)
        except FetchError as exc:
            self._fail(absolute, exc.code, str(exc))
            return None
        except Exception as exc:  # Pillow raises many kinds for broken images
            self._fail(absolute, "undecodable", f"not a readable image: {exc}")
            self._remove(self._path(absolute, ".orig"))
            return None
        self._count("resizes")
        buffer = io.BytesIO()
        image.save(buffer, "PNG", compress_level=1)
        self._write(path, buffer.getvalue())
        self._memory.put(key, image)
        return image

    def _resize(self, data: bytes, width: int, height: int, fit: Fit) -> Image.Image:
        with Image.open(io.BytesIO(data)) as source:
            if source.width * source.height > self.max_pixels:
                raise FetchError(
                    "too_many_pixels",
                    f"{source.width}x{source.height} is over {self.max_pixels} pixels",
                )
            if source.format == "JPEG":
                source.draft("RGB", (width, height))  # decode at a reduced scale when possible
            image = ImageOps.exif_transpose(source)
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            image = image.convert("RGBA" if alpha else "RGB")
        method = Image.Resampling.LANCZOS
        if fit == "contain":
            return ImageOps.contain(image, (width, height), method=method)
        return ImageOps.fit(image, (width, height), method=method)

    # -- originals ------------------------------------------------------------------------------
    def _original(self, absolute: str) -> bytes | None:
        """The original's bytes: from disk, else downloaded (once at a time per URL)."""
        if self._failed(absolute):
            return None
        path = self._path(absolute, ".orig")

        def load() -> bytes | None:
            data = self._read(path)
            if data is not None:
                return data
            if self._failed(absolute):
                return None
            self._count("fetches")
            try:
                data = self._fetch(absolute)
            except FetchError as exc:
                self._fail(absolute, exc.code, str(exc))
                return None
            except (httpx.HTTPError, OSError, ValueError) as exc:
                self._fail(absolute, "fetch_failed", f"{exc.__class__.__name__}: {exc}")
                return None
            self._write(path, data)
            return data

        return self._flights.do(("original", absolute), load)

    def _fetch(self, url: str) -> bytes:
        """Download ``url`` under every rule of the module's docstring."""
        deadline = time.monotonic() + self.total_timeout_s
        current = url
        for _ in range(self.max_redirects + 1):
            target, headers, extensions = self._target(current)
            with (
                httpx.Client(
                    timeout=self.timeout,
                    follow_redirects=False,
                    trust_env=False,
                    verify=self._ssl_context(),
                ) as client,
                client.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):
                if response.status_code in REDIRECTS and "location" in response.headers:
                    current = urljoin(current, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise FetchError("http_status", f"the server answered {response.status_code}")
                return self._body(response, deadline)
        raise FetchError("too_many_redirects", f"more than {self.max_redirects} redirects")

    def _target(self, url: str) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """Where to connect for ``url``: its checked address, with the host's name kept in the
        ``Host`` header and for TLS."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, ValueError) as exc:
            raise FetchError("invalid_url", f"not a URL: {exc}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise FetchError("invalid_url", f"only http(s) URLs are fetched, not {url[:80]!r}")
        headers = {
            "User-Agent": f"tidings-images/{__version__}",
            "Accept": "image/*",
            "Accept-Encoding": "identity",
        }
        if self._allowed is None or _origin(parsed) == self._trusted:
            return parsed, headers, {}
        host = parsed.raw_host.decode("ascii")  # IDNA-encoded, as DNS, Host and TLS want it
        port = _origin(parsed)[2]
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses: list[IPAddress] = [literal]
        else:
            try:
                addresses = [ipaddress.ip_address(a) for a in self._resolve(host, port)]
            except (OSError, UnicodeError, ValueError) as exc:
                raise FetchError("dns_failed", f"{host} does not resolve: {exc}") from None
        if not addresses:
            raise FetchError("dns_failed", f"{host} resolves to no address")
        refused = [str(a) for a in addresses if not self._allowed(a)]
        if refused:
            raise FetchError(
                "private_address",
                f"{host} resolves to {', '.join(refused)}, which is not public "
                "(TIDINGS_IMAGES_ALLOW_PRIVATE=true allows it)",
            )
        if literal is not None:
            return parsed, headers, {}
        pinned = parsed.copy_with(host=str(addresses[0]))
        default_port = parsed.port is None
        headers["Host"] = host if default_port else f"{host}:{parsed.port}"
        extensions: dict[str, Any] = {"sni_hostname": host} if parsed.scheme == "https" else {}
        return pinned, headers, extensions

    def _body(self, response: httpx.Response, deadline: float) -> bytes:
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not media.startswith("image/"):
            raise FetchError(
                "not_an_image", f"the content type is {media or 'missing'}, not image/*"
            )
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError("too_large", f"{declared} bytes is over {self.max_bytes}")
        parts: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError("too_large", f"more than {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"the download took over {self.total_timeout_s} s")
            parts.append(chunk)
        if not size:
            raise FetchError("empty", "the image is empty")
        return b"".join(parts)

    def _ssl_context(self) -> ssl.SSLContext:
        with self._lock:
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            return self._ssl

    # -- failures -------------------------------------------------------------------------------
    def _failed(self, absolute: str) -> bool:
        with self._lock:
            entry = self._failures.get(absolute)
            if entry is None:
                return False
            if entry[0] <= self._monotonic():
                del self._failures[absolute]
                return False
            self.stats.negative_hits += 1
            return True

    def _fail(self, absolute: str, code: str, message: str) -> None:
        log.info("image %s: %s (%s)", absolute[:200], message, code)
        with self._lock:
            self.stats.fetch_failures += 1
            now = self._monotonic()
            if len(self._failures) > 10_000:
                self._failures = {u: e for u, e in self._failures.items() if e[0] > now}
            self._failures[absolute] = (now + self.failure_ttl_s, code)

    def failure(self, url: str) -> str | None:
        """The code of the URL's recent failure (``private_address``, ``too_large``, …)."""
        absolute = self.absolute(url)
        with self._lock:
            entry = self._failures.get(absolute or "")
        return entry[1] if entry is not None and entry[0] > self._monotonic() else None

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # -- files ----------------------------------------------------------------------------------
    def _path(self, absolute: str, suffix: str) -> Path:
        digest = hashlib.sha256(absolute.encode("utf-8", "replace")).hexdigest()
        return self.dir / digest[:2] / f"{digest}{suffix}"

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    def _open(self, path: Path) -> Image.Image | None:
        data = self._read(path)
        if data is None:
            return None
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.copy()
        except Exception:  # a damaged cache file: make it again
            self._remove(path)
            return None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Write atomically (readers in other threads and processes see all or nothing)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            temp.write_bytes(data)
            os.replace(temp, path)
        except OSError as exc:
            log.warning("cannot cache image at %s: %s", path, exc)

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()


# -- placeholder ------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (Debian's fonts-dejavu-core) if installed, else Pillow's own font."""
    for path in FONT_PATHS:
        if Path(path).exists():
            try:
                return ImageFont.truetype(path, size)
            except OSError:
                continue
    return ImageFont.load_default(size)


def placeholder(width: int, height: int, text: str = "") -> Image.Image:
    """A neutral grey box with a thin frame, a small picture glyph and ``text`` (wrapped and
    cut to fit), for a product whose image is missing."""
    if width < 1 or height < 1:
        raise ValueError(f"a placeholder is at least 1x1 pixels, not {width}x{height}")
    image = Image.new("RGB", (width, height), (238, 238, 238))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(214, 214, 214))
    side = min(width, height)
    glyph = side // 4 if side >= 48 else 0
    size = max(10, side // 12)
    font = _font(size)
    lines = _wrap(draw, text, font, width - 16, 3) if text and side >= 40 else []
    line_height = size + 4
    block = glyph + (8 if glyph and lines else 0) + line_height * len(lines)
    top = (height - block) // 2
    if glyph:
        left = (width - glyph) // 2
        box = (left, top, left + glyph, top + glyph * 3 // 4)
        draw.rectangle(box, outline=(180, 180, 180), width=max(1, glyph // 16))
        draw.polygon(
            [
                (box[0] + glyph // 8, box[3] - glyph // 8),
                (box[0] + glyph * 3 // 8, box[1] + glyph // 3),
                (box[0] + glyph * 5 // 8, box[3] - glyph // 8),
            ],
            fill=(200, 200, 200),
        )
        top += glyph + 8
    for line in lines:
        text_width = draw.textlength(line, font=font)
        draw.text(((width - text_width) / 2, top), line, fill=(138, 138, 138), font=font)
        top += line_height
    return image


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, max_lines: int
) -> list[str]:
    """``text`` in lines that fit ``width``, at most ``max_lines``, the last cut with '…'."""
    words = " ".join(text.split()).split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}".strip()
        if not current or draw.textlength(candidate, font=font) <= width:
            current = candidate
            continue
        lines.append(current)
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += "…"
    fitted = []
    for line in lines:
        while len(line) > 1 and draw.textlength(line, font=font) > width:
            line = line[:-2].rstrip() + "…"
        fitted.append(line)
    return fitted
