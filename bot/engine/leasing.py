"""Several `atelier run` processes on one PostgreSQL store: each job owned by one of them.

Off (SQLite, or a process that runs the store alone) this does nothing and the engine
resumes every active job at start, as it always did. On (`enable()`, called by
`atelier run` on PostgreSQL) the processes share the store's owner lock, and:

- a new job is leased before anything is sent (`place`): to this process, or, when
  another live process already shows jobs in the job's channel, to that one, which then
  sends it (the job is stored WAITING: never sent, so sending it there is safe) and
  shows it. So one channel's Discord writes stay with one process and its pacer, and a
  busy channel never gets writes from two processes' pacers at once (no 429s);
- only the holder follows, collects and shows a job: the runner follows what the lease
  keeper took over or was handed (`_adopt`, the restart's own resume rule: a job caught
  mid-submit is failed, never sent twice), and the presenter shows held jobs only;
- the outcome is marked delivered in one transaction that checks the lease
  (`claim_delivery`), then the lease is given back; a clean stop gives back all leases,
  so that another process takes the jobs over at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bot.engine.dispatch import Dispatcher
from bot.engine.events import EventBus
from bot.engine.leases import LeaseKeeper
from bot.engine.models import EventKind, Job, JobUpdate, Origin
from bot.engine.runner import Runner
from bot.engine.store import Store

if TYPE_CHECKING:
    from bot.engine.service import Engine

log = logging.getLogger(__name__)


class Leasing:
    def __init__(
        self,
        store: Store,
        runner: Runner,
        dispatcher: Dispatcher,
        events: EventBus,
        *,
        seconds: float,
    ) -> None:
        self.store = store
        self.runner = runner
        self.dispatcher = dispatcher
        self.events = events
        self.seconds = seconds
        self.active = False
        self.keeper: LeaseKeeper | None = None
        self._adopted: set[str] = set()  # jobs this process did not start
        self._unsubscribe: Callable[[], None] | None = None
        self._releases: set[asyncio.Task[None]] = set()

    def enable(self) -> bool:
        """Share the store with other `atelier run` processes, where it can be shared
        (PostgreSQL). Before the engine starts. Returns whether it is on."""
        share = getattr(self.store, "share", None)
        if callable(share):
            share()
            self.active = True
        return self.active

    @property
    def owner(self) -> str:
        return self.keeper.owner if self.keeper else ""

    async def start(self) -> list[Job]:
        """Start the runner and, shared, the lease keeper, whose first turn takes over
        the jobs nobody follows (alone, the runner resumes every active job). Returns
        the jobs to queue for sending (never sent)."""
        waiting = await self.runner.start(resume=not self.active)
        if not self.active:
            return waiting
        # The shared owner lock first: no process that would run the store alone (and
        # resume every job) may start beside this one, and this one not beside it.
        await self.store._claim()
        self.keeper = LeaseKeeper(self.store, self._adopt, self._lost, seconds=self.seconds)
        self._unsubscribe = self.events.subscribe(self._on_update)
        log.info("sharing %s as %s (leases of %.0f s)", self.store.where, self.owner, self.seconds)
        await self.keeper._turn()  # before the first request: a restart's resume
        self.keeper.start()
        return waiting

    async def stop(self) -> None:
        """Give back every lease (another process takes the jobs over at once)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)
        if self.keeper is not None:
            await self.keeper.stop()

    def holds(self, job_id: str) -> bool:
        """Whether this process shows the job (always, when the store is not shared)."""
        return not self.active or (self.keeper is not None and job_id in self.keeper.held)

    def adopted(self, job_id: str) -> bool:
        """Whether this process took the job over (or was handed it): nobody here posted
        its message, so the presenter posts it."""
        return job_id in self._adopted

    @classmethod
    def of(cls, engine: Engine) -> Leasing:
        return cls(
            engine.store,
            engine.runner,
            engine.dispatcher,
            engine.events,
            seconds=engine.config.storage.lease_seconds,
        )

    async def place(self, job: Job, *, hand_over: bool = True) -> bool:
        """Lease a new stored job. True when it went to another live process (the one
        that shows its channel): that process sends and shows it, this one is done.
        (`hand_over` False: a job that needs no provider call stays here.)"""
        if self.keeper is None:
            return False
        if not hand_over:
            await self.keeper.lease([job.id])
            return False
        to = await self.keeper.place(job.id, job.channel_id)
        if to == self.owner:
            return False
        if not to:  # this process stalled for a whole lease: another one took it, unsent
            log.warning("job %s was taken over before it was sent; it is sent there", job.id)
            return True
        # Not saved: the job is the other process's from the placing on (stored WAITING).
        job.provider_status = "queued by the bot process that shows this channel"
        log.info("job %s handed to the process that shows channel %s", job.id, job.channel_id)
        return True

    async def mark_delivered(self, job_id: str, at: float) -> None:
        """Record that the job's outcome is shown. Shared: in one transaction that checks
        this process holds the job and nobody delivered it yet, then the lease goes."""
        if self.keeper is None:
            await self.store.patch(job_id, delivered_at=at)
            return
        if not await self.store.leases.claim_delivery(self.owner, job_id):
            log.warning("job %s: not marked delivered here (another process holds it)", job_id)
        await self.keeper.release([job_id])

    async def _adopt(self, jobs: Sequence[Job]) -> None:
        """Follow jobs taken over or handed over, as a restart resumes them."""
        self._adopted.update(job.id for job in jobs)
        active = [job for job in jobs if not job.finished]
        resumed = {job.id for job in active}  # those failed by the resume are told by it
        for job in await self.runner.follow(active):
            job.queue_position = self.dispatcher.enqueue(job)
        for job in jobs:
            if job.id not in resumed:  # finished, never shown: to be shown here
                self.events.publish(job, EventKind.reached(job.status))

    def _lost(self, job_ids: Sequence[str]) -> None:
        """Another process took these over while this one stalled: stop following them."""
        for job_id in job_ids:
            self.runner.forget(job_id)
            self.dispatcher.remove(job_id)

    def _on_update(self, update: JobUpdate) -> None:
        """A finished job nobody shows on Discord gives its lease back at once (a Discord
        one does when its outcome is delivered)."""
        job = update.job
        shown = job.origin is Origin.DISCORD and bool(job.channel_id)
        if job.finished and not shown and self.keeper is not None:
            task = asyncio.ensure_future(self.keeper.release([job.id]))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)
