"""Pacing of message creates/edits: per channel, and for the whole bot.

Discord limits message writes per channel (about 5 per 5 s, unpublished) and the bot
as a whole (50 requests/s). discord.py waits out 429s, but it has no pacing of its own:
many jobs in one channel would keep hitting the limit. Every presenter write takes a
slot here first, so the limits are respected before Discord has to say so.

Writes in a channel are spaced evenly (window / per_channel apart) rather than sent in
bursts. Urgent writes (a new job's message, a result) go before droppable ones (progress):
while an urgent write waits for a channel, progress edits there do not take its slot.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable


class Pacer:
    def __init__(
        self,
        per_channel: int,
        *,
        window: float = 5.0,
        global_per_second: int = 40,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.per_channel = per_channel
        self.window = window
        self.global_per_second = global_per_second
        self.clock = clock
        self.sleep = sleep
        self._sent: dict[int, deque[float]] = {}
        self._global: deque[float] = deque()
        self._blocked_until: dict[int, float] = {}
        self._urgent_waiting: Counter[int] = Counter()

    def _trim(self, now: float) -> None:
        while self._global and self._global[0] <= now - 1.0:
            self._global.popleft()
        for key in list(self._sent):
            times = self._sent[key]
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._sent[key]
        for key in [k for k, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[key]

    def ready_in(self, key: int) -> float:
        """Seconds until `key` may write again (0 when it may now)."""
        now = self.clock()
        self._trim(now)
        waits = [self._blocked_until.get(key, 0.0) - now]
        times = self._sent.get(key)
        if times:
            # Evenly spaced, not in bursts at each window's edge: Discord's channel limit
            # is unpublished and may be a sliding window, where arrival jitter would
            # turn a burst of N into more than N.
            waits.append(times[-1] + self.window / self.per_channel - now)
        if times is not None and len(times) >= self.per_channel:
            waits.append(times[0] + self.window - now)
        if len(self._global) >= self.global_per_second:
            waits.append(self._global[0] + 1.0 - now)
        return max(0.0, *waits)

    def has_urgent(self, key: int) -> bool:
        return self._urgent_waiting[key] > 0

    def try_take(self, key: int, *, urgent: bool = False) -> bool:
        """Take a slot if one is free now (progress edits use this and never queue)."""
        if self.ready_in(key) > 0 or (not urgent and self.has_urgent(key)):
            return False
        now = self.clock()
        self._sent.setdefault(key, deque()).append(now)
        self._global.append(now)
        return True

    async def acquire(self, key: int) -> None:
        """Wait for a slot and take it (urgent writes)."""
        await self.wait_turn(key, take=True)

    async def wait_turn(self, key: int, *, take: bool = False) -> None:
        """Wait, as an urgent write, until `key` may write (taking the slot if asked)."""
        self._urgent_waiting[key] += 1
        try:
            while True:
                wait = self.ready_in(key)
                if wait <= 0:
                    if take:
                        self.try_take(key, urgent=True)
                    return
                await self.sleep(max(wait, 0.01))
        finally:
            self._urgent_waiting[key] -= 1
            if self._urgent_waiting[key] <= 0:
                del self._urgent_waiting[key]

    def block(self, key: int, seconds: float) -> None:
        """Discord said 429 anyway: nothing more for this channel for `seconds`."""
        until = self.clock() + max(0.0, seconds)
        self._blocked_until[key] = max(self._blocked_until.get(key, 0.0), until)
