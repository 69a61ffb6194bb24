"""/settings: the member's own settings panel in this server (see bot/ui/settings_panel.py)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.ui import settings_panel
from bot.ui.replies import guarded


class Settings(commands.Cog):
    @app_commands.command(
        name="settings",
        description="Your settings here: model, Raw, Stylize, speed, Remix, variation, provider",
    )
    async def settings(self, interaction: discord.Interaction) -> None:
        async with guarded(interaction):
            await settings_panel.show(interaction)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Settings())
    # Panel presses: one listener reads the store (restart-safe, no View kept per panel).
    bot.add_listener(settings_panel.on_interaction, "on_interaction")
