"""Fixtures shared by the adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests import stores
from tests.pg import REQUIRED, PgCluster, PgUnavailable


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """The shared HTTP client an adapter is given (the engine owns one the same way)."""
    async with httpx.AsyncClient() as http:
        yield http


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session (see tests/pg.py); the tests
    that need it are skipped, saying why, when none can be started here."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as err:
        if REQUIRED:
            pytest.fail(f"ATELIER_TEST_POSTGRES=required, but {err}", pytrace=False)
        pytest.skip(f"PostgreSQL tests skipped: {err}")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(pg_cluster: PgCluster) -> str:
    """A fresh, empty database of the session's cluster."""
    return pg_cluster.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What a store opens, once per database: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "a.db")
    return str(request.getfixturevalue("postgres_url"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_stores: run the module once on SQLite and once on PostgreSQL (tests/stores.py)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") is not None:
        metafunc.parametrize("store_kind", ["sqlite", "postgresql"], indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def store_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where the module's engines and bots keep their state: "sqlite" unless the module
    is marked `both_stores`, which runs it on "postgresql" too. On PostgreSQL every
    SQLite file the tests name stands for a database of its own (tests/stores.py)."""
    kind = str(getattr(request, "param", "sqlite"))
    if kind != "postgresql":
        yield kind
        return
    import bot.engine.service as service

    redirect = stores.Redirect(request.getfixturevalue("pg_cluster"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(service, "store_for", redirect.store_for)
        patch.setattr(stores, "ACTIVE", redirect)
        yield kind
