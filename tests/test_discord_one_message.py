"""One message per finished job, Midjourney's way, end to end: the real bot (`python -m bot
run`) against the fake Discord.

A finished job is shown by exactly one non-deleted message: its result, posted as a new
message that mentions the requester (a reply to the parent's result for a follow-up),
after which its progress message is deleted; or, for a failure, its progress message
edited to say why. Across a kill -9 of the bot, a running job's message keeps updating
and ends the same way, also when the job finished while the bot was down.

One bot process serves the module, with two sandbox providers: "sandbox" (2 s jobs) and
"slow" (long enough jobs for a kill -9 in the middle).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests import stores
from tests.discord_helpers import BotProcess, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage
from tests.test_discord_e2e import (
    EDIT_INTERVAL,
    Env,
    acked,
    channel,
    channel_posts,
    child_of,
    create_request_of,
    delivered,
    imagine,
    press,
    result_of,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

SLOW = "slow"
SLOW_SECONDS = 14.0
SLOW_PROVIDER = """
[[providers]]
name = "{name}"
kind = "sandbox"
duration = {duration}
size = 256
poll_interval = 0.3
state_dir = "{state}"
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("discord-one-message")
    fake = FakeDiscord()
    await fake.start()
    extra = SLOW_PROVIDER.format(name=SLOW, duration=SLOW_SECONDS, state=tmp / "data" / "slow")
    config = write_config(
        tmp / "config.toml", fake, tmp / "data", edit_interval=EDIT_INTERVAL, extra=extra
    )
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    state = Env(fake, bot, tmp, config)
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield state
    finally:
        await bot.stop()
        await fake.stop()


# ------------------------------------------------------------------ helpers


def about(env: Env, job_id: str, channel_id: int) -> list[FakeMessage]:
    """The non-deleted channel messages that show this job."""
    return [m for m in channel_posts(env, channel_id) if job_id_in(m) == job_id]


def ever_about(env: Env, job_id: str, channel_id: int) -> list[FakeMessage]:
    """Every channel message the bot ever posted about this job, deleted ones too (not
    the private interaction replies)."""
    messages = env.fake.channel_messages(channel_id, include_deleted=True)
    posts = [m for m in messages if m.webhook_id is None and not m.ephemeral]
    return [m for m in posts if job_id_in(m) == job_id]


async def settled(env: Env, job_id: str, job_msg: FakeMessage) -> None:
    """Wait until the job's progress message is gone and its outcome is recorded."""
    fake = env.fake
    await fake.wait_for(lambda: fake.get_message(job_msg.id).deleted, 15, what="the delete")
    await fake.wait_for(lambda: delivered(env, job_id), 15, what="the store to settle")


def stored_message_id(env: Env, job_id: str) -> str | None:
    data = stores.job_data(env.tmp / "data" / "atelier.db", job_id)
    return str(data["message_id"]) if data and data.get("message_id") else None


async def restart(env: Env, *, down_for: float = 0.0) -> float:
    """kill -9 the bot, wait `down_for` seconds, start it again; returns when it started."""
    fake = env.fake
    await env.bot.kill()
    await asyncio.sleep(down_for)
    identified = fake.identify_count
    started = time.monotonic()
    await env.bot.start()
    await fake.wait_for(lambda: fake.identify_count > identified, 60, what="the bot to return")
    return started


# ------------------------------------------------------------------ tests


async def test_finished_imagine_leaves_only_its_result(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "imagine")
    _, job_id, job_msg = await imagine(env, where, "a lone tree on a hill")
    result = await result_of(env, job_id, where)
    await settled(env, job_id, job_msg)
    # One message shows the job: its result, a new message mentioning the requester.
    assert [m.id for m in about(env, job_id, where)] == [result.id], env.why()
    assert result.id != job_msg.id and not result.message_reference
    assert f"<@{fake.user_id}>" in result.content
    mentions = create_request_of(env, result).get("allowed_mentions")
    assert isinstance(mentions, dict) and [int(u) for u in mentions["users"]] == [fake.user_id]
    # The progress message was deleted by the bot (DELETE, once), never edited to a stub.
    deletes = [
        r for r in fake.requests_to(fake.ROUTE_MESSAGE_DELETE) if r.path.endswith(f"/{job_msg.id}")
    ]
    assert [r.status for r in deletes] == [204]
    assert not any("Finished" in str(e.body.get("content", "")) for e in job_msg.edits)
    # The store points at the result (for /jobs and a restart).
    assert stored_message_id(env, job_id) == str(result.id)
    env.clean()


async def test_finished_u2_leaves_only_its_result_a_reply_to_the_grid(env: Env) -> None:
    where = await channel(env, "u2")
    _, grid_id, grid_msg = await imagine(env, where, "a grid for an upscale")
    grid = await result_of(env, grid_id, where)
    await settled(env, grid_id, grid_msg)
    await acked(await press(env, grid, "U2"), 6)
    child_id, child_msg = await child_of(env, grid, "Image #2")
    upscale = await result_of(env, child_id, where)
    if child_msg.id != upscale.id:  # its progress message was posted: it goes
        await settled(env, child_id, child_msg)
    else:
        await env.fake.wait_for(lambda: delivered(env, child_id), 15, what="the store")
    assert [m.id for m in about(env, child_id, where)] == [upscale.id], env.why()
    assert (upscale.message_reference or {}).get("message_id") == str(grid.id)
    assert f"<@{env.fake.user_id}>" in upscale.content
    # The grid is still there, untouched, beside it: one message per job.
    assert [m.id for m in about(env, grid_id, where)] == [grid.id]
    env.clean()


