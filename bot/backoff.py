"""The one backoff formula: capped, jittered exponential, honouring Retry-After.

Every loop that waits after a failure (a provider call retried, a busy provider's queued
job sent again, a poll that failed, a Discord write that failed) uses `Backoff` with its
own figures, so the rule itself lives only here. Imports nothing of Atelier's.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Waits that double from `base` up to `cap`.

    `jitter` is the share of the wait that is random: the wait for an attempt is drawn
    from [(1 - jitter) * w, w] ("equal jitter" at 0.5), so many clients that failed
    together do not come back together. A server's Retry-After, when it gives one, is the
    wait itself, capped by `retry_after_cap` (a provider that says "come back in an hour"
    must not pin one call for an hour when the caller's own loop can wait between calls).
    """

    base: float
    cap: float
    jitter: float = 0.5
    retry_after_cap: float | None = None

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("Backoff needs base >= 0, cap >= 0 and jitter within 0-1")

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number `attempt + 1` (attempt 0 is the first wait)."""
        if retry_after is not None and retry_after > 0:
            # The server said when: that is the wait, not a guess to jitter.
            if self.retry_after_cap is not None:
                return min(retry_after, self.retry_after_cap)
            return retry_after
        exponent = min(max(attempt, 0), 62)  # 2**62 s is already far past any cap
        wait = min(self.cap, self.base * 2.0**exponent)
        if self.jitter:
            wait = random.uniform(wait * (1 - self.jitter), wait)
        return wait
