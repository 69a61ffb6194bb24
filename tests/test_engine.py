"""Engine units: store migrations, the runner's batching, backoff, deadline, cancellation
and restart rules. The provider here is a scripted in-process double (a unit test); the
adapters are tested over the wire in their own files."""

from __future__ import annotations

import asyncio
import io
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiohttp import web
from PIL import Image

from bot.config import parse_config
from bot.engine.models import EventKind, Job, JobRequest, JobStatus, Origin
from bot.engine.service import Engine, RequestError
from bot.engine.store import SCHEMA_VERSION, Store
from bot.providers.base import (
    CheckResult,
    CheckStatus,
    FollowUp,
    How,
    Provider,
    ProviderUnavailable,
    RateLimited,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.vocab import Action

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores


def png(color: str = "red", size: tuple[int, int] = (64, 64)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


class ScriptedProvider(Provider):
    """Tasks finish after `polls_to_finish` fetches; failures can be scripted."""

    kind = "scripted"

    def __init__(self, name: str = "scripted", *, batch_size: int = 10) -> None:
        self.name = name
        self.batch_size = batch_size
        self.poll_interval = 0.05
        self.accepted_params = frozenset({"aspect", "seed", "chaos"})
        self.polls_to_finish = 2
        self.fetch_errors = 0  # the next N fetches raise ProviderUnavailable
        self.forget_tasks = False
        self.fetch_batches: list[list[str]] = []
        self.submitted: list[SubmitRequest] = []
        self.cancelled: list[str] = []
        self._polls: dict[str, int] = {}
        self._next = 0

    def supports(self, action: Action) -> Support | None:
        if action is Action.UPSCALE:
            return Support(How.NATIVE)
        return Support(How.NATIVE) if action is Action.IMAGINE else None

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self.submitted.append(request)
        self._next += 1
        task_id = f"t{self._next}"
        self._polls[task_id] = 0
        return SubmitResult(task_id)

    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        task_ids = [t.task_id for t in tasks]
        self.fetch_batches.append(task_ids)
        if self.fetch_errors:
            self.fetch_errors -= 1
            raise ProviderUnavailable("scripted outage", provider=self.name)
        if self.forget_tasks:
            return {}
        result = {}
        for task_id in task_ids:
            self._polls[task_id] = self._polls.get(task_id, 0) + 1
            done = self._polls[task_id] >= self.polls_to_finish
            result[task_id] = TaskSnapshot(
                task_id,
                TaskState.SUCCEEDED if done else TaskState.RUNNING,
                progress=100.0 if done else 50.0,
                image_urls=[f"img://{task_id}"] if done else [],
                grid=True,
                followups=[FollowUp(Action.UPSCALE, n) for n in range(1, 5)],
            )
        return result

    async def cancel(self, task_id: str) -> None:
        self.cancelled.append(task_id)

    async def download(self, url: str, max_bytes: int) -> bytes:
        return png("blue", (128, 96))

    async def check(self) -> CheckResult:
        return CheckResult("healthy", "scripted")


def make_engine(tmp_path: Path, provider: ScriptedProvider, **engine: Any) -> Engine:
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "engine": engine,
            "providers": [{"name": provider.name, "kind": "sandbox"}],
        }
    )
    return Engine(config, providers={provider.name: provider})


async def wait_done(engine: Engine, job_id: str, timeout: float = 5.0) -> Job:
    async def poll() -> Job:
        while True:
            job = await engine.get(job_id)
            if job is not None and job.finished:
                return job
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(poll(), timeout)


# --------------------------------------------------------------------------- store


async def test_fresh_store_is_at_latest_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    await store.open()
    assert await store.version() == SCHEMA_VERSION
    async with store.db.execute("PRAGMA journal_mode") as cursor:
        assert (await cursor.fetchone())[0] == "wal"
    await store.close()


