"""Moderation before money: banned words (the operator's and a server's) refuse a prompt
before anything is sent or charged, on the wire against the mj-proxy fake; a provider's
own ban is shown with its word and not charged; every refusal is in the audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.config import load_config, parse_config
from bot.engine.audit import AuditEntry, AuditKind
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.moderation import BANNED_REASON, WordList, checked_text
from bot.engine.service import Engine, RequestError
from bot.ui.audit_channel import AuditChannel, audit_line
from bot.ui.buttons import build_view
from bot.ui.discord_sender import DiscordSender
from bot.ui.pacer import Pacer
from bot.vocab import Action
from tests.discord_helpers import BotProcess, write_config
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.maas_fake import FakeMaasMj
from tests.fakes.mj_proxy_fake import FakeMjProxy

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

BANNED = ["gore", "Blood Bath", "暴力", "c++", "ass"]


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("a class act in a grassy pass", None),  # "ass" inside words is no hit
        ("what an ass.", "ass"),
        ("GORE everywhere", "gore"),  # case does not matter
        ("Gore", "gore"),
        ("ｇｏｒｅ", "gore"),  # full-width letters are the same word (NFKC)
        ("gorey", None),
        ("a blood \t  bath at dawn", "Blood Bath"),  # a phrase, across whitespace
        ("bloodbath", None),
        ("很暴力的画面", "暴力"),  # no spaces in Chinese: a substring matches
        ("written in c++ style", "c++"),  # a word ending in symbols still matches
        ("a cat --no gore", None),  # --no asks to leave it out: allowed
        ("a cat --ar 3:2 gore", "gore"),
    ],
)
def test_word_rules(text: str, hit: str | None) -> None:
    assert WordList(BANNED).find(checked_text(text)) == hit


def test_blank_entries_are_ignored() -> None:
    assert WordList(["", "   "]).entries == []


def engine_on(fake: FakeMjProxy, tmp_path: Path, **moderation: Any) -> Engine:
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
            "moderation": moderation,
            "providers": [fake.provider_config()],
        }
    )
    return Engine(config)


async def until_done(engine: Engine, job_id: str) -> Job:
    for _ in range(500):
        job = await engine.get(job_id)
        if job is not None and job.finished:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


async def ledger_net(engine: Engine) -> float:
    async with engine.store.db.execute("SELECT COALESCE(SUM(credits), 0) FROM ledger") as cur:
        row = await cur.fetchone()
    return float(row[0]) if row else 0.0


async def refused(engine: Engine, request: JobRequest) -> RequestError:
    with pytest.raises(RequestError) as caught:
        await engine.submit(request)
    return caught.value


async def test_a_globally_banned_word_is_named_and_nothing_is_sent(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        engine = engine_on(fake, tmp_path, banned_words=["gore"])
        await engine.start()
        try:
            request = JobRequest(
                Action.IMAGINE, prompt="a GORE scene --ar 3:2", user_id="u1", guild_id="g1",
                channel_id="c1",
            )  # fmt: skip
            err = await refused(engine, request)
            assert "'gore'" in str(err) and "Nothing was sent or charged" in str(err)
            assert err.reason == BANNED_REASON
            assert fake.count("/submit/") == 0
            assert await engine.recent() == [] and await ledger_net(engine) == 0
            [entry] = await engine.audit.entries(0)
            assert entry.kind is AuditKind.REFUSAL and entry.outcome == "banned word"
            assert (entry.detail, entry.user_id, entry.guild_id, entry.channel_id) == (
                "gore", "u1", "g1", "c1",
            )  # fmt: skip
            assert entry.action == "imagine"
            # The same word inside another, or in --no, goes through.
            job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a gorey fox --no gore"))
            assert job.status is not JobStatus.FAILED
            assert fake.count("/submit/imagine") == 1
        finally:
            await engine.stop()


async def test_a_servers_banned_word_applies_there_only(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        engine = engine_on(fake, tmp_path)
        await engine.start()
        try:
            settings = await engine.settings.get("g1")
            assert settings is not None
            settings.banned_words = ["Dragon"]
            await engine.settings.save(settings, by="admin")
            err = await refused(
                engine, JobRequest(Action.IMAGINE, prompt="a red dragon", guild_id="g1")
            )
            assert "'Dragon'" in str(err) and "on this server" in str(err)
            assert fake.count("/submit/") == 0 and await ledger_net(engine) == 0
            elsewhere = await engine.submit(
                JobRequest(Action.IMAGINE, prompt="a red dragon", guild_id="g2")
            )
            assert fake.count("/submit/imagine") == 1
            await until_done(engine, elsewhere.id)
        finally:
            await engine.stop()


async def test_follow_up_prompts_are_checked_too(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        engine = engine_on(fake, tmp_path)
        await engine.start()
        try:
            grid = await until_done(
                engine,
                (await engine.submit(JobRequest(Action.IMAGINE, prompt="a fox", guild_id="g1"))).id,
            )
            assert grid.status is JobStatus.SUCCEEDED
            settings = await engine.settings.get("g1")
            assert settings is not None
            settings.banned_words = ["fox", "wolf"]
            await engine.settings.save(settings, by="admin")
            sent = fake.count("/submit/")
            # A remix prompt of its own, and a re-roll that sends the parent's prompt again.
            remix = JobRequest(
                Action.VARIATION, prompt="a wolf", parent_id=grid.id, index=1, guild_id="g1"
            )
            assert "'wolf'" in str(await refused(engine, remix))
            reroll = JobRequest(Action.REROLL, parent_id=grid.id, guild_id="g1")
            assert "'fox'" in str(await refused(engine, reroll))
            assert fake.count("/submit/") == sent
            refusals = [e for e in await engine.audit.entries(0) if e.kind is AuditKind.REFUSAL]
            assert [(e.detail, e.job_id) for e in refusals] == [
                ("wolf", grid.id),
                ("fox", grid.id),
            ]
        finally:
            await engine.stop()


async def test_every_refusal_is_audited_with_its_reason(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        engine = engine_on(fake, tmp_path)
        await engine.start()
        try:
            await refused(engine, JobRequest(Action.IMAGINE, prompt="  ", user_id="u1"))
            [entry] = await engine.audit.entries(0)
            assert entry.kind is AuditKind.REFUSAL and entry.user_id == "u1"
            assert entry.outcome == "invalid request"
            assert entry.detail == "The prompt is empty; describe what you want to see."
        finally:
            await engine.stop()


async def test_a_providers_own_ban_names_the_word_and_costs_nothing(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="relay") as fake:  # the fake bans "forbidden"
        engine = engine_on(fake, tmp_path)
        await engine.start()
        try:
            job = await engine.submit(
                JobRequest(Action.IMAGINE, prompt="a forbidden fox", user_id="u1")
            )
            job = await until_done(engine, job.id)
            assert job.status is JobStatus.FAILED
            assert job.failure is not None and "banned word: 'forbidden'" in job.failure
            assert fake.count("/submit/imagine") == 1
            for _ in range(50):  # a refund, if any, is written off the event path
                if await ledger_net(engine) == 0:
                    break
                await asyncio.sleep(0.02)
            assert await ledger_net(engine) == 0
        finally:
            await engine.stop()


# ------------------------------------------------------------------ the audit channel


async def test_a_refusal_reaches_the_audit_channel_through_the_sender(tmp_path: Path) -> None:
    """Engine -> audit -> AuditChannel -> the real DiscordSender -> the fake Discord's REST
    API (no gateway needed to post a message)."""
    fake = FakeDiscord()
    await fake.start()
    base, discord.http.Route.BASE = discord.http.Route.BASE, fake.base_url.rstrip("/")
    client = discord.Client(intents=discord.Intents.none())
    engine = make_sandbox_engine(tmp_path, banned_words=["gore"])
    await engine.start()
    try:
        await client.login(fake.token)
        audit_channel, where = await fake.add_channel("mod-log"), await fake.add_channel("art")
        settings = await engine.settings.get(str(fake.guild_id))
        assert settings is not None
        settings.audit_channel_id = str(audit_channel)
        await engine.settings.save(settings, by="admin")
        poster = AuditChannel(engine.settings, DiscordSender(client, build_view), Pacer(4))
        engine.audit.subscribe(poster.on_entry)
        request = JobRequest(
            Action.IMAGINE, prompt="a GORE fest", user_id=str(fake.user_id),
            guild_id=str(fake.guild_id), channel_id=str(where),
        )  # fmt: skip
        assert "'gore'" in str(await refused(engine, request))
        await asyncio.wait_for(poster.drained(), 10)
        [line] = fake.channel_messages(audit_channel)
        assert f"<@{fake.user_id}>" in line.content and f"<#{where}>" in line.content
        assert "imagine" in line.content and "banned word (||gore||)" in line.content
        assert fake.channel_messages(where) == [] and not fake.violations, fake.summary()
        await poster.close()
    finally:
        await engine.stop()
        await client.close()
        discord.http.Route.BASE = base
        await fake.stop()


def make_sandbox_engine(tmp_path: Path, **moderation: Any) -> Engine:
    config = parse_config(
        {
            "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
            "moderation": moderation,
            "providers": [{"name": "sandbox", "kind": "sandbox", "state_dir": str(tmp_path)}],
        }
    )
    return Engine(config)


def test_audit_lines_say_who_where_and_what() -> None:
    refusal = AuditEntry(
        1.0, AuditKind.REFUSAL, "g", "c1", "u1", "j1", "mj", "variation",
        outcome="mode not allowed", detail="--turbo @everyone",
    )  # fmt: skip
    line = audit_line(refusal)
    assert line.startswith("🚫 Refused <@u1> in <#c1>: variation on mj (job `j1`)")
    assert "mode not allowed" in line and "@everyone" not in line  # made inert
    change = AuditEntry(2.0, AuditKind.SETTINGS, "g", None, "u2", detail="banned_words")
    assert audit_line(change) == "⚙️ <@u2> changed the server settings: banned\\_words"


async def test_maas_bans_are_shown_and_cost_nothing(tmp_path: Path) -> None:
    """MaaS-MJ gives no word: its 403 (sensitive prompt) and a job that ends TextReject
    fail with the vendor's reason, and the ledger nets to zero."""
    fake = FakeMaasMj(key="k", endpoint="ep")
    async with fake:
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [
                    {"name": "cw", "kind": "maas-mj", "base_url": fake.base_url,
                     "endpoint": "ep", "api_key": "k", "poll_interval": 0.05},
                ],
            }
        )  # fmt: skip
        engine = Engine(config)
        await engine.start()
        try:
            banned = await engine.submit(
                JobRequest(Action.IMAGINE, prompt="a forbidden cat", user_id="u1")
            )
            banned = await until_done(engine, banned.id)
            assert banned.status is JobStatus.FAILED
            assert "sensitive" in (banned.failure or "").lower()
            fake.fail_comment = "TextReject"
            rejected = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat", user_id="u1"))
            rejected = await until_done(engine, rejected.id)
            assert rejected.status is JobStatus.FAILED
            assert "content review refused the prompt" in (rejected.failure or "")
            for _ in range(50):  # refunds are written off the event path
                if await ledger_net(engine) == 0:
                    break
                await asyncio.sleep(0.02)
            assert await ledger_net(engine) == 0
        finally:
            await engine.stop()
        assert fake.violations == []


