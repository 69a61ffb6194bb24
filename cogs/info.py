"""/info: a member's running and waiting jobs (with their place in line), their own
spend today and this month, what is left, and when it resets."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import Action, Job, JobStatus
from bot.engine.spending import Balance
from bot.ui import render, settings_panel
from bot.ui.context import UiContext, ui_context
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


# ---- the member's jobs that have not finished

ACTIVE_SCAN = 200  # recent jobs read to find the unfinished ones
ACTIVE_SHOWN = 8
PROMPT_CHARS = 60


async def active_jobs(ctx: UiContext, user_id: str, guild_id: str | None) -> list[Job]:
    """The member's unfinished jobs in this server, oldest first, in their newest state
    (a waiting job's place in line is read from the queue now, not as it was stored)."""
    recent = await ctx.engine.recent(ACTIVE_SCAN, user_id=user_id, guild_id=guild_id)
    jobs: list[Job] = []
    for stored in reversed(recent):
        if stored.finished:
            continue
        job = await ctx.engine.get(stored.id) or stored
        if job.status is JobStatus.WAITING:
            job.queue_position = ctx.engine.dispatcher.position(job.id) or job.queue_position
        if not job.finished:
            jobs.append(job)
    return jobs


def job_line(job: Job) -> str:
    prompt = job.prompt.strip()
    what = f" · {prompt[:PROMPT_CHARS]}{'…' if len(prompt) > PROMPT_CHARS else ''}"
    return f"`{job.id}` {job.action.value}{what if prompt else ''}\n  {render.status_line(job)}"


def jobs_text(jobs: list[Job]) -> str:
    """The /info lines about the member's running and waiting jobs."""
    if not jobs:
        return "**Your jobs**: none running or waiting."
    lines = [f"**Your jobs** ({len(jobs)} running or waiting)"]
    lines += [job_line(job) for job in jobs[:ACTIVE_SHOWN]]
    if len(jobs) > ACTIVE_SHOWN:
        lines.append(f"…and {len(jobs) - ACTIVE_SHOWN} more (/jobs lists them).")
    return "\n".join(lines)


class Info(commands.Cog):
    @app_commands.command(name="info", description="Your running jobs, spending and what is left")
    async def info(self, interaction: discord.Interaction) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            # The same member, roles and server a job request would carry.
            request = make_request(interaction, Action.IMAGINE)
            balance = await ctx.engine.spending.balance(request)
            jobs = await active_jobs(ctx, str(interaction.user.id), request.guild_id)
            prefs = await ctx.engine.preferences.get(request.guild_id, str(interaction.user.id))
            mine = "\n".join(["**Your settings** (/settings)", *settings_panel.summary(prefs)])
            await tell(interaction, f"{jobs_text(jobs)}\n\n{info_text(balance)}\n\n{mine}")


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Info())
