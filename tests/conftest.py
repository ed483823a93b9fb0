from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support import require
from tidings.app import create_app
from tidings.core.clock import FrozenClock
from tidings.core.settings import Settings
from tidings.testing import Credentials, pg_available, pg_schema, pg_url, prepare_database

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that takes this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    require(pg_available())
    with pg_schema(pg_url()) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tidings.db'}"


@pytest.fixture
def pg_only_url() -> Iterator[str]:
    require(pg_available())
    with pg_schema(pg_url()) as url:
        yield url


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=db_url, data_dir=tmp_path / "data")


@pytest.fixture
def creds(settings: Settings) -> Credentials:
    return prepare_database(settings.database_url)


@pytest.fixture
def client(settings: Settings, creds: Credentials, clock: FrozenClock) -> Iterator[TestClient]:
    with TestClient(create_app(settings, clock)) as test_client:
        yield test_client


@pytest.fixture
def admin(creds: Credentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.admin_token}"}


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def quiet_settings(db_url: str, tmp_path: Path) -> Settings:
    """No in-process pipeline (tests apply the log themselves), images from local servers."""
    return Settings(
        database_url=db_url,
        data_dir=tmp_path / "data",
        pipeline_in_process=False,
        images_allow_private=True,
    )


@pytest.fixture
def app_client(
    quiet_settings: Settings, creds: Credentials, clock: FrozenClock
) -> Iterator[TestClient]:
    with TestClient(create_app(quiet_settings, clock)) as test_client:
        yield test_client
