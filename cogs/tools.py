"""/describe, /blend, /shorten and /faceswap, registered only when a configured provider
offers them."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import Action
from bot.ui.attachments import read_images
from bot.ui.context import UiContext, ui_context
from bot.ui.replies import guarded
from cogs.common import (
    check_channel,
    defer_private,
    make_request,
    provider_autocomplete,
    start_and_point,
)

Dimensions = Literal["square", "portrait", "landscape"]


def _max_bytes(ctx: UiContext) -> int:
    return int(ctx.config.discord.max_attachment_mib * 1024 * 1024)


class Describe(commands.Cog):
    @app_commands.command(name="describe", description="Four prompts that could have made an image")
    @app_commands.describe(image="The image to describe", provider="Which provider to ask")
    @app_commands.autocomplete(provider=provider_autocomplete(Action.DESCRIBE))
    @app_commands.guild_only()
    async def describe(
        self,
        interaction: discord.Interaction,
        image: discord.Attachment,
        provider: str | None = None,
    ) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            check_channel(interaction)
            images = await read_images([image], _max_bytes(ctx))
            request = make_request(interaction, Action.DESCRIBE, provider=provider, images=images)
            await start_and_point(interaction, request, what="Describe job")


class Blend(commands.Cog):
    @app_commands.command(name="blend", description="Blend two to five images into new ones")
    @app_commands.describe(
        image1="First image",
        image2="Second image",
        image3="Third image (optional)",
        image4="Fourth image (optional)",
        image5="Fifth image (optional)",
        dimensions="Shape of the result (default square)",
        provider="Which provider to use",
    )
    @app_commands.autocomplete(provider=provider_autocomplete(Action.BLEND))
    @app_commands.guild_only()
    async def blend(
        self,
        interaction: discord.Interaction,
        image1: discord.Attachment,
        image2: discord.Attachment,
        image3: discord.Attachment | None = None,
        image4: discord.Attachment | None = None,
        image5: discord.Attachment | None = None,
        dimensions: Dimensions = "square",
        provider: str | None = None,
    ) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            check_channel(interaction)
            images = await read_images([image1, image2, image3, image4, image5], _max_bytes(ctx))
            request = make_request(
                interaction,
                Action.BLEND,
                provider=provider,
                images=images,
                dimensions=dimensions.upper(),
            )
            await start_and_point(interaction, request, what="Blend job")


class Shorten(commands.Cog):
    @app_commands.command(name="shorten", description="Shorter versions of a prompt")
    @app_commands.describe(prompt="The prompt to shorten", provider="Which provider to ask")
    @app_commands.autocomplete(provider=provider_autocomplete(Action.SHORTEN))
    @app_commands.guild_only()
    async def shorten(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        provider: str | None = None,
    ) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            check_channel(interaction)
            request = make_request(interaction, Action.SHORTEN, prompt=prompt, provider=provider)
            await start_and_point(interaction, request, what="Shorten job")


class FaceSwap(commands.Cog):
    @app_commands.command(name="faceswap", description="Put the face of one image onto another")
    @app_commands.describe(
        face="The image with the face to use",
        target="The image to put that face onto",
        provider="Which provider to use",
    )
    @app_commands.autocomplete(provider=provider_autocomplete(Action.SWAP_FACE))
    @app_commands.guild_only()
    async def faceswap(
        self,
        interaction: discord.Interaction,
        face: discord.Attachment,
        target: discord.Attachment,
        provider: str | None = None,
    ) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            check_channel(interaction)
            # Order matters: providers take [face, target] (midjourney-proxy's
            # sourceBase64 / targetBase64).
            images = await read_images([face, target], _max_bytes(ctx))
            request = make_request(interaction, Action.SWAP_FACE, provider=provider, images=images)
            await start_and_point(interaction, request, what="Face swap job")


async def setup(bot: commands.Bot) -> None:
    ctx = ui_context(bot)
    for action, cog in (
        (Action.DESCRIBE, Describe),
        (Action.BLEND, Blend),
        (Action.SHORTEN, Shorten),
        (Action.SWAP_FACE, FaceSwap),
    ):
        if any(p.supports(action) is not None for p in ctx.engine.providers.values()):
            await bot.add_cog(cog())
