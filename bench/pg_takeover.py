"""Takeover after `kill -9` on one PostgreSQL store: how long until a live process has
what the dead one held.

    .venv/bin/python bench/pg_takeover.py [--jobs 100] [--lease-seconds 3] [--url ...]

Run from the repository root; without --url it starts a throwaway cluster (tests/pg.py).

1. The store's owner lock (what runs today: one process per store). A child process
   opens the store and claims it; this process tries to claim it every 50 ms (as
   `atelier wait` does every 500 ms); the child is killed with SIGKILL. Printed: from
   the kill to this process owning the store.
2. Job leases (bot/engine/leases.py). A child leases `--jobs` active jobs and renews
   them with a LeaseKeeper; this process runs a LeaseKeeper of its own; the child is
   killed with SIGKILL. Printed: from the kill to this process holding every job, next
   to the bound it should meet (lease expiry + one keeper turn, `seconds / 3`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engine.leases import LeaseKeeper
from bot.engine.models import Job, JobStatus
from bot.engine.store import Store
from bot.vocab import Action
from tests.pg import PgCluster


async def child(mode: str, url: str, jobs: int, seconds: float) -> None:
    store = Store(url)
    await store.open()
    if mode == "owner":
        await store.active()  # resuming claims the store
    else:

        async def adopt(taken: Sequence[Job]) -> None:
            return None

        keeper = LeaseKeeper(store, adopt, lambda ids: None, seconds=seconds, owner="child")
        await keeper.lease([f"job{n:07d}" for n in range(jobs)])
        keeper.start()
    print("ready", flush=True)
    await asyncio.sleep(3600)


async def spawn(mode: str, url: str, jobs: int, seconds: float) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child", mode, "--url", url,
        "--jobs", str(jobs), "--lease-seconds", str(seconds),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if line.strip() != b"ready":
        raise RuntimeError(f"the child did not start: {line!r}")
    return process


async def owner_takeover(url: str) -> float:
    process = await spawn("owner", url, 0, 0)
    store = Store(url)
    await store.open()
    try:
        assert not await store._try_claim(), "the child should own the store"
        killed = time.perf_counter()
        os.kill(process.pid, signal.SIGKILL)
        while not await store._try_claim():
            await asyncio.sleep(0.05)
        return time.perf_counter() - killed
    finally:
        await process.wait()
        await store.close()


async def lease_takeover(url: str, jobs: int, seconds: float) -> float:
    store = Store(url)
    await store.open()
    ids = [f"job{n:07d}" for n in range(jobs)]
    await store.save_many(
        [Job(id=i, action=Action.IMAGINE, provider="p", status=JobStatus.RUNNING) for i in ids]
    )
    process = await spawn("lease", url, jobs, seconds)
    adopted: set[str] = set()
    everything = asyncio.Event()

    async def adopt(taken: Sequence[Job]) -> None:
        adopted.update(job.id for job in taken)
        if len(adopted) == jobs:
            everything.set()

    keeper = LeaseKeeper(store, adopt, lambda ids: None, seconds=seconds, batch=jobs)
    keeper.start()
    try:
        await asyncio.sleep(seconds * 1.5)  # the child's renewals keep the jobs its own
        if adopted:
            raise RuntimeError(f"took over {len(adopted)} live jobs")
        killed = time.perf_counter()
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.wait_for(everything.wait(), seconds * 5)
        return time.perf_counter() - killed
    finally:
        await process.wait()
        await keeper.stop()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--url", help="an existing, empty PostgreSQL database")
    parser.add_argument("--child", choices=["owner", "lease"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args.child, args.url, args.jobs, args.lease_seconds))
        return
    cluster = None
    if args.url is None:
        cluster = PgCluster.start(durable=True)
    try:
        first = args.url or cluster.create_database()  # type: ignore[union-attr]
        took = asyncio.run(owner_takeover(first))
        print(f"owner lock: store owned {took * 1000:.0f} ms after kill -9 of its owner")
        second = args.url or cluster.create_database()  # type: ignore[union-attr]
        took = asyncio.run(lease_takeover(second, args.jobs, args.lease_seconds))
        bound = args.lease_seconds * (1 + 1 / 3)
        print(
            f"leases: all {args.jobs} jobs taken over {took:.2f} s after kill -9 "
            f"(lease {args.lease_seconds:g} s; bound: expiry + one keeper turn = {bound:.2f} s)"
        )
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
