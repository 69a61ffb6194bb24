"""Provider status requests for many concurrent midjourney-proxy jobs, against one fetch
per task every 3 s.

    python bench/mj_proxy_polling.py [--jobs 200] [--seconds 60] [--poll 3] [--speed 10]

Runs the real engine (its adaptive schedule: bot/engine/poll_schedule.py) against the
fake midjourney-proxy (tests/fakes) in four scenes: all jobs sent at once, jobs arriving
over 30 s, a relay whose progress moves in 15 s steps, and a server that calls back
(notifyHook) at each step; then the first scene again on a server without
list-by-condition (one GET /mj/task/{id}/fetch per task).

The reference, "one fetch per task every 3 s", is what the old fixed interval without
batching asks: for each job, one request per poll interval of its life (submit to
result), counted from the jobs' real lifetimes in this run. The fake counts every
request it gets. Time is compressed by --speed (a 60 s job polled every 3 s takes 6 s
polled every 0.3 s at speed 10): counts and seconds printed are those of the
uncompressed run. "Seen" is how long after the task reached SUCCESS at the fake a poll
showed it (the price of polling less); "done" adds downloading and saving the images,
which at x10 compression and 200 jobs finishing together is mostly the machine's speed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.callbacks import CallbackReceiver
from bot.config import parse_config
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.service import Engine
from bot.http_server import HttpServer
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy


@dataclass
class Scene:
    label: str
    steps: list[tuple[str, Any]]  # the task's states, one per step
    step_seconds: float  # uncompressed
    arrivals: float = 0.0  # seconds over which the jobs are sent (0: all at once)
    batch: bool = True
    callbacks: bool = False  # the server POSTs each step to the bot's callback route


def steady() -> list[tuple[str, Any]]:
    return (
        [("SUBMITTED", "0%")]
        + [("IN_PROGRESS", f"{p}%") for p in range(10, 100, 10)]
        + [("SUCCESS", "100%")]
    )


def relay_steps() -> list[tuple[str, Any]]:
    # An aggregator polls its upstream every ~15 s: queued, then 4 jumps of progress.
    return (
        [("NOT_START", "0%"), ("SUBMITTED", "0%")]
        + [("IN_PROGRESS", f"{p}%") for p in (20, 45, 70, 95)]
        + [("SUCCESS", "100%")]
    )


@dataclass
class Outcome:
    kinds: Counter[str]
    ok: int
    reference: int  # requests one fetch per task every `poll` would have made
    seen: list[float]  # seconds from SUCCESS at the fake to a poll showing it
    done: list[float]  # ... to the job finished in Atelier (images downloaded)


async def one_run(scene: Scene, jobs: int, poll: float, speed: float) -> Outcome:
    async with FakeMjProxy(flavour="trueai", key="k") as fake:
        fake.script = scene.steps
        fake.step_seconds = scene.step_seconds / speed
        fake.grid_size = (64, 64)
        folder = Path(tempfile.mkdtemp(prefix="atelier-bench-"))
        config = parse_config(
            {
                "storage": {"path": str(folder / "a.db"), "media_dir": str(folder / "m")},
                "callbacks": {"public_url": "http://127.0.0.1:1", "listen_port": 0},
                "providers": [
                    fake.provider_config(
                        "mj", poll_interval=poll / speed, batch_fetch=scene.batch,
                        request_timeout=30,
                    )
                ],
            }
        )  # fmt: skip
        engine = Engine(config)
        await engine.start()
        server = HttpServer("127.0.0.1", 0)
        server.add_routes(CallbackReceiver(engine).routes())
        await server.start()
        # Without callbacks no notifyHook is sent at all.
        engine.config.http.public_url = f"http://127.0.0.1:{server.port}" if scene.callbacks else ""
        seen_at = _note_collections(engine)
        submitted = await _send_all(engine, jobs, scene.arrivals / speed)
        while True:
            states = [await engine.get(j.id) for j in submitted]
            if all(s is not None and s.finished for s in states):
                break
            await asyncio.sleep(0.1)
        await engine.stop()
        await server.stop()
        done = [s for s in states if s is not None]
        ok = sum(1 for s in done if s.status is JobStatus.SUCCEEDED)
        lives = [((s.finished_at or 0) - (s.submitted_at or s.created_at)) * speed for s in done]
        reference = sum(math.ceil(life / poll) for life in lives)
        ends = {t.id: t.created for t in fake.tasks.values()}
        wall_offset = time.time() - time.monotonic()
        took = (len(scene.steps) - 1) * scene.step_seconds / speed
        end_at = {s.id: ends[s.task_id] + wall_offset + took for s in done if s.task_id in ends}
        seen = [(seen_at[i] - end) * speed for i, end in end_at.items() if i in seen_at]
        finished = [((s.finished_at or 0) - end_at[s.id]) * speed for s in done if s.id in end_at]
        assert not fake.violations, fake.violations[:3]
        return Outcome(_kinds(fake), ok, reference, seen, finished)


def _note_collections(engine: Engine) -> dict[str, float]:
    """When the runner saw each job succeed: it hands the job to `collect` at once."""
    seen: dict[str, float] = {}
    collect = engine.runner.collect

    async def noting(provider: Any, job: Job, snapshot: Any) -> None:
        seen[job.id] = time.time()
        await collect(provider, job, snapshot)

    engine.runner.collect = noting
    return seen


async def _send_all(engine: Engine, jobs: int, over: float) -> list[Job]:
    async def send(n: int) -> Job:
        await asyncio.sleep(over * n / jobs)
        return await engine.submit(JobRequest(Action.IMAGINE, prompt=f"bench {n}"))

    return list(await asyncio.gather(*(send(n) for n in range(jobs))))


def _kinds(fake: FakeMjProxy) -> Counter[str]:
    kinds: Counter[str] = Counter()
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
    return kinds


def report(scene: Scene, out: Outcome, jobs: int, poll: float) -> None:
    status = out.kinds["list-by-condition"] + out.kinds["fetch one"]
    print(f"\n{scene.label}: {out.ok}/{jobs} succeeded")
    print(
        f"  status requests: {status} ({status / jobs:.2f} per job); one fetch per task "
        f"every {poll:g} s: {out.reference} ({out.reference / jobs:.2f} per job); "
        f"ratio 1/{out.reference / max(1, status):.0f}"
    )
    for label, values in (("seen", out.seen), ("done", out.done)):
        if values:
            print(
                f"  {label} after SUCCESS: mean {statistics.mean(values):.1f} s, "
                f"max {max(values):.1f} s"
            )
    print("  all requests: " + ", ".join(f"{k} {v}" for k, v in sorted(out.kinds.items())))


async def main_async(jobs: int, seconds: float, poll: float, speed: float) -> None:
    print(f"{jobs} concurrent mj-proxy jobs, poll_interval {poll:g} s (time compressed x{speed:g})")
    scenes = [
        Scene(f"all sent at once, jobs of {seconds:.0f} s", steady(), seconds / 11),
        Scene(f"arriving over 30 s, jobs of {seconds:.0f} s", steady(), seconds / 11, 30.0),
        Scene("relay: progress in 15 s steps (90 s jobs)", relay_steps(), 15.0),
        Scene(
            f"callbacks at each step, arriving over 30 s, jobs of {seconds:.0f} s",
            steady(),
            seconds / 11,
            30.0,
            callbacks=True,
        ),
        Scene(
            "all sent at once, no list-by-condition (one fetch per task)",
            steady(),
            seconds / 11,
            batch=False,
        ),
    ]
    for scene in scenes:
        report(scene, await one_run(scene, jobs, poll, speed), jobs, poll)


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
