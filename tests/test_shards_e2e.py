"""A shard cluster's process, end to end: the real bot started as an operator starts one
of several processes, `atelier run --shard-ids 0 --shard-count 2`, with its REST calls
going through a Discord REST proxy (as behind nirn-proxy) whose base URL has a path
prefix. The fake Discord runs two shards; the bot must identify as shard [0, 2] only,
answer an interaction of a server on its shard, and send every REST call through the
proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, job_id_in, run_to_exit, write_config
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.rest_proxy import RestProxy
from tests.test_discord_e2e import Env, acked, result_of

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

SHARDS = 2


@dataclass
class ShardEnv(Env):
    proxy: RestProxy | None = None
    port: int = 0


def fake_with_guild_on_shard_0() -> FakeDiscord:
    """A fake Discord whose test server is on shard 0 of 2 ((id >> 22) % 2: the id's
    millisecond, so a new fake a millisecond later lands on the other shard)."""
    for _ in range(200):
        fake = FakeDiscord(shard_count=SHARDS)
        if (fake.guild_id >> 22) % SHARDS == 0:
            return fake
        time.sleep(0.001)
    raise AssertionError("no fake Discord with its server on shard 0")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[ShardEnv]:
    tmp = tmp_path_factory.mktemp("shards-e2e")
    fake = fake_with_guild_on_shard_0()
    await fake.start()
    async with RestProxy(fake.base_url) as proxy:
        config = write_config(
            tmp / "config.toml",
            fake,
            tmp / "data",
            duration=1.0,
            extra='\n[http]\nenabled = true\nlisten_host = "127.0.0.1"\nlisten_port = 0\n',
        )
        # The whole bot goes through the proxy: api_base_url is the proxy's, prefix too.
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace(fake.base_url, proxy.base_url), encoding="utf-8")
        bot = BotProcess(
            config, tmp / "bot.log", ("--shard-ids", "0", "--shard-count", str(SHARDS))
        )
        await bot.start()
        state = ShardEnv(fake, bot, tmp, config, proxy=proxy)
        try:
            state.port = await bot.http_port()
            await fake.wait_for(lambda: 0 in fake.ready_shards, 60, what="shard 0 READY")
            await fake.wait_commands_synced(60)
            yield state
        finally:
            await bot.stop()
            await fake.stop()


async def test_the_process_identifies_as_its_shard_only(env: ShardEnv) -> None:
    identifies = [p["d"] for p in env.fake.gateway_received if p.get("op") == 2]
    assert [d["shard"] for d in identifies] == [[0, SHARDS]], env.why()
    await asyncio.sleep(1.0)  # no second IDENTIFY follows (the other process's shard)
    assert env.fake.ready_shards == {0}, env.why()
    async with httpx.AsyncClient() as client:
        health = (await client.get(f"http://127.0.0.1:{env.port}/healthz")).json()
    assert health["shards"] == {"0": "connected"}, health


async def test_an_interaction_on_its_shard_is_answered_through_the_proxy(env: ShardEnv) -> None:
    assert env.proxy is not None
    before = len(env.proxy.forwarded)
    where = await env.fake.add_channel("sharded")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a lighthouse on shard zero"}, channel_id=where
    )
    await acked(rec, 5)  # within Discord's 3 s
    reply = await rec.wait_response(20)
    job_id = job_id_in(reply)
    assert job_id, reply.content
    await result_of(env, job_id, where)
    # The callback, the job message and the result all went through the proxy's prefix.
    paths = [path for _, path in env.proxy.forwarded[before:]]
    assert f"/interactions/{rec.id}/{rec.token}/callback" in paths, paths
    assert paths.count(f"/channels/{where}/messages") >= 2, paths
    # Nothing reached the fake but through the proxy.
    assert len(env.fake.requests) == len(env.proxy.forwarded), env.why()
    assert not env.fake.violations, env.why()


async def test_bad_shard_options_are_refused_with_what_to_do(env: ShardEnv) -> None:
    broken = env.tmp / "broken.toml"
    broken.write_text(env.config.read_text(encoding="utf-8"), encoding="utf-8")
    code, output = await run_to_exit(broken, args=("--shard-ids", "0,2", "--shard-count", "2"))
    assert code == 2, output
    assert "shard ids must be 0 to 1 with --shard-count 2" in output, output
    code, output = await run_to_exit(broken, args=("--shard-ids", "1"))
    assert code == 2, output
    assert "--shard-ids needs --shard-count too" in output, output
