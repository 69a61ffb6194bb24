"""End to end: who may use Atelier, where, on what (the real bot, the fake Discord).

One bot serves the module, with `[discord] allowed_guild_ids` naming the main guild and
a second one ("Friends"); a third ("Stranger") exists before the bot starts and must be
left at ready, a fourth is added while it runs and must be left at once. The sandbox
provider allows fast and relax only (the operator's `allowed_modes`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests import stores
from tests.discord_helpers import BotProcess, button_ids, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage, InteractionRecord

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

NOT_AVAILABLE = "This button is not available here."


@dataclass
class Env:
    fake: FakeDiscord
    bot: BotProcess
    tmp: Path
    friends: int  # an allowed guild
    stranger: int  # a guild not allowed, there before the bot started

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        return stores.rows(self.tmp / "data" / "atelier.db", sql, *args)

    def job_count(self) -> int:
        return int(str(self.rows("SELECT COUNT(*) FROM jobs")[0][0]))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("discord-access")
    fake = FakeDiscord()
    await fake.start()
    friends = await fake.add_guild("Friends")
    stranger = await fake.add_guild("Stranger")
    config = write_config(
        tmp / "config.toml", fake, tmp / "data", extra='allowed_modes = ["fast", "relax"]'
    )
    text = config.read_text(encoding="utf-8").replace(
        "[discord]\n", f"[discord]\nallowed_guild_ids = [{fake.guild_id}, {friends}]\n", 1
    )
    config.write_text(text, encoding="utf-8")
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    state = Env(fake, bot, tmp, friends, stranger)
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield state
    finally:
        await bot.stop()
        await fake.stop()


def first_channel(fake: FakeDiscord, guild_id: int) -> int:
    return next(iter(fake.guilds[guild_id].channels))


async def answer(rec: InteractionRecord) -> str:
    """The private answer of a slash command (the original response)."""
    reply = await rec.wait_response(20)
    assert reply.ephemeral, reply
    return reply.content


async def slash(
    env: Env, name: str, options: dict[str, object], *, channel_id: int, user_id: int | None = None
) -> str:
    rec = await env.fake.send_slash_command(name, options, channel_id=channel_id, user_id=user_id)
    return await answer(rec)


async def manage(env: Env, name: str, options: dict[str, object], channel_id: int) -> str:
    """A /server command by the guild's owner (a manager)."""
    owner = int(env.fake.owner["id"])
    said = await slash(env, name, options, channel_id=channel_id, user_id=owner)
    assert said.startswith("✅"), f"{said}\n{env.why()}"
    return said


async def grid_result(env: Env, channel_id: int) -> tuple[str, FakeMessage]:
    said = await slash(env, "imagine", {"prompt": "a lighthouse"}, channel_id=channel_id)
    match = re.search(r"job `([0-9a-z]{10})`", said)
    assert match, f"{said}\n{env.why()}"
    job_id = match.group(1)

    def find() -> FakeMessage | None:
        return next(
            (
                m
                for m in env.fake.channel_messages(channel_id)
                if job_id_in(m) == job_id and is_result(m)
            ),
            None,
        )

    return job_id, await env.fake.wait_for(find, 40, what=f"the result of {job_id}")


async def test_the_bot_leaves_guilds_not_allowed(env: Env) -> None:
    fake = env.fake
    await fake.wait_for(lambda: fake.guilds[env.stranger].left or None, 20, what="leave at ready")
    assert not fake.guilds[fake.guild_id].left and not fake.guilds[env.friends].left
    joined = await fake.add_guild("Joined later")
    await fake.wait_for(lambda: fake.guilds[joined].left or None, 20, what="leave on join")
    leaves = [r for r in fake.requests if r.method == "DELETE" and "/users/@me/guilds/" in r.path]
    assert sorted(r.path.rsplit("/", 1)[1] for r in leaves) == sorted(
        [str(env.stranger), str(joined)]
    ), env.why()
    assert not fake.violations, env.why()


async def test_a_guild_not_allowed_is_refused_and_spends_nothing(env: Env) -> None:
    before = env.job_count()
    where = first_channel(env.fake, env.stranger)
    said = await slash(env, "imagine", {"prompt": "a free lunch"}, channel_id=where)
    assert "not available in this server" in said, env.why()
    assert env.job_count() == before
    assert not [m for m in env.fake.channel_messages(where) if not m.ephemeral]
    refusals = env.rows(
        "SELECT outcome, guild_id FROM audit WHERE kind = 'refusal' AND guild_id = ?",
        str(env.stranger),
    )
    assert refusals == [("guild", str(env.stranger))], env.why()
    assert not env.fake.violations, env.why()


async def test_forged_presses_spend_nothing(env: Env) -> None:
    fake = env.fake
    home = await fake.add_channel("forge-home")
    job_id, result = await grid_result(env, home)
    upscale = next(i for i in button_ids(result) if i.startswith("at1:upscale:"))
    before = env.job_count()
    abroad = first_channel(fake, env.friends)  # an allowed guild, but not the job's
    forged = [
        (upscale, abroad),  # another guild's job
        (f"at1:upscale:{job_id}:9", home),  # an index the job never offered
        (f"at1:pan:{job_id}:0:left", home),  # an action the job never offered
    ]
    other_user = fake.add_user("stranger-in-channel")
    forged.append((upscale, await fake.add_channel("forge-elsewhere")))  # by the requester
    for custom_id, channel_id in forged[:3]:
        rec = await fake.forge_press(result.id, custom_id, channel_id=channel_id)
        said = await rec.wait_followup(10)
        assert said.ephemeral and NOT_AVAILABLE in said.content, f"{custom_id}: {said.content}"
    # From a guild not allowed at all: refused before the job is even read.
    rec = await fake.forge_press(result.id, upscale, channel_id=first_channel(fake, env.stranger))
    said = await rec.wait_followup(10)
    assert said.ephemeral and "not available in this server" in said.content, said.content
    # Another channel of the same guild: not available to someone else.
    rec = await fake.forge_press(result.id, upscale, channel_id=forged[3][1], user_id=other_user)
    said = await rec.wait_followup(10)
    assert said.ephemeral and NOT_AVAILABLE in said.content, said.content
    assert env.job_count() == before, env.why()
    assert not fake.violations, env.why()


