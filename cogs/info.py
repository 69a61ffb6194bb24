"""/info: a member's own spend today and this month, what is left, and when it resets."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import Action
from bot.engine.spending import Balance
from bot.ui.context import ui_context
from bot.ui.replies import guarded, tell
from cogs.common import defer_private, make_request


def _credits(value: float) -> str:
    return f"{value:g} credit{'' if value == 1 else 's'}"


def _period(name: str, spent: float, left: float | None, limit: float | None, at: float) -> str:
    if limit is None:
        return f"**{name}**: {_credits(spent)} spent · no limit"
    return (
        f"**{name}**: {_credits(spent)} of {limit:g} spent · **{_credits(left or 0)} left** · "
        f"resets <t:{int(at)}:R>"
    )


def info_text(balance: Balance) -> str:
    """The /info answer (Discord timestamps show each reset in the reader's own time)."""
    budget = balance.budget
    lines = [
        "**Your spending**",
        _period(
            "Today", balance.spent_today, balance.left_today, budget.daily, balance.day_resets_at
        ),
        _period(
            "This month",
            balance.spent_month,
            balance.left_month,
            budget.monthly,
            balance.month_resets_at,
        ),
    ]
    if budget.max_active is not None:
        lines.append(f"Jobs at once: up to {budget.max_active}.")
    lines.append("-# A job the provider fails, or one never sent, is refunded.")
    return "\n".join(lines)


class Info(commands.Cog):
    @app_commands.command(name="info", description="Your spending: used, left, and when it resets")
    async def info(self, interaction: discord.Interaction) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            # The same member, roles and server a job request would carry.
            balance = await ctx.engine.spending.balance(make_request(interaction, Action.IMAGINE))
            await tell(interaction, info_text(balance))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Info())
