"""The dispatcher: jobs wait here, in order, until their provider has room.

A provider has room while fewer of its jobs are in flight than its `max_concurrent`
setting (0 = no limit), and while it is not refusing work (429, "queue full"). A job
that waits is stored as WAITING: it was never sent, so after a restart it can be sent
without any risk of paying twice. Waiting jobs keep their deadline.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.engine.loop import BackgroundLoop
from bot.engine.models import Job

log = logging.getLogger(__name__)


@dataclass
class Waiting:
    job: Job
    not_before: float = 0.0


class Dispatcher(BackgroundLoop):
    name = "atelier-dispatcher"

    def __init__(
        self,
        limits: dict[str, int],
        in_flight: Callable[[str], int],
        send: Callable[[Job], Awaitable[None]],
        expire: Callable[[Job], Awaitable[None]],
        *,
        clock: Callable[[], float],
    ) -> None:
        super().__init__()
        self.limits = limits
        self.in_flight = in_flight
        self.send = send
        self.expire = expire
        self.clock = clock
        self._queues: dict[str, deque[Waiting]] = {}
        self._sending: dict[str, int] = {}
        # Jobs taken off a queue and being sent: still found by `get` until the runner
        # follows them, so that a front end's note (where the job is shown) reaches them.
        self._in_hand: dict[str, Job] = {}

    def start(self) -> None:
        self._start_loop()

    # ---- queue ----

    def has_room(self, provider: str) -> bool:
        """Room now, and nobody ahead in the queue (order is kept)."""
        return not self._queues.get(provider) and self._room(provider)

    def claim(self, job: Job) -> bool:
        """Take a slot for sending `job` now, if its provider has room and nobody waits
        ahead. The slot counts at once, before the caller's first await, so that a
        second request a moment later sees it (the runner counts the job only once the
        provider has answered). Pair with `release` once the send is over."""
        if not self.has_room(job.provider):
            return False
        self._take(job)
        return True

    def release(self, job: Job) -> None:
        self._sending[job.provider] -= 1
        self._in_hand.pop(job.id, None)
        self._wake.set()

    def _take(self, job: Job) -> None:
        self._sending[job.provider] = self._sending.get(job.provider, 0) + 1
        self._in_hand[job.id] = job

    def _room(self, provider: str) -> bool:
        limit = self.limits.get(provider, 0)
        busy = self.in_flight(provider) + self._sending.get(provider, 0)
        return limit <= 0 or busy < limit

    def enqueue(self, job: Job, *, not_before: float = 0.0, front: bool = False) -> int:
        """Add a job; returns its place in the queue (1 = next)."""
        queue = self._queues.setdefault(job.provider, deque())
        waiting = Waiting(job, not_before)
        if front:
            # A job the provider turned away keeps its place, and makes everyone wait.
            queue.appendleft(waiting)
        else:
            queue.append(waiting)
        self._wake.set()
        return 1 if front else len(queue)

    def remove(self, job_id: str) -> Job | None:
        for queue in self._queues.values():
            for waiting in queue:
                if waiting.job.id == job_id:
                    queue.remove(waiting)
                    return waiting.job
        return None

    def waiting(self) -> dict[str, int]:
        """Jobs waiting for room, per provider (the queue depth)."""
        return {provider: len(queue) for provider, queue in self._queues.items()}

    def position(self, job_id: str) -> int | None:
        """Where a waiting job stands in its provider's queue now (1 = next), or None."""
        for queue in self._queues.values():
            for place, waiting in enumerate(queue, 1):
                if waiting.job.id == job_id:
                    return place
        return None

    def get(self, job_id: str) -> Job | None:
        """A job waiting here, or being sent from here."""
        for queue in self._queues.values():
            for waiting in queue:
                if waiting.job.id == job_id:
                    return waiting.job
        return self._in_hand.get(job_id)

    async def _turn(self) -> None:
        now = self.clock()
        for provider, queue in self._queues.items():
            for waiting in [w for w in queue if w.job.deadline_at and now >= w.job.deadline_at]:
                queue.remove(waiting)
                self._spawn(self.expire(waiting.job))
            while queue and queue[0].not_before <= now and self._room(provider):
                job = queue.popleft().job
                self._take(job)
                self._spawn(self._send(job))

    async def _send(self, job: Job) -> None:
        try:
            await self.send(job)
        finally:
            self.release(job)
