"""One run of the real bot, then its /metrics as Prometheus scrapes it.

    .venv/bin/python bench/metrics_run.py [--jobs 6] [--scrapes 20] [--all] [--postgresql]

Run from the repository root. It starts the fake Discord and a midjourney-proxy fake
(tests/fakes), then the REAL bot (`python -m bot run`) with `[http] enabled` on a free
port (read from the bot's log), sends `--jobs` /imagine commands through the proxy
provider and as many through the sandbox, waits for every result, then prints:

0. while the jobs run, the job, queue and lease lines that are not 0;
1. the /metrics text of that run (without the `_created` and `_bucket` lines unless
   `--all`; the histograms' `_count` and `_sum` stay);
2. /healthz's answer;
3. how long a scrape takes (`--scrapes` of them: median and max, ms), the store's
   queries included.

`--postgresql`: the bot's store is a database of a throwaway PostgreSQL cluster
(tests/pg.py), so the leases it holds show too.

Exit status 0 when every job's result was posted and every scrape answered 200.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import stores
from tests.discord_helpers import BotProcess, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.pg import PgCluster
from tests.test_discord_providers import toml_table


async def run_jobs(fake: FakeDiscord, jobs: int, url: str) -> int:
    """/imagine `jobs` times on each provider; the number of results posted. While they
    run, /metrics is scraped every 0.2 s and the job, queue and lease lines (those not 0)
    of the scrape with the most leases held are printed."""
    where = await fake.add_channel("bench-metrics")
    busiest: list[str] = []
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal busiest
        most = -1.0
        async with httpx.AsyncClient(timeout=10) as client:
            while not done.is_set():
                lines = (await client.get(url + "/metrics")).text.splitlines()
                held = [float(x.split()[-1]) for x in lines if x.startswith("atelier_leases_held")]
                if held and held[0] > most:
                    most, busiest = held[0], lines
                await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    records = []
    for index in range(jobs):
        for provider in ("proxy", "sandbox"):
            prompt = f"lighthouse {index} on {provider}"
            records.append(
                await fake.send_slash_command(
                    "imagine", {"prompt": prompt, "provider": provider}, channel_id=where
                )
            )
    ids = []
    for rec in records:
        reply = await rec.wait_response(30)
        ids.append(reply.content.split("job `", 1)[1][:10])

    def posted() -> int:
        return sum(
            1
            for m in fake.channel_messages(where)
            if m.webhook_id is None and is_result(m) and job_id_in(m) in ids
        )

    await fake.wait_for(lambda: posted() == len(ids), 120, what="every result")
    done.set()
    await watcher
    wanted = ("atelier_jobs{", "atelier_leases_held", "atelier_queue_waiting")
    print("# during the run, the scrape with the most leases held:")
    print("\n".join(x for x in busiest if x.startswith(wanted) and not x.endswith(" 0.0")))
    return posted()


async def main(args: argparse.Namespace) -> int:
    cluster = PgCluster.start() if args.postgresql else None
    stores.ACTIVE = stores.Redirect(cluster) if cluster else None  # write_config's store
    try:
        return await run(args)
    finally:
        if cluster is not None:
            cluster.stop()


async def run(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="atelier-metrics-"))
    async with FakeMjProxy(flavour="trueai", key="proxy-key") as proxy:
        proxy.step_seconds = 1.5  # slow enough that the scrape during the run sees jobs running
        fake = FakeDiscord()
        await fake.start()
        extra = (
            '\n[http]\nenabled = true\nlisten_host = "127.0.0.1"\nlisten_port = 0\n\n'
            + toml_table(proxy.provider_config("proxy", poll_interval=0.2))
        )
        config = write_config(tmp / "config.toml", fake, tmp / "data", duration=6.0, extra=extra)
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        try:
            port = await bot.http_port()
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            posted = await run_jobs(fake, args.jobs, f"http://127.0.0.1:{port}")
            await asyncio.sleep(1.0)  # the last deletes of progress messages
            return await report(f"http://127.0.0.1:{port}", posted, args)
        finally:
            await bot.stop()
            await fake.stop()


async def report(url: str, posted: int, args: argparse.Namespace) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = await client.get(url + "/metrics")
        health = await client.get(url + "/healthz")
        times, codes = [], []
        for _ in range(args.scrapes):
            started = time.perf_counter()
            codes.append((await client.get(url + "/metrics")).status_code)
            times.append((time.perf_counter() - started) * 1000)
    lines = metrics.text.splitlines()
    if not args.all:
        lines = [line for line in lines if "_created" not in line and "_bucket" not in line]
    print("\n".join(lines))
    print(f"\n# /healthz: HTTP {health.status_code} {health.text}")
    print(
        f"# results posted: {posted} of {2 * args.jobs}; scrape time over {args.scrapes}: "
        f"median {statistics.median(times):.1f} ms, max {max(times):.1f} ms"
    )
    ok = posted == 2 * args.jobs and metrics.status_code == 200 and set(codes) == {200}
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=6, help="jobs per provider (default 6)")
    parser.add_argument("--scrapes", type=int, default=20, help="timed scrapes (default 20)")
    parser.add_argument("--all", action="store_true", help="keep _bucket and _created lines")
    parser.add_argument("--postgresql", action="store_true", help="the store on PostgreSQL")
    sys.exit(asyncio.run(main(parser.parse_args())))
