"""Shared test plumbing that needs pytest (so it stays out of ``tidings.testing``)."""

from __future__ import annotations

import os

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
