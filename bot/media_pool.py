"""The one bounded pool of threads that image work runs on (bot.media's `a_*` helpers).

Decoding an 8192-pixel image holds about 200 MiB. asyncio.to_thread would run every
upload of a burst at once on the loop's default pool (up to 32 threads); here two shared
workers take them in turn, so twenty simultaneous uploads hold two decoded images, not
twenty. One more worker is reserved for a finished job's results, so that uploads
queueing up never delay the results a user has already paid for.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Lane(enum.Enum):
    """Which workers run a piece of image work."""

    SHARED = "shared"  # attachments, masks, fitting images for upload
    RESULTS = "results"  # a finished job's results: a worker of its own, never starved


SHARED_WORKERS = 2
RESULT_WORKERS = 1
_POOLS: dict[Lane, ThreadPoolExecutor] = {
    Lane.SHARED: ThreadPoolExecutor(SHARED_WORKERS, thread_name_prefix="atelier-media"),
    Lane.RESULTS: ThreadPoolExecutor(RESULT_WORKERS, thread_name_prefix="atelier-results"),
}


async def run_image_work(lane: Lane, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `work` on the lane's bounded workers (queued while they are busy)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_POOLS[lane], functools.partial(work, *args, **kwargs))


def set_workers(lane: Lane, workers: int) -> None:
    """Resize a lane (benchmarks compare bounds; the bot keeps the defaults)."""
    old = _POOLS[lane]
    _POOLS[lane] = ThreadPoolExecutor(workers, thread_name_prefix=f"atelier-{lane.value}")
    old.shutdown(wait=False)
