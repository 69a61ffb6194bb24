"""/jobs (your recent jobs; server managers can list everyone's) and /cancel."""

from __future__ import annotations

import io
from collections.abc import Sequence

import discord
from discord import app_commands
from discord.ext import commands
from discord.utils import escape_markdown

from bot.engine.models import Job
from bot.engine.refusals import status_word
from bot.engine.service import Usage
from bot.engine.spending import LedgerLine, ledger_csv
from bot.i18n import Text, tr
from bot.ui.actions import is_manager
from bot.ui.context import ui_context
from bot.ui.render import what
from bot.ui.replies import UserError, guarded, member_locale, tell
from cogs.common import defer_private

LISTED = 15
CONTENT_LIMIT = 2000


def job_line(job: Job, link: str | None, locale: str | None = None) -> str:
    kind = what(job, locale) or job.action.value
    prompt = job.prompt.strip()
    prompt = escape_markdown(prompt if len(prompt) <= 40 else prompt[:39] + "…")
    status = status_word(job.status).render(locale)
    line = f"`{job.id}` <t:{int(job.created_at)}:R> **{status}** · {kind} · "
    line += f"{job.provider}"
    if prompt:
        line += f" · {prompt}"
    if job.user_id:
        line += f" · <@{job.user_id}>"
    if link:
        line += f" · [{tr(locale, 'message')}]({link})"
    if job.failure and job.finished:
        failure = escape_markdown(job.failure[:120])
        line += f"\n-# ↳ {failure}"
    return line


def usage_line(row: Usage, locale: str | None = None) -> str:
    who = f"<@{row.user_id}>" if row.user_id else tr(locale, "terminal")
    return tr(
        locale,
        "{who} · {provider}: **{jobs}** ({succeeded} succeeded, {failed} failed)",
        who=who,
        provider=row.provider,
        jobs=row.jobs,
        succeeded=row.succeeded,
        failed=row.failed,
    )


def ledger_line(line: LedgerLine, locale: str | None = None) -> str:
    who = f"<@{line.user_id}>" if line.user_id else tr(locale, "terminal")
    return tr(
        locale,
        "{who} · {provider}: **{net:g}** credits ({charged:g} charged, {refunded:g} refunded, "
        "{jobs} jobs)",
        who=who,
        provider=line.provider,
        net=line.net,
        charged=line.charged,
        refunded=line.refunded,
        jobs=line.jobs,
    )


def listing(title: str, lines: Sequence[str]) -> str:
    """A bold title and as many whole lines as fit in one Discord message."""
    kept = [f"**{title}**"]
    for line in lines:
        if sum(len(x) + 1 for x in kept) + len(line) > CONTENT_LIMIT:
            break
        kept.append(line)
    return "\n".join(kept)


def cancel_reply(job: Job) -> str:
    """What a cancel says: a job still being sent ends when the provider answers. (The
    failure is Atelier's stored English, translated where it is a catalogue message.)"""
    if not job.finished:
        return Text(
            "Job `{job_id}` is being sent; it is cancelled once the provider answers.",
            job_id=job.id,
        )
    return Text(
        "Job `{job_id}` is cancelled. {failure}", job_id=job.id, failure=Text(job.failure or "")
    )


class Admin(commands.Cog):
    @app_commands.command(name="jobs", description="Your recent jobs (managers: everyone's)")
    @app_commands.describe(everyone="List everyone's jobs in this server (Manage Server only)")
    @app_commands.guild_only()
    async def jobs(self, interaction: discord.Interaction, everyone: bool = False) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            if everyone and not is_manager(interaction):
                raise UserError(Text("Listing everyone's jobs needs the Manage Server permission."))
            guild_id = str(interaction.guild_id) if interaction.guild_id else None
            user_id = None if everyone else str(interaction.user.id)
            jobs = await ctx.engine.recent(LISTED, user_id=user_id, guild_id=guild_id)
            if not jobs:
                await tell(interaction, Text("No jobs yet. Start one with /imagine."))
                return
            locale = member_locale(interaction)
            title = Text("Recent jobs in this server") if everyone else Text("Your recent jobs")
            lines = []
            for job in jobs:
                link = None
                if job.channel_id and job.message_id:
                    link = ctx.sender.jump_url(
                        job.guild_id, int(job.channel_id), int(job.message_id)
                    )
                lines.append(job_line(job, link, locale))
            await tell(interaction, listing(title.render(locale), lines))

    @app_commands.command(name="usage", description="Who sent how many jobs (Manage Server)")
    @app_commands.describe(
        days="How many days back (default 1)", csv="Attach the ledger as a .csv file"
    )
    @app_commands.guild_only()
    async def usage(
        self,
        interaction: discord.Interaction,
        days: app_commands.Range[int, 1, 90] = 1,
        csv: bool = False,
    ) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            if not is_manager(interaction):
                raise UserError(Text("Usage figures need the Manage Server permission."))
            locale = member_locale(interaction)
            ctx = ui_context(interaction.client)
            guild_id = str(interaction.guild_id) if interaction.guild_id else None
            rows = await ctx.engine.usage(days, guild_id=guild_id)
            ledger = await ctx.engine.spending.ledger(days, guild_id=guild_id)
            if csv:
                data = io.BytesIO(ledger_csv(ledger).encode())
                await interaction.followup.send(
                    tr(locale, "The ledger of the last {days} day(s).", days=days),
                    file=discord.File(data, filename=f"atelier-usage-{days}d.csv"),
                    ephemeral=True,
                )
                return
            if not rows and not ledger:
                await tell(
                    interaction,
                    Text("No jobs sent to providers in the last {days} day(s).", days=days),
                )
                return
            lines = [usage_line(row, locale) for row in rows]
            if ledger:
                lines.append(tr(locale, "**Credits** (charged less refunded)"))
                lines += [ledger_line(line, locale) for line in ledger]
            title = tr(locale, "Jobs sent to providers, last {days} day(s)", days=days)
            await tell(interaction, listing(title, lines))

    @app_commands.command(name="cancel", description="Cancel a running job")
    @app_commands.describe(job_id="The job's id (shown on its message and in /jobs)")
    @app_commands.guild_only()
    async def cancel(self, interaction: discord.Interaction, job_id: str) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            ctx = ui_context(interaction.client)
            job = await ctx.engine.get(job_id.strip().lower())
            same_guild = job is not None and job.guild_id == str(interaction.guild_id)
            if job is None or not same_guild:
                raise UserError(
                    Text("There is no job `{job_id}` in this server.", job_id=job_id.strip()[:20])
                )
            if job.user_id != str(interaction.user.id) and not is_manager(interaction):
                raise UserError(
                    Text("Only the person who started a job (or a manager) can cancel it.")
                )
            cancelled = await ctx.engine.cancel(job.id)
            await tell(interaction, cancel_reply(cancelled))

    @cancel.autocomplete("job_id")
    async def _running_jobs(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        ctx = ui_context(interaction.client)
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        jobs = await ctx.engine.recent(50, user_id=str(interaction.user.id), guild_id=guild_id)
        typed = current.strip().lower()
        choices = []
        for job in jobs:
            if job.finished or typed not in job.id:
                continue
            kind = what(job, member_locale(interaction)) or job.action.value
            label = f"{job.id} · {kind} · {job.prompt}"[:100]
            choices.append(app_commands.Choice(name=label, value=job.id))
        return choices[:25]


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Admin())
