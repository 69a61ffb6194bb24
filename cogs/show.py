"""/show JOB_ID: post a finished job again in this channel, with its images and buttons.

A member may show their own jobs; a member who may manage the server, any job of this
server. Never another server's job: for one of those the answer is the same as for an
id that does not exist, so nothing about other servers is told.
"""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine.models import Job, JobStatus, is_job_id
from bot.engine.refusals import status_word
from bot.i18n import Text
from bot.i18n import render as render_text
from bot.ui import render
from bot.ui.actions import is_manager
from bot.ui.context import UiContext, ui_context
from bot.ui.outgoing import ChannelGone, SendError
from bot.ui.replies import UserError, guarded, member_locale, tell
from bot.ui.repost import repost, stored_images
from cogs.common import MAX_CHOICES, check_channel, defer_private

CHOICE_CHARS = 100  # Discord's limit for a choice's name


def refusal(job: Job | None, job_id: str, interaction: discord.Interaction) -> str | None:
    """Why this member may not show this job here, or None."""
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    if job is None or job.guild_id != guild_id:
        return Text("There is no job `{job_id}` in this server.", job_id=job_id)
    if job.user_id != str(interaction.user.id) and not is_manager(interaction):
        return Text(
            "Job `{job_id}` is <@{user}>'s: only they, or a server manager, can show it.",
            job_id=job.id,
            user=job.user_id,
        )
    return None


def not_shown(ctx: UiContext, job: Job, locale: str | None = None) -> str | None:
    """Why the job has nothing to post again (its status, or its images swept), or None."""
    if job.status is not JobStatus.SUCCEEDED:
        if job.finished:
            why = f": {job.failure}" if job.failure else ""
            return Text(
                "Job `{job_id}` has no results to show; it {status}{why}",
                job_id=job.id,
                status=status_word(job.status),
                why=why,
            )
        status = render.status_line(job, locale)
        return Text("Job `{job_id}` has no results yet. {status}", job_id=job.id, status=status)
    videos = [rel for rel in job.videos if rel]
    if videos and not any(ctx.engine.media_path(rel).is_file() for rel in videos):
        return Text(
            "The videos of job `{job_id}` are no longer kept (media retention removed "
            "them), so it cannot be shown again.",
            job_id=job.id,
        )
    images = stored_images(job)
    if not videos and images and not any(ctx.engine.media_path(rel).is_file() for rel in images):
        return Text(
            "The images of job `{job_id}` are no longer kept (media retention removed "
            "them), so it cannot be shown again.",
            job_id=job.id,
        )
    return None


def choice_name(job: Job) -> str:
    what = job.prompt.strip() or job.action.value
    return f"{job.id} · {job.action.value} · {what}"[:CHOICE_CHARS]


async def recent_jobs(
    interaction: discord.Interaction, current: str
) -> list[app_commands.Choice[str]]:
    """The member's recent finished jobs in this server, newest first."""
    if interaction.guild_id is None:
        return []
    ctx = ui_context(interaction.client)
    jobs = await ctx.engine.recent(
        50, user_id=str(interaction.user.id), guild_id=str(interaction.guild_id)
    )
    typed = current.strip().lower()
    return [
        app_commands.Choice(name=choice_name(job), value=job.id)
        for job in jobs
        if job.status is JobStatus.SUCCEEDED and typed in choice_name(job).lower()
    ][:MAX_CHOICES]


class Show(commands.Cog):
    @app_commands.command(name="show", description="Post one of your jobs here again")
    @app_commands.describe(job_id="The job's id (as on its message, or /jobs)")
    @app_commands.autocomplete(job_id=recent_jobs)
    @app_commands.guild_only()
    async def show(self, interaction: discord.Interaction, job_id: str) -> None:
        if not await defer_private(interaction):
            return
        async with guarded(interaction):
            await show_job(interaction, job_id.strip().lower())


async def show_job(interaction: discord.Interaction, job_id: str) -> None:
    """Check, repost and point the private answer at the new message."""
    ctx = ui_context(interaction.client)
    job = await ctx.engine.get(job_id) if is_job_id(job_id) else None
    locale = member_locale(interaction)
    problem = refusal(job, job_id, interaction) or (not_shown(ctx, job, locale) if job else None)
    if problem or job is None:
        await tell(interaction, f"❌ {render_text(problem or '', locale)}")
        return
    check_channel(interaction)
    assert interaction.channel_id is not None
    ctx.sender.note_limit(job.guild_id, interaction.filesize_limit)
    try:
        message_id = await repost(
            ctx.presenter,
            job,
            interaction.channel_id,
            limit=interaction.filesize_limit,
            shown_by=str(interaction.user.id),
        )
    except ChannelGone:
        raise UserError(
            Text(
                "I cannot post in this channel (I need Send Messages, Attach Files and Read "
                "Message History)."
            )
        ) from None
    except SendError as err:
        raise UserError(
            Text(
                "Job `{job_id}` could not be posted again ({error}); try later.",
                job_id=job.id,
                error=str(err),
            )
        ) from None
    link = ctx.sender.jump_url(job.guild_id, interaction.channel_id, message_id)
    await tell(interaction, Text("✅ Job `{job_id}` → {link}", job_id=job.id, link=link))


async def setup(bot: commands.Bot) -> None:
    await bot.add_cog(Show())
