"""/describe, /blend, /shorten and /faceswap, registered only when a configured provider
offers them."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.i18n import Text
from bot.ui.context import ui_context
from bot.vocab import Action
from cogs.common import command_job, provider_autocomplete

Dimensions = Literal["square", "portrait", "landscape"]


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
        await command_job(
            interaction,
            Action.DESCRIBE,
            what=Text("Describe job"),
            provider=provider,
            attachments=[image],
        )


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
        await command_job(
            interaction,
            Action.BLEND,
            what=Text("Blend job"),
            provider=provider,
            attachments=[image1, image2, image3, image4, image5],
            dimensions=dimensions.upper(),
        )


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
        await command_job(
            interaction, Action.SHORTEN, what=Text("Shorten job"), provider=provider, prompt=prompt
        )


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
        # Order matters: providers take [face, target] (midjourney-proxy's
        # sourceBase64 / targetBase64).
        await command_job(
            interaction,
            Action.SWAP_FACE,
            what=Text("Face swap job"),
            provider=provider,
            attachments=[face, target],
        )


async def setup(bot: commands.Bot) -> None:
    ctx = ui_context(bot)
    for action, cog in (
        (Action.DESCRIBE, Describe),
        (Action.BLEND, Blend),
        (Action.SHORTEN, Shorten),
        (Action.SWAP_FACE, FaceSwap),
    ):
        if ctx.engine.providers_for(action):
            await bot.add_cog(cog())
