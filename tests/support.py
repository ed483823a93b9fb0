"""Shared test plumbing that needs pytest (so it stays out of ``tidings.testing``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def require(missing: str | None) -> None:
    """Skip the test for a missing dependency, but fail it when ``CI`` is set."""
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI is set and {missing}")
    pytest.skip(missing)


# How the suite launches Debian's chromium through Playwright (never `playwright install`).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """Headless Debian chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
