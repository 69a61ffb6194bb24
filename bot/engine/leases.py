"""The lease keeper: keeps this process's job leases alive and takes over the jobs of
processes that died (their leases ran out).

Every `seconds / 3` it renews what it holds (so one or two missed turns, a slow
database or a long pause, lose nothing) and takes over up to `batch` jobs nobody live
follows, handing them to `adopt`. A job it finds it no longer holds (another process
took it over while this one stalled past the expiry) goes to `lost`, so that this
process stops following it. At a clean stop it gives its leases back, so that another
process takes the jobs over at once instead of after the expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from bot.engine.loop import BackgroundLoop
from bot.engine.models import Job
from bot.engine.store import Store
from bot.engine.store.leases import DEFAULT_SECONDS, owner_id

log = logging.getLogger(__name__)


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

    async def lease(self, job_ids: Sequence[str]) -> list[str]:
        """Lease jobs this process starts; the ids it holds."""
        got = await self.store.leases.lease(self.owner, job_ids, self.seconds)
        self.held.update(got)
        return got

    async def release(self, job_ids: Sequence[str]) -> None:
        """Give back finished jobs' leases."""
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
        self.held = (self.held - set(gone)) | renewed
        if gone:
            log.warning("jobs %s were taken over by another process", ", ".join(gone))
            self.lost(gone)
        taken = await self.store.leases.take_over(self.owner, self.seconds, self.batch)
        if taken:
            self.held.update(job.id for job in taken)
            log.info("took over %d job(s) whose process stopped renewing them", len(taken))
            await self.adopt(taken)
