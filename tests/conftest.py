"""Fixtures shared by the adapter tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from bot.engine.store import Store
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


@pytest.fixture(autouse=True)
def _engines_on_postgresql(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """ATELIER_TEST_STORE=postgresql: every engine a test builds in this process keeps its
    store in PostgreSQL (one fresh database per SQLite path the test names), to run the
    engine's tests on PostgreSQL unchanged. Off by default: the store's own tests already
    run on both."""
    if os.environ.get("ATELIER_TEST_STORE") != "postgresql":
        return
    import bot.engine.service as service
    from bot.engine.store import is_postgres_url, store_for

    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    databases: dict[str, str] = {}

    def on_postgresql(target: str | Path) -> Store:
        if is_postgres_url(target) or str(target) == ":memory:":
            return store_for(target)
        key = str(Path(target).resolve())
        if key not in databases:
            databases[key] = cluster.create_database()
        return store_for(databases[key])

    monkeypatch.setattr(service, "store_for", on_postgresql)