# ------------------------------------------------------------------ end to end: the real bot


async def test_a_refusal_is_private_and_reaches_the_audit_channel(tmp_path: Path) -> None:
    """`python -m bot run` against the fake Discord: /imagine with a banned word gets a
    private refusal naming it, nothing in the channel, and a line in the audit channel."""
    fake = FakeDiscord()
    await fake.start()
    bot: BotProcess | None = None
    try:
        audit_channel = await fake.add_channel("mod-log")
        where = await fake.add_channel("art")
        config = write_config(
            tmp_path / "config.toml",
            fake,
            tmp_path / "data",
            duration=0.5,
            extra='\n[moderation]\nbanned_words = ["gore"]\n',
        )
        engine = Engine(load_config(str(config)))
        await engine.start(run=False)
        settings = await engine.settings.get(str(fake.guild_id))
        assert settings is not None
        settings.audit_channel_id = str(audit_channel)
        await engine.settings.save(settings, by="admin")
        await engine.stop()
        bot = BotProcess(config, tmp_path / "bot.log")
        await bot.start()
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        rec = await fake.send_slash_command("imagine", {"prompt": "a GORE fest"}, channel_id=where)
        reply = await rec.wait_response(20)
        assert reply.ephemeral and "'gore'" in reply.content, bot.log_text()
        line = await fake.wait_for(
            lambda: next(iter(fake.channel_messages(audit_channel)), None),
            20,
            what="the audit channel's line",
        )
        assert f"<@{fake.user_id}>" in line.content and f"<#{where}>" in line.content
        assert "imagine" in line.content and "banned word (||gore||)" in line.content
        await asyncio.sleep(0.5)
        assert [
            m for m in fake.channel_messages(where) if not m.ephemeral and not m.webhook_id
        ] == []
        assert not fake.violations, fake.summary()
    finally:
        if bot is not None:
            await bot.stop()
        await fake.stop()
