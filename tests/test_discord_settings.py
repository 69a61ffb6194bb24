"""End to end: a member's /prefer and /settings, and Remix, with the real bot
(`python -m bot run`) against the fake Discord and the sandbox provider.

What the provider received is read from the sandbox's own task files (one JSON file
per task in its state_dir, holding the prompt it was sent). Each test works in a
channel of its own and as a member of its own, so their preferences never meet.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage, InteractionRecord
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_discord_providers import toml_table

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

RESULT_TIMEOUT = 40.0


@dataclass
class Env:
    fake: FakeDiscord
    bot: BotProcess
    data: Path

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"

    def sent_prompts(self) -> dict[str, tuple[str, str]]:
        """Sandbox task id -> (action, prompt) of every task the sandbox was sent."""
        out: dict[str, tuple[str, str]] = {}
        for path in (self.data / "sandbox" / "tasks").glob("*.json"):
            task = json.loads(path.read_bytes())
            out[str(task["id"])] = (str(task["action"]), str(task["prompt"]))
        return out


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("discord-settings")
    fake = FakeDiscord()
    await fake.start()
    config = write_config(tmp / "config.toml", fake, tmp / "data", duration=1.0)
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield Env(fake, bot, tmp / "data")
    finally:
        await bot.stop()
        await fake.stop()


async def acked(env: Env, rec: InteractionRecord, kind: int) -> InteractionRecord:
    await rec.wait_ack(5)
    assert rec.ack_type == kind, f"{rec.ack_type} != {kind}\n{env.why()}"
    return rec


async def command(env: Env, what: str, user: int, channel: int, /, **options: Any) -> FakeMessage:
    """A slash command; its private answer once it is final."""
    rec = await env.fake.send_slash_command(what, options, user_id=user, channel_id=channel)
    await rec.wait_ack(5)
    return await rec.wait_response(20)


async def imagine(env: Env, user: int, channel: int, prompt: str) -> str:
    reply = await command(env, "imagine", user, channel, prompt=prompt)
    match = re.search(r"job `([0-9a-z]{10})`", reply.content)
    assert match, f"{reply.content}\n{env.why()}"
    return match.group(1)


async def result_of(env: Env, job_id: str, channel: int) -> FakeMessage:
    def find() -> FakeMessage | None:
        for m in env.fake.channel_messages(channel):
            if not m.ephemeral and job_id_in(m) == job_id and is_result(m):
                return m
        return None

    return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the result of job {job_id}")


async def sent(env: Env, predicate: Any, what: str) -> tuple[str, str]:
    """The (action, prompt) of the first task the sandbox got that matches."""

    def find() -> tuple[str, str] | None:
        return next((t for t in env.sent_prompts().values() if predicate(t)), None)

    try:
        return await env.fake.wait_for(find, 20, what=what)
    except TimeoutError:
        raise AssertionError(f"{what}: {env.sent_prompts()}\n{env.why()}") from None


async def test_a_suffix_and_an_option_reach_the_provider(env: Env) -> None:
    user, channel = env.fake.add_user("suffix"), await env.fake.add_channel("prefer")
    said = await command(env, "prefer suffix", user, channel, value="in ink --ar 16:9")
    assert "in ink --ar 16:9" in said.content and said.ephemeral
    said = await command(env, "prefer option set", user, channel, name="sharp", value="--s 900")
    assert "--sharp" in said.content
    listed = await command(env, "prefer option list", user, channel)
    assert "`--sharp` → `--s 900`" in listed.content
    await imagine(env, user, channel, "a fox --sharp")
    _, prompt = await sent(env, lambda t: t[1].startswith("a fox"), "the fox imagine")
    assert prompt == "a fox in ink --s 900 --ar 16:9"
    # A loop is refused by name, and nothing of it is kept.
    refused = await command(env, "prefer option set", user, channel, name="twirl", value="--twirl")
    assert "--twirl refers back to itself" in refused.content, refused.content
    unknown = await command(env, "prefer option set", user, channel, name="spin", value="--turn")
    assert "uses --turn, which is neither a parameter" in unknown.content, unknown.content
    assert "--twirl" not in (await command(env, "prefer option list", user, channel)).content
    gone = await command(env, "prefer option delete", user, channel, name="nothere")
    assert "no option named --nothere" in gone.content


async def test_the_settings_panel_round_trip(env: Env) -> None:
    fake = env.fake
    user, channel = fake.add_user("panel"), await fake.add_channel("settings")
    rec = await acked(
        env, await fake.send_slash_command("settings", user_id=user, channel_id=channel), 4
    )
    panel = rec.original
    assert panel is not None and panel.ephemeral and "Raw: off" in panel.content
    assert "at1s:raw" in panel.custom_ids() and "at1s:version" in panel.custom_ids()
    assert "at1s:mode:relax" in panel.custom_ids()  # the sandbox allows every mode
    assert "at1s:variation:low" in panel.custom_ids()  # and honours V1-V4's strength
    raw = await acked(env, await fake.click_button(panel.id, "at1s:raw", user_id=user), 7)
    assert raw.original is not None and "Raw: on" in raw.original.content
    version = await fake.select_option(panel.id, "at1s:version", ["6.1"], user_id=user)
    await acked(env, version, 7)
    stylize = await fake.click_button(panel.id, "at1s:stylize:very_high", user_id=user)
    await acked(env, stylize, 7)
    assert "Model: v 6.1" in panel.content and "very high (750)" in panel.content
    info = await command(env, "info", user, channel)
    assert "Raw: on" in info.content and "Model: v 6.1" in info.content, info.content
    await imagine(env, user, channel, "a hare --s 20")
    _, prompt = await sent(env, lambda t: t[1].startswith("a hare"), "the hare imagine")
    assert prompt == "a hare --s 20 --v 6.1 --raw"  # the prompt's own --s wins
    await acked(env, await fake.click_button(panel.id, "at1s:reset", user_id=user), 7)
    assert "Raw: off" in panel.content and "Model: default" in panel.content


async def test_v1_with_remix_on_asks_for_the_prompt_first(env: Env) -> None:
    fake = env.fake
    user, channel = fake.add_user("remixer"), await fake.add_channel("remix")
    said = await command(env, "prefer remix", user, channel)
    assert "Remix is on" in said.content
    job_id = await imagine(env, user, channel, "a grey wolf")
    grid = await result_of(env, job_id, channel)
    v1 = next(i for i in grid.custom_ids() if i.startswith("at1:variation:") and i.endswith(":1"))
    form = await acked(env, await fake.click_button(grid.id, v1, user_id=user), 9)
    assert form.modal is not None and form.modal["custom_id"] == f"at1m:variation:{job_id}:1"
    field = form.modal["components"][0]["component"]
    assert field["custom_id"] == "prompt" and field["value"] == "a grey wolf"
    submitted = await fake.submit_modal(
        form.modal["custom_id"], {"prompt": "a white wolf in snow"}, source=form
    )
    await acked(env, submitted, 5)
    answer = await submitted.wait_response(20)
    assert "Started job" in answer.content, answer.content
    action, _ = await sent(env, lambda t: t[1] == "a white wolf in snow", "the remixed V1")
    assert action == "variation"
    # Remix off again: V1 starts at once, without a form.
    assert "Remix is off" in (await command(env, "prefer remix", user, channel)).content
    await acked(env, await fake.click_button(grid.id, v1, user_id=user), 6)
    assert not fake.violations, env.why()


# ---- Remix on midjourney-proxy: its MODAL flow, where the server asks for it ----


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxy_env(
    tmp_path_factory: pytest.TempPathFactory, store_kind: str
) -> AsyncIterator[tuple[Env, Any]]:
    tmp = tmp_path_factory.mktemp("discord-remix-proxy")
    async with FakeMjProxy(flavour="trueai", key="proxy-key") as proxy:
        proxy.remix = True  # the Midjourney account has Remix on: V1 waits for a modal
        proxy.step_seconds = 0.3
        fake = FakeDiscord()
        await fake.start()
        extra = toml_table(proxy.provider_config("proxy", poll_interval=0.1))
        config = write_config(tmp / "config.toml", fake, tmp / "data", duration=1.0, extra=extra)
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        try:
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield Env(fake, bot, tmp / "data"), proxy
        finally:
            await bot.stop()
            await fake.stop()


async def test_remix_on_mj_proxy_answers_the_servers_modal(proxy_env: tuple[Env, Any]) -> None:
    env, proxy = proxy_env
    fake = env.fake
    user, channel = fake.add_user("proxy-remixer"), await fake.add_channel("proxy-remix")
    # The default provider from the panel's select: the sandbox comes first in the config.
    rec = await acked(
        env, await fake.send_slash_command("settings", user_id=user, channel_id=channel), 4
    )
    assert rec.original is not None
    pick = await fake.select_option(rec.original.id, "at1s:provider", ["proxy"], user_id=user)
    await acked(env, pick, 7)
    assert "Provider: proxy" in rec.original.content
    # mj-proxy cannot send a variation strength: the panel stops offering it.
    assert "at1s:variation:low" not in rec.original.custom_ids()
    assert "at1s:raw" in rec.original.custom_ids()
    assert "Remix is on" in (await command(env, "prefer remix", user, channel)).content
    job_id = await imagine(env, user, channel, "a red fox")
    assert proxy.bodies("/submit/imagine")[-1]["prompt"].startswith("a red fox")
    grid = await result_of(env, job_id, channel)
    v1 = f"at1:variation:{job_id}:1"
    form = await acked(env, await fake.click_button(grid.id, v1, user_id=user), 9)
    assert form.modal is not None
    submitted = await fake.submit_modal(
        form.modal["custom_id"], {"prompt": "a red fox in deep snow"}, source=form
    )
    await acked(env, submitted, 5)
    assert "Started job" in (await submitted.wait_response(20)).content, env.why()

    def answered() -> list[Any]:
        return [b for b in proxy.bodies("/submit/modal") if b.get("prompt")]

    await fake.wait_for(answered, 20, what="the remix modal answered")
    assert answered()[-1]["prompt"] == "a red fox in deep snow"
    assert not fake.violations and not proxy.violations, env.why()
