"""One contract, two databases: every test here runs on a SQLite file and on a fresh
PostgreSQL database (`store_target`, tests/pg.py). Schema and migrations, atomic steps
that no other process interleaves with, and the queries the engine builds on."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import ConfigError, parse_config
from bot.engine.models import FollowUp, Job, JobStatus, Origin
from bot.engine.ownership import StoreInUse
from bot.engine.store import MIGRATIONS, SCHEMA_VERSION, Dialects, Store
from bot.engine.store.migrations import statements
from bot.engine.store.postgres import PostgresStore, redacted
from bot.engine.store.sqlite import SqliteStore
from bot.vocab import Action
from tests import pg


async def _opened(target: str, *, upto: int | None = None) -> Store:
    store = Store(target)
    await store.open(upto=upto)
    return store


def _job(job_id: str, **fields: object) -> Job:
    values: dict[str, object] = {"action": Action.IMAGINE, "provider": "p", "prompt": "a cat"}
    return Job(id=job_id, **{**values, **fields})  # type: ignore[arg-type]


async def _set_version(store: Store, version: int) -> None:
    if store.dialect == "sqlite":
        await store.db.execute(f"PRAGMA user_version = {version}")
    else:
        await store.db.execute("UPDATE atelier_schema SET version = ?", (version,))
    await store.db.commit()


async def _indexes(store: Store) -> set[str]:
    sql = (
        "SELECT name FROM sqlite_master WHERE type = 'index'"
        if store.dialect == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs'"
    )
    async with store.db.execute(sql) as cursor:
        return {row[0] for row in await cursor.fetchall()}


# --------------------------------------------------------------------------- which store


def test_a_target_picks_its_store() -> None:
    assert isinstance(Store("data/a.db"), SqliteStore)
    assert isinstance(Store(":memory:"), SqliteStore)
    assert isinstance(Store("postgresql://atelier@db/atelier"), PostgresStore)
    assert isinstance(Store("postgres://atelier@db/atelier"), PostgresStore)


def test_messages_never_show_the_password() -> None:
    url = "postgresql://bot:s3cret-pw@db.example:6543/atelier?password=s3cret-pw&sslmode=require"
    assert redacted(url) == "postgresql://bot@db.example:6543/atelier"
    store = Store(url)
    assert "s3cret" not in store.where and "s3cret" not in str(StoreInUse(store.where))
    assert "[storage] url" in str(StoreInUse(store.where))


def test_the_storage_url_must_be_a_postgresql_url() -> None:
    base = {"providers": [{"name": "s", "kind": "sandbox"}]}
    config = parse_config({**base, "storage": {"url": "postgresql://atelier@db/atelier"}})
    assert config.storage.target == "postgresql://atelier@db/atelier"
    assert parse_config(base).storage.target == "data/atelier.db"  # SQLite stays the default
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL"):
        parse_config({**base, "storage": {"url": "mysql://atelier@db/atelier"}})


def test_every_migration_step_has_sql_for_both_databases() -> None:
    for step in MIGRATIONS:
        for dialect in ("sqlite", "postgresql"):
            assert all(isinstance(sql, str) and sql.strip() for sql in statements(step, dialect))
    # The shipped SQLite text is kept as it was; PostgreSQL's times are 8-byte floats.
    [jobs] = MIGRATIONS[0]
    assert isinstance(jobs, Dialects) and "created_at REAL" in jobs.sqlite
    assert "created_at DOUBLE PRECISION" in jobs.postgresql


# --------------------------------------------------------------------------- schema


async def test_a_fresh_store_is_at_the_latest_schema(store_target: str) -> None:
    store = await _opened(store_target)
    try:
        assert await store.version() == SCHEMA_VERSION
        assert {"jobs_status", "jobs_created", "jobs_user_created", "jobs_message"} <= (
            await _indexes(store)
        )
    finally:
        await store.close()


async def test_a_migration_keeps_jobs(store_target: str) -> None:
    store = await _opened(store_target, upto=1)
    assert await store.version() == 1
    assert "jobs_status" not in await _indexes(store)
    await store.save(_job("abcdefghjk"))
    await store.close()
    store = await _opened(store_target)
    try:
        assert await store.version() == SCHEMA_VERSION
        again = await store.get("abcdefghjk")
        assert again is not None and again.prompt == "a cat"
        assert "jobs_status" in await _indexes(store)
    finally:
        await store.close()


async def test_migration_3_renames_queued_to_waiting_in_column_and_document(
    store_target: str,
) -> None:
    store = await _opened(store_target, upto=2)
    await store.save(_job("abcdefghjk"))
    document = json.dumps({**_job("abcdefghjk").to_json(), "status": "queued"})
    await store.db.execute("UPDATE jobs SET status = 'queued', data = ?", (document,))
    await store.db.commit()
    await store.close()
    store = await _opened(store_target)
    try:
        again = await store.get("abcdefghjk")
        assert again is not None and again.status is JobStatus.WAITING
        async with store.db.execute("SELECT status FROM jobs") as cursor:
            assert await cursor.fetchall() == [("waiting",)]
    finally:
        await store.close()


async def test_a_store_refuses_a_newer_schema(store_target: str) -> None:
    store = await _opened(store_target)
    await _set_version(store, SCHEMA_VERSION + 5)
    await store.close()
    again = Store(store_target)
    with pytest.raises(RuntimeError, match="newer Atelier"):
        await again.open()
    await again.close()


async def test_processes_starting_together_migrate_once(store_target: str) -> None:
    # Each store is a connection of its own, as a process would have: without the
    # migration lock, two would run CREATE TABLE jobs and one would fail.
    stores = [Store(store_target) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        assert [await store.version() for store in stores] == [SCHEMA_VERSION] * 4
    finally:
        for store in stores:
            await store.close()


# --------------------------------------------------------------------------- atomic steps


async def test_concurrent_steps_never_interleave(store_target: str) -> None:
    # Read, then write what was read plus one: interleaved steps would lose increments.
    # On PostgreSQL each step runs on a pooled connection of its own, as another
    # process's would: only the step lock keeps them apart.
    store = await _opened(store_target)

    async def increment() -> None:
        async with store.transaction() as db:
            async with db.execute("SELECT data FROM guild_settings WHERE guild_id = 'g'") as cur:
                row = await cur.fetchone()
            count = json.loads(row[0])["n"] if row else 0
            await asyncio.sleep(0.001)  # let another step try to come in
            await db.execute(
                "INSERT INTO guild_settings (guild_id, data, updated_at) VALUES ('g', ?, 0) "
                "ON CONFLICT (guild_id) DO UPDATE SET data = excluded.data",
                (json.dumps({"n": count + 1}),),
            )

    try:
        await asyncio.gather(*(increment() for _ in range(30)))
        async with store.db.execute("SELECT data FROM guild_settings") as cursor:
            assert [json.loads(r[0]) for r in await cursor.fetchall()] == [{"n": 30}]
    finally:
        await store.close()


async def test_a_failed_step_leaves_nothing(store_target: str) -> None:
    store = await _opened(store_target)
    try:
        with pytest.raises(RuntimeError, match="half way"):
            async with store.transaction() as db:
                await db.execute(
                    "INSERT INTO ledger (at, kind, user_id, credits) VALUES (1, 'charge', 'u', 2)"
                )
                raise RuntimeError("half way")
        async with store.db.execute("SELECT COUNT(*) FROM ledger") as cursor:
            assert await cursor.fetchone() == (0,)
        async with store.transaction() as db:  # the store still works after it
            await db.execute(
                "INSERT INTO ledger (at, kind, user_id, credits) VALUES (?, 'charge', ?, ?)",
                (1.5, "u", 2.25),
            )
        async with store.db.execute("SELECT at, credits FROM ledger") as cursor:
            assert await cursor.fetchall() == [(1.5, 2.25)]
    finally:
        await store.close()


# --------------------------------------------------------------------------- queries


async def test_a_job_round_trips_and_is_found_by_what_the_engine_asks(store_target: str) -> None:
    store = await _opened(store_target)
    try:
        job = _job(
            "0123456789",
            action=Action.PAN,
            variant="left",
            followups=[FollowUp(Action.ZOOM, 0, "2", "ref")],
            regions=[(0.1, 0.2, 0.3, 0.4)],
            status=JobStatus.RUNNING,
            params={"aspect": "3:2"},
            user_id="u1",
            guild_id="g1",
            channel_id="c1",
            task_id="t1",
            created_at=1_700_000_000.123456,  # a timestamp to the microsecond survives
        )
        await store.save(job)
        assert await store.get(job.id) == job
        assert [j.id for j in await store.active()] == [job.id]
        assert [j.id for j in await store.recent(user_id="u1", guild_id="g1")] == [job.id]
        assert await store.recent(user_id="u2") == []
        assert await store.count_active_for("u1") == 1
        assert await store.count_sent_since("u1", 1_700_000_000.1) == 1
        assert await store.count_sent_since("u1", 1_700_000_000.2) == 0
        await store.patch(job.id, message_id="m1")
        found = await store.job_for_message("c1", "m1")
        assert found is not None and found.id == job.id
        assert await store.job_for_message("c2", "m1") is None
    finally:
        await store.close()


async def test_replace_if_writes_only_over_the_status_it_expects(store_target: str) -> None:
    store = await _opened(store_target)
    try:
        job = _job("replaceifj", status=JobStatus.WAITING)
        await store.save(job)
        sending = job.copy()
        sending.status = JobStatus.SUBMITTING
        assert await store.replace_if(sending, JobStatus.WAITING)
        late = job.copy()  # another process's cancel, from the job as it was
        late.status, late.failure = JobStatus.CANCELLED, "too late"
        assert not await store.replace_if(late, JobStatus.WAITING)
        stored = await store.get(job.id)
        assert stored is not None and stored.status is JobStatus.SUBMITTING
        assert stored.failure is None or stored.failure == ""
        assert not await store.replace_if(_job("nosuchjob0"), JobStatus.WAITING)
    finally:
        await store.close()


async def test_a_search_reaches_past_the_newest_jobs(store_target: str) -> None:
    """`recent(mentioning=..., provider=...)` narrows in the database, so the limit
    counts matching jobs: an old match is found under 30 newer jobs. Words match
    whatever their case, in any script; LIKE's wildcards in a word are plain text."""
    prompts = ["a Red fox", "蓝色的猫", "100%_done", "100 percent done", "Éclair"]
    store = await _opened(store_target)
    try:
        for n, prompt in enumerate(prompts):
            await store.save(_job(f"old{n:07d}", prompt=prompt, user_id="u1", created_at=n))
        for n in range(30):
            await store.save(_job(f"new{n:07d}", prompt="a cat", user_id="u1", created_at=100 + n))
        await store.save(_job("otherprovi", prompt="a red door", provider="q", created_at=200))

        async def found(*words: str, provider: str | None = None) -> list[str]:
            jobs = await store.recent(5, mentioning=words, provider=provider)
            return [j.prompt for j in jobs]

        assert await found("RED") == ["a red door", "a Red fox"]
        assert await found("red", provider="p") == ["a Red fox"]
        assert await found("猫") == ["蓝色的猫"]
        assert await found("100%_") == ["100%_done"]  # not "100 percent done"
        assert await found("red", "fox") == ["a Red fox"]
        # A word with a cased non-ASCII letter is not narrowed by (its stored escape
        # matches one case only): the newest come back, for the caller to check.
        assert len(await found("éclair")) == 5
    finally:
        await store.close()


