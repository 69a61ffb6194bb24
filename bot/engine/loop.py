"""One background loop with the tasks it spawns: the shape the runner and the
dispatcher share (start, wake, spawn, stop).

Nothing that runs here fails silently: a turn that raises is logged and the loop goes
on; a spawned task that raises is logged when it ends (with the job ids it was given);
and state that must reach the store (a finished job) is written again, with backoff,
until the store takes it or the loop stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence

from bot.backoff import Backoff

log = logging.getLogger(__name__)

# Waits between writes of a job the store refused (disk full, database locked): soon at
# first, for a lock that is about to go; then every half minute, for a disk being freed.
SAVE_BACKOFF = Backoff(base=0.5, cap=30.0, jitter=0.2)


class BackgroundLoop(ABC):
    name = "atelier-loop"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()

    @abstractmethod
    async def _turn(self) -> None:
        """One look at the work; must not block for long."""

    def _seconds_to_next(self) -> float:
        """How long to sleep when nothing wakes the loop."""
        return 1.0

    def _start_loop(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=self.name)

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        # The flag, not only cancellation, ends the loop: on Python 3.11 a cancel that
        # races with the wake event can be swallowed by a timeout helper.
        while not self._stopping:
            try:
                await self._turn()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything one turn does
                log.exception("%s: a turn failed", self.name)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._seconds_to_next()):
                    await self._wake.wait()

    def _spawn(self, work: Awaitable[None], *, job_ids: Sequence[str] = ()) -> None:
        """Run `work` beside the loop; `job_ids` name its jobs in the log if it fails."""
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        what = getattr(work, "__qualname__", None)  # a coroutine's: "Runner._collect"
        if what:
            task.set_name(f"{self.name}: {what}")
        self._inflight.add(task)
        task.add_done_callback(functools.partial(self._reap, tuple(job_ids)))

    def _reap(self, job_ids: tuple[str, ...], task: asyncio.Task[None]) -> None:
        """A spawned task ended: its exception is logged, never dropped."""
        self._inflight.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            about = f" (job {', '.join(job_ids)})" if job_ids else ""
            log.error("%s failed%s", task.get_name(), about, exc_info=err)

    async def save_until_stored(
        self, save: Callable[[], Awaitable[None]], job_ids: Sequence[str]
    ) -> None:
        """Run `save` (a write of jobs that must not be lost) until the store takes it.

        A refused write is logged and tried again after a backoff. The caller holds the
        jobs meanwhile, so nothing is forgotten while the store cannot take them, and
        announces them only once they are stored. Cancelled when the loop stops: the
        store then keeps the jobs' last saved state, from which the next start resumes.
        """
        jobs = ", ".join(job_ids)
        for attempt in itertools.count():
            try:
                await save()
            except Exception as err:
                wait = SAVE_BACKOFF.delay(attempt)
                log.error(
                    "%s: saving job %s failed (%s: %s); trying again in %.1f s",
                    self.name,
                    jobs,
                    type(err).__name__,
                    err,
                    wait,
                    exc_info=attempt == 0,  # the traceback once, not at every retry
                )
            else:
                if attempt:
                    log.warning("%s: job %s saved after %d failed tries", self.name, jobs, attempt)
                return
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                log.error(
                    "%s: stopped before job %s could be saved; the store keeps its last "
                    "saved state, from which the next start resumes it",
                    self.name,
                    jobs,
                )
                raise

    async def stop(self) -> None:
        """End the loop and every task it started."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
