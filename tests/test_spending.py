"""Spending through a real Engine: atomic budgets, max_concurrent under bursts, the double
press, refunds (idempotent, audited), costs, per-role limits, cancel while sending, and
`atelier usage --csv`. The provider is a scripted in-process double, as in test_engine."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, parse_config
from bot.engine.audit import AuditKind
from bot.engine.models import JobRequest, JobStatus, Origin
from bot.engine.service import Engine, RequestError
from bot.engine.settings import RoleLimits
from bot.engine.spending import month_start, next_month
from bot.providers.base import (
    How,
    PromptRejected,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.vocab import Action
from tests.cli_helpers import run_cli, write_config
from tests.test_engine import ScriptedProvider, wait_done

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores


def spending_engine(
    tmp_path: Path,
    provider: ScriptedProvider,
    *,
    spending: dict[str, Any] | None = None,
    engine: dict[str, Any] | None = None,
    **entry: Any,
) -> Engine:
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
            "engine": engine or {},
            "spending": spending or {},
            "providers": [{"name": provider.name, "kind": "sandbox", **entry}],
        }
    )
    return Engine(config, providers={provider.name: provider})


def ask(user: str = "u1", **more: Any) -> JobRequest:
    values: dict[str, Any] = {"prompt": "a red boat", "user_id": user, "guild_id": "g1"}
    values.update(more)
    return JobRequest(Action.IMAGINE, origin=Origin.DISCORD, **values)


async def ledger_sum(engine: Engine, job_id: str) -> float:
    async with engine.store.db.execute(
        "SELECT COALESCE(SUM(credits), 0) FROM ledger WHERE job_id = ?", (job_id,)
    ) as cursor:
        row = await cursor.fetchone()
    return float(row[0]) if row else 0.0


async def ledger_rows(engine: Engine, job_id: str) -> list[tuple[str, float]]:
    async with engine.store.db.execute(
        "SELECT kind, credits FROM ledger WHERE job_id = ? ORDER BY id", (job_id,)
    ) as cursor:
        return [(str(r[0]), float(r[1])) for r in await cursor.fetchall()]


async def eventually(check: Any, timeout: float = 5.0) -> None:
    async def loop() -> None:
        while not await check():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), timeout)


# --------------------------------------------------------------------------- budgets


async def test_twenty_at_once_with_a_limit_of_two_send_exactly_two(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    async with spending_engine(tmp_path, provider, spending={"daily_credits": 2}) as engine:
        outcomes = await asyncio.gather(
            *(engine.submit(ask()) for _ in range(20)), return_exceptions=True
        )
        jobs = [o for o in outcomes if not isinstance(o, BaseException)]
        refusals = [o for o in outcomes if isinstance(o, RequestError)]
        assert len(jobs) == 2 and len(refusals) == 18
        assert all(r.reason == "budget" for r in refusals)
        assert "left today" in str(refusals[0])
        assert len(provider.submitted) == 2
        for job in jobs:
            assert await ledger_rows(engine, job.id) == [("charge", 1.0)]


async def test_max_active_per_user_counts_waiting_jobs_atomically(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 1000
    async with spending_engine(
        tmp_path, provider, engine={"max_active_per_user": 3}, max_concurrent=1
    ) as engine:
        outcomes = await asyncio.gather(
            *(engine.submit(ask()) for _ in range(10)), return_exceptions=True
        )
        jobs = [o for o in outcomes if not isinstance(o, BaseException)]
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        # Exactly three admitted: which three is up to the store (SQLite serializes the
        # submits in order, PostgreSQL's row locks let any three in first).
        assert len(jobs) == 3  # one sent, two waiting in Atelier's queue: all active
        assert sorted(j.status.value for j in jobs) == ["submitted", "waiting", "waiting"]
        assert len(refused) == 7
        assert all(isinstance(o, RequestError) and o.reason == "active" for o in refused)


async def test_costs_from_config_apply_and_select_costs_nothing(tmp_path: Path) -> None:
    class Selecting(ScriptedProvider):
        def supports(self, action: Action) -> Support | None:
            if action is Action.UPSCALE:
                return Support(How.SELECT)
            return super().supports(action)

        def select(self, parent_task_id: str, parent_extra: Any, index: int) -> TaskSnapshot:
            return TaskSnapshot(parent_task_id, TaskState.SUCCEEDED)

    provider = Selecting()
    async with spending_engine(
        tmp_path, provider, spending={"daily_credits": 3}, costs={"imagine": 3}
    ) as engine:
        grid = await engine.submit(ask())
        assert await ledger_rows(engine, grid.id) == [("charge", 3.0)]
        await wait_done(engine, grid.id)
        # The budget is spent, yet picking U2 from the grid costs 0 and is never charged.
        picked = await engine.submit(
            JobRequest(Action.UPSCALE, parent_id=grid.id, index=2, user_id="u1", guild_id="g1")
        )
        assert picked.status is JobStatus.SUCCEEDED
        assert await ledger_rows(engine, picked.id) == []
        with pytest.raises(RequestError, match="costs 3 credits"):
            await engine.submit(ask())


def test_a_cost_for_an_unknown_action_names_the_key() -> None:
    with pytest.raises(ConfigError, match="'imagin' is not an action"):
        parse_config({"providers": [{"name": "s", "kind": "sandbox", "costs": {"imagin": 2}}]})


def test_a_paid_provider_is_never_silently_unlimited() -> None:
    paid = {"name": "mj", "kind": "mj-proxy", "base_url": "http://127.0.0.1:1"}
    assert parse_config({"providers": [paid]}).spending.daily_credits == 50
    assert parse_config({"providers": [paid]}).spending.monthly_credits == 500
    explicit = parse_config({"providers": [paid], "spending": {"daily_credits": 0}})
    assert explicit.spending.daily_credits == 0  # "no limit", said on purpose
    assert parse_config({}).spending.daily_credits == 0  # the free offline sandbox


async def test_per_role_limits_most_generous_role_within_the_operators(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    async with spending_engine(tmp_path, provider, spending={"daily_credits": 4}) as engine:
        settings = await engine.settings.get("g1")
        assert settings is not None
        settings.role_limits = {
            "small": RoleLimits(daily_credits=1),
            "big": RoleLimits(daily_credits=3),
            "huge": RoleLimits(daily_credits=100),
        }
        await engine.settings.save(settings, by="owner")
        await engine.submit(ask("a", role_ids=["small"]))
        with pytest.raises(RequestError, match="of your 1 left"):
            await engine.submit(ask("a", role_ids=["small"]))
        for _ in range(3):  # small + big: the more generous one, 3
            await engine.submit(ask("b", role_ids=["small", "big"]))
        with pytest.raises(RequestError):
            await engine.submit(ask("b", role_ids=["small", "big"]))
        for _ in range(4):  # 100 is capped by the operator's 4
            await engine.submit(ask("c", role_ids=["huge"]))
        with pytest.raises(RequestError, match="of your 4 left"):
            await engine.submit(ask("c", role_ids=["huge"]))
        balance = await engine.spending.balance(ask("c", role_ids=["huge"]))
        assert balance.spent_today == 4 and balance.left_today == 0
        assert balance.day_resets_at > engine.clock() >= month_start(engine.clock())
        assert balance.month_resets_at == next_month(engine.clock())


# --------------------------------------------------------------------------- bursts


class SlowSubmit(ScriptedProvider):
    """Each submit takes a while; records the most tasks in flight at the provider."""

    def __init__(self, delay: float = 0.1) -> None:
        super().__init__()
        self.delay = delay
        self.open: set[str] = set()
        self.sending = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self.sending += 1
        self.peak = max(self.peak, self.sending + len(self.open))
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(self.delay)
            result = await super().submit(request)
        finally:
            self.sending -= 1
        self.open.add(result.task_id)
        return result

    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        snapshots = await super().fetch(tasks)
        for task_id, snapshot in snapshots.items():
            if snapshot.state.finished:
                self.open.discard(task_id)
        return snapshots


async def test_max_concurrent_holds_for_requests_a_moment_apart(tmp_path: Path) -> None:
    provider = SlowSubmit()
    async with spending_engine(tmp_path, provider, max_concurrent=1) as engine:
        jobs = []
        for n in range(5):
            jobs.append(asyncio.create_task(engine.submit(ask(f"u{n}"))))
            await asyncio.sleep(0.01)
        ids = [(await job).id for job in jobs]
        for job_id in ids:
            assert (await wait_done(engine, job_id, timeout=15)).status is JobStatus.SUCCEEDED
        assert provider.peak == 1
        assert len(provider.submitted) == 5


async def test_a_double_press_makes_one_job(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    async with spending_engine(tmp_path, provider) as engine:
        grid = await engine.submit(ask())
        await wait_done(engine, grid.id)
        press = JobRequest(Action.UPSCALE, parent_id=grid.id, index=1, user_id="u1", guild_id="g1")
        first, second = await asyncio.gather(engine.submit(press), engine.submit(press))
        assert first.id == second.id
        assert len(provider.submitted) == 2  # the grid and one upscale
        assert await ledger_rows(engine, first.id) == [("charge", 1.0)]
        # Another index is another press; so is the same press by someone else.
        other = await engine.submit(
            JobRequest(Action.UPSCALE, parent_id=grid.id, index=2, user_id="u1", guild_id="g1")
        )
        theirs = await engine.submit(
            JobRequest(Action.UPSCALE, parent_id=grid.id, index=1, user_id="u2", guild_id="g1")
        )
        assert len({first.id, other.id, theirs.id}) == 3


# --------------------------------------------------------------------------- refunds


class FailingProvider(ScriptedProvider):
    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        return {
            t.task_id: TaskSnapshot(t.task_id, TaskState.FAILED, failure="out of GPU")
            for t in tasks
        }


async def test_a_provider_failure_is_refunded_once_and_audited(tmp_path: Path) -> None:
    provider = FailingProvider()
    async with spending_engine(tmp_path, provider, spending={"daily_credits": 1}) as engine:
        job = await engine.submit(ask())
        done = await wait_done(engine, job.id)
        assert done.status is JobStatus.FAILED

        async def refunded() -> bool:
            return await ledger_sum(engine, job.id) == 0

        await eventually(refunded)
        assert await ledger_rows(engine, job.id) == [("charge", 1.0), ("refund", -1.0)]
        assert await engine.spending.refund(done, "again") == 0  # idempotent
        assert await ledger_rows(engine, job.id) == [("charge", 1.0), ("refund", -1.0)]
        kinds = [(e.kind, e.credits) for e in await engine.audit.entries(0) if e.job_id == job.id]
        assert (AuditKind.JOB, 1.0) in kinds and (AuditKind.REFUND, 1.0) in kinds
        assert kinds.count((AuditKind.REFUND, 1.0)) == 1
        await engine.submit(ask())  # the credit came back


async def test_a_refusal_at_submit_is_refunded(tmp_path: Path) -> None:
    class Refusing(ScriptedProvider):
        async def submit(self, request: SubmitRequest) -> SubmitResult:
            raise PromptRejected("banned prompt", provider=self.name)

    async with spending_engine(tmp_path, Refusing()) as engine:
        job = await engine.submit(ask())
        assert job.status is JobStatus.FAILED
        assert await ledger_rows(engine, job.id) == [("charge", 1.0), ("refund", -1.0)]


async def test_a_never_sent_cancelled_job_is_refunded(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    provider.polls_to_finish = 1000
    async with spending_engine(tmp_path, provider, max_concurrent=1) as engine:
        running = await engine.submit(ask())
        waiting = await engine.submit(ask())
        assert waiting.status is JobStatus.WAITING
        cancelled = await engine.cancel(waiting.id)
        assert cancelled.status is JobStatus.CANCELLED
        assert await ledger_sum(engine, waiting.id) == 0
        assert await ledger_rows(engine, waiting.id) == [("charge", 1.0), ("refund", -1.0)]
        # A job cancelled at the provider while it ran may have been paid for: no refund.
        await engine.cancel(running.id)
        assert await ledger_rows(engine, running.id) == [("charge", 1.0)]
        lines = await engine.spending.ledger(1)
        assert [(x.charged, x.refunded, x.jobs) for x in lines] == [(2.0, 1.0, 2)]


async def test_cancel_while_sending_ends_cancelled_refunded_and_cancelled_there(
    tmp_path: Path,
) -> None:
    provider = SlowSubmit(delay=0)
    provider.gate = asyncio.Event()
    async with spending_engine(tmp_path, provider) as engine:
        sending = asyncio.create_task(engine.submit(ask()))
        await asyncio.sleep(0.2)
        [job] = await engine.recent(1)
        assert job.status is JobStatus.SUBMITTING
        answer = await engine.cancel(job.id)
        assert answer.status is JobStatus.SUBMITTING  # never "cancelled" while it may run
        provider.gate.set()
        await sending
        done = await wait_done(engine, job.id)
        assert done.status is JobStatus.CANCELLED
        assert provider.cancelled == [done.task_id] and done.task_id
        assert await ledger_rows(engine, job.id) == [("charge", 1.0), ("refund", -1.0)]
        await asyncio.sleep(0.2)
        assert engine.runner.get(job.id) is None  # not followed
        assert not provider.fetch_batches


# --------------------------------------------------------------------------- the CLI


async def test_atelier_usage_csv_prints_the_ledger(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [
            {
                "name": "sandbox",
                "kind": "sandbox",
                "duration": 0.2,
                "state_dir": str(tmp_path / "sb"),
            }
        ],
    )
    assert (await run_cli("imagine", "a small boat", cwd=tmp_path)).code == 0
    ran = await run_cli("usage", "--csv", cwd=tmp_path)
    assert ran.code == 0, ran.err
    rows = list(csv.reader(io.StringIO(ran.out)))
    assert rows[0] == ["user_id", "provider", "credits_charged", "credits_refunded", "net", "jobs"]
    assert rows[1] == ["", "sandbox", "1", "0", "1", "1"]
    plain = await run_cli("usage", cwd=tmp_path)
    assert "charged" in plain.out and "(terminal)" in plain.out


async def test_a_job_waiting_in_another_process_cancelled_here_is_never_sent(
    tmp_path: Path, postgres_url: str
) -> None:
    """Two processes on one PostgreSQL store. A holds a job waiting for its one slot;
    Cancel is pressed on B (which got the interaction). B ends it in one conditional
    write and refunds it; when A's slot frees, A's send finds it no longer waiting and
    drops it: the provider never gets it, the owner is never charged for it."""

    def process(provider: ScriptedProvider, name: str) -> Engine:
        storage = {"url": postgres_url, "path": str(tmp_path / name / "a.db")}
        config = parse_config(
            {
                "storage": {**storage, "media_dir": str(tmp_path / "media")},
                "providers": [{"name": provider.name, "kind": "sandbox", "max_concurrent": 1}],
            }
        )
        engine = Engine(config, providers={provider.name: provider})
        assert engine.leasing.enable()  # as `atelier run` does on PostgreSQL
        return engine

    at_a, at_b = ScriptedProvider(), ScriptedProvider()
    at_a.polls_to_finish = 1000
    async with process(at_a, "a") as a, process(at_b, "b") as b:
        first = await a.submit(ask(prompt="the one sent"))
        waiting = await a.submit(ask(prompt="the one waiting"))
        assert waiting.status is JobStatus.WAITING
        cancelled = await b.cancel(waiting.id)
        assert cancelled.status is JobStatus.CANCELLED and "nothing was charged" in str(
            cancelled.failure
        )
        assert await ledger_rows(b, waiting.id) == [("charge", 1.0), ("refund", -1.0)]
        await a.cancel(first.id)  # A's slot frees: the waiting job comes up to be sent
        await asyncio.sleep(1.0)
        assert [r.prompt for r in at_a.submitted] == ["the one sent"], at_a.submitted
        assert at_b.submitted == []
        stored = await a.get(waiting.id)
        assert stored is not None and stored.status is JobStatus.CANCELLED
