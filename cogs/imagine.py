"""/imagine: a prompt (and up to three image prompts) becomes a job in this channel.

Answered within Discord's 3 s every time: the first thing done is an ephemeral defer;
the attachments, the engine and the channel message all come after. Bad input is
refused before any provider call, privately, in the engine's own words.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.vocab import Action
from cogs.common import command_job, provider_autocomplete


class Imagine(commands.Cog):
    @app_commands.command(name="imagine", description="Create images from a prompt")
    @app_commands.describe(
        prompt="What to see, with Midjourney parameters if you like (e.g. --ar 3:2)",
        image1="An image prompt (optional)",
        image2="A second image prompt (optional)",
        image3="A third image prompt (optional)",
        provider="Which image provider to use (default: the server's)",
    )
    @app_commands.autocomplete(provider=provider_autocomplete(Action.IMAGINE))
    @app_commands.guild_only()
    async def imagine(
        self,
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        image1: discord.Attachment | None = None,
        image2: discord.Attachment | None = None,
        image3: discord.Attachment | None = None,
        provider: str | None = None,
    ) -> None:
        await command_job(
            interaction,
            Action.IMAGINE,
            prompt=prompt,
            provider=provider,
            attachments=(image1, image2, image3),
        )


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Imagine())
