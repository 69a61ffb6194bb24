"""Jobs per second one PostgreSQL store sustains (and, for comparison, one SQLite file).

    .venv/bin/python bench/pg_store.py [--clients 3] [--seconds 10] [--url postgresql://...]
    .venv/bin/python bench/pg_store.py --processes 3 [--clients 1]   # bot processes' way

Run from the repository root. Without --url it starts a throwaway cluster the way the
tests do (tests/pg.py: initdb in a temp folder, a loopback port, fsync left ON here so
that commits cost what they cost in production) and a fresh database in it.

One job is what the engine writes for it: the admission step (`Store.transaction()`:
the user's active and daily counts, the job row through `write_job`, a ledger charge),
then three saves of its state (submitted, running, succeeded; `Store.save`, group
committed). `--clients` loops do that concurrently on the one store, as concurrent
commands would. Printed: jobs per second, and the group commits per second the saves
took. (SQLite's WAL at synchronous=NORMAL does not fsync each commit; PostgreSQL here
does, so the two are not the same durability.)

`--processes N` runs the PostgreSQL part as N separate processes on the one store
(each holding the store shared, as `atelier run` processes do), `--clients` loops in
each; the jobs of all of them are summed over the same window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.engine.models import Job, JobStatus
from bot.engine.store import Store, write_job
from bot.vocab import Action
from tests.pg import PgCluster

_ACTIVE = ("waiting", "submitting", "submitted", "running")


async def one_job(store: Store, client: int, n: int, process: int = 0) -> None:
    user = f"user{client}"
    job_id = f"p{process}c{client}j{n:08d}"
    job = Job(id=job_id, action=Action.IMAGINE, provider="p", prompt="a cat")
    job.user_id, job.guild_id, job.channel_id = user, "g1", f"ch{client}"
    now = time.time()
    async with store.transaction() as db:
        async with db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({','.join('?' * 4)})",
            (user, *_ACTIVE),
        ) as cursor:
            await cursor.fetchone()
        async with db.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ?", (user, now - 86400)
        ) as cursor:
            await cursor.fetchone()
        await write_job(db, job)
        await db.execute(
            "INSERT INTO ledger (at, kind, user_id, guild_id, job_id, provider, action, credits) "
            "VALUES (?, 'charge', ?, 'g1', ?, 'p', 'imagine', 1.0)",
            (now, user, job.id),
        )
    for status in (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.SUCCEEDED):
        job.status = status
        job.task_id = f"t-{job.id}"
        await store.save(job)


async def measure(
    target: str, clients: int, seconds: float, process: int = 0
) -> tuple[int, float, int]:
    store = Store(target)
    share = getattr(store, "share", None)
    if process and callable(share):  # beside other processes, as `atelier run`s are
        share()
    await store.open()
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(index: int) -> None:
        nonlocal done
        n = 0
        while time.perf_counter() < deadline:
            await one_job(store, index, n, process)
            n += 1
            done += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(i) for i in range(clients)))
    finally:
        elapsed = time.perf_counter() - started
        commits = store.commits
        await store.close()
    return done, elapsed, commits


def report(name: str, result: tuple[int, float, int]) -> None:
    jobs, elapsed, commits = result
    print(
        f"{name:<11} {jobs / elapsed:8.0f} jobs/s   ({jobs} jobs in {elapsed:.1f} s: one "
        f"admission transaction each, and {commits / elapsed:.0f} group commits/s of saves)"
    )


def across_processes(url: str, processes: int, clients: int, seconds: float) -> None:
    """Start `processes` workers at once on one store; sum their jobs."""
    command = [sys.executable, __file__, "--url", url, "--clients", str(clients)]
    workers = [
        subprocess.Popen(
            [*command, "--seconds", str(seconds), "--worker", str(k + 1)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for k in range(processes)
    ]
    results = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    jobs = sum(r["jobs"] for r in results)
    elapsed = max(r["elapsed"] for r in results)
    commits = sum(r["commits"] for r in results)
    report(f"pg x{processes}", (jobs, elapsed, commits))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--url", help="an existing, empty PostgreSQL database")
    parser.add_argument("--processes", type=int, default=0, help="separate processes")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # one of --processes: measure, and say the figures as JSON
        jobs, elapsed, commits = asyncio.run(
            measure(args.url, args.clients, args.seconds, args.worker)
        )
        print(json.dumps({"jobs": jobs, "elapsed": elapsed, "commits": commits}))
        return
    cluster = None
    url = args.url
    if url is None:
        cluster = PgCluster.start(durable=True)
        url = cluster.create_database()
    try:
        if args.processes:
            print(f"{args.processes} processes x {args.clients} clients on one store")
            across_processes(url, args.processes, args.clients, args.seconds)
            return
        print(f"{args.clients} concurrent clients on one store, {args.seconds:g} s each")
        report("postgresql", asyncio.run(measure(url, args.clients, args.seconds)))
        with tempfile.TemporaryDirectory() as folder:
            target = str(Path(folder) / "bench.db")
            report("sqlite", asyncio.run(measure(target, args.clients, args.seconds)))
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
