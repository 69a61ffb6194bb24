"""End to end, English and Chinese: the real bot against the fake Discord, in a server
whose preferred locale is zh-CN.

- Every synced command carries zh-CN name and description localizations (options and
  choices too), valid by Discord's name rules (the fake checks the body against
  Discord's OpenAPI schema as well).
- Private answers follow the member's locale: a zh-CN member gets Chinese refusals, an
  en-US member in the same server today's English ones.
- Messages everyone in the channel sees (progress, result, buttons) follow the server's
  preferred locale, whoever started the job.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, is_result, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage, InteractionRecord

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

ZH = "zh-CN"
HAN = re.compile("[\u4e00-\u9fff]")


def job_id_in(message: FakeMessage) -> str | None:
    """The job id on a job message, in either language ("job `…`" / "任务 `…`")."""
    match = re.search(r"(?:job|任务) `([0-9a-z]{10})`", message.content)
    return match.group(1) if match else None


@dataclass
class Env:
    fake: FakeDiscord
    bot: BotProcess
    result: FakeMessage | None = None  # a finished job's result, in the server's Chinese

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("discord-i18n")
    fake = FakeDiscord()
    fake.guilds[fake.guild_id].locale = ZH  # the server's preferred locale
    await fake.start()
    config = write_config(tmp / "config.toml", fake, tmp / "data", duration=1.5)
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield Env(fake, bot)
    finally:
        await bot.stop()
        await fake.stop()


def is_discord_name(name: str) -> bool:
    """^[-_\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$, lowercase where letters have case."""
    ok = all(ch in "-_" or unicodedata.category(ch)[0] in "LNM" for ch in name)
    return ok and 1 <= len(name) <= 32 and name == name.lower()


def localizable(command: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, item) of a command and every option, sub-command and choice under it."""
    yield f"/{command['name']}", command
    stack = [(f"/{command['name']}", o) for o in command.get("options") or []]
    while stack:
        where, item = stack.pop()
        here = f"{where} {item['name']}"
        yield here, item
        stack += [(here, o) for o in item.get("options") or []]
        for choice in item.get("choices") or []:
            yield f"{here}={choice['value']}", {"choice": True, **choice}


async def private_answer(rec: InteractionRecord) -> str:
    await rec.wait_ack(5)
    reply = await rec.wait_response(15)
    assert reply.ephemeral, reply
    return reply.content


# ------------------------------------------------------------------ commands


async def test_every_synced_command_carries_zh_cn_localizations(env: Env) -> None:
    commands = env.fake.registered_commands.get(env.fake.guild_id, [])
    assert len(commands) >= 10, env.why()
    missing: list[str] = []
    translated_names = 0
    for command in commands:
        for where, item in localizable(command):
            names = item.get("name_localizations") or {}
            if ZH not in names or (not is_discord_name(names[ZH]) and "choice" not in item):
                missing.append(f"{where}: name_localizations {names}")
                continue
            translated_names += names[ZH] != item["name"]
            if "choice" in item:
                continue
            descriptions = item.get("description_localizations") or {}
            if not descriptions.get(ZH) or len(descriptions[ZH]) > 100:
                missing.append(f"{where}: description_localizations {descriptions}")
    assert missing == [], "\n".join(missing)
    imagine = env.fake.command("imagine", guild_id=env.fake.guild_id)
    assert imagine is not None
    assert imagine["name_localizations"][ZH] == "想象"
    assert imagine["description_localizations"][ZH] == "根据提示词生成图片"
    prompt = next(o for o in imagine["options"] if o["name"] == "prompt")
    assert prompt["name_localizations"][ZH] == "提示词"
    assert HAN.search(prompt["description_localizations"][ZH])
    assert translated_names > 40  # not English copied over
    assert not env.fake.violations, env.why()  # Discord's schema for the sync body


# ------------------------------------------------------------------ private answers


async def test_a_zh_cn_member_gets_chinese_refusals(env: Env) -> None:
    fake = env.fake
    where = await fake.add_channel("refusals-zh")
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a cat --chaos 500"}, channel_id=where, locale=ZH
    )
    text = await private_answer(rec)
    assert text == "❌ --chaos 需要 0 到 100 之间的整数；你给的是 500。", env.why()

    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a cat --wat 2"}, channel_id=where, locale=ZH
    )
    text = await private_answer(rec)
    assert "--wat 不是 Atelier 认识的参数" in text and "已知参数：" in text, text

    rec = await fake.send_slash_command(
        "cancel", {"job_id": "nosuchjob0"}, channel_id=where, locale=ZH
    )
    assert await private_answer(rec) == "❌ 此服务器中没有任务 `nosuchjob0`。"
    assert [m for m in fake.channel_messages(where) if not m.ephemeral] == []
    assert not fake.violations, env.why()


async def test_an_en_us_member_in_the_same_server_still_gets_english(env: Env) -> None:
    fake = env.fake
    where = await fake.add_channel("refusals-en")
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a cat --chaos 500"}, channel_id=where, locale="en-US"
    )
    text = await private_answer(rec)
    assert text == "❌ --chaos takes a whole number from 0 to 100; you gave 500."
    rec = await fake.send_slash_command("cancel", {"job_id": "nosuchjob0"}, channel_id=where)
    assert await private_answer(rec) == "❌ There is no job `nosuchjob0` in this server."
    assert not HAN.search(text)


