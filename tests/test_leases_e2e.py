"""Two real bot processes on one PostgreSQL store, as an operator runs a shard cluster
(`atelier run --shard-ids 0 --shard-count 2`, and `--shard-ids 1`), with the fake
Discord and the offline sandbox provider (its tasks are files in a shared folder, so a
process that takes a job over follows it there).

The test server is on shard 0, so its interactions reach the first process, which
sends and shows the jobs. Killed (`kill -9`), its leases run out and the second process
takes every job over within the lease time and a keeper turn, follows it, and posts its
result: one provider submit per job, one result message per job. A new first process
then gets more commands in that same channel while the second one still shows it: it
hands those jobs to the second process, so the channel's writes stay with one pacer and
the fake Discord counts no 429.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from tests.cli_helpers import run_cli
from tests.discord_helpers import BotProcess, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage
from tests.pg import PgCluster
from tests.test_shards_e2e import fake_with_guild_on_shard_0

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEASE_SECONDS = 3.0
POLL_INTERVAL = 0.3  # the sandbox's, set by write_config
FIRST, SECOND = 8, 5  # jobs before the kill, and jobs the new first process hands over
DURATION = 30.0  # long enough that the channel is still shown when the second batch comes


@dataclass
class Cluster:
    fake: FakeDiscord
    url: str
    tmp: Path
    config: Path
    first: BotProcess
    second: BotProcess

    def why(self) -> str:
        return (
            f"{self.fake.summary()}\n--- first ---\n{self.first.log_text()}"
            f"\n--- second ---\n{self.second.log_text()}"
        )

    def bot(self, shard: int, name: str) -> BotProcess:
        return shard_bot(self.config, self.tmp, shard, name)


def pg_config(
    tmp: Path,
    fake: FakeDiscord,
    url: str,
    *,
    lease_seconds: float = LEASE_SECONDS,
    duration: float = DURATION,
) -> Path:
    """The e2e config (tests/discord_helpers.py) with its store in PostgreSQL."""
    config = write_config(tmp / "config.toml", fake, tmp / "data", duration=duration)
    text = config.read_text(encoding="utf-8")
    sqlite_line = f'path = "{tmp / "data" / "atelier.db"}"'
    assert sqlite_line in text
    text = text.replace(sqlite_line, f'url = "{url}"\nlease_seconds = {lease_seconds}')
    config.write_text(text, encoding="utf-8")
    return config


def shard_bot(config: Path, tmp: Path, shard: int, name: str) -> BotProcess:
    shards = ("--shard-ids", str(shard), "--shard-count", "2")
    return BotProcess(config, tmp / f"{name}.log", shards)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster
) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("leases-e2e")
    fake = fake_with_guild_on_shard_0()
    await fake.start()
    url = pg_cluster.create_database()
    config = pg_config(tmp, fake, url)
    first, second = shard_bot(config, tmp, 0, "first"), shard_bot(config, tmp, 1, "second")
    state = Cluster(fake, url, tmp, config, first, second)
    await first.start()
    await second.start()
    try:
        await fake.wait_for(lambda: {0, 1} <= set(fake.ready_shards), 60, what="both shards")
        await fake.wait_commands_synced(60)
        yield state
    finally:
        await state.first.stop()
        await state.second.stop()
        await fake.stop()


async def imagine(state: Cluster, prompt: str) -> str:
    rec = await state.fake.send_slash_command(
        "imagine", {"prompt": prompt}, channel_id=state.fake.channel_id
    )
    reply = await rec.wait_response(30)
    found = re.search(r"`([0-9a-z]{10})`", reply.content)
    assert found, f"{reply.content}\n{state.why()}"
    return found.group(1)


async def leases(url: str) -> dict[str, tuple[str, float, str]]:
    """job id -> (owner, expires_at, status) of every leased job."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT leases.job_id, leases.owner, leases.expires_at, jobs.status "
            "FROM leases JOIN jobs ON jobs.id = leases.job_id"
        )
    finally:
        await conn.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def task_ids(url: str, job_ids: list[str]) -> dict[str, str | None]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, task_id FROM jobs WHERE id = ANY($1)", job_ids)
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


def results(state: Cluster) -> dict[str, list[FakeMessage]]:
    found: dict[str, list[FakeMessage]] = {}
    for message in state.fake.channel_messages(state.fake.channel_id):
        job_id = job_id_in(message)
        if job_id and message.webhook_id is None and is_result(message):
            found.setdefault(job_id, []).append(message)
    return found


def sandbox_submits(state: Cluster) -> list[str]:
    """The prompts of the tasks the sandbox was sent (one file per task)."""
    tasks = sorted((state.tmp / "data" / "sandbox" / "tasks").glob("*.json"))
    return [str(json.loads(path.read_text(encoding="utf-8")).get("prompt", "")) for path in tasks]


