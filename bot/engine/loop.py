"""One background loop with the tasks it spawns: the shape the runner and the
dispatcher share (start, wake, spawn, stop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable

log = logging.getLogger(__name__)


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

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

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
