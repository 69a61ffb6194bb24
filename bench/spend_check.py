"""The cost of the spend check under load.

    python bench/spend_check.py [--users 50] [--rounds 5]

Each round, N users submit one /imagine each at the same moment through a real Engine
with the sandbox provider. Printed: p50 / p99 / max of `Engine.submit` latency (the part
of an /imagine's acknowledgement that the spend check affects: the budget, active-jobs
and double-press checks and the charge, in one store transaction) with budgets on
([spending] daily/monthly credits and [engine] max_active_per_user set) and with
budgets off (all 0: the job row is still written in the same step, nothing is summed).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import parse_config
from bot.engine.models import JobRequest, Origin
from bot.engine.service import Engine
from bot.vocab import Action

ON = {"daily_credits": 1000, "monthly_credits": 10000}
OFF = {"daily_credits": 0, "monthly_credits": 0}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


async def measure(
    users: int, rounds: int, spending: dict[str, Any], max_active: int
) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="atelier-spend-"))
    config = parse_config(
        {
            "storage": {"path": str(folder / "a.db"), "media_dir": str(folder / "media")},
            "engine": {"max_active_per_user": max_active},
            "spending": spending,
            "providers": [
                {
                    "name": "sandbox",
                    "kind": "sandbox",
                    "duration": 0.5,
                    "size": 64,
                    "state_dir": str(folder / "sb"),
                }
            ],
        }
    )
    latencies: list[float] = []
    async with Engine(config) as engine:

        async def one(user: int, n: int) -> None:
            request = JobRequest(
                Action.IMAGINE,
                prompt=f"a lighthouse {n}",
                origin=Origin.DISCORD,
                user_id=f"user{user}",
                guild_id="bench",
            )
            started = time.perf_counter()
            await engine.submit(request)
            latencies.append(time.perf_counter() - started)

        for n in range(rounds):
            await asyncio.gather(*(one(user, n) for user in range(users)))
            await asyncio.sleep(1.0)  # let the round's jobs finish (max_active stays free)
    return latencies


def line(name: str, latencies: list[float]) -> str:
    ms = [x * 1000 for x in latencies]
    return (
        f"  {name:<12} n={len(ms):<4} p50 {statistics.median(ms):6.1f} ms   "
        f"p99 {percentile(ms, 99):6.1f} ms   max {max(ms):6.1f} ms"
    )


async def run(users: int, rounds: int) -> None:
    await measure(users, 1, OFF, 0)  # warm up imports and the file system
    off = await measure(users, rounds, OFF, 0)
    on = await measure(users, rounds, ON, 3)
    print(f"Engine.submit latency, {users} users at once, {rounds} rounds (sandbox provider)")
    print(line("budgets off", off))
    print(line("budgets on", on))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=50, help="users submitting at once")
    parser.add_argument("--rounds", type=int, default=5, help="bursts to measure")
    args = parser.parse_args()
    asyncio.run(run(args.users, args.rounds))


if __name__ == "__main__":
    main()
