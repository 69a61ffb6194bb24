"""Moderation before money: banned words (the operator's and a server's) refuse a prompt
before anything is sent or charged, on the wire against the mj-proxy fake; a provider's
own ban is shown with its word and not charged; every refusal is in the audit."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.config import parse_config
from bot.engine.audit import AuditKind
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.moderation import BANNED_REASON, WordList, checked_text
from bot.engine.service import Engine, RequestError
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy

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
            assert entry.outcome == "invalid request" and entry.detail == ""
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
