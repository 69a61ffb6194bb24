"""Spending: what each job costs, who may spend what, and the ledger that adds it up.

Every charge and refund is one row of the store's `ledger` table. Checking a user's
budget, the double-press check and writing the charge (with the job's own row) are ONE
transaction, so N requests arriving at once can never all pass a limit of 1: the
second one sees the first one's row. Budgets run per UTC day and per UTC month, across
every server, in credits (an action's cost at its provider, 1 unless configured).

Refunds follow one rule: credits come back when the provider surely did no paid work
(it refused the job, it reported the job failed, or the job was never sent). When that
is unknown (a job caught mid-send by a restart, a task the provider forgot, a deadline)
nothing is refunded: the provider may have charged the owner for it.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import csv
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.config import Config
from bot.engine.audit import AuditKind, AuditLog
from bot.engine.intake import RequestError
from bot.engine.models import EventKind, How, Job, JobRequest, JobStatus, JobUpdate
from bot.engine.settings import ServerSettings, SettingsStore
from bot.engine.store import Connection, Store, write_job
from bot.i18n import Text
from bot.providers.base import Provider
from bot.providers.errors import BadResponse, ProviderError, ProviderUnavailable
from bot.vocab import Action

log = logging.getLogger(__name__)

CHARGE, REFUND = "charge", "refund"
DEFAULT_COST = 1.0

_ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
_INSERT_ROW = (
    "INSERT INTO ledger (at, kind, user_id, guild_id, job_id, provider, action, credits) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# Failures the runner itself decides, where the provider may well have done paid work.
_FINISHED_BUT = "The job finished but"


class DuplicatePress(Exception):  # a signal to the engine, not an error
    """The same press on the same job came again within seconds: it is the job below."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


@dataclass(frozen=True)
class Budget:
    """What one member may spend; None means no limit."""

    daily: float | None
    monthly: float | None
    max_active: int | None


@dataclass(frozen=True)
class Balance:
    """A member's spend so far and what is left (for /info)."""

    budget: Budget
    spent_today: float
    spent_month: float
    day_resets_at: float
    month_resets_at: float

    @property
    def left_today(self) -> float | None:
        return _left(self.budget.daily, self.spent_today)

    @property
    def left_month(self) -> float | None:
        return _left(self.budget.monthly, self.spent_month)


@dataclass(frozen=True)
class LedgerLine:
    """One user's spend at one provider over a window (for /usage, `atelier usage`)."""

    user_id: str  # "" for jobs from the terminal
    provider: str
    charged: float
    refunded: float
    jobs: int  # jobs charged

    @property
    def net(self) -> float:
        return self.charged - self.refunded


def _left(limit: float | None, spent: float) -> float | None:
    return None if limit is None else max(0.0, limit - spent)


# ---- the calendar (UTC) ----


def day_start(now: float) -> float:
    return now - now % 86400


def month_start(now: float) -> float:
    year, month = time.gmtime(now)[:2]
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


def next_month(now: float) -> float:
    year, month = time.gmtime(now)[:2]
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


# ---- budgets ----


def _within(operator: float, role: float | None) -> float | None:
    """A role's number capped by the operator's (0 there = no limit); None = none."""
    bound = operator if operator > 0 else None
    if role is None:
        return bound
    return role if bound is None else min(role, bound)


