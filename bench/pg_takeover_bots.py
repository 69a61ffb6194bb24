"""Two real bot processes on one PostgreSQL store, one killed with `kill -9` mid-job:
how long until the live one holds every job, and how many jobs per second get done.

    .venv/bin/python bench/pg_takeover_bots.py [--jobs 100] [--channels 10]
        [--lease-seconds 3] [--duration 30] [--then 0]

Run from the repository root. It starts a throwaway PostgreSQL cluster (tests/pg.py),
the fake Discord with two shards, and `atelier run --shard-ids 0|1 --shard-count 2`
twice (the sandbox provider, its tasks in a shared folder). The test server is on
shard 0, so the first process gets every command: `--jobs` /imagine spread over
`--channels` channels. Once every job is sent, the first process is killed. Printed:
the takeover time (from the kill to every job leased to the live process) against its
bound (lease + one keeper turn), the time to the last result, jobs per second from the
first command to the last result, provider submits per job, result messages per job,
and the 429s the fake Discord counted.

`--then N`: after the takeover a new first process starts (shard 0 again) and gets N
more /imagine in the first channel, which the second process now shows: it hands each
of them to the second process, so that channel's jobs are spread over both processes
(received by one, sent and shown by the other) while its writes keep one pacer. With
`--channels 1` every job is in one channel.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.discord_helpers import BotProcess, is_result, job_id_in
from tests.fakes.discord_fake import FakeDiscord
from tests.pg import PgCluster
from tests.test_leases_e2e import leases, pg_config, shard_bot, task_ids
from tests.test_shards_e2e import fake_with_guild_on_shard_0


async def imagine(fake: FakeDiscord, channel_id: int, prompt: str) -> str:
    rec = await fake.send_slash_command("imagine", {"prompt": prompt}, channel_id=channel_id)
    reply = await rec.wait_response(120)
    start = reply.content.index("`") + 1
    return reply.content[start : start + 10]


def posted(fake: FakeDiscord, channels: list[int]) -> dict[str, int]:
    """job id -> result messages in its channel."""
    counts: dict[str, int] = {}
    for channel_id in channels:
        for message in fake.channel_messages(channel_id):
            job_id = job_id_in(message)
            if job_id and message.webhook_id is None and is_result(message):
                counts[job_id] = counts.get(job_id, 0) + 1
    return counts


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def connected(bot: BotProcess) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        if not bot.running:
            raise SystemExit(f"the bot stopped:\n{bot.log_text()}")
        return "connected as" in bot.log_text(10**7)  # READY and its guild

    return check


async def run(args: argparse.Namespace) -> None:
    cluster = PgCluster.start()
    fake = fake_with_guild_on_shard_0()
    await fake.start()
    with TemporaryDirectory() as folder:
        tmp = Path(folder)
        url = cluster.create_database()
        config = pg_config(tmp, fake, url, lease_seconds=args.lease_seconds, duration=args.duration)
        first, second = shard_bot(config, tmp, 0, "first"), shard_bot(config, tmp, 1, "second")
        await first.start()
        await second.start()
        try:
            await fake.wait_for(lambda: {0, 1} <= set(fake.ready_shards), 60, what="shards")
            await fake.wait_commands_synced(60)
            channels = [await fake.add_channel(f"c{n}") for n in range(args.channels)]
            per_channel = args.jobs // args.channels
            began = time.monotonic()

            async def fill(channel_id: int) -> list[str]:
                return [
                    await imagine(fake, channel_id, f"c{channel_id} p{n}")
                    for n in range(per_channel)
                ]

            jobs = [j for batch in await asyncio.gather(*map(fill, channels)) for j in batch]

            async def all_sent() -> bool:
                return all((await task_ids(url, jobs)).values())

            await until(all_sent, 120, "every job sent")
            dead = {owner for owner, _, _ in (await leases(url)).values()}
            await first.kill()
            killed = time.monotonic()

            async def taken() -> bool:
                now = await leases(url)
                return all(j in now and now[j][0] not in dead for j in jobs)

            await until(taken, 120, "the takeover")
            takeover = time.monotonic() - killed
            if args.then:
                first = shard_bot(config, tmp, 0, "first-again")
                await first.start()
                await until(connected(first), 60, "the new first process to connect")
                jobs += [await imagine(fake, channels[0], f"then p{n}") for n in range(args.then)]

            async def all_posted() -> bool:
                return set(jobs) <= set(posted(fake, channels))

            await until(all_posted, 600, "every result")
            done = time.monotonic()
            await asyncio.sleep(2)  # a second post would come now
            counts = posted(fake, channels)
            handed = first.log_text(10**8).count("handed to the process that shows channel")
            tasks = sorted((tmp / "data" / "sandbox" / "tasks").glob("*.json"))
            prompts = Counter(json.loads(t.read_text(encoding="utf-8"))["prompt"] for t in tasks)
            if args.keep:
                shutil.copytree(tmp, args.keep, dirs_exist_ok=True)
        finally:
            await first.stop()
            await second.stop()
            await fake.stop()
            cluster.stop()
    bound = args.lease_seconds * 4 / 3
    where = f"{args.channels} channel" + ("s" if args.channels > 1 else "")
    print(f"jobs: {args.jobs} in {where} (+{args.then} after), lease {args.lease_seconds:g} s")
    print(f"takeover after kill -9: {takeover:.2f} s (bound, lease + a keeper turn: {bound:.1f} s)")
    print(f"last result {done - killed:.1f} s after the kill (jobs last {args.duration:g} s)")
    print(f"jobs/s, first command to last result: {len(jobs) / (done - began):.2f}")
    print(f"provider submits per job: {sum(prompts.values()) / len(jobs):.2f}")
    print(f"prompts sent more than once: {sorted(p for p, n in prompts.items() if n > 1)}")
    print(f"result messages per job: {sum(counts.values()) / len(jobs):.2f}")
    if args.then:
        print(f"after the restart: {args.then} more in channel 1, {handed} handed to the second")
    print(f"429s on the fake Discord: {fake.count_429}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--lease-seconds", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--then", type=int, default=0, help="jobs for a restarted first")
    parser.add_argument("--keep", help="copy the run's folder (logs, sandbox) here")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