async def test_migration_keeps_jobs_and_adds_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store(path)
    await store.open(upto=1)
    assert await store.version() == 1
    job = Job(id="abcdefghjk", action=Action.IMAGINE, provider="p", prompt="a cat")
    await store.save(job)
    await store.close()

    store = Store(path)
    await store.open()
    assert await store.version() == SCHEMA_VERSION
    again = await store.get("abcdefghjk")
    assert again is not None and again.prompt == "a cat"
    async with store.db.execute("SELECT name FROM sqlite_master WHERE type='index'") as cursor:
        names = {row[0] for row in await cursor.fetchall()}
    assert {"jobs_status", "jobs_created", "jobs_user_created", "jobs_message"} <= names
    await store.close()


async def test_migration_renames_queued_to_waiting(tmp_path: Path) -> None:
    # A store written before "queued" became "waiting": its never-sent jobs stay
    # never-sent (and so are sent after the upgrade), in the column and in the JSON.
    path = tmp_path / "old.db"
    store = Store(path)
    await store.open(upto=2)
    await store.save(Job(id="abcdefghjk", action=Action.IMAGINE, provider="p", prompt="a"))
    await store.db.execute(
        "UPDATE jobs SET status = 'queued', data = json_set(data, '$.status', 'queued')"
    )
    await store.db.commit()
    await store.close()

    store = Store(path)
    await store.open()
    try:
        again = await store.get("abcdefghjk")
        assert again is not None and again.status is JobStatus.WAITING
        assert [j.id for j in await store.active()] == ["abcdefghjk"]
    finally:
        await store.close()


async def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    async with aiosqlite.connect(path) as db:
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
        await db.commit()
    store = Store(path)
    with pytest.raises(RuntimeError, match="newer Atelier"):
        await store.open()
    await store.close()


async def test_job_round_trips_through_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    await store.open()
    job = Job(
        id="0123456789",
        action=Action.PAN,
        provider="p",
        variant="left",
        followups=[FollowUp(Action.ZOOM, 0, "2", "ref")],
        regions=[(0.1, 0.2, 0.3, 0.4)],
        status=JobStatus.RUNNING,
        params={"aspect": "3:2"},
    )
    await store.save(job)
    again = await store.get(job.id)
    assert again == job
    assert [j.id for j in await store.active()] == [job.id]
    await store.close()


# --------------------------------------------------------------------------- runner


async def test_runner_batches_polls_per_provider(tmp_path: Path) -> None:
    provider = ScriptedProvider(batch_size=10)
    provider.polls_to_finish = 3
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        jobs = [
            await engine.submit(JobRequest(Action.IMAGINE, prompt=f"cat {n}")) for n in range(25)
        ]
        done = [await wait_done(engine, j.id) for j in jobs]
    finally:
        await engine.stop()
    assert all(j.status is JobStatus.SUCCEEDED for j in done)
    assert max(len(b) for b in provider.fetch_batches) == 10
    # 25 jobs x 3 polls each = 75 task polls, in far fewer requests than one per task.
    assert sum(len(b) for b in provider.fetch_batches) >= 75
    assert len(provider.fetch_batches) < 75 / 2
    assert len(done[0].images) == 4 and done[0].grid  # the grid was split into four


async def test_runner_backs_off_on_errors_and_recovers(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.fetch_errors = 2
    engine = make_engine(tmp_path, provider)
    seen: list[str] = []
    engine.subscribe(lambda u: seen.append(u.kind))
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        done = await wait_done(engine, job.id)
    finally:
        await engine.stop()
    assert done.status is JobStatus.SUCCEEDED
    assert len(provider.fetch_batches) >= 2 + provider.polls_to_finish
    assert seen[0] == "created" and seen[-1] == "succeeded"


async def test_backoff_grows_between_failed_polls(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.fetch_errors = 4
    engine = make_engine(tmp_path, provider)
    times: list[float] = []
    original = provider.fetch

    async def timed(ids: Sequence[str]) -> dict[str, TaskSnapshot]:
        times.append(asyncio.get_running_loop().time())
        return await original(ids)

    provider.fetch = timed  # type: ignore[method-assign]
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        await wait_done(engine, job.id, timeout=10)
    finally:
        await engine.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)][:4]
    assert gaps[3] > gaps[0] * 3  # exponential, not constant


