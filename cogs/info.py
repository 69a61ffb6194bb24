"""/info: a member's running and waiting jobs (with their place in line), their own
spend today and this month, what is left, and when it resets."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import Action, Job, JobStatus
from bot.engine.spending import Balance
from bot.i18n import Text, tr
from bot.ui import render, settings_panel
from bot.ui.context import UiContext, ui_context
from bot.ui.replies import guarded, member_locale, tell
from cogs.common import defer_private, make_request

Locale = str | None


def _credits(value: float, locale: Locale = None) -> str:
    if value == 1:
        return tr(locale, "{n:g} credit", n=value)
    return tr(locale, "{n:g} credits", n=value)


def _period(
    name: Text, spent: float, left: float | None, limit: float | None, at: float, locale: Locale
) -> str:
    if limit is None:
        return tr(
            locale,
            "**{name}**: {spent} spent · no limit",
            name=name,
            spent=_credits(spent, locale),
        )
    return tr(
        locale,
        "**{name}**: {spent} of {limit:g} spent · **{left} left** · resets <t:{at}:R>",
        name=name,
        spent=_credits(spent, locale),
        limit=limit,
        left=_credits(left or 0, locale),
        at=int(at),
    )


def info_text(balance: Balance, locale: Locale = None) -> str:
    """The /info answer (Discord timestamps show each reset in the reader's own time)."""
    budget = balance.budget
    lines = [
        tr(locale, "**Your spending**"),
        _period(
            Text("Today"),
            balance.spent_today,
            balance.left_today,
            budget.daily,
            balance.day_resets_at,
            locale,
        ),
        _period(
            Text("This month"),
            balance.spent_month,
            balance.left_month,
            budget.monthly,
            balance.month_resets_at,
            locale,
        ),
    ]
    if budget.max_active is not None:
        lines.append(tr(locale, "Jobs at once: up to {n}.", n=budget.max_active))
    lines.append("-# " + tr(locale, "A job the provider fails, or one never sent, is refunded."))
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


def job_line(job: Job, locale: Locale = None) -> str:
    prompt = job.prompt.strip()
    what = f" · {prompt[:PROMPT_CHARS]}{'…' if len(prompt) > PROMPT_CHARS else ''}"
    status = render.status_line(job, locale)
    return f"`{job.id}` {job.action.value}{what if prompt else ''}\n  {status}"


def jobs_text(jobs: list[Job], locale: Locale = None) -> str:
    """The /info lines about the member's running and waiting jobs."""
    if not jobs:
        return tr(locale, "**Your jobs**: none running or waiting.")
    lines = [tr(locale, "**Your jobs** ({n} running or waiting)", n=len(jobs))]
    lines += [job_line(job, locale) for job in jobs[:ACTIVE_SHOWN]]
    if len(jobs) > ACTIVE_SHOWN:
        more = len(jobs) - ACTIVE_SHOWN
        lines.append(tr(locale, "…and {n} more (/jobs lists them).", n=more))
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
            locale = member_locale(interaction)
            summary = settings_panel.summary(prefs, locale)
            mine = "\n".join([tr(locale, "**Your settings** (/settings)"), *summary])
            answer = f"{jobs_text(jobs, locale)}\n\n{info_text(balance, locale)}\n\n{mine}"
            await tell(interaction, answer)


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Info())