async def test_server_settings_round_trip(env: Env) -> None:
    where = await env.fake.add_channel("settings")
    said = await manage(env, "server buttons", {"who": "requester"}, where)
    assert "anyone → requester" in said
    await manage(env, "server banned add", {"word": "Kraken"}, where)
    await manage(env, "server audit set", {"channel": where}, where)
    await manage(env, "server image-check", {"mode": "spoiler"}, where)
    await manage(env, "server limits", {"role": env.fake.guild_id, "daily": 5.0}, where)
    shown = await manage_show(env, where)
    for part in (
        "**Buttons**: requester",
        "`kraken`",
        f"**Audit channel**: <#{where}>",
        "**Image check**: spoiler",
        "daily 5",
    ):
        assert part in shown, shown
    # A member without Manage Server is refused at run time too.
    said = await slash(env, "server show", {}, channel_id=where)
    assert "Manage Server" in said, said
    await manage(env, "server buttons", {"who": "default"}, where)
    changes = env.rows("SELECT user_id, detail FROM audit WHERE kind = 'settings'")
    assert any("who may press buttons: anyone → requester" in str(d) for _, d in changes)
    assert all(u == env.fake.owner["id"] for u, _ in changes), changes
    assert not env.fake.violations, env.why()


async def manage_show(env: Env, where: int) -> str:
    owner = int(env.fake.owner["id"])
    return await slash(env, "server show", {}, channel_id=where, user_id=owner)


async def test_modes_are_refused_naming_the_mode(env: Env) -> None:
    where = await env.fake.add_channel("modes")
    before = env.job_count()
    said = await slash(env, "imagine", {"prompt": "a fast car --turbo"}, channel_id=where)
    assert "--turbo" in said and "sandbox" in said, said  # the operator allows fast, relax
    owner = int(env.fake.owner["id"])
    said = await slash(
        env,
        "server modes",
        {"provider": "sandbox", "modes": "turbo"},
        channel_id=where,
        user_id=owner,
    )
    assert said.startswith("❌") and "--turbo" in said, said  # never wider than the operator
    await manage(env, "server modes", {"provider": "sandbox", "modes": "relax"}, where)
    said = await slash(env, "imagine", {"prompt": "a fast car --fast"}, channel_id=where)
    assert "--fast" in said and "sandbox" in said and "relax" in said, said
    assert env.job_count() == before
    said = await slash(env, "imagine", {"prompt": "a slow car --relax"}, channel_id=where)
    assert "is on its way" in said, said
    await manage(env, "server modes", {"provider": "sandbox", "modes": "all"}, where)
    outcomes = env.rows("SELECT outcome FROM audit WHERE kind = 'refusal'")
    assert outcomes.count(("mode not allowed",)) == 2, outcomes
    assert not env.fake.violations, env.why()


async def test_a_provider_for_one_role(env: Env) -> None:
    fake = env.fake
    where = await fake.add_channel("roles")
    artists = await fake.add_role("Artists")
    await manage(env, "server roles add", {"provider": "sandbox", "role": artists}, where)
    before = env.job_count()
    said = await slash(env, "imagine", {"prompt": "a mural"}, channel_id=where)
    assert "sandbox" in said and f"<@&{artists}>" in said, said
    assert env.job_count() == before
    fake.set_member_roles(fake.user_id, [artists])
    said = await slash(env, "imagine", {"prompt": "a mural"}, channel_id=where)
    assert "is on its way" in said, f"{said}\n{env.why()}"
    await manage(env, "server roles clear", {"provider": "sandbox"}, where)
    fake.set_member_roles(fake.user_id, [])
    assert not fake.violations, env.why()


async def test_a_thread_is_allowed_where_its_channel_is(env: Env) -> None:
    """With the server's channel list set, a thread of a listed channel is served (the
    job's messages in the thread), and a thread of another channel is refused."""
    allowed = await env.fake.add_channel("art")
    other = await env.fake.add_channel("chat")
    await manage(env, "server channels add", {"channel": allowed}, allowed)
    try:
        in_allowed = await env.fake.add_thread(allowed, "art thread")
        _, result = await grid_result(env, in_allowed)
        assert result.channel_id == in_allowed, env.why()
        # Its buttons work there too (V1: a new job, admitted like a command).
        vary = next(i for i in button_ids(result) if i.startswith("at1:variation:"))
        before = env.job_count()
        rec = await env.fake.click_button(result.id, vary)
        await env.fake.wait_for(lambda: env.job_count() == before + 1, 20, what="the V1 job")
        assert not [m for m in rec.followups if "only in" in m.content], env.why()
        before = env.job_count()
        said = await slash(
            env,
            "imagine",
            {"prompt": "a boat"},
            channel_id=await env.fake.add_thread(other, "chat thread"),
        )
        assert f"only in <#{allowed}>" in said, env.why()
        assert env.job_count() == before
        refusals = env.rows("SELECT outcome FROM audit WHERE kind = 'refusal'")
        assert ("channel",) in refusals, refusals
    finally:
        await manage(env, "server channels clear", {}, allowed)
    assert not env.fake.violations, env.why()
