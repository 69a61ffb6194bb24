"""Provider requests for many concurrent midjourney-proxy jobs: batched vs one-by-one.

    python bench/mj_proxy_polling.py [--jobs 200] [--seconds 60] [--poll 3] [--speed 10]

Runs the real engine against the fake midjourney-proxy (tests/fakes) twice: polling
with POST /mj/task/list-by-condition, then with one GET /mj/task/{id}/fetch per task.
Time is compressed by --speed (jobs of 60 s polled every 3 s take 6 s polled every
0.3 s at speed 10): the request counts are those of the uncompressed run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import parse_config
from bot.engine.models import JobRequest, JobStatus
from bot.engine.service import Engine
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy


async def one_run(
    jobs: int, seconds: float, poll: float, batch: bool
) -> tuple[Counter, int, float]:
    async with FakeMjProxy(flavour="trueai", key="k") as fake:
        steps = (
            [("SUBMITTED", "0%")]
            + [("IN_PROGRESS", f"{p}%") for p in range(10, 100, 10)]
            + [("SUCCESS", "100%")]
        )
        fake.script = steps
        fake.step_seconds = seconds / len(steps)
        fake.grid_size = (64, 64)
        folder = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
        config = parse_config(
            {
                "storage": {"path": str(folder / "a.db"), "media_dir": str(folder / "m")},
                "providers": [
                    fake.provider_config(
                        "mj", poll_interval=poll, batch_fetch=batch, request_timeout=30
                    )
                ],
            }
        )
        engine = Engine(config)
        await engine.start()
        started = time.perf_counter()
        submitted = await asyncio.gather(
            *(engine.submit(JobRequest(Action.IMAGINE, prompt=f"bench {n}")) for n in range(jobs))
        )
        while True:
            states = [await engine.get(j.id) for j in submitted]
            if all(s is not None and s.finished for s in states):
                break
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - started
        ok = sum(1 for s in states if s is not None and s.status is JobStatus.SUCCEEDED)
        await engine.stop()
        kinds: Counter = Counter()
        for request in fake.requests:
            path = request.endpoint
            if path.startswith("cdn:") or path.startswith("/image"):
                kinds["image download"] += 1
            elif "list-by-condition" in path:
                kinds["list-by-condition"] += 1
            elif path.endswith("/fetch"):
                kinds["fetch one"] += 1
            elif "/submit/" in path:
                kinds["submit"] += 1
            else:
                kinds[path] += 1
        assert not fake.violations, fake.violations[:3]
        return kinds, ok, wall


async def main_async(jobs: int, seconds: float, poll: float, speed: float) -> None:
    print(
        f"{jobs} concurrent mj-proxy jobs of {seconds:.0f} s, polled every {poll} s "
        f"(time compressed x{speed:g})"
    )
    for batch in (True, False):
        kinds, ok, wall = await one_run(jobs, seconds / speed, poll / speed, batch)
        polls = kinds["list-by-condition"] + kinds["fetch one"]
        total = sum(kinds.values())
        label = "batched (list-by-condition)" if batch else "one fetch per task"
        print(f"\n{label}: {ok}/{jobs} succeeded in {wall * speed:.0f} s (scaled)")
        print(f"  status requests: {polls} ({polls / jobs:.2f} per job)")
        print(
            f"  all provider requests: {total} ({total / jobs:.2f} per job): "
            + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--poll", type=float, default=3.0)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main_async(args.jobs, args.seconds, args.poll, args.speed))


if __name__ == "__main__":
    main()