async def test_deadline_fails_a_job_that_never_finishes(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = make_engine(tmp_path, provider, job_deadline_minutes=0.01)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a slow cat"))
        done = await wait_done(engine, job.id)
        await asyncio.sleep(0.05)
    finally:
        await engine.stop()
    assert done.status is JobStatus.FAILED
    assert "No result after" in (done.failure or "")
    assert provider.cancelled == [job.task_id]  # the provider is told to stop, too


async def test_cancel_stops_polling(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        await asyncio.sleep(0.2)
        cancelled = await engine.cancel(job.id)
        polls = len(provider.fetch_batches)
        await asyncio.sleep(0.3)
        stored = await engine.store.get(job.id)
        with pytest.raises(RequestError, match="already cancelled"):
            await engine.cancel(job.id)
    finally:
        await engine.stop()
    assert cancelled.status is JobStatus.CANCELLED
    assert stored is not None and stored.status is JobStatus.CANCELLED
    assert provider.cancelled == [job.task_id]
    assert len(provider.fetch_batches) <= polls + 1


async def test_a_task_the_provider_forgets_fails_clearly(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.forget_tasks = True
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        done = await wait_done(engine, job.id)
    finally:
        await engine.stop()
    assert done.status is JobStatus.FAILED
    assert "no longer knows" in (done.failure or "")


async def test_restart_fails_jobs_caught_mid_submission_and_resumes_others(
    tmp_path: Path,
) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start(run=False)
    caught = Job(
        id="aaaaaaaaaa",
        action=Action.IMAGINE,
        provider=provider.name,
        status=JobStatus.SUBMITTING,
        prompt="x",
    )
    running = Job(
        id="bbbbbbbbbb",
        action=Action.IMAGINE,
        provider=provider.name,
        status=JobStatus.RUNNING,
        task_id="t-old",
        prompt="y",
    )
    await engine.store.save_many([caught, running])
    await engine.stop()

    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        failed = await wait_done(engine, caught.id)
        finished = await wait_done(engine, running.id)
    finally:
        await engine.stop()
    assert failed.status is JobStatus.FAILED and "not sent again" in (failed.failure or "")
    assert finished.status is JobStatus.SUCCEEDED
    assert provider.submitted == []  # nothing was submitted twice
    assert ["t-old"] in provider.fetch_batches


async def test_follow_ups_check_the_parent(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        with pytest.raises(RequestError, match="no longer exists"):
            await engine.submit(JobRequest(Action.UPSCALE, parent_id="zzzzzzzzzz", index=1))
        parent = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat --ar 3:2"))
        with pytest.raises(RequestError, match="has not finished"):
            await engine.submit(JobRequest(Action.UPSCALE, parent_id=parent.id, index=1))
        await wait_done(engine, parent.id)
        with pytest.raises(RequestError, match="does not offer Variation"):
            await engine.submit(JobRequest(Action.VARIATION, parent_id=parent.id, index=1))
        child = await engine.submit(JobRequest(Action.UPSCALE, parent_id=parent.id, index=3))
    finally:
        await engine.stop()
    sent = provider.submitted[-1]
    assert child.parent_id == parent.id and sent.index == 3
    assert sent.parent_task_id == parent.task_id
    assert sent.parent_image_size is not None  # read from the stored image
    assert sent.params == {"aspect": "3:2"}


async def test_prompt_rules_apply_before_anything_is_stored(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        with pytest.raises(RequestError, match="--repeat"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat --repeat 2"))
        with pytest.raises(RequestError, match="8192"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt="x" * 9000))
        with pytest.raises(RequestError, match="stylize"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat --s 100"))
        assert await engine.recent() == []
    finally:
        await engine.stop()
    assert provider.submitted == []


async def test_per_user_limit(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = make_engine(tmp_path, provider, max_active_per_user=1)
    await engine.start()
    try:
        await engine.submit(JobRequest(Action.IMAGINE, prompt="a", user_id="u1"))
        with pytest.raises(RequestError, match="limit here is 1"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt="b", user_id="u1"))
        await engine.submit(JobRequest(Action.IMAGINE, prompt="c", user_id="u2"))
    finally:
        await engine.stop()


async def test_front_end_patches_never_overwrite_newer_state(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat", origin=Origin.DISCORD))
        stale = Job.from_json(job.to_json())  # a front end's old copy
        done = await wait_done(engine, job.id)
        await engine.attach_message(stale.id, "123", "456")
        stored = await engine.store.get(job.id)
        assert stored is not None
        assert stored.status is JobStatus.SUCCEEDED and stored.images == done.images
        assert (stored.channel_id, stored.message_id) == ("123", "456")

        assert [j.id for j in await engine.undelivered(Origin.DISCORD)] == [job.id]
        assert await engine.undelivered(Origin.CLI) == []
        await engine.mark_delivered(job.id)
        assert await engine.undelivered(Origin.DISCORD) == []
    finally:
        await engine.stop()


async def test_daily_quota_and_usage_figures(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider, max_jobs_per_user_per_day=2)
    await engine.start()
    try:
        for prompt in ("a", "b"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt=prompt, user_id="u1"))
        with pytest.raises(RequestError, match="your 2 jobs for the last 24 hours"):
            await engine.submit(JobRequest(Action.IMAGINE, prompt="c", user_id="u1"))
        await engine.submit(JobRequest(Action.IMAGINE, prompt="d", user_id="u2"))
        rows = {(r.user_id, r.provider): r.jobs for r in await engine.usage(1)}
    finally:
        await engine.stop()
    assert rows == {("u1", provider.name): 2, ("u2", provider.name): 1}


# --------------------------------------------------------------------------- dispatcher


def limited_engine(tmp_path: Path, provider: ScriptedProvider, limit: int, **engine: Any) -> Engine:
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "engine": engine,
            "providers": [{"name": provider.name, "kind": "sandbox", "max_concurrent": limit}],
        }
    )
    return Engine(config, providers={provider.name: provider})


class BusyProvider(ScriptedProvider):
    """Turns the first `refusals` submissions away as busy (429 / queue full)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals
        self.attempts = 0
        self.in_flight_peak = 0

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self.attempts += 1
        if self.refusals:
            self.refusals -= 1
            raise RateLimited("queue full", provider=self.name, retry_after=0.2)
        return await super().submit(request)


async def test_jobs_wait_in_order_for_a_free_slot(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 3
    engine = limited_engine(tmp_path, provider, 2)
    peak = 0

    original = provider.fetch

    async def watching(ids: Sequence[str]) -> dict[str, TaskSnapshot]:
        nonlocal peak
        peak = max(peak, engine.runner.count_for(provider.name))
        return await original(ids)

    provider.fetch = watching  # type: ignore[method-assign]
    await engine.start()
    try:
        jobs = [
            await engine.submit(JobRequest(Action.IMAGINE, prompt=f"cat {n}")) for n in range(5)
        ]
        assert [j.status for j in jobs[2:]] == [JobStatus.WAITING] * 3
        assert [j.queue_position for j in jobs[2:]] == [1, 2, 3]
        done = [await wait_done(engine, j.id, timeout=10) for j in jobs]
    finally:
        await engine.stop()
    assert all(j.status is JobStatus.SUCCEEDED for j in done)
    assert peak <= 2
    # Sent in the order asked.
    assert [r.prompt for r in provider.submitted] == [f"cat {n}" for n in range(5)]


async def test_a_busy_provider_means_waiting_not_failing(tmp_path: Path) -> None:
    provider = BusyProvider(refusals=2)
    engine = limited_engine(tmp_path, provider, 0)
    kinds: list[str] = []
    engine.subscribe(lambda u: kinds.append(u.kind))
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        assert job.status is JobStatus.WAITING and "busy" in job.provider_status
        done = await wait_done(engine, job.id, timeout=10)
    finally:
        await engine.stop()
    assert done.status is JobStatus.SUCCEEDED
    assert provider.attempts == 3 and len(provider.submitted) == 1
    assert kinds.count(EventKind.WAITING) == 2


async def test_queued_jobs_survive_a_restart_and_cancel_costs_nothing(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = limited_engine(tmp_path, provider, 1)
    await engine.start()
    first = await engine.submit(JobRequest(Action.IMAGINE, prompt="first"))
    second = await engine.submit(JobRequest(Action.IMAGINE, prompt="second"))
    third = await engine.submit(JobRequest(Action.IMAGINE, prompt="third"))
    cancelled = await engine.cancel(third.id)
    assert cancelled.status is JobStatus.CANCELLED and "nothing was charged" in (
        cancelled.failure or ""
    )
    await engine.stop()
    assert [r.prompt for r in provider.submitted] == ["first"]

    provider = ScriptedProvider()
    engine = limited_engine(tmp_path, provider, 1)
    await engine.start()
    try:
        assert (await wait_done(engine, first.id)).status is JobStatus.SUCCEEDED
        assert (await wait_done(engine, second.id)).status is JobStatus.SUCCEEDED
    finally:
        await engine.stop()
    assert [r.prompt for r in provider.submitted] == ["second"]  # sent once, after restart


async def test_a_job_that_waits_past_its_deadline_fails_unsent(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = limited_engine(tmp_path, provider, 1, job_deadline_minutes=0.02)
    await engine.start()
    try:
        await engine.submit(JobRequest(Action.IMAGINE, prompt="hog"))
        waiting = await engine.submit(JobRequest(Action.IMAGINE, prompt="waits"))
        done = await wait_done(engine, waiting.id, timeout=10)
    finally:
        await engine.stop()
    assert done.status is JobStatus.FAILED and "never sent" in (done.failure or "")
    assert [r.prompt for r in provider.submitted] == ["hog"]


# --------------------------------------------------------------------------- what fronts ask


async def test_get_hands_out_a_copy_not_the_engines_job(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 10**9
    engine = limited_engine(tmp_path, provider, 1)
    await engine.start()
    try:
        running = await engine.submit(JobRequest(Action.IMAGINE, prompt="runs"))
        waiting = await engine.submit(JobRequest(Action.IMAGINE, prompt="waits"))
        for job_id in (running.id, waiting.id):  # one in the runner, one in the dispatcher
            mine = await engine.get(job_id)
            assert mine is not None
            mine.status, mine.prompt, mine.channel_id = JobStatus.FAILED, "changed", "999"
            mine.followups.append(FollowUp(Action.UPSCALE, 1))
            again = await engine.get(job_id)
            assert again is not None and again is not mine
            assert again.status is not JobStatus.FAILED and again.prompt in ("runs", "waits")
            assert again.channel_id is None and again.followups == []
        # What submit returned is a copy too.
        running.prompt = "changed"
        assert (await engine.get(running.id)).prompt == "runs"  # type: ignore[union-attr]
    finally:
        await engine.stop()


async def test_a_message_attached_while_waiting_is_kept_once_sent(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 3
    engine = limited_engine(tmp_path, provider, 1)
    await engine.start()
    try:
        await engine.submit(JobRequest(Action.IMAGINE, prompt="first"))
        waiting = await engine.submit(JobRequest(Action.IMAGINE, prompt="second"))
        assert waiting.status is JobStatus.WAITING
        await engine.attach_message(waiting.id, "123", "456")
        done = await wait_done(engine, waiting.id, timeout=10)
        stored = await engine.store.get(waiting.id)
    finally:
        await engine.stop()
    # The dispatcher's own job got the note, so its later whole saves keep it.
    assert done.status is JobStatus.SUCCEEDED
    assert stored is not None and (stored.channel_id, stored.message_id) == ("123", "456")


async def test_offers_refuses_a_followup_the_jobs_provider_does_not_serve(tmp_path: Path) -> None:
    provider = ScriptedProvider()  # serves imagine and upscale only
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        parent = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        done = await wait_done(engine, parent.id)
        assert engine.offers(done, Action.UPSCALE, 2) == Support(How.NATIVE)
        assert engine.offers(done, Action.UPSCALE, 7) is None  # not offered by this job
        # A stored follow-up the provider does not serve (forged, or from another
        # provider's answer) is refused, by offers and by submit alike.
        foreign = done.copy()
        foreign.followups.append(FollowUp(Action.VARIATION, 1))
        assert engine.offers(foreign, Action.VARIATION, 1) is None
        await engine.store.save(foreign)
        with pytest.raises(RequestError, match="does not offer"):
            await engine.submit(JobRequest(Action.VARIATION, parent_id=done.id, index=1))
        gone = done.copy()
        gone.provider = "no-such-provider"
        assert engine.offers(gone, Action.UPSCALE, 2) is None
        assert not engine.has_provider("no-such-provider") and engine.has_provider(provider.name)
        assert engine.providers_for(Action.UPSCALE) == [provider.name]
        assert engine.providers_for(Action.BLEND) == []
        assert engine.support(provider.name, Action.BLEND) is None
    finally:
        await engine.stop()
    assert [r.action for r in provider.submitted] == [Action.IMAGINE]


class SlowCheckProvider(ScriptedProvider):
    async def check(self) -> CheckResult:
        await asyncio.sleep(5)
        return await super().check()


async def test_check_providers_reports_each_provider_and_a_silent_one(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, SlowCheckProvider())
    try:
        results = [c async for c in engine.check_providers(timeout=0.1)]
    finally:
        await engine.stop()
    assert [(c.name, c.kind) for c in results] == [("scripted", "scripted")]
    assert results[0].result.status is CheckStatus.UNREACHABLE
    assert "no answer within" in results[0].result.detail


async def test_preview_is_bounded_in_bytes_and_time_on_the_wire(tmp_path: Path) -> None:
    """Engine.preview goes through the job's provider (a real mj-proxy adapter here, over
    HTTP); a preview too large or too slow is None, never an error."""
    small = png("green")

    async def serve(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "slow":
            await asyncio.sleep(3)
        body = b"\x89PNG" + b"x" * (256 * 1024) if name == "big" else small
        return web.Response(body=body, content_type="image/png")

    app = web.Application()
    app.router.add_get("/preview/{name}", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "providers": [
                {
                    "name": "mj",
                    "kind": "mj-proxy",
                    "base_url": "http://127.0.0.1:1",
                    "api_key": "k",
                    # The preview host is another loopback origin: trusted by name.
                    "image_origins": [f"http://127.0.0.1:{port}"],
                }
            ],
        }
    )
    engine = Engine(config)
    engine.preview_max_bytes, engine.preview_timeout = 64 * 1024, 0.5
    job = Job(id="abcdefghjk", action=Action.IMAGINE, provider="mj")
    try:
        job.preview_url = f"http://127.0.0.1:{port}/preview/small"
        assert await engine.preview(job) == small
        job.preview_url = f"http://127.0.0.1:{port}/preview/big"
        assert await engine.preview(job) is None
        job.preview_url = f"http://127.0.0.1:{port}/preview/slow"
        started = time.monotonic()
        assert await engine.preview(job) is None
        assert time.monotonic() - started < 2.5
        job.preview_url = None
        assert await engine.preview(job) is None
        job.preview_url, job.provider = f"http://127.0.0.1:{port}/preview/small", "gone"
        assert await engine.preview(job) is None
    finally:
        await engine.stop()
        await runner.cleanup()
