"""The store and the loops that write to it fail loudly, never silently: a refused final
save is retried until it lands, a row this version cannot read is skipped with a log
line naming it, unknown keys survive a re-save, and only one process runs a store."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.backoff import Backoff
from bot.config import parse_config
from bot.engine import loop as loop_module
from bot.engine import models
from bot.engine.loop import BackgroundLoop
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.ownership import StoreInUse
from bot.engine.service import Engine
from bot.engine.store import COLUMNS, Store
from bot.vocab import Action
from tests.test_engine import ScriptedProvider, wait_done

# Every test of a store runs on both databases (`store_target`: a SQLite file, then a
# fresh PostgreSQL database; see tests/pg.py).


def make_engine(tmp_path: Path, provider: ScriptedProvider, target: str) -> Engine:
    """tests.test_engine.make_engine, on the store `target` names."""
    where = {"url": target} if target.startswith("postgresql://") else {"path": target}
    config = parse_config(
        {
            "storage": {**where, "media_dir": str(tmp_path / "media")},
            "providers": [{"name": provider.name, "kind": "sandbox"}],
        }
    )
    return Engine(config, providers={provider.name: provider})


# --------------------------------------------------------------------------- a failed final save


async def test_a_refused_final_save_is_retried_until_the_job_is_stored(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    store_target: str,
) -> None:
    monkeypatch.setattr(loop_module, "SAVE_BACKOFF", Backoff(base=0.02, cap=0.1))
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider, store_target)
    store = engine.store
    real_save_many = store.save_many
    refusals = 3

    async def disk_full_for_finished_jobs(jobs: Any) -> None:
        nonlocal refusals
        jobs = list(jobs)
        if refusals and any(job.status is JobStatus.SUCCEEDED for job in jobs):
            refusals -= 1
            raise sqlite3.OperationalError("database or disk is full")
        await real_save_many(jobs)

    monkeypatch.setattr(store, "save_many", disk_full_for_finished_jobs)
    announced: list[str] = []
    await engine.start()
    try:
        engine.subscribe(lambda update: announced.append(str(update.kind)))
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))

        async def stored_as_succeeded() -> Job:
            while True:
                stored = await store.get(job.id)
                if stored is not None and stored.status is JobStatus.SUCCEEDED:
                    return stored
                await asyncio.sleep(0.02)

        stored = await asyncio.wait_for(stored_as_succeeded(), 10)
    finally:
        await engine.stop()
    assert refusals == 0
    assert stored.images and stored.grid  # the results came with it
    assert "succeeded" in announced  # announced once stored
    failures = [r for r in caplog.records if "saving job" in r.getMessage()]
    assert len(failures) == 3 and all(job.id in r.getMessage() for r in failures)
    assert all(r.levelno == logging.ERROR and "disk is full" in r.getMessage() for r in failures)


async def test_a_refused_save_after_sending_still_follows_the_job(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    store_target: str,
) -> None:
    # The provider accepted the job, then the store refused to record that: the job must
    # still be polled to its end (and sent once), not left SUBMITTING until a restart.
    monkeypatch.setattr(loop_module, "SAVE_BACKOFF", Backoff(base=0.02, cap=0.1))
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider, store_target)
    store = engine.store
    real_save = store.save
    refusals = 3

    async def disk_full_once_sent(job: Job) -> None:
        nonlocal refusals
        if refusals and job.task_id is not None:  # any write once the provider has it
            refusals -= 1
            raise sqlite3.OperationalError("database or disk is full")
        await real_save(job)

    monkeypatch.setattr(store, "save", disk_full_once_sent)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        done = await wait_done(engine, job.id)
    finally:
        await engine.stop()
    assert refusals == 0 and done.status is JobStatus.SUCCEEDED
    assert len(provider.submitted) == 1
    failures = [r for r in caplog.records if "saving job" in r.getMessage()]
    assert len(failures) == 3 and all(job.id in r.getMessage() for r in failures)


class _Loop(BackgroundLoop):
    async def _turn(self) -> None:
        return None


async def test_a_spawned_task_that_fails_is_logged_with_its_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = _Loop()

    async def broken() -> None:
        raise RuntimeError("boom")

    loop._spawn(broken(), job_ids=["abcdefghjk"])
    await asyncio.sleep(0.01)
    await loop.stop()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "abcdefghjk" in record.getMessage() and "broken" in record.getMessage()
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


# --------------------------------------------------------------------------- unreadable rows


async def _insert(target: str, job_id: str, status: str, action: str, data: str) -> None:
    """A row written behind the store's back (by a newer version, or by hand)."""
    store = Store(target)
    await store.open()
    try:
        await store.db.execute(
            "INSERT INTO jobs (id, action, provider, status, created_at, updated_at, data) "
            "VALUES (?, ?, 'scripted', ?, 1, 1, ?)",
            (job_id, action, status, data),
        )
        await store.db.commit()
    finally:
        await store.close()


