"""Fixtures the admin UI's integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient

from tests.integration.test_campaigns import Inbox, _free_port
from tests.integration.test_web_auth import EMAIL, PASSWORD, login
from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials


@pytest.fixture
def ui(db_url: str, tmp_path: Path, creds: Credentials, clock: FrozenClock) -> Iterator[TestClient]:
    """The app with a user signed in to the admin UI (no in-process pipeline: tests drain it)."""
    settings = Settings(database_url=db_url, data_dir=tmp_path / "data", pipeline_in_process=False)
    with TestClient(create_app(settings, clock)) as client:
        client.app.state.container.web.users.create(EMAIL, PASSWORD)  # type: ignore[attr-defined]
        assert login(client).status_code == 303
        yield client


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """A real SMTP server (aiosmtpd) on a free port, keeping what it accepts."""
    box = Inbox(_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