async def test_a_zh_cn_members_panels_and_answers_are_chinese(env: Env) -> None:
    """/settings, /prefer and /info: private, so in the member's own language."""
    fake = env.fake
    where, user = await fake.add_channel("panels-zh"), fake.add_user("zh-member")
    rec = await fake.send_slash_command("settings", channel_id=where, user_id=user, locale=ZH)
    await rec.wait_ack(5)
    panel = rec.original
    assert panel is not None and panel.ephemeral
    assert panel.content.startswith("**你在此服务器的设置**"), panel.content
    assert "Raw：关闭" in panel.content and "模型：默认" in panel.content, panel.content
    labels = {b.get("label") for b in panel.buttons()}
    assert {"Raw 模式", "重混模式", "风格化 很高", "重置设置"} <= labels, labels

    rec = await fake.send_slash_command(
        "prefer suffix", {"value": "in ink"}, channel_id=where, user_id=user, locale=ZH
    )
    assert await private_answer(rec) == "你的后缀现在是 `in ink`。"
    rec = await fake.send_slash_command("info", channel_id=where, user_id=user, locale=ZH)
    info = await private_answer(rec)
    assert "**你的任务**：没有进行中或等待中的任务。" in info, info
    assert "**你的花费**" in info and "后缀：`in ink`" in info, info
    assert not fake.violations, env.why()


# ------------------------------------------------------------------ channel messages


async def test_channel_messages_follow_the_servers_preferred_locale(env: Env) -> None:
    """An en-US member's job: the private pointer in English, the channel's messages
    (progress, result, button labels) in the server's Chinese; the prompt untouched."""
    final = await zh_result(env)
    assert "**a red fox in snow --ar 3:2**" in final.content
    assert "默认模式" in final.content, final.content
    labels = [b.get("label") or (b.get("emoji") or {}).get("name") for b in final.buttons()]
    assert labels[:5] == ["U1", "U2", "U3", "U4", "🔄"], labels
    assert not env.fake.violations, env.why()


async def zh_result(env: Env) -> FakeMessage:
    """An en-US member's /imagine in the zh-CN server, checked on its way (the private
    pointer in English, the progress message in Chinese); its result message."""
    if env.result is not None:
        return env.result
    fake = env.fake
    where = await fake.add_channel("channel-zh")
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a red fox in snow --ar 3:2"}, channel_id=where, locale="en-US"
    )
    pointer = await private_answer(rec)
    match = re.search(r"job `([0-9a-z]{10})`", pointer)
    assert match and "is on its way" in pointer, pointer
    job_id = match.group(1)

    def progress() -> FakeMessage | None:
        for m in fake.channel_messages(where):
            if job_id_in(m) == job_id and not is_result(m) and m.webhook_id is None:
                return m
        return None

    shown = await fake.wait_for(progress, 20, what="the job's progress message")
    assert "**a red fox in snow --ar 3:2**" in shown.content  # the prompt is never translated
    assert f"任务 `{job_id}`" in shown.content, shown.content
    assert any(b.get("label") == "取消" for b in shown.buttons()), shown.buttons()

    def result() -> FakeMessage | None:
        for m in fake.channel_messages(where):
            if job_id_in(m) == job_id and is_result(m):
                return m
        return None

    env.result = await fake.wait_for(result, 40, what="the job's result")
    return env.result


async def test_a_chinese_repost_keeps_working_buttons_elsewhere(env: Env) -> None:
    """/show's repost is marked in the server's language; its buttons still work outside
    the job's own channel (the mark is recognised in either language)."""
    fake, original = env.fake, await zh_result(env)
    job_id = job_id_in(original)
    assert job_id
    elsewhere = await fake.add_channel("show-zh")
    rec = await fake.send_slash_command("show", {"job_id": job_id}, channel_id=elsewhere, locale=ZH)
    said = await private_answer(rec)
    assert said.startswith(f"✅ 任务 `{job_id}` → "), said

    def repost() -> FakeMessage | None:
        return next((m for m in fake.channel_messages(elsewhere) if is_result(m)), None)

    shown = await fake.wait_for(repost, 20, what="the repost")
    assert "🔁 再次显示，由 <@" in shown.content and "通过 /show" in shown.content, shown.content
    member = fake.add_user("zh-presser")
    u1 = next(b["custom_id"] for b in shown.buttons() if b.get("label") == "U1")
    pressed = await fake.click_button(shown.id, u1, user_id=member)
    await pressed.wait_ack(5)

    def child() -> FakeMessage | None:
        for m in fake.channel_messages(elsewhere):
            ref = m.message_reference or {}
            if ref.get("message_id") == str(shown.id) and "图片 #1" in m.content.split("\n")[0]:
                return m
        return None

    started = await fake.wait_for(child, 20, what="U1's job on the repost")
    assert job_id_in(started) not in (None, job_id)
    assert not fake.violations, env.why()


async def test_a_failure_in_the_channel_is_explained_in_the_servers_language(env: Env) -> None:
    """The provider's own reason is shown as it said it; Atelier's words around it (and
    the hint of what to try) are Chinese."""
    fake = env.fake
    where = await fake.add_channel("failure-zh")
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a forbidden castle"}, channel_id=where, locale="en-US"
    )
    await private_answer(rec)

    def failed() -> FakeMessage | None:
        return next((m for m in fake.channel_messages(where) if "❌ **失败**" in m.content), None)

    message = await fake.wait_for(failed, 30, what="the failure message")
    assert "forbidden" in message.content.lower() and not message.components
    assert "请改写提示词（避开被标记的词）后重试。" in message.content, message.content
    assert not fake.violations, env.why()