async def test_refused_job_leaves_one_message_saying_why(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "failure")
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a forbidden castle"}, channel_id=where
    )
    await acked(rec, 5)
    match = re.search(r"job `([0-9a-z]{10})`", (await rec.wait_response(20)).content, re.I)
    assert match, env.why()
    job_id = match.group(1)

    def failed() -> FakeMessage | None:
        return next((m for m in about(env, job_id, where) if "Failed" in m.content), None)

    job_msg = await fake.wait_for(failed, 30, what="the failure message")
    await fake.wait_for(lambda: delivered(env, job_id), 15, what="the store to settle")
    shown = about(env, job_id, where)
    # Refused by the provider at once: its one message says why (nothing else was posted).
    assert [m.id for m in shown] == [job_msg.id], env.why()
    assert "forbidden" in shown[0].content.lower() and not shown[0].components
    assert len(ever_about(env, job_id, where)) == 1
    env.clean()


async def test_cancelled_running_job_leaves_its_progress_message_saying_why(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "cancelled")
    _, job_id, job_msg = await imagine(env, where, "a job to stop", provider=SLOW)
    await fake.wait_for(lambda: "%" in fake.get_message(job_msg.id).content, 10, what="progress")
    await acked(await press(env, fake.get_message(job_msg.id), "Cancel"), 6)
    await fake.wait_for(lambda: delivered(env, job_id), 15, what="the store to settle")
    # The progress message was edited to say why; no second message, nothing deleted.
    shown = about(env, job_id, where)
    assert [m.id for m in shown] == [job_msg.id], env.why()
    assert "Cancelled" in shown[0].content and not shown[0].components
    assert len(ever_about(env, job_id, where)) == 1 and shown[0].edit_count >= 2
    assert not [r for r in fake.requests_to(fake.ROUTE_MESSAGE_DELETE) if str(job_msg.id) in r.path]
    env.clean()


async def test_job_resumed_after_kill_9_finishes_its_own_message(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "kill-9")
    _, job_id, job_msg = await imagine(env, where, "a job across a kill", provider=SLOW)
    await fake.wait_for(
        lambda: stored_message_id(env, job_id) == str(job_msg.id), 10, what="the stored message"
    )
    await fake.wait_for(lambda: "%" in fake.get_message(job_msg.id).content, 10, what="progress")
    back_at = await restart(env)
    # Its message keeps updating after the restart: progress edits by the new process...
    await fake.wait_for(
        lambda: any(e.time > back_at for e in fake.get_message(job_msg.id).edits),
        SLOW_SECONDS,
        what="a progress edit after the restart",
    )
    # ...and it ends in a final state: the result posted, the progress message deleted.
    result = await result_of(env, job_id, where)
    await settled(env, job_id, job_msg)
    assert [m.id for m in about(env, job_id, where)] == [result.id], env.why()
    assert "Traceback" not in env.bot.log_text(200_000), env.bot.log_text()
    env.clean()


async def test_job_that_finished_while_the_bot_was_down_ends_in_one_message(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "down")
    _, job_id, job_msg = await imagine(env, where, "a job done while nobody watched")
    await fake.wait_for(
        lambda: stored_message_id(env, job_id) == str(job_msg.id), 10, what="the stored message"
    )
    await restart(env, down_for=3.0)  # the 2 s job is done at the provider meanwhile
    result = await result_of(env, job_id, where)
    await settled(env, job_id, job_msg)
    assert [m.id for m in about(env, job_id, where)] == [result.id], env.why()
    # Nothing anywhere is left showing progress for a finished job.
    for message in channel_posts(env, where):
        assert "%" not in message.content.split("\n")[-1], message.content
    env.clean()


async def test_kill_9_between_result_and_delete_still_ends_in_one_message(env: Env) -> None:
    """The undelivered path (bot/app.py setup_hook): the result is posted, the delete of
    the progress message is held off by a long 429, and the bot is killed in between.
    The job is not marked delivered yet, so the new process shows it again: its post
    carries the same nonce (Discord returns the message already there, no second
    result) and the progress message is deleted."""
    fake = env.fake
    where = await channel(env, "undelivered")
    _, job_id, job_msg = await imagine(env, where, "a job killed at the last step")
    fake.storm_429(fake.ROUTE_MESSAGE_DELETE, 1, retry_after=45.0)  # > discord.py's 30 s wait
    result = await result_of(env, job_id, where)
    deletes = f"/channels/{where}/messages/{job_msg.id}"
    await fake.wait_for(
        lambda: any(r.path == deletes for r in fake.responses_429), 15, what="the held delete"
    )
    assert not fake.get_message(job_msg.id).deleted and not delivered(env, job_id)
    repeats = fake.nonce_repeats
    await restart(env)
    await settled(env, job_id, job_msg)
    assert [m.id for m in about(env, job_id, where)] == [result.id], env.why()
    assert [m.id for m in ever_about(env, job_id, where)] == [job_msg.id, result.id]
    assert fake.nonce_repeats == repeats + 1  # shown again: the same message came back
    assert stored_message_id(env, job_id) == str(result.id)
    env.clean()


async def test_no_violations(env: Env) -> None:
    assert env.fake.violations == [], env.why()
