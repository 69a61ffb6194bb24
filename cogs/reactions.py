"""Reactions on job messages: ✉️ sends the job by DM, ❌ withdraws it (bot/ui/reactions.py).

Needs only the non-privileged guild reactions intent (bot/app.py `intents`); the raw
event is used, so no message has to be in the cache.
"""

from __future__ import annotations

import discord
from discord.ext import commands

from bot.ui.context import ui_context
from bot.ui.reactions import Reaction, Reactions


class ReactionsCog(commands.Cog, name="Reactions"):
    def __init__(self, handler: Reactions) -> None:
        self.handler = handler

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        await self.handler.on_reaction(Reaction.from_event(event))


async def setup(bot: commands.Bot) -> None:
    ctx = ui_context(bot)
    engine, presenter = ctx.engine, ctx.presenter
    handler = Reactions(
        bot,
        engine,
        engine.store.job_for_message,
        ctx.sender.upload_limit,
        image_check=lambda: presenter.image_check,  # the server's check covers DMs too
        locale_of=ctx.sender.guild_locale,
    )
    presenter.posted = handler.note_posted  # so a fresh result is found at once
    await bot.add_cog(ReactionsCog(handler))
