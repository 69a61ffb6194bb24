"""/prefer: a member's suffix, custom --options and Remix in this server (Midjourney's
/prefer). The rules are in bot/engine/preferences.py; this cog asks them and answers
privately."""

from __future__ import annotations

from collections.abc import Callable

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import preferences
from bot.engine.preferences import Preferences
from bot.i18n import Text
from bot.ui.context import ui_context
from bot.ui.replies import guarded, tell
from cogs.common import defer_private

Edit = Callable[[Preferences], str]


async def edit(interaction: discord.Interaction, change: Edit, *, save: bool = True) -> None:
    """Read the asker's preferences here, apply `change`, store them, and say what it did."""
    if not await defer_private(interaction):
        return
    async with guarded(interaction):
        store = ui_context(interaction.client).engine.preferences
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        prefs = await store.get(guild_id, str(interaction.user.id))
        said = change(prefs)
        if save:
            await store.save(prefs)
        await tell(interaction, said)


def _toggle_remix(prefs: Preferences) -> str:
    prefs.remix = not prefs.remix
    return Text("Remix is on.") if prefs.remix else Text("Remix is off.")


class Prefer(commands.Cog):
    prefer = app_commands.Group(name="prefer", description="Your suffix, options and Remix")
    option = app_commands.Group(
        name="option", description="Your own --options, short for longer prompts", parent=prefer
    )

    @prefer.command(name="suffix", description="Text added to the end of every prompt")
    @app_commands.describe(value="Words and/or --parameters; leave out to clear")
    async def suffix(self, interaction: discord.Interaction, value: str = "") -> None:
        await edit(interaction, lambda p: preferences.set_suffix(p, value))

    @prefer.command(name="remix", description="Turn Remix on or off (edit the prompt of V, 🔄, …)")
    async def remix(self, interaction: discord.Interaction) -> None:
        await edit(interaction, _toggle_remix)

    @option.command(name="set", description="Make --NAME stand for a value in your prompts")
    @app_commands.describe(name="The option's name, used as --name", value="What it stands for")
    async def option_set(self, interaction: discord.Interaction, name: str, value: str) -> None:
        await edit(interaction, lambda p: preferences.set_option(p, name, value))

    @option.command(name="list", description="Your options")
    async def option_list(self, interaction: discord.Interaction) -> None:
        await edit(interaction, preferences.list_options, save=False)

    @option.command(name="delete", description="Delete one of your options")
    @app_commands.describe(name="The option's name")
    async def option_delete(self, interaction: discord.Interaction, name: str) -> None:
        await edit(interaction, lambda p: preferences.delete_option(p, name))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Prefer())
