"""The countdown: digits from the first frame, one frame a second, the recipient's time zone,
an ended image, and one render per second however many opens."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image, ImageChops
from pydantic import ValidationError

from tidings.content.render import (
    GIF,
    CountdownApp,
    CountdownConfig,
    CountdownStyle,
    RenderCaches,
    RenderContext,
    Rendered,
    RenderProfile,
)
from tidings.content.render.countdown import split
from tidings.content.render.testing import InMemoryCatalog, InMemoryImages

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 11, 25, 23, 59, 59)  # wall-clock, in the recipient's zone


def ctx(
    now: datetime = NOW,
    *,
    timezone: str | None = None,
    caches: RenderCaches | None = None,
) -> RenderContext:
    traits = {"timezone": timezone} if timezone else {}
    return RenderContext(
        RenderProfile.from_traits(traits),
        InMemoryCatalog(),
        InMemoryImages(),
        now,
        caches or RenderCaches(),
    )


def frames(rendered: Rendered) -> list[Image.Image]:
    image = Image.open(io.BytesIO(rendered.data))
    found = []
    for index in range(image.n_frames):
        image.seek(index)
        found.append(image.convert("RGB"))
    return found


def test_the_first_frame_already_shows_the_digits() -> None:
    app = CountdownApp(CountdownConfig(deadline=DEADLINE, url="https://shop.example/sale"))
    rendered = app.render(ctx())
    assert rendered.content_type == GIF
    assert not rendered.empty
    assert rendered.slots[0].url == "https://shop.example/sale"
    first = frames(rendered)[0]
    style = CountdownStyle()
    blank = Image.new("RGB", first.size, style.background)
    # Not blank, and the white of the digits is there in the frame Outlook shows.
    assert ImageChops.difference(first, blank).getbbox() is not None
    white = first.convert("L").histogram()[255]
    assert white > 500


def test_sixty_frames_one_a_second_looping() -> None:
    rendered = CountdownApp(CountdownConfig(deadline=DEADLINE)).render(ctx())
    image = Image.open(io.BytesIO(rendered.data))
    assert image.n_frames == 60
    assert image.info["loop"] == 0
    durations = []
    for index in range(image.n_frames):
        image.seek(index)
        durations.append(image.info["duration"])
    assert set(durations) == {1000}
    assert len(rendered.data) < 100_000


def test_frame_k_is_what_an_open_k_seconds_later_shows_first() -> None:
    app = CountdownApp(CountdownConfig(deadline=DEADLINE))
    caches = RenderCaches()
    now_frames = frames(app.render(ctx(caches=caches)))
    for k in (1, 9, 10, 59):
        later = frames(app.render(ctx(NOW + timedelta(seconds=k), caches=caches)))[0]
        assert ImageChops.difference(now_frames[k], later).getbbox() is None, k
    assert ImageChops.difference(now_frames[0], now_frames[1]).getbbox() is not None


def test_the_recipients_time_zone_decides_a_wall_clock_deadline() -> None:
    app = CountdownApp(CountdownConfig(deadline=DEADLINE, timezone="America/New_York"))
    berlin = RenderProfile.from_traits({"timezone": "Europe/Berlin"})
    assert app.deadline_for(berlin) == datetime(2026, 11, 25, 22, 59, 59, tzinfo=UTC)
    default = RenderProfile.from_traits({"timezone": "Mars/Olympus_Mons"})
    assert app.deadline_for(default) == datetime(2026, 11, 26, 4, 59, 59, tzinfo=UTC)
    absolute = CountdownApp(CountdownConfig(deadline=datetime(2026, 12, 1, tzinfo=UTC)))
    assert absolute.deadline_for(berlin) == datetime(2026, 12, 1, tzinfo=UTC)
    first_berlin = frames(app.render(ctx(timezone="Europe/Berlin")))[0]
    first_new_york = frames(app.render(ctx(timezone="America/New_York")))[0]
    assert ImageChops.difference(first_berlin, first_new_york).getbbox() is not None


def test_after_the_deadline_the_ended_image_is_shown() -> None:
    app = CountdownApp(CountdownConfig(deadline=datetime(2026, 11, 23, 12, 0, tzinfo=UTC)))
    ended = app.render(ctx(NOW))
    assert Image.open(io.BytesIO(ended.data)).n_frames == 1
    assert ended.content_type == GIF
    assert (ended.width, ended.height) == (600, 150)
    running = app.render(ctx(NOW - timedelta(seconds=1)))
    assert Image.open(io.BytesIO(running.data)).n_frames > 1
    assert app.render(ctx(NOW + timedelta(days=3))).data == ended.data


def test_a_countdown_reaching_zero_plays_once_and_stays_at_zero() -> None:
    app = CountdownApp(CountdownConfig(deadline=NOW + timedelta(seconds=10)))
    rendered = app.render(ctx())
    image = Image.open(io.BytesIO(rendered.data))
    assert "loop" not in image.info
    assert image.n_frames == 11  # 10 … 1, then 0 held
    image.seek(10)
    assert image.info["duration"] == 50 * 1000


def test_opens_in_the_same_second_share_one_render() -> None:
    caches = RenderCaches()
    app = CountdownApp(CountdownConfig(deadline=DEADLINE))
    first = app.render(ctx(NOW, caches=caches))
    again = app.render(ctx(NOW + timedelta(milliseconds=999), caches=caches))
    assert again.data is first.data
    assert (caches.countdowns.misses, caches.countdowns.hits) == (1, 1)
    next_second = app.render(ctx(NOW + timedelta(seconds=1), caches=caches))
    assert next_second.data != first.data
    assert caches.countdowns.misses == 2
    other_style = CountdownApp(CountdownConfig(deadline=DEADLINE, style=CountdownStyle(scale=2)))
    other_style.render(ctx(NOW, caches=caches))
    assert caches.countdowns.misses == 3


def test_styles_sizes_and_long_deadlines() -> None:
    far = CountdownApp(CountdownConfig(deadline=NOW + timedelta(days=400, hours=3)))
    assert frames(far.render(ctx()))[0].size == (600, 150)
    retina = CountdownApp(CountdownConfig(deadline=DEADLINE, style=CountdownStyle(scale=2)))
    rendered = retina.render(ctx())
    assert (rendered.width, rendered.height, rendered.display_width) == (1200, 300, 600)
    assert len(rendered.data) < 100_000
    narrow = CountdownStyle(width=200, height=60, digit_size=80)  # digits shrink to fit
    assert frames(CountdownApp(CountdownConfig(deadline=DEADLINE, style=narrow)).render(ctx()))


def test_split_and_validation() -> None:
    assert split(2 * 86400 + 3 * 3600 + 4 * 60 + 5, days=True) == (2, 3, 4, 5)
    assert split(2 * 86400 + 3 * 3600 + 4 * 60 + 5, days=False) == (0, 51, 4, 5)
    assert split(-5, days=True) == (0, 0, 0, 0)
    with pytest.raises(ValidationError, match="IANA"):
        CountdownConfig(deadline=DEADLINE, timezone="Nowhere/Special")
    with pytest.raises(ValidationError):
        CountdownConfig(deadline=DEADLINE, frames=0)