async def _rows(target: str, sql: str) -> list[tuple[Any, ...]]:
    store = Store(target)
    await store.open()
    try:
        async with store.db.execute(sql) as cursor:
            return await cursor.fetchall()
    finally:
        await store.close()


def _document(job_id: str, **changes: Any) -> str:
    data = Job(id=job_id, action=Action.IMAGINE, provider="scripted", prompt="x").to_json()
    data.update(changes)
    return json.dumps(data)


async def _store_with_bad_rows(target: str) -> str:
    store = Store(target)
    await store.open()
    await store.save(
        Job(
            id="goodgoodgo",
            action=Action.IMAGINE,
            provider="scripted",
            status=JobStatus.RUNNING,
            task_id="t-old",
            prompt="good",
        )
    )
    await store.close()
    # A newer version's action, a newer version's status, and a hand-edit gone wrong.
    await _insert(
        target, "newaction0", "running", "animate", _document("newaction0", action="animate")
    )
    await _insert(
        target, "newstatus0", "running", "imagine", _document("newstatus0", status="paused")
    )
    await _insert(target, "badjson000", "running", "imagine", '{"id": "badjson000", "action": ')
    await _insert(target, "notadict00", "succeeded", "imagine", "[1, 2]")
    return target


BAD = ("newaction0", "newstatus0", "badjson000", "notadict00")


async def test_every_reader_skips_unreadable_rows_and_names_them(
    store_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _store_with_bad_rows(store_target)
    store = Store(store_target)
    await store.open()
    try:
        assert [j.id for j in await store.active()] == ["goodgoodgo"]
        assert [j.id for j in await store.recent()] == ["goodgoodgo"]
        assert await store.undelivered("cli", 0) == []
        for job_id in BAD:
            assert await store.get(job_id) is None
        assert (await store.get("goodgoodgo")) is not None
        await store.recent()  # logged once per job, not at every listing
    finally:
        await store.close()
    logged = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert sorted(m.split()[1] for m in logged) == sorted(BAD)
    assert all(store.where in m for m in logged)
    assert store.where == store_target  # the URL has no password to hide here


async def test_an_unreadable_row_does_not_stop_the_engine_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, store_target: str
) -> None:
    await _store_with_bad_rows(store_target)
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider, store_target)
    await engine.start()
    try:
        resumed = await wait_done(engine, "goodgoodgo")
    finally:
        await engine.stop()
    assert resumed.status is JobStatus.SUCCEEDED
    assert ["t-old"] in provider.fetch_batches
    assert any("newaction0" in r.getMessage() for r in caplog.records)
    # Left as they were, for a newer version.
    kept = dict(await _rows(store_target, "SELECT id, status FROM jobs WHERE id != 'goodgoodgo'"))
    assert kept == {
        "newaction0": "running",
        "newstatus0": "running",
        "badjson000": "running",
        "notadict00": "succeeded",
    }


# --------------------------------------------------------------------------- unknown keys


