"""End to end: /show and /info, the real bot (`python -m bot run`) against the fake Discord.

One bot process (sandbox provider, 4 s jobs, at most one job at the provider at once, so
that a second job waits in Atelier's queue) serves two guilds. /show reposts a job with
its images and buttons that work (U1 pressed on the repost by another member starts a
job); the refusals; /info lists the member's running and waiting jobs with their places.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, is_result, job_id_in, rows, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage
from tests.test_discord_e2e import (
    GRID_ROWS,
    RESULT_TIMEOUT,
    Env,
    acked,
    channel,
    channel_posts,
    child_of,
    imagine,
    result_of,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]


@dataclass
class ShowEnv(Env):
    other_guild: int = 0


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[ShowEnv]:
    tmp = tmp_path_factory.mktemp("discord-show")
    fake = FakeDiscord()
    await fake.start()
    other = await fake.add_guild("Elsewhere")
    config = write_config(
        tmp / "config.toml", fake, tmp / "data", duration=4.0, extra="max_concurrent = 1"
    )
    text = config.read_text(encoding="utf-8").replace(
        f"guild_ids = [{fake.guild_id}]", f"guild_ids = [{fake.guild_id}, {other}]", 1
    )
    config.write_text(text, encoding="utf-8")
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    state = ShowEnv(fake, bot, tmp, config, other_guild=other)
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield state
    finally:
        await bot.stop()
        await fake.stop()


async def show(env: Env, job_id: str, channel_id: int, user_id: int | None = None) -> str:
    """/show JOB_ID; the private answer."""
    rec = await env.fake.send_slash_command(
        "show", {"job_id": job_id}, channel_id=channel_id, user_id=user_id
    )
    await acked(rec, 5)
    reply = await rec.wait_response(20)
    assert reply.ephemeral, reply
    return reply.content


async def repost_of(env: Env, job_id: str, channel_id: int) -> FakeMessage:
    def find() -> FakeMessage | None:
        return next(
            (
                m
                for m in channel_posts(env, channel_id)
                if job_id_in(m) == job_id and is_result(m) and "Shown again" in m.content
            ),
            None,
        )

    return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the repost of {job_id}")


async def test_show_reposts_with_working_buttons(env: ShowEnv) -> None:
    fake = env.fake
    home = await channel(env, "show-home")
    _, job_id, _ = await imagine(env, home, "a lighthouse at dusk")
    original = await result_of(env, job_id, home)
    elsewhere = await channel(env, "show-elsewhere")

    said = await show(env, job_id, elsewhere)
    assert said.startswith("✅") and job_id in said, f"{said}\n{env.why()}"
    repost = await repost_of(env, job_id, elsewhere)
    assert rows(repost) == rows(original) == GRID_ROWS
    assert len(repost.attachments) == len(original.attachments) >= 1
    assert repost.attachments[0].size > 0

    # Another member presses U1 on the repost, in the repost's channel: a job starts.
    member = fake.add_user("show-presser")
    u1 = next(b["custom_id"] for b in repost.buttons() if b.get("label") == "U1")
    rec = await fake.click_button(repost.id, u1, user_id=member)
    await acked(rec, 6)
    child_id, _ = await child_of(env, repost, "Image #1")
    assert child_id != job_id
    await result_of(env, child_id, elsewhere)
    env.clean()


async def test_show_refusals(env: ShowEnv) -> None:
    fake = env.fake
    home = await channel(env, "show-refusals")
    _, job_id, _ = await imagine(env, home, "a quiet harbour")
    await result_of(env, job_id, home)

    assert "There is no job `zzzzzzzzzz`" in await show(env, "zzzzzzzzzz", home)
    # Another server's job: refused, and nothing posted here.
    abroad = next(iter(fake.guilds[env.other_guild].channels))
    _, foreign_id, _ = await imagine(env, abroad, "a foreign shore")
    await result_of(env, foreign_id, abroad)
    said = await show(env, foreign_id, home)
    assert f"There is no job `{foreign_id}` in this server" in said, said
    assert not any(job_id_in(m) == foreign_id for m in channel_posts(env, home))
    # Someone else's job, without Manage Server: refused; the guild owner may show it.
    member = fake.add_user("show-stranger")
    said = await show(env, job_id, home, user_id=member)
    assert "only they, or a server manager" in said, said
    owner = int(fake.owner["id"])
    assert (await show(env, job_id, home, user_id=owner)).startswith("✅")
    env.clean()


async def test_show_of_a_job_without_results_says_its_status(env: ShowEnv) -> None:
    home = await channel(env, "show-running")
    _, job_id, _ = await imagine(env, home, "a job still running")
    said = await show(env, job_id, home)
    assert "has no results yet" in said, said
    await result_of(env, job_id, home)
    env.clean()


async def test_info_lists_running_and_waiting_jobs_with_their_place(env: ShowEnv) -> None:
    fake = env.fake
    home = await channel(env, "info")
    recs = [
        await fake.send_slash_command("imagine", {"prompt": f"queued {n}"}, channel_id=home)
        for n in range(3)
    ]
    ids = []
    for rec in recs:
        match = re.search(r"job `([0-9a-z]{10})`", (await rec.wait_response(20)).content)
        assert match, env.why()
        ids.append(match.group(1))
    rec = await fake.send_slash_command("info", channel_id=home)
    await acked(rec, 5)
    said = (await rec.wait_response(20)).content
    assert "Your jobs" in said and all(job_id in said for job_id in ids), f"{said}\n{env.why()}"
    # One at the provider, two waiting, each with its place. Which command became which
    # job is up to how the bot took the three at once (the store admits them in turn).
    starts = sorted((said.index(job_id), job_id) for job_id in ids)
    ends = [at for at, _ in starts[1:]] + [said.index("**Your spending**")]
    places = sorted(
        found.group(1)
        for (at, _), end in zip(starts, ends, strict=True)
        if (found := re.search(r"#(\d) in line", said[at:end]))
    )
    assert places == ["1", "2"], said
    assert "Today" in said  # the spending part is still there
    for job_id in ids:
        await result_of(env, job_id, home)
    env.clean()


async def test_show_of_a_job_whose_media_was_swept_says_so(env: ShowEnv) -> None:
    home = await channel(env, "show-swept")
    _, job_id, _ = await imagine(env, home, "a sandcastle before the tide")
    await result_of(env, job_id, home)
    folder = env.tmp / "data" / "media" / job_id
    assert folder.is_dir(), env.why()
    for path in folder.iterdir():  # what media retention does to an old job's images
        path.unlink()
    said = await show(env, job_id, home)
    assert "no longer kept" in said and "retention" in said, said
    assert not any("Shown again" in m.content for m in channel_posts(env, home))
    env.clean()


async def test_show_autocompletes_the_members_recent_finished_jobs(env: ShowEnv) -> None:
    fake = env.fake
    home = await channel(env, "show-complete")
    _, job_id, _ = await imagine(env, home, "an autocompleted owl")
    await result_of(env, job_id, home)
    rec = await fake.send_autocomplete("show", "job_id", "owl", channel_id=home)
    await acked(rec, 8)
    assert rec.choices is not None
    assert [c["value"] for c in rec.choices] == [job_id], rec.choices
    assert rec.choices[0]["name"].startswith(f"{job_id} · imagine · an autocompleted owl")
    # Another member's list holds only their own jobs.
    other = fake.add_user("show-completer")
    rec = await fake.send_autocomplete("show", "job_id", "", channel_id=home, user_id=other)
    await acked(rec, 8)
    assert rec.choices == []
    env.clean()
