"""The lease keeper: keeps this process's job leases alive and takes over the jobs of
processes that died (their leases ran out).

Every `seconds / 3` it renews what it holds (so one or two missed turns, a slow
database or a long pause, lose nothing) and takes over up to `batch` jobs nobody live
follows, handing them to `adopt`, with the jobs another process handed to this one
(new jobs of a channel this process shows) and the finished Discord jobs a dead process
never showed. A job it finds it no longer holds (another process
took it over while this one stalled past the expiry) goes to `lost`, so that this
process stops following it. At a clean stop it gives its leases back, so that another
process takes the jobs over at once instead of after the expiry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.engine.loop import BackgroundLoop
from bot.engine.models import Job
from bot.engine.store import Store
from bot.engine.store.leases import DEFAULT_SECONDS, owner_id

log = logging.getLogger(__name__)

# A finished job's outcome that nobody showed is shown by a live process up to this long
# after (as a restart shows it: `Engine.undelivered`).
UNDELIVERED_WITHIN = 24 * 3600.0


class LeaseKeeper(BackgroundLoop):
    name = "atelier-leases"

    def __init__(
        self,
        store: Store,
        adopt: Callable[[Sequence[Job]], Awaitable[None]],
        lost: Callable[[Sequence[str]], None],
        *,
        seconds: float = DEFAULT_SECONDS,
        batch: int = 100,
        owner: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.adopt = adopt
        self.lost = lost
        self.seconds = seconds
        self.batch = batch
        self.owner = owner or owner_id()
        self.held: set[str] = set()
        # Given back, maybe still seen by a renewal under way: not handed-over jobs.
        self._let_go: set[str] = set()

    async def lease(self, job_ids: Sequence[str]) -> list[str]:
        """Lease jobs this process starts; the ids it holds."""
        # Counted as held before the write: a renewal that sees the new row meanwhile
        # must not take it for a job another process handed over.
        self.held.update(job_ids)
        got = await self.store.leases.lease(self.owner, job_ids, self.seconds)
        self.held.difference_update(set(job_ids) - set(got))
        return got

    async def place(self, job_id: str, channel_id: str | None) -> str:
        """Lease a new job here, or to the live process that shows its channel; the owner
        it went to ("" when another process already took it over, see `Leases.place`)."""
        self.held.add(job_id)
        to = await self.store.leases.place(self.owner, job_id, channel_id, self.seconds)
        if to != self.owner:
            self.held.discard(job_id)
        return to

    async def release(self, job_ids: Sequence[str]) -> None:
        """Give back finished jobs' leases."""
        self._let_go.update(job_ids)
        await self.store.leases.release(self.owner, job_ids)
        self.held.difference_update(job_ids)

    def start(self) -> None:
        self._start_loop()

    async def stop(self) -> None:
        await super().stop()
        try:
            await self.store.leases.release(self.owner)
        except Exception:  # they run out by themselves; the stop must go on
            log.exception("giving back the job leases of %s failed", self.owner)
        self.held.clear()

    def _seconds_to_next(self) -> float:
        return self.seconds / 3

    async def _turn(self) -> None:
        before = set(self.held)  # a job leased while renewing is not lost
        renewed = set(await self.store.leases.renew(self.owner, self.seconds))
        gone = sorted(before - renewed)
        gained = sorted(renewed - self.held - self._let_go)  # handed over by another process
        self._let_go &= renewed  # a released job no renewal returns is gone for good
        self.held = (self.held - set(gone)) | renewed
        if gone:
            log.warning("jobs %s were taken over by another process", ", ".join(gone))
            self.lost(gone)
        taken = [job for job_id in gained if (job := await self.store.get(job_id))]
        # A job stored a moment ago, not yet leased, belongs to the process storing it.
        taken += await self.store.leases.take_over(
            self.owner, self.seconds, self.batch, fresh=self.seconds
        )
        since = time.time() - UNDELIVERED_WITHIN
        taken += await self.store.leases.take_over_undelivered(
            self.owner, since, self.seconds, self.batch
        )
        if taken:
            self.held.update(job.id for job in taken)
            log.info("took over %d job(s) whose process stopped renewing them", len(taken))
            await self.adopt(taken)
