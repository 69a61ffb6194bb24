"""Cheaper polling, on the wire: the real engine against the fake midjourney-proxy asks
for many jobs in few list-by-condition calls, polls by what it knows, and lets working
callbacks make polls rare. (The schedule's arithmetic: tests/test_poll_schedule.py.)"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.config import parse_config
from bot.engine.events import EventBus
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.poll_schedule import CAP_FACTOR, SAFETY_FACTOR
from bot.engine.runner import POKE_GAP, Runner
from bot.engine.service import Engine
from bot.engine.store import Store
from bot.providers.base import Provider, ProviderUnavailable, TaskRef, TaskSnapshot
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_engine import ScriptedProvider

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

POLL = 0.2  # poll_interval of the provider under test
STEP = 0.4  # the fake's progress moves every STEP seconds
STEPS = (
    [("SUBMITTED", "0%")]
    + [("IN_PROGRESS", f"{p}%") for p in range(10, 100, 10)]
    + [("SUCCESS", "100%")]
)


def status_requests(fake: FakeMjProxy) -> int:
    return fake.count("/task/list-by-condition") + sum(
        1 for r in fake.requests if r.endpoint.endswith("/fetch")
    )


async def test_fifty_jobs_cost_a_twentieth_of_one_fetch_per_task(tmp_path: Path) -> None:
    jobs = 50
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = list(STEPS)
        fake.step_seconds = STEP
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [fake.provider_config(poll_interval=POLL)],
            }
        )
        async with Engine(config) as engine:

            async def send(n: int) -> Job:
                await asyncio.sleep(n * 0.02)  # they arrive over one second
                return await engine.submit(JobRequest(Action.IMAGINE, prompt=f"fox {n}"))

            sent = await asyncio.gather(*(send(n) for n in range(jobs)))
            started = time.monotonic()
            while True:
                done = [await engine.get(j.id) for j in sent]
                if all(j is not None and j.finished for j in done):
                    break
                assert time.monotonic() - started < 60, "the jobs did not finish"
                await asyncio.sleep(0.05)
        finished = [j for j in done if j is not None]
        assert all(j.status is JobStatus.SUCCEEDED for j in finished)
        # One fetch per task every POLL seconds, over each job's real life:
        per_task = sum(
            math.ceil(((j.finished_at or 0) - (j.submitted_at or j.created_at)) / POLL)
            for j in finished
        )
        asked = status_requests(fake)
        assert per_task >= jobs * 15  # the jobs did live long enough to compare
        assert asked * 20 <= per_task, f"{asked} status requests, per-task polling {per_task}"
        assert all(len(b["ids"]) <= 200 for b in fake.bodies("/task/list-by-condition"))
        # Cheaper, not blind: the end is seen within the stated bound (plus slack for a
        # loaded machine), and progress was still followed on the way.
        life = (len(STEPS) - 1) * STEP
        for job in finished:
            took = (job.finished_at or 0) - (job.submitted_at or job.created_at)
            assert took <= life + CAP_FACTOR * POLL + 3.0
        assert fake.violations == []


# --------------------------------------------------------------------------- the runner


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_collect(provider: Provider, job: Job, snapshot: TaskSnapshot) -> None:
    return None


Slow = tuple[Runner, ScriptedProvider, _Clock]


@pytest_asyncio.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Slow]:
    """A runner (not started: the tests turn it by hand) on a clock of their own."""
    clock = _Clock()
    provider = ScriptedProvider("slow")
    provider.poll_interval = 3.0
    provider.polls_to_finish = 1000
    store = Store(tmp_path / "a.db")
    await store.open()
    runner = Runner(store, {"slow": provider}, EventBus(), _no_collect, clock=clock)
    yield runner, provider, clock
    await runner.stop()
    await store.close()


async def test_a_confirmed_callback_turns_polls_into_a_safety_net(slow: Slow) -> None:
    runner, provider, clock = slow
    jobs = [Job(id=f"j{n}", action=Action.IMAGINE, provider="slow", task_id=f"t{n}") for n in "01"]
    for job in jobs:
        runner.track(job)
    # A plain poll that shows news: the next one comes at the normal pace.
    await runner._apply_batch(provider, [jobs[0]], await provider.fetch(_refs([jobs[0]])))
    assert runner._due["j0"] == clock.now + provider.poll_interval
    # A callback's poke, then a poll that shows news: callbacks work for this provider.
    assert runner.poke("j1")
    await runner._apply_batch(provider, [jobs[1]], await provider.fetch(_refs([jobs[1]])))
    clock.now += 1
    jobs[0].progress = 10.0  # so that the next snapshot (50 %) is news again
    await runner._apply_batch(provider, [jobs[0]], await provider.fetch(_refs([jobs[0]])))
    assert runner._due["j0"] == clock.now + SAFETY_FACTOR * provider.poll_interval


async def test_a_callback_that_brings_no_news_proves_nothing(slow: Slow) -> None:
    runner, provider, clock = slow
    job = Job(id="j0", action=Action.IMAGINE, provider="slow", task_id="t0")
    runner.track(job)
    await runner._apply_batch(provider, [job], await provider.fetch(_refs([job])))
    clock.now += 5
    assert runner.poke("j0")  # forged, or a duplicate: the poll finds nothing new
    await runner._apply_batch(provider, [job], await provider.fetch(_refs([job])))
    assert runner._due["j0"] < clock.now + CAP_FACTOR * provider.poll_interval + 0.001


async def test_jobs_due_before_the_next_round_ride_along(slow: Slow) -> None:
    runner, provider, clock = slow
    for n in range(3):
        runner.track(Job(id=f"job{n}", action=Action.IMAGINE, provider="slow", task_id=f"t{n}"))
    runner._due["job0"] = clock.now  # due now
    runner._due["job1"] = clock.now + 0.5  # due before the next round could be
    runner._due["job2"] = clock.now + 2.5  # due later: waits
    await runner._turn()
    await asyncio.sleep(0.05)
    assert provider.fetch_batches == [["t0", "t1"]]
    runner._due["job2"] = clock.now  # due, but the round was a moment ago
    await runner._turn()
    await asyncio.sleep(0.05)
    assert len(provider.fetch_batches) == 1
    clock.now += 1.0
    await runner._turn()
    await asyncio.sleep(0.05)
    assert provider.fetch_batches[-1] == ["t2"]


def _refs(jobs: list[Job]) -> list[TaskRef]:
    return [TaskRef(j.task_id or "", j.action, dict(j.provider_data)) for j in jobs]


async def test_a_job_cancelled_during_a_failed_poll_is_not_polled_again(slow: Slow) -> None:
    runner, provider, clock = slow
    job = Job(id="j0", action=Action.IMAGINE, provider="slow", task_id="t0")
    runner.track(job, delay=0)
    await runner._turn()  # its fetch goes out ...
    runner.forget("j0")  # ... and the job is cancelled meanwhile; then the fetch fails
    runner._back_off(provider, [job], ProviderUnavailable("down", provider="slow"))
    assert "j0" not in runner._due and job.poll_errors == 0
    clock.now += 60
    await runner._turn()  # the loop goes on without it
    assert runner._seconds_to_next() == 5.0


async def test_a_callback_during_a_fetch_brings_the_next_poll_forward(slow: Slow) -> None:
    """The fetch out may have been answered before the callback's news; with callbacks
    working its plan would otherwise be a safety-net poll half a minute away."""
    runner, provider, clock = slow
    runner._callbacks_seen["slow"] = clock.now  # callbacks work for this provider
    job = Job(id="j0", action=Action.IMAGINE, provider="slow", task_id="t0")
    runner.track(job)
    runner._busy.add("j0")  # its fetch is out
    assert runner.poke("j0")
    await runner._apply_batch(provider, [job], await provider.fetch(_refs([job])))
    assert runner._due["j0"] <= clock.now + POKE_GAP
    other = Job(id="j1", action=Action.IMAGINE, provider="slow", task_id="t1")
    runner.track(other)  # no callback while its fetch was out: the safety net
    await runner._apply_batch(provider, [other], await provider.fetch(_refs([other])))
    assert runner._due["j1"] == clock.now + SAFETY_FACTOR * provider.poll_interval