def _most_generous(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def member_budget(
    config: Config, settings: ServerSettings | None, role_ids: Sequence[str]
) -> Budget:
    """The operator's [spending] and [engine] numbers, narrowed by the member's roles
    where the server set limits for them: the most generous of those roles applies."""
    spending, at_once = config.spending, config.engine.max_active_per_user
    limits = settings.role_limits if settings is not None else {}
    mine = [limits[role] for role in role_ids if role in limits]
    if not mine:
        return Budget(
            _within(spending.daily_credits, None),
            _within(spending.monthly_credits, None),
            at_once or None,
        )
    active = _most_generous([_within(at_once, r.max_active) for r in mine])
    return Budget(
        _most_generous([_within(spending.daily_credits, r.daily_credits) for r in mine]),
        _most_generous([_within(spending.monthly_credits, r.monthly_credits) for r in mine]),
        None if active is None else int(active),
    )


class Spending:
    """Costs, budgets, the atomic check-and-charge, refunds and the ledger's figures."""

    def __init__(
        self,
        config: Config,
        store: Store,
        audit: AuditLog,
        settings: SettingsStore,
        clock: Callable[[], float],
    ) -> None:
        self.config = config
        self.store = store
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self._costs = {p.name: dict(p.costs) for p in config.providers}
        self._tasks: set[asyncio.Task[None]] = set()

    def cost(self, provider: str, action: Action, how: How) -> float:
        """Credits a job costs: an image picked from a grid Atelier already has costs 0."""
        if how is How.SELECT:
            return 0.0
        return self._costs.get(provider, {}).get(action.value, DEFAULT_COST)

    async def budget(self, request: JobRequest) -> Budget:
        settings = await self.settings.get(request.guild_id)
        return member_budget(self.config, settings, request.role_ids)

    # ---- the one atomic step ----

    async def admit(self, job: Job, request: JobRequest, cost: float) -> None:
        """Check the user's limits, store the job and charge it, as one transaction.

        Raises RequestError (reason "budget" or "active") when a limit is reached, and
        DuplicatePress when the same press on the same job came within seconds."""
        budget = await self.budget(request) if job.user_id else None
        now = self.clock()
        async with self.store.transaction() as db:
            if job.user_id and job.parent_id:
                earlier = await self._duplicate(db, job, now)
                if earlier is not None:
                    raise DuplicatePress(earlier)
            if budget is not None and job.user_id:
                await self._check(db, job.user_id, budget, cost, now)
            await write_job(db, job)
            if cost > 0:
                await db.execute(_INSERT_ROW, _ledger_row(now, CHARGE, job, cost))
        try:  # the job is stored and charged: a failed audit write must not strand it
            await self.audit.record(
                AuditKind.JOB, guild_id=job.guild_id, channel_id=job.channel_id,
                user_id=job.user_id, job_id=job.id, provider=job.provider,
                action=job.action.value, credits=cost, outcome="accepted",
            )  # fmt: skip
        except Exception:
            log.exception("the audit entry of job %s could not be written", job.id)

    async def _duplicate(self, db: Connection, job: Job, now: float) -> str | None:
        since = now - self.config.spending.duplicate_seconds
        # The same press is the same follow-up of the same parent: index and variant are
        # read from the documents (few rows: one user's, one parent's, seconds old).
        async with db.execute(
            "SELECT id, data FROM jobs WHERE user_id = ? AND created_at >= ? AND parent_id = ? "
            "AND action = ? ORDER BY created_at",
            (job.user_id, since, job.parent_id, job.action.value),
        ) as cursor:
            rows = await cursor.fetchall()
        for earlier_id, data in rows:
            with contextlib.suppress(ValueError, AttributeError):
                earlier = json.loads(data)
                if earlier.get("index") == job.index and earlier.get("variant") == job.variant:
                    return str(earlier_id)
        return None

    async def _check(
        self, db: Connection, user_id: str, budget: Budget, cost: float, now: float
    ) -> None:
        if budget.max_active is not None:
            active = await _one(
                db,
                f"SELECT COUNT(*) FROM jobs WHERE user_id = ? "
                f"AND status IN ({','.join('?' * len(_ACTIVE))})",
                (user_id, *_ACTIVE),
            )
            if active >= budget.max_active:
                raise RequestError(
                    Text(
                        "You already have {active} jobs running (the limit here is {limit}); "
                        "wait for one to finish.",
                        active=int(active),
                        limit=budget.max_active,
                    ),
                    reason="active",
                )
        await self._check_daily_jobs(db, user_id, now)
        for limit, since, word in (
            (budget.daily, day_start(now), Text("today")),
            (budget.monthly, month_start(now), Text("this month")),
        ):
            if limit is None:
                continue
            spent = await _one(
                db, "SELECT COALESCE(SUM(credits), 0) FROM ledger WHERE user_id = ? AND at >= ?",
                (user_id, since),
            )  # fmt: skip
            if spent + cost > limit:
                raise RequestError(
                    Text(
                        "This costs {cost:g} credits and you have {left:g} of your {limit:g} "
                        "left {period}. /info shows when it resets.",
                        cost=cost,
                        left=max(0.0, limit - spent),
                        limit=limit,
                        period=word,
                    ),
                    reason="budget",
                )

    async def _check_daily_jobs(self, db: Connection, user_id: str, now: float) -> None:
        """[engine] max_jobs_per_user_per_day: jobs sent, or on their way, in 24 hours."""
        daily = self.config.engine.max_jobs_per_user_per_day
        if not daily:
            return
        used = await _one(
            db,
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ? AND "
            f"(task_id IS NOT NULL OR status IN ({','.join('?' * len(_ACTIVE))}))",
            (user_id, now - 86400, *_ACTIVE),
        )
        if used >= daily:
            raise RequestError(
                Text(
                    "You have used your {daily} jobs for the last 24 hours here; try again later.",
                    daily=daily,
                ),
                reason="budget",
            )

    # ---- refunds ----

    async def refund(self, job: Job, why: str) -> float:
        """Give back what the job was charged, once (a second call does nothing).
        Returns the credits given back."""
        now = self.clock()
        async with self.store.transaction() as db:
            refunded = await _one(
                db, "SELECT COUNT(*) FROM ledger WHERE job_id = ? AND kind = ?", (job.id, REFUND)
            )
            charged = await _one(
                db, "SELECT COALESCE(SUM(credits), 0) FROM ledger WHERE job_id = ? AND kind = ?",
                (job.id, CHARGE),
            )  # fmt: skip
            if refunded or charged <= 0:
                return 0.0
            await db.execute(_INSERT_ROW, _ledger_row(now, REFUND, job, -charged))
        await self.audit.record(
            AuditKind.REFUND, guild_id=job.guild_id, channel_id=job.channel_id,
            user_id=job.user_id, job_id=job.id, provider=job.provider,
            action=job.action.value, credits=charged, outcome="refunded", detail=why,
        )  # fmt: skip
        return charged

    def on_update(self, update: JobUpdate) -> None:
        """An event listener: a job the provider reported failed is refunded."""
        job = update.job
        known = job.provider in self._costs  # not a provider dropped from the config
        if update.kind is EventKind.FAILED and job.task_id and known and _provider_failed(job):
            task = asyncio.get_running_loop().create_task(
                self._quiet_refund(job, "the provider reported the job failed")
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _quiet_refund(self, job: Job, why: str) -> None:
        try:
            await self.refund(job, why)
        except Exception:  # the event path must not die; the refund can be redone
            log.exception("refunding job %s failed", job.id)

    async def drain(self) -> None:
        """Finish the refunds under way (before the store closes)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ---- figures ----

    async def balance(self, request: JobRequest) -> Balance:
        """A member's spend today and this month, and their budget (for /info)."""
        budget = await self.budget(request)
        now = self.clock()
        sums = []
        for since in (day_start(now), month_start(now)):
            async with self.store.db.execute(
                "SELECT COALESCE(SUM(credits), 0) FROM ledger WHERE user_id = ? AND at >= ?",
                (request.user_id, since),
            ) as cursor:
                row = await cursor.fetchone()
            sums.append(float(row[0]) if row else 0.0)
        return Balance(budget, sums[0], sums[1], day_start(now) + 86400, next_month(now))

    async def ledger(self, days: float = 1, guild_id: str | None = None) -> list[LedgerLine]:
        """Credits charged and refunded per user and provider over the last `days`."""
        where, args = "at >= ?", [self.clock() - days * 86400]
        if guild_id is not None:
            where += " AND guild_id = ?"
            args.append(guild_id)  # type: ignore[arg-type]
        async with self.store.db.execute(
            "SELECT COALESCE(user_id, ''), COALESCE(provider, ''), "
            "SUM(CASE WHEN kind = 'charge' THEN credits ELSE 0 END), "
            "-SUM(CASE WHEN kind = 'refund' THEN credits ELSE 0 END), "
            "COUNT(DISTINCT CASE WHEN kind = 'charge' THEN job_id END) "
            f"FROM ledger WHERE {where} GROUP BY user_id, provider ORDER BY 3 DESC",
            args,
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            LedgerLine(str(r[0]), str(r[1]), float(r[2] or 0), float(r[3] or 0), int(r[4]))
            for r in rows
        ]


def _provider_failed(job: Job) -> bool:
    """Whether the provider itself reported the job failed (so it did no paid work);
    not a task it forgot, a deadline, or results that could not be saved."""
    forgotten = job.not_found > 0
    expired = bool(job.deadline_at and (job.finished_at or 0) >= job.deadline_at)
    collected = (job.failure or "").startswith(_FINISHED_BUT)
    return not (forgotten or expired or collected)


def _ledger_row(now: float, kind: str, job: Job, credits: float) -> tuple[object, ...]:
    return (now, kind, job.user_id, job.guild_id, job.id, job.provider, job.action.value, credits)


async def _one(db: Connection, sql: str, args: Sequence[object]) -> float:
    async with db.execute(sql, args) as cursor:
        row = await cursor.fetchone()
    return float(row[0]) if row and row[0] is not None else 0.0


LEDGER_COLUMNS = ("user_id", "provider", "credits_charged", "credits_refunded", "net", "jobs")


def ledger_csv(lines: Sequence[LedgerLine]) -> str:
    """The ledger figures as CSV with a header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(LEDGER_COLUMNS)
    for line in lines:
        writer.writerow(
            (line.user_id, line.provider, f"{line.charged:g}", f"{line.refunded:g}",
             f"{line.net:g}", line.jobs)
        )  # fmt: skip
    return out.getvalue()


def refusal_refunds(err: ProviderError) -> bool:
    """Whether a submit that raised `err` surely left nothing to pay: the provider
    refused it. An unreachable or garbled answer may hide an accepted (paid) task."""
    return not isinstance(err, ProviderUnavailable | BadResponse)


async def cancel_sent(provider: Provider | None, task_id: str | None) -> str:
    """Cancel a task at its provider where it can; returns a note for the user when it
    could not (Atelier then only stops following it)."""
    if provider is None or not task_id:
        return ""
    try:
        await provider.cancel(task_id)
    except ProviderError as err:
        return f" ({err} Atelier stopped following it; the provider may still finish.)"
    return ""