async def test_kill_9_the_live_process_takes_over_and_a_shared_channel_gets_no_429(
    cluster: Cluster,
) -> None:
    state = cluster
    first_jobs = [await imagine(state, f"lighthouse {n}") for n in range(FIRST)]

    async def all_sent() -> bool:
        return all((await task_ids(state.url, first_jobs)).values())

    deadline = time.monotonic() + 60
    while not await all_sent():
        assert time.monotonic() < deadline, f"not all sent\n{state.why()}"
        await asyncio.sleep(0.2)
    before = await leases(state.url)
    dead = {owner for owner, _, _ in before.values()}
    assert set(before) == set(first_jobs) and len(dead) == 1, before  # all the first's

    await state.first.kill()
    killed_at = time.monotonic()
    while True:  # until every job is leased to a live process
        now_leases = await leases(state.url)
        taken = {j for j, (owner, exp, _) in now_leases.items() if owner not in dead}
        if set(first_jobs) <= taken:
            break
        assert time.monotonic() - killed_at < 30, f"not taken over\n{state.why()}"
        await asyncio.sleep(0.05)
    takeover = time.monotonic() - killed_at
    # Within the expiry and one turn of the keeper (it looks every third of a lease), and
    # one poll interval of slack for the test's own looking.
    assert takeover <= LEASE_SECONDS * 4 / 3 + POLL_INTERVAL + 1.0, takeover
    second_owner = {now_leases[j][0] for j in first_jobs}
    assert len(second_owner) == 1, now_leases

    # A new first process (shard 0 again) gets commands in the channel the second shows.
    state.first = state.bot(0, "first-again")
    await state.first.start()
    deadline = time.monotonic() + 60
    while "connected as" not in state.first.log_text(10**7):  # READY and its guild
        assert state.first.running and time.monotonic() < deadline, state.why()
        await asyncio.sleep(0.1)
    second_jobs = [await imagine(state, f"harbour {n}") for n in range(SECOND)]
    handed = await leases(state.url)
    assert {handed[j][0] for j in second_jobs if j in handed} <= second_owner, handed

    every = first_jobs + second_jobs

    def all_posted() -> bool:
        return set(every) <= set(results(state))

    try:
        await state.fake.wait_for(all_posted, DURATION * 3, what="every result")
    except TimeoutError:
        raise AssertionError(f"not every result posted\n{state.why()}") from None
    await asyncio.sleep(POLL_INTERVAL * 5)  # a second post would come now
    posted = results(state)
    assert {j: len(posted[j]) for j in every} == dict.fromkeys(every, 1), state.why()
    prompts = sandbox_submits(state)
    assert sorted(prompts) == sorted(
        [f"lighthouse {n}" for n in range(FIRST)] + [f"harbour {n}" for n in range(SECOND)]
    ), prompts  # one provider submit per job: none sent again after the takeover
    assert state.fake.count_429 == 0, state.why()
    assert not state.fake.violations, state.why()
    assert state.first.log_text(10**7).count("handed to the process that shows") == SECOND
    print(f"\ntakeover after kill -9: {takeover:.2f} s (lease {LEASE_SECONDS:g} s)")


async def test_a_process_that_would_run_the_store_alone_is_refused_beside_the_bots(
    cluster: Cluster,
) -> None:
    """`atelier imagine` resumes every active job of a store it runs: beside bot
    processes sharing it that would follow their jobs twice, so it refuses (exit 2),
    sends nothing, and `atelier jobs` still reads the store."""
    before = len(sandbox_submits(cluster))
    refused = await run_cli("--config", str(cluster.config), "imagine", "alone", cwd=cluster.tmp)
    assert refused.code == 2, refused.err
    assert "is in use by another Atelier process" in refused.err, refused.err
    assert "Traceback" not in refused.err
    assert len(sandbox_submits(cluster)) == before
    listed = await run_cli("--config", str(cluster.config), "jobs", cwd=cluster.tmp)
    assert listed.code == 0 and "alone" not in listed.out, listed.err


async def test_a_clean_stop_gives_the_jobs_back_and_the_other_process_posts_them(
    cluster: Cluster,
) -> None:
    state = cluster
    jobs = [await imagine(state, f"clean stop {n}") for n in range(3)]

    async def sent() -> bool:
        return all((await task_ids(state.url, jobs)).values())

    deadline = time.monotonic() + 60
    while not await sent():
        assert time.monotonic() < deadline, f"not all sent\n{state.why()}"
        await asyncio.sleep(0.1)
    held = await leases(state.url)
    stopping = {held[j][0] for j in jobs}
    assert len(stopping) == 1, held
    # The holder: the first process, or the second when it still shows the channel
    # (results not yet confirmed): an owner id is host:pid:random.
    pid = int(next(iter(stopping)).split(":")[1])
    holder = next(b for b in (state.first, state.second) if b.proc and b.proc.pid == pid)
    assert await holder.stop() == 0, state.why()  # SIGTERM
    after = await leases(state.url)
    assert not stopping & {owner for owner, _, _ in after.values()}, after  # given back
    before = len(sandbox_submits(state))

    def all_posted() -> bool:
        return set(jobs) <= set(results(state))

    try:
        await state.fake.wait_for(all_posted, DURATION * 3, what="the results")
    except TimeoutError:
        raise AssertionError(f"not posted after a clean stop\n{state.why()}") from None
    await asyncio.sleep(POLL_INTERVAL * 5)
    posted = results(state)
    assert [len(posted[j]) for j in jobs] == [1, 1, 1], state.why()
    assert len(sandbox_submits(state)) == before  # followed, not sent again
    assert state.fake.count_429 == 0, state.why()