async def test_undelivered_and_usage_read_the_documents(store_target: str) -> None:
    store = await _opened(store_target)
    try:
        done = _job("done000001", user_id="u1", task_id="t1", status=JobStatus.SUCCEEDED)
        shown = _job("shown00001", user_id="u1", task_id="t2", status=JobStatus.SUCCEEDED)
        failed = _job("failed0001", user_id="u1", task_id="t3", status=JobStatus.FAILED)
        for job in (done, shown, failed):
            job.origin = Origin.DISCORD
        await store.save_many([done, shown, failed])
        await store.patch(shown.id, delivered_at=5.0)
        undelivered = await store.undelivered("discord", 0)
        assert [j.id for j in undelivered] == [done.id, failed.id]
        assert await store.undelivered("cli", 0) == []
        [usage] = await store.usage(0)
        assert (usage.user_id, usage.jobs, usage.succeeded, usage.failed) == ("u1", 3, 2, 1)
        inputs = store.json_text("inputs")
        async with store.db.execute(f"SELECT {inputs} FROM jobs WHERE id = ?", (done.id,)) as c:
            assert json.loads((await c.fetchone())[0]) == []
    finally:
        await store.close()


# --------------------------------------------------------------------------- the test cluster


def test_without_postgresql_the_reason_to_skip_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ATELIER_PG_BIN", raising=False)
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    with pytest.raises(pg.PgUnavailable, match="install Debian's `postgresql` package"):
        pg.find_bin_dir()


def test_an_unreachable_database_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "config.toml"
    config.write_text(
        f'[storage]\nurl = "postgresql://bot:hunter2-secret@127.0.0.1:{port}/atelier"\n'
        '[[providers]]\nname = "s"\nkind = "sandbox"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "jobs"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )  # fmt: skip
    assert done.returncode == 2
    assert f"cannot open the store postgresql://bot@127.0.0.1:{port}/atelier:" in done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
