"""The bot's /metrics and /healthz over real HTTP: the real bot (`python -m bot run`) with
`[http] enabled` on a port the OS picks (port 0: the bot logs which), the fake Discord
and a midjourney-proxy fake.

A job through the proxy provider must show up in the store's figures, in the provider
request latency and in the Discord request counts; /healthz must say 200 while the
gateway and the store are fine and 503, with the reason, when either is not.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from bot.engine.store import is_postgres_url
from tests import stores
from tests.discord_helpers import BotProcess, write_config
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_discord_e2e import acked, result_of
from tests.test_discord_providers import toml_table

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

PROXY = "proxy"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class MetricsEnv:
    fake: FakeDiscord
    proxy: FakeMjProxy
    bot: BotProcess
    tmp: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.get(self.url + path)

    async def scrape(self) -> tuple[str, Samples]:
        answer = await self.get("/metrics")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain"), answer.headers
        samples: Samples = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return answer.text, samples

    async def health_until(self, status: int, timeout: float = 30.0) -> dict[str, Any]:
        """/healthz's body once it answers `status` (it follows the gateway's state)."""
        deadline = asyncio.get_running_loop().time() + timeout
        answer = await self.get("/healthz")
        while answer.status_code != status:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"/healthz stayed {answer.text}\n{self.why()}")
            await asyncio.sleep(0.2)
            answer = await self.get("/healthz")
        body: dict[str, Any] = answer.json()
        return body


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    return sum(v for (n, labels), v in samples.items() if n == name and match(dict(labels)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(
    tmp_path_factory: pytest.TempPathFactory, store_kind: str
) -> AsyncIterator[MetricsEnv]:
    tmp = tmp_path_factory.mktemp("metrics-e2e")
    async with FakeMjProxy(flavour="trueai", key="proxy-key") as proxy:
        proxy.step_seconds = 0.5
        extra = (
            '\n[http]\nenabled = true\nlisten_host = "127.0.0.1"\nlisten_port = 0\n\n'
            + toml_table(proxy.provider_config(PROXY, poll_interval=0.1))
        )
        fake = FakeDiscord()
        await fake.start()
        config = write_config(tmp / "config.toml", fake, tmp / "data", extra=extra)
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        try:
            port = await bot.http_port()
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield MetricsEnv(fake, proxy, bot, tmp, port)
        finally:
            await bot.stop()
            await fake.stop()


async def test_a_job_is_counted_with_its_provider_and_discord_requests(env: MetricsEnv) -> None:
    where = await env.fake.add_channel("metrics")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a lighthouse counted", "provider": PROXY}, channel_id=where
    )
    await acked(rec, 5)
    reply = await rec.wait_response(20)
    job_id = reply.content.split("job `", 1)[1][:10]
    await result_of(env, job_id, where)  # type: ignore[arg-type]

    text, samples = await env.scrape()
    assert value(samples, "atelier_jobs", status="succeeded", provider=PROXY) == 1, text
    assert value(samples, "atelier_jobs", status="running", provider=PROXY) == 0, text
    # The proxy was asked (submit, then status polls), each attempt timed.
    answered = value(
        samples,
        "atelier_provider_request_seconds_count",
        provider=PROXY,
        kind="api",
        outcome="answered",
    )
    proxy_api_requests = len([r for r in env.proxy.requests if "/mj/image/" not in r.path])
    assert answered >= 2 and answered <= proxy_api_requests, (answered, proxy_api_requests)
    assert value(samples, "atelier_spend_credits_total", provider=PROXY, kind="charge") == 1
    assert value(samples, "atelier_leases_held") == 0, text
    assert value(samples, "atelier_queue_waiting", provider=PROXY) == 0, text

    # Every message create the fake answered was counted, under its route template.
    def creates(s: Samples) -> float:
        return total(
            s,
            "atelier_discord_requests_total",
            lambda lb: lb["method"] == "POST" and lb["route"] == "/channels/{id}/messages",
        )

    deadline = asyncio.get_running_loop().time() + 10
    while creates(samples) != len(env.fake.requests_to(env.fake.ROUTE_MESSAGE_CREATE)):
        assert asyncio.get_running_loop().time() < deadline, (
            creates(samples),
            len(env.fake.requests_to(env.fake.ROUTE_MESSAGE_CREATE)),
        )
        await asyncio.sleep(0.3)
        text, samples = await env.scrape()
    assert creates(samples) >= 2  # the job's message and its result
    callback = total(
        samples,
        "atelier_discord_requests_total",
        lambda lb: lb["route"] == "/interactions/{id}/{token}/callback",
    )
    assert callback >= 1, text
    # Labels are templates: no interaction token or id reaches the metrics.
    assert rec.token not in text and str(where) not in text
    assert env.fake.token not in text and "proxy-key" not in text


async def test_provider_errors_are_counted_by_kind(env: MetricsEnv) -> None:
    _, before = await env.scrape()
    env.proxy.fail_http(503, times=1, match="/submit/imagine")
    where = await env.fake.add_channel("metrics-errors")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a busy proxy", "provider": PROXY}, channel_id=where
    )
    await acked(rec, 5)
    deadline = asyncio.get_running_loop().time() + 20

    def errors(s: Samples) -> float:
        return value(
            s, "atelier_provider_errors_total", provider=PROXY, kind="provider_unavailable"
        )

    text, after = await env.scrape()
    while errors(after) < errors(before) + 1:
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.3)
        text, after = await env.scrape()


async def test_discord_429s_are_counted_by_route_and_scope(env: MetricsEnv) -> None:
    def limited(s: Samples) -> float:
        return value(
            s,
            "atelier_discord_rate_limited_total",
            route="/channels/{id}/messages",
            scope="shared",
        )

    _, before = await env.scrape()
    answered_429 = env.fake.count_429
    env.fake.storm_429(env.fake.ROUTE_MESSAGE_CREATE, 2)
    where = await env.fake.add_channel("metrics-429")
    rec = await env.fake.send_slash_command("imagine", {"prompt": "a storm"}, channel_id=where)
    await acked(rec, 5)
    deadline = asyncio.get_running_loop().time() + 20
    text, after = await env.scrape()
    while limited(after) < limited(before) + 2:
        assert asyncio.get_running_loop().time() < deadline, text
        await asyncio.sleep(0.3)
        text, after = await env.scrape()
    assert limited(after) - limited(before) == env.fake.count_429 - answered_429 == 2, text


async def test_healthz_is_200_while_connected(env: MetricsEnv) -> None:
    body = await env.health_until(200)
    assert body == {
        "status": "ok",
        "gateway": "connected",
        "shards": {"0": "connected"},
        "store": "ok",
    }


async def test_healthz_is_503_while_the_gateway_is_down(env: MetricsEnv) -> None:
    await env.fake.take_gateway_down()
    try:
        body = await env.health_until(503)
        assert body["gateway"] == "disconnected" and body["store"] == "ok", body
        assert body["problems"] == ["Discord gateway shard(s) 0 disconnected"], body
    finally:
        env.fake.bring_gateway_up()
    # discord.py reconnects (backing off) and the bot is ready again.
    await env.health_until(200, timeout=60)


async def test_healthz_is_503_while_the_store_is_unreachable(env: MetricsEnv) -> None:
    database = env.tmp / "data" / "atelier.db"
    target = stores.target_for(database)
    if not is_postgres_url(target):
        moved = database.with_name("atelier.db.away")
        database.rename(moved)
        try:
            body = await env.health_until(503)
            assert body["problems"] == [f"the database file {database} is gone"], body
            assert body["store"] == "unreachable" and body["gateway"] == "connected", body
        finally:
            moved.rename(database)
    else:
        name = target.rsplit("/", 1)[1]
        admin = target.rsplit("/", 1)[0] + "/postgres"
        # The server refuses new connections to the bot's database and drops its own.
        refuse = f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"
        drop = f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        await pg_admin(admin, refuse, drop)
        try:
            body = await env.health_until(503)
            assert body["store"] == "unreachable" and body["gateway"] == "connected", body
            assert body["problems"][0].startswith("the store cannot be read ("), body
            assert "postgresql://" not in json.dumps(body), body  # no URL, no secret
        finally:
            await pg_admin(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
    await env.health_until(200)


async def pg_admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()
