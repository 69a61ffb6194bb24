"""The fake Discord works with a real discord.py client (AutoShardedBot and plain Bot)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from tests.fakes.discord_fake import FakeDiscord, FakeFile, Permissions
from tests.fakes.discord_schema import get_schema

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


class UpscaleButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=r"mj:up:(?P<job>\d+):(?P<idx>[1-4])",
):
    def __init__(self, job: int, idx: int) -> None:
        super().__init__(
            discord.ui.Button(
                label=f"U{idx}",
                style=discord.ButtonStyle.secondary,
                custom_id=f"mj:up:{job}:{idx}",
            )
        )
        self.job = job
        self.idx = idx

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
    ) -> UpscaleButton:
        return cls(int(match["job"]), int(match["idx"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()
        bot: DemoBot = interaction.client
        bot.clicks.append((self.job, self.idx))
        await interaction.followup.send(f"upscaled {self.idx}", ephemeral=True)


class PromptModal(discord.ui.Modal, title="Remix prompt"):
    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt"
    )

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(f"remix: {self.prompt.value}")


@dataclass
class BotState:
    errors: list[discord.HTTPException] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)


class DemoBot(commands.AutoShardedBot):
    def __init__(self, fake: FakeDiscord) -> None:
        super().__init__(
            command_prefix="!",
            intents=discord.Intents.default(),
            guild_ready_timeout=0.05,
        )
        self.fake = fake
        self.state = BotState()
        self.clicks: list[tuple[int, int]] = []
        self._register()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(UpscaleButton)
        guild = discord.Object(self.fake.guild_id)
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)

    def _register(self) -> None:
        state = self.state

        @self.tree.command(name="imagine", description="Imagine an image")
        @app_commands.describe(prompt="What to draw", image="Image prompt")
        async def imagine(
            inter: discord.Interaction[Any],
            prompt: str,
            image: discord.Attachment | None = None,
        ) -> None:
            await inter.response.defer(thinking=True)
            ref = await image.read() if image is not None else b""
            state.results["filesize_limit"] = inter.filesize_limit
            view = discord.ui.View(timeout=None)
            for idx in (1, 2):
                view.add_item(UpscaleButton(inter.id, idx))
            assert inter.channel is not None and isinstance(inter.channel, discord.TextChannel)
            msg = await inter.channel.send(
                f"**{prompt}** - queued (ref {len(ref)} bytes)",
                file=discord.File(io.BytesIO(PNG_1x1), filename="grid.png"),
                view=view,
            )
            await msg.edit(content=f"**{prompt}** - done")
            await inter.edit_original_response(content="Job started")
            state.results["imagine"] = msg.id

        @self.tree.command(name="slow", description="Acknowledge after a delay")
        async def slow(inter: discord.Interaction[Any], delay: float) -> None:
            await asyncio.sleep(delay)
            try:
                await inter.response.defer()
            except discord.HTTPException as exc:
                state.errors.append(exc)

        @self.tree.command(name="late", description="Edit the response after a delay")
        async def late(inter: discord.Interaction[Any], delay: float) -> None:
            await inter.response.defer(thinking=True)
            await asyncio.sleep(delay)
            try:
                await inter.edit_original_response(content="finished")
            except discord.HTTPException as exc:
                state.errors.append(exc)
                assert inter.channel is not None and isinstance(inter.channel, discord.TextChannel)
                await inter.channel.send("finished (fallback with the bot token)")

        @self.tree.command(name="upload", description="Upload a file of a size")
        async def upload(inter: discord.Interaction[Any], size: int) -> None:
            await inter.response.defer(thinking=True)
            state.results["filesize_limit"] = inter.filesize_limit
            try:
                await inter.followup.send(
                    file=discord.File(io.BytesIO(b"\0" * size), filename="big.png")
                )
            except discord.HTTPException as exc:
                state.errors.append(exc)
                await inter.followup.send("too large")

        @self.tree.command(name="ask", description="Open a modal")
        async def ask(inter: discord.Interaction[Any]) -> None:
            await inter.response.send_modal(PromptModal())


@dataclass
class Env:
    fake: FakeDiscord
    bot: DemoBot

    @property
    def channel(self) -> discord.PartialMessageable:
        return self.bot.get_partial_messageable(self.fake.channel_id)

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        return await self.fake.wait_for(predicate, timeout, what="bot state")


@contextlib.asynccontextmanager
async def running_bot(fake: FakeDiscord) -> AsyncIterator[DemoBot]:
    bot = DemoBot(fake)
    task = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_ready(10)
        await fake.wait_commands_synced(10)
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


@pytest_asyncio.fixture
async def env() -> AsyncIterator[Env]:
    original_base = Route.BASE
    original_gateway = DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord() as fake:
        with fake.patch_discord():
            async with running_bot(fake) as bot:
                yield Env(fake, bot)
        assert fake.unhandled == [], fake.summary()
    assert original_base == Route.BASE
    assert original_gateway == DiscordWebSocket.DEFAULT_GATEWAY


# ================================================================== login, gateway, sync
@pytest.mark.asyncio
async def test_login_gateway_and_command_sync(env: Env) -> None:
    fake, bot = env.fake, env.bot
    keys = [r.key for r in fake.requests]
    assert "GET /users/@me" in keys
    assert "GET /oauth2/applications/@me" in keys
    assert "GET /gateway/bot" in keys
    assert bot.user is not None and bot.user.id == int(fake.bot_user["id"])
    assert bot.application_id == fake.application_id
    await asyncio.wait_for(bot.wait_until_ready(), 5)
    guild = bot.get_guild(fake.guild_id)
    assert guild is not None and guild.get_channel(fake.channel_id) is not None
    assert guild.me is not None and guild.me.guild_permissions.attach_files
    assert guild.filesize_limit == 10 * 1024 * 1024
    assert fake.identify_count == 1 and fake.heartbeat_count >= 1
    names = {c["name"] for c in fake.registered_commands[fake.guild_id]}
    assert {"imagine", "slow", "late", "upload", "ask"} <= names
    imagine = fake.command("imagine")
    assert imagine is not None
    assert [(o["name"], o["type"]) for o in imagine["options"]] == [("prompt", 3), ("image", 11)]
    assert fake.violations == []


# ================================================================== slash command + button
@pytest.mark.asyncio
async def test_slash_command_defer_file_button_edit_and_click(env: Env) -> None:
    fake, bot = env.fake, env.bot
    rec = await fake.send_slash_command(
        "imagine", {"prompt": "a cat"}, attachments={"image": FakeFile("ref.png", PNG_1x1)}
    )
    await rec.wait_ack()
    assert rec.acked and rec.ack_type == 5 and rec.ack_status == 200
    assert rec.ack_latency is not None and rec.ack_latency < 3.0
    response = await rec.wait_response(predicate=lambda m: m.content == "Job started")
    assert response.interaction is rec and not response.loading

    job = await fake.wait_for_message(lambda m: m.content.endswith("done"))
    assert job.content == "**a cat** - done"
    assert job.edit_count == 1
    assert job.history[0]["content"] == f"**a cat** - queued (ref {len(PNG_1x1)} bytes)"
    assert job.attachment("grid.png").data == PNG_1x1
    assert job.attachments[0].to_payload()["width"] == 1
    assert job.custom_ids() == [f"mj:up:{rec.id}:1", f"mj:up:{rec.id}:2"]
    assert bot.state.results["imagine"] == job.id
    assert bot.state.results["filesize_limit"] == fake.upload_limit

    # the CDN URL is served by the fake itself
    async with aiohttp.ClientSession() as session, session.get(job.attachments[0].url) as resp:
        assert resp.status == 200 and await resp.read() == PNG_1x1

    # multipart body was recorded with its file
    create = fake.requests_to(FakeDiscord.ROUTE_MESSAGE_CREATE)[0]
    assert create.file_sizes == [len(PNG_1x1)]
    assert create.json["attachments"] == [{"id": 0, "filename": "grid.png"}]

    click = await fake.click_button(job.id, f"mj:up:{rec.id}:2")
    await click.wait_ack()
    assert click.ack_type == 6 and click.ack_status == 200
    followup = await click.wait_followup()
    assert followup.content == "upscaled 2" and followup.ephemeral
    assert bot.clicks == [(rec.id, 2)]
    assert fake.violations == [], fake.summary()


@pytest.mark.asyncio
async def test_modal_roundtrip(env: Env) -> None:
    fake = env.fake
    rec = await fake.send_slash_command("ask")
    await rec.wait_ack()
    assert rec.ack_type == 9 and rec.modal is not None and rec.modal["title"] == "Remix prompt"
    submit = await fake.submit_modal(rec.modal["custom_id"], {"prompt": "a dog"})
    assert submit.type == 5
    msg = await submit.wait_response()
    assert msg.content == "remix: a dog"
    assert fake.violations == []


# ================================================================== simulations
@pytest.mark.asyncio
async def test_late_callback_gets_10062(env: Env) -> None:
    fake, bot = env.fake, env.bot
    fake.ack_deadline = 0.3
    rec = await fake.send_slash_command("slow", {"delay": 0.5})
    await rec.wait_ack()
    assert not rec.acked and rec.late
    assert rec.ack_status == 404 and rec.callbacks[0].error_code == 10062
    await env.until(lambda: bot.state.errors)
    err = bot.state.errors[0]
    assert isinstance(err, discord.NotFound) and err.code == 10062
    assert fake.violations_of("late-callback") and fake.violations_of("no-ack")


@pytest.mark.asyncio
async def test_expired_token_gets_50027(env: Env) -> None:
    fake, bot = env.fake, env.bot
    fake.token_lifetime = 0.3
    rec = await fake.send_slash_command("late", {"delay": 0.5})
    await fake.wait_for_message(lambda m: m.content.startswith("finished (fallback"))
    err = bot.state.errors[0]
    assert err.status == 401 and err.code == 50027
    assert rec.original is not None and rec.original.loading  # never completed via the token
    edits = fake.requests_to(FakeDiscord.ROUTE_ORIGINAL_EDIT)
    assert [(r.status, r.error_code) for r in edits] == [(401, 50027)]
    assert len(fake.violations_of("expired-token")) == 1


@pytest.mark.asyncio
async def test_upload_over_limit_gets_40005(env: Env) -> None:
    fake, bot = env.fake, env.bot
    fake.upload_limit = 4096
    rec = await fake.send_slash_command("upload", {"size": 5000})
    await rec.wait_response(predicate=lambda m: m.content == "too large")
    assert bot.state.results["filesize_limit"] == 4096  # attachment_size_limit
    err = bot.state.errors[0]
    assert err.status == 413 and err.code == 40005
    assert fake.violations_of("upload-too-large")

    ok = await fake.send_slash_command("upload", {"size": 4096})
    msg = await ok.wait_response()
    assert msg.attachment("big.png").size == 4096


@pytest.mark.asyncio
async def test_deleted_message_and_channel(env: Env) -> None:
    fake = env.fake
    sent = await env.channel.send("hello")
    stored = fake.get_message(sent.id)
    assert stored.content == "hello" and not stored.deleted

    await fake.delete_message(sent.id)
    with pytest.raises(discord.NotFound) as info:
        await sent.edit(content="edited")
    assert info.value.code == 10008

    other_id = await fake.add_channel("renders")
    other = env.bot.get_partial_messageable(other_id)
    await other.send("in renders")
    await fake.delete_channel(other_id)
    with pytest.raises(discord.NotFound) as info:
        await other.send("again")
    assert info.value.code == 10003


@pytest.mark.asyncio
async def test_429_storm_is_retried_and_counted(env: Env) -> None:
    fake = env.fake
    fake.storm_429(FakeDiscord.ROUTE_MESSAGE_CREATE, 2, retry_after=0.05)
    msg = await env.channel.send("after the storm")
    assert fake.get_message(msg.id).content == "after the storm"
    assert fake.count_429 == 2
    statuses = [r.status for r in fake.requests_to(FakeDiscord.ROUTE_MESSAGE_CREATE)]
    assert statuses == [429, 429, 200]

    # the interaction webhook retries too
    fake.storm_429(FakeDiscord.ROUTE_ORIGINAL_EDIT, 1, retry_after=0.05)
    rec = await fake.send_slash_command("imagine", {"prompt": "storm"})
    await rec.wait_response(predicate=lambda m: m.content == "Job started")
    assert fake.count_429 == 3


@pytest.mark.asyncio
async def test_bucket_headers_make_the_client_wait(env: Env) -> None:
    fake = env.fake
    fake.set_rate_limit(FakeDiscord.ROUTE_MESSAGE_CREATE, 2, 0.6)
    start = time.monotonic()
    for i in range(4):
        await env.channel.send(f"burst {i}")
    creates = fake.requests_to(FakeDiscord.ROUTE_MESSAGE_CREATE)
    assert [r.status for r in creates] == [200] * 4
    assert fake.count_429 == 0  # discord.py paced itself from X-RateLimit-* headers
    assert creates[2].time - creates[0].time >= 0.5
    assert time.monotonic() - start < 5


@pytest.mark.asyncio
async def test_invalid_body_is_a_violation(env: Env) -> None:
    fake = env.fake
    with pytest.raises(discord.HTTPException) as info:
        await env.channel.send("x" * 2001)
    assert info.value.status == 400 and info.value.code == 50035
    assert any("2001" in v for v in fake.violations_of("schema"))

    fake.reject_invalid = False  # record only, answer like a lenient server
    fake.violations.clear()
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="a", custom_id="same"))
    view.add_item(discord.ui.Button(label="b", custom_id="other"))
    msg = await env.channel.send("dup", view=view)
    await env.bot.http.edit_message(
        fake.channel_id,
        msg.id,
        params=discord.http.MultipartParameters(
            payload={
                "components": [
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "a", "custom_id": "same"},
                            {"type": 2, "style": 1, "label": "b", "custom_id": "same"},
                        ],
                    }
                ]
            },
            multipart=None,
            files=None,
        ),
    )
    assert any("unique" in v for v in fake.violations_of("schema"))


# ================================================================== plain Bot + RESUME
@pytest.mark.asyncio
async def test_plain_bot_resume_and_raw_http() -> None:
    async with FakeDiscord() as fake:
        # raw HTTP: exact content type, rate-limit headers, Via on 429, bad token
        async with aiohttp.ClientSession() as session:
            auth = {"Authorization": f"Bot {fake.token}"}
            async with session.get(f"{fake.base_url}/users/@me", headers=auth) as resp:
                assert resp.headers["Content-Type"] == "application/json"
                assert resp.headers["X-RateLimit-Limit"] == "50"
                assert {
                    "X-RateLimit-Remaining",
                    "X-RateLimit-Reset",
                    "X-RateLimit-Reset-After",
                } <= set(resp.headers)
                assert resp.headers["X-RateLimit-Bucket"]
            fake.storm_429("/users/@me", 1, retry_after=0.25)
            async with session.get(f"{fake.base_url}/users/@me", headers=auth) as resp:
                assert resp.status == 429 and resp.headers["Via"] == "1.1 google"
                body = await resp.json()
                assert body["retry_after"] == 0.25 and body["global"] is False
            async with session.get(
                f"{fake.base_url}/users/@me", headers={"Authorization": "Bot nope"}
            ) as resp:
                assert resp.status == 401
        assert fake.violations_of("auth")
        fake.violations.clear()

        with fake.patch_discord():
            intents = discord.Intents.default()
            intents.message_content = True
            client = commands.Bot(command_prefix="!", intents=intents)
            seen: list[str] = []

            @client.event
            async def on_message(message: discord.Message) -> None:
                seen.append(message.content)

            task = asyncio.create_task(client.start(fake.token))
            try:
                await fake.wait_ready(10)
                await fake.reconnect_gateway()
                await fake.wait_for(lambda: fake.resume_count == 1, 10, what="RESUME")
                await fake.post_user_message("hello after resume")
                await fake.wait_for(lambda: "hello after resume" in seen, 5, what="MESSAGE_CREATE")
                assert fake.identify_count == 1
            finally:
                await client.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 5)
        assert fake.violations == []


# ================================================================== schema layer (offline)
def test_schema_and_limits() -> None:
    schema = get_schema()
    assert schema.available
    msg_route = "/channels/{channel_id}/messages"
    assert schema.validate("POST", msg_route, {"content": "ok", "attachments": [{"id": 0}]}) == []
    row = {
        "type": 1,
        "components": [
            {"type": 2, "style": 1, "label": "x" * 81, "custom_id": f"b{i}"} for i in range(6)
        ],
    }
    problems = schema.validate("POST", msg_route, {"components": [row] * 6})
    text = "\n".join(problems)
    assert "6 action rows" in text and "6 buttons" in text and "81 chars" in text
    assert "used 6 times" in text  # custom_id unique per message
    embeds = [{"title": "t" * 257, "description": "d" * 4000}] * 2
    text = "\n".join(schema.validate("POST", msg_route, {"embeds": embeds}))
    assert "257 chars > 256" in text and "> 6000" in text

    cb = "/interactions/{interaction_id}/{interaction_token}/callback"
    modal = {
        "custom_id": "m",
        "title": "t" * 46,
        "components": [
            {"type": 1, "components": [{"type": 4, "custom_id": f"i{i}", "style": 1, "label": "L"}]}
            for i in range(6)
        ],
    }
    text = "\n".join(schema.validate("POST", cb, {"type": 9, "data": modal}))
    assert "title" in text and "6 inputs > 5" in text
    choices = [{"name": str(i), "value": str(i)} for i in range(26)]
    assert any(
        "26 choices" in p
        for p in schema.validate("POST", cb, {"type": 8, "data": {"choices": choices}})
    )

    cmds = "/applications/{application_id}/commands"
    bad = [{"name": "Imagine", "description": "", "type": 1}]
    text = "\n".join(schema.validate("PUT", cmds, bad))
    assert "name" in text and "description" in text
    perms = Permissions.BOT_DEFAULT
    assert perms & Permissions.ATTACH_FILES
