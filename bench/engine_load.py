"""The engine's own cost with many concurrent sandbox jobs.

    python bench/engine_load.py [--jobs 1000] [--duration 20] [--size 128] [--trace]

Submits N imagine jobs at once to the sandbox provider (small images, so that drawing
them costs little next to the engine), waits for all to finish, and prints: wall time,
CPU seconds of the process, memory (RSS with all N jobs in flight, and the peak RSS of
the whole run, results included), store writes per job, provider fetch calls, and how
many jobs each fetch carried. With --trace, also the Python heap's peak through
tracemalloc; tracing costs memory of its own (~20 MiB here), so the RSS figures of a
traced run are not the bot's.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import parse_config
from bot.engine.models import JobRequest, JobStatus
from bot.engine.service import Engine
from bot.vocab import Action


def rss_mib() -> float:
    """The process's resident memory now (Linux: /proc/self/status), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def run(jobs: int, duration: float, size: int, poll: float, trace: bool = False) -> None:
    folder = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
    config = parse_config(
        {
            "storage": {"path": str(folder / "a.db"), "media_dir": str(folder / "media")},
            "providers": [
                {
                    "name": "sandbox",
                    "kind": "sandbox",
                    "duration": duration,
                    "size": size,
                    "state_dir": str(folder / "sb"),
                    "poll_interval": poll,
                }
            ],
        }
    )
    engine = Engine(config)
    await engine.start()
    finished = asyncio.Event()
    done: set[str] = set()

    def on_update(update) -> None:
        if update.job.finished:
            done.add(update.job.id)
            if len(done) >= jobs:
                finished.set()

    engine.subscribe(on_update)
    # The sandbox is the "provider" here, not the engine: count the CPU its drawing takes
    # (in worker threads) so that the engine's own share can be told apart.
    renderer = engine.providers["sandbox"]._renderer  # type: ignore[attr-defined]
    draw = renderer.png
    drawing_cpu = [0.0]

    def timed_draw(*args: object) -> bytes:
        start = time.thread_time()
        try:
            return draw(*args)
        finally:
            drawing_cpu[0] += time.thread_time() - start

    renderer.png = timed_draw
    if trace:
        tracemalloc.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    submitted = await asyncio.gather(
        *(
            engine.submit(JobRequest(Action.IMAGINE, prompt=f"bench job {n} --ar 3:2"))
            for n in range(jobs)
        )
    )
    submit_wall = time.perf_counter() - wall0
    # All sent, none finished yet (the sandbox's jobs run `duration` seconds): the cost
    # of N jobs in flight, before their results arrive.
    in_flight = engine.runner.count_for("sandbox")
    in_flight_rss = rss_mib()
    await asyncio.wait_for(finished.wait(), duration * 10 + 120)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    heap_peak = tracemalloc.get_traced_memory()[1] if trace else 0
    if trace:
        tracemalloc.stop()
    states = [(await engine.store.get(j.id)).status for j in submitted]  # type: ignore[union-attr]
    writes = engine.store.writes
    commits = engine.store.commits
    fetches = engine.runner.fetch_calls
    await engine.stop()
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ok = sum(1 for s in states if s is JobStatus.SUCCEEDED)
    print(
        f"jobs: {jobs} concurrent sandbox jobs of {duration:.0f} s, images {size}px, "
        f"poll every {poll} s"
    )
    print(f"succeeded: {ok}/{jobs}")
    print(f"wall: {wall:.1f} s (all submitted in {submit_wall:.2f} s)")
    drawing = drawing_cpu[0]
    per_draw = drawing / jobs
    print(f"cpu: {cpu:.1f} s for the whole process ({cpu / jobs * 1000:.1f} ms per job)")
    print(
        f"  of which the sandbox drawing results: ~{drawing:.1f} s ({per_draw * 1000:.1f} ms "
        f"per job); the engine's own share: ~{cpu - drawing:.1f} s "
        f"({(cpu - drawing) / jobs * 1000:.1f} ms per job: polling, store, events, "
        "saving and splitting grids)"
    )
    print(
        f"memory: RSS {in_flight_rss:.0f} MiB with {in_flight} jobs in flight; peak RSS "
        f"{peak_rss:.0f} MiB (the whole run, results included)"
        + (" [traced: tracemalloc's own memory included]" if trace else "")
    )
    if trace:
        print(
            f"  Python heap peak {heap_peak / 2**20:.1f} MiB "
            f"({heap_peak / jobs / 1024:.1f} KiB per job)"
        )
    print(f"store writes: {writes} ({writes / jobs:.1f} per job) in {commits} commits")
    print(f"provider fetch calls: {fetches} ({fetches / jobs:.2f} per job)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--poll", type=float, default=3.0)
    parser.add_argument("--trace", action="store_true", help="also the Python heap's peak")
    args = parser.parse_args()
    asyncio.run(run(args.jobs, args.duration, args.size, args.poll, args.trace))


if __name__ == "__main__":
    main()
