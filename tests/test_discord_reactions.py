"""End to end: ✉️ and ❌ on job messages (the real bot against the fake Discord).

The fake dispatches MESSAGE_REACTION_ADD only to a session that asked for the guild
reactions intent, so every test here also proves the bot asks for it. "Does nothing"
is checked by giving the bot time to act and then finding no request that would act.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bot.engine.models import Action, Job, JobStatus
from bot.ui.reactions import dm_text
from tests.discord_helpers import BotProcess, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage, RecordedRequest

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

MAIL, CROSS = "✉️", "❌"
RESULT_TIMEOUT = 40.0
SETTLE = 1.5  # seconds the bot is given to (not) act on a reaction


@dataclass
class Env:
    fake: FakeDiscord
    bot: BotProcess

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("discord-reactions")
    fake = FakeDiscord()
    await fake.start()
    config = write_config(tmp / "config.toml", fake, tmp / "data", duration=3.0)
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield Env(fake, bot)
    finally:
        await bot.stop()
        await fake.stop()


async def start_job(env: Env, prompt: str) -> tuple[int, str, FakeMessage]:
    """/imagine in a channel of its own: (channel, job id, the job's message)."""
    fake = env.fake
    where = await fake.add_channel(re.sub(r"[^a-z]+", "-", prompt.lower())[:20])
    rec = await fake.send_slash_command("imagine", {"prompt": prompt}, channel_id=where)
    reply = await rec.wait_response(20)
    match = re.search(r"job `([0-9a-z]{10})`", reply.content)
    assert match, f"{reply.content}\n{env.why()}"
    job_id = match.group(1)
    message = await fake.wait_for(
        lambda: next((m for m in posts(env, where) if job_id_in(m) == job_id), None),
        20,
        what=f"the message of job {job_id}",
    )
    return where, job_id, message


def posts(env: Env, channel_id: int) -> list[FakeMessage]:
    return [
        m for m in env.fake.channel_messages(channel_id) if m.webhook_id is None and not m.ephemeral
    ]


async def finished_job(env: Env, prompt: str) -> tuple[str, FakeMessage]:
    where, job_id, _ = await start_job(env, prompt)

    def result() -> FakeMessage | None:
        return next((m for m in posts(env, where) if job_id_in(m) == job_id and is_result(m)), None)

    try:
        message = await env.fake.wait_for(result, RESULT_TIMEOUT, what=f"the result of {job_id}")
    except TimeoutError:
        raise AssertionError(f"no result for {job_id}\n{env.why()}") from None
    await asyncio.sleep(0.3)  # the bot reads Discord's answer to its post (the new id)
    return job_id, message


async def dm_to(env: Env, user_id: int) -> FakeMessage:
    """The first DM the bot sent this member (waited for)."""
    try:
        return await env.fake.wait_for(
            lambda: next(iter(env.fake.dm_messages(user_id)), None), 20, what="a DM"
        )
    except TimeoutError:
        raise AssertionError(f"no DM to {user_id}\n{env.why()}") from None


def deletes_of(env: Env, message: FakeMessage) -> list[RecordedRequest]:
    return [
        r
        for r in env.fake.requests_to(env.fake.ROUTE_MESSAGE_DELETE)
        if r.path.endswith(f"/messages/{message.id}")
    ]


async def test_mail_sends_a_dm_with_images_prompt_job_and_seed(env: Env) -> None:
    fake = env.fake
    job_id, result = await finished_job(env, "a quiet harbour at dawn --seed 1234")
    asker = fake.add_user("admirer")  # anyone who sees the message may ask
    await fake.react(result.id, MAIL, user_id=asker)
    dm = await dm_to(env, asker)
    assert "a quiet harbour at dawn" in dm.content, dm.content
    assert job_id in dm.content and "1234" in dm.content, dm.content
    assert dm.attachments and all(job_id in a.filename for a in dm.attachments)
    assert all(a.size <= 10 * 1024 * 1024 for a in dm.attachments)

    # A storm of the same reaction sends no second DM within the minute.
    for _ in range(3):
        await fake.react(result.id, MAIL, user_id=asker)
    await asyncio.sleep(SETTLE)
    assert len(fake.dm_messages(asker)) == 1, env.why()
    assert not fake.get_message(result.id).deleted
    assert not fake.violations, env.why()


async def test_cross_by_someone_else_does_nothing_then_by_the_requester_deletes(
    env: Env,
) -> None:
    fake = env.fake
    _, result = await finished_job(env, "a red kite over the hills")
    stranger = fake.add_user("stranger")
    await fake.react(result.id, CROSS, user_id=stranger)
    await asyncio.sleep(SETTLE)
    assert not fake.get_message(result.id).deleted and not deletes_of(env, result), env.why()

    await fake.react(result.id, CROSS)  # the requester (the tester started the job)
    await fake.wait_for(lambda: fake.get_message(result.id).deleted, 10, what="the deletion")
    assert len(deletes_of(env, result)) == 1
    assert not fake.violations, env.why()


async def test_cross_on_a_running_job_cancels_it(env: Env) -> None:
    fake = env.fake
    _, job_id, message = await start_job(env, "a slow tide coming in")
    await asyncio.sleep(0.3)  # the bot reads Discord's answer to its post (the new id)
    await fake.react(message.id, CROSS)
    await fake.wait_for(
        lambda: "Cancelled" in fake.get_message(message.id).content, 15, what="cancelled"
    )
    assert not any(job_id_in(m) == job_id and is_result(m) for m in fake.all_messages())
    assert not fake.violations, env.why()


async def test_reactions_elsewhere_and_the_bots_own_are_ignored(env: Env) -> None:
    fake = env.fake
    where = await fake.add_channel("chatter")
    chatter = await fake.post_user_message("look at this", channel_id=where)
    _, result = await finished_job(env, "a lantern in the fog")
    before = len(fake.requests)
    await fake.react(chatter.id, MAIL)
    await fake.react(chatter.id, CROSS)
    await fake.react(result.id, CROSS, user_id=int(fake.bot_user["id"]))
    await fake.react(result.id, "👍")
    await asyncio.sleep(SETTLE)
    # No DM opened, nothing of theirs deleted (the presenter may still be tidying up).
    targets = (f"/messages/{chatter.id}", f"/messages/{result.id}")
    acted = [
        r
        for r in fake.requests[before:]
        if r.path.endswith("/users/@me/channels")
        or (r.method == "DELETE" and r.path.endswith(targets))
    ]
    assert not acted, env.why()
    assert not fake.dm_messages(fake.user_id) and not fake.get_message(result.id).deleted


async def test_closed_dms_get_nothing_and_the_bot_goes_on(env: Env) -> None:
    fake = env.fake
    job_id, result = await finished_job(env, "a closed door")
    shy = fake.add_user("shy")
    fake.close_dms(shy)
    await fake.react(result.id, MAIL, user_id=shy)
    refused = await fake.wait_for_request(
        lambda r: r.method == "POST" and r.error_code == 50007, 20
    )
    assert refused.status == 403
    assert not fake.dm_messages(shy)
    # Still serving: the next member's ✉️ is answered.
    other = fake.add_user("open")
    await fake.react(result.id, MAIL, user_id=other)
    dm = await dm_to(env, other)
    assert job_id in dm.content
    assert env.bot.running and "Traceback" not in env.bot.log_text(), env.why()


async def test_dm_text_stays_under_discords_limit_and_says_the_seed() -> None:
    job = Job(
        id="abcdefghjk",
        action=Action.IMAGINE,
        provider="sandbox",
        status=JobStatus.SUCCEEDED,
        prompt="*a* " * 1500,
        seed="42",
    )
    text = dm_text(job, "https://discord.com/channels/1/2/3", ["x" * 500] * 5)
    assert len(text) <= 2000 and "abcdefghjk" in text and "--seed 42" in text
    assert "\\*a\\*" in text  # the prompt's markdown is shown, not applied
    running = Job(id="abcdefghjm", action=Action.IMAGINE, provider="sandbox", seed="0")
    assert "seed" not in dm_text(running, "link").lower() and "waiting" in dm_text(running, "l")


async def test_mail_on_a_show_repost_sends_the_job(env: Env) -> None:
    fake = env.fake
    job_id, _ = await finished_job(env, "a harbour shown twice")
    elsewhere = await fake.add_channel("shown-again")
    rec = await fake.send_slash_command("show", {"job_id": job_id}, channel_id=elsewhere)
    assert (await rec.wait_response(20)).content.startswith("✅"), env.why()
    repost = await fake.wait_for(
        lambda: next((m for m in posts(env, elsewhere) if job_id_in(m) == job_id), None),
        20,
        what="the repost",
    )
    await asyncio.sleep(0.3)  # the bot reads Discord's answer to its post (the new id)
    asker = fake.add_user("repost-reader")
    await fake.react(repost.id, MAIL, user_id=asker)
    dm = await dm_to(env, asker)
    assert job_id in dm.content and dm.attachments
    assert not fake.violations, env.why()