async def test_unknown_keys_survive_a_re_save(
    store_target: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.INFO, logger="bot.engine.models")
    # Noted once per process: forget the other database's run of this test.
    monkeypatch.setattr(models, "_UNKNOWN_KEYS_SEEN", set())
    newer = {"zz_newer_field": {"kept": [1, 2]}, "zz_other": "x"}
    await _insert(
        store_target, "fromnewer0", "running", "imagine", _document("fromnewer0", **newer)
    )
    store = Store(store_target)
    await store.open()
    try:
        job = await store.get("fromnewer0")
        assert job is not None and job.extras == newer
        job.progress = 50.0  # this version changes what it knows, and saves
        await store.save(job)
        await store.get("fromnewer0")
    finally:
        await store.close()
    [(data,)] = await _rows(store_target, "SELECT data FROM jobs")
    document = json.loads(data)
    assert document["zz_newer_field"] == {"kept": [1, 2]} and document["zz_other"] == "x"
    assert document["progress"] == 50.0 and "extras" not in document
    noted = [r.getMessage() for r in caplog.records if "zz_newer_field" in r.getMessage()]
    assert len(noted) == 1 and "zz_other" in noted[0]  # once, however often it is read


def test_a_known_field_wins_over_a_kept_key_of_the_same_name() -> None:
    job = Job.from_json({"id": "abcdefghjk", "action": "imagine", "provider": "p"})
    job.extras = {"prompt": "stale"}
    job.prompt = "fresh"
    assert job.to_json()["prompt"] == "fresh"
    assert Job.from_json(job.to_json()).extras == {}


# --------------------------------------------------------------------------- one column list


async def test_the_column_list_matches_the_table(store_target: str) -> None:
    store = Store(store_target)
    await store.open()
    try:
        if store.dialect == "sqlite":
            async with store.db.execute("PRAGMA table_info(jobs)") as cursor:
                table = [row[1] for row in await cursor.fetchall()]
        else:
            async with store.db.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'jobs' ORDER BY ordinal_position"
            ) as cursor:
                table = [row[0] for row in await cursor.fetchall()]
    finally:
        await store.close()
    assert table == [name for name, _ in COLUMNS]


async def test_patch_sets_columns_too_and_refuses_what_is_not_a_field(store_target: str) -> None:
    store = Store(store_target)
    await store.open()
    try:
        await store.save(Job(id="abcdefghjk", action=Action.IMAGINE, provider="p"))
        await store.patch("abcdefghjk", message_id="m1", status=JobStatus.RUNNING)
        for bad in ({"nonsense": 1}, {"id": "other"}, {"data": "{}"}, {"x') --": 1}):
            with pytest.raises(ValueError, match="patched"):
                await store.patch("abcdefghjk", **bad)
        async with store.db.execute("SELECT message_id, status FROM jobs") as cursor:
            assert tuple(await cursor.fetchone()) == ("m1", "running")
        job = await store.get("abcdefghjk")
        assert job is not None and job.message_id == "m1" and job.status is JobStatus.RUNNING
    finally:
        await store.close()


# --------------------------------------------------------------------------- one owner


async def test_only_one_store_runs_a_database_and_readers_never_block(
    tmp_path: Path, store_target: str
) -> None:
    db = Path(store_target) if store_target.endswith(".db") else store_target
    owner, other = Store(db), Store(db)
    await owner.open()
    await other.open()
    try:
        await owner.active()  # resuming makes it the owner
        assert owner.owned
        if isinstance(db, Path):
            assert (tmp_path / "a.db.lock").exists()
        job = Job(id="abcdefghjk", action=Action.IMAGINE, provider="p")
        await owner.save(job)
        assert [j.id for j in await other.recent()] == [job.id]  # reading is fine
        with pytest.raises(StoreInUse, match=str(db)):
            await other.active()
        with pytest.raises(StoreInUse):
            await other.save(job)
        with pytest.raises(StoreInUse):
            await other.patch(job.id, message_id="m")
        assert not other.owned
        await owner.close()
        await other.active()  # the owner is gone: the lock is free
        assert other.owned
    finally:
        await owner.close()
        await other.close()
