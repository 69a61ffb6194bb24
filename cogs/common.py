"""Pieces shared by the cogs: provider autocomplete, and starting a job from a command."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import discord
from discord import app_commands

from bot.engine.models import ImageInput, Job, JobRequest, Origin
from bot.i18n import Text, render, tr
from bot.ui.actions import is_manager, role_ids, start_job, thread_parent_id
from bot.ui.attachments import read_images
from bot.ui.context import UiContext, ui_context
from bot.ui.replies import UserError, guarded, member_locale
from bot.vocab import Action

log = logging.getLogger(__name__)

MAX_CHOICES = 25
YOUR_JOB = Text("Your job")


def provider_names(ctx: UiContext, action: Action, current: str) -> list[str]:
    """Configured providers that offer `action`, default first, filtered by what is typed."""
    names = ctx.engine.providers_for(action)
    default = ctx.engine.default_provider
    names.sort(key=lambda n: (n != default, n))
    typed = current.strip().lower()
    return [n for n in names if typed in n.lower()][:MAX_CHOICES]


Completer = Callable[
    [discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]
]


def provider_autocomplete(action: Action) -> Completer:
    """Autocomplete of the configured provider names that offer `action`."""

    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        ctx = ui_context(interaction.client)
        return [app_commands.Choice(name=n, value=n) for n in provider_names(ctx, action, current)]

    return complete


def check_channel(interaction: discord.Interaction) -> None:
    """Refuse before any provider call when the job's message could not be posted here."""
    if interaction.guild_id is None:
        return
    permissions = interaction.app_permissions
    in_thread = isinstance(interaction.channel, discord.Thread)
    can_send = permissions.send_messages_in_threads if in_thread else permissions.send_messages
    missing = [
        name
        for name, ok in (
            (Text("View Channel"), permissions.view_channel),
            (Text("Send Messages"), can_send),
            (Text("Attach Files"), permissions.attach_files),
            (Text("Read Message History"), permissions.read_message_history),
        )
        if not ok
    ]
    if missing:
        locale = member_locale(interaction)
        raise UserError(
            Text(
                "I cannot post results in this channel: I need {permissions} here. "
                "Ask a server admin, or use another channel.",
                permissions=", ".join(name.render(locale) for name in missing),
            )
        )


async def start_and_point(
    interaction: discord.Interaction, request: JobRequest, *, what: str = YOUR_JOB
) -> None:
    """Submit a request from a slash command (already deferred, ephemeral), post the
    job's message in the channel, and point the private reply at it."""
    ctx = ui_context(interaction.client)
    locale = member_locale(interaction)
    kind = render(what, locale)

    async def while_waiting(job: Job) -> None:
        # The webhook edit does not count against the channel's limit: say it at once.
        await interaction.edit_original_response(
            content=tr(
                locale,
                "✅ {what} `{job_id}` has started. This channel is busy, so its message "
                "will appear here in a moment.",
                what=kind,
                job_id=job.id,
            ),
            allowed_mentions=discord.AllowedMentions.none(),
        )

    job, message_id = await start_job(
        ctx, interaction, request, reply_to=None, while_waiting=while_waiting
    )
    if message_id is None:
        where = tr(locale, "this channel (as soon as Discord lets me post)")
    else:
        where = ctx.sender.jump_url(job.guild_id, interaction.channel_id or 0, message_id)
    # The progress message is deleted once the result is posted (one message per job),
    # so the link is to follow it while it runs; say where the result will be.
    channel_link = f"<#{interaction.channel_id}>" if interaction.channel_id else where
    if job.failure and job.finished:
        text = tr(
            locale,
            "❌ Job `{job_id}` failed: {failure}\nDetails: {where}",
            job_id=job.id,
            failure=Text(job.failure or ""),
            where=where,
        )
    else:
        text = tr(
            locale,
            "✅ {what} `{job_id}` is on its way → {where}\nIts result will be posted in "
            "{channel} as a new message that mentions you.",
            what=kind,
            job_id=job.id,
            where=where,
            channel=channel_link,
        )
    await interaction.edit_original_response(
        content=text[:2000], allowed_mentions=discord.AllowedMentions.none()
    )


async def command_job(
    interaction: discord.Interaction,
    action: Action,
    *,
    what: str = YOUR_JOB,
    provider: str | None = None,
    prompt: str = "",
    attachments: Sequence[discord.Attachment | None] = (),
    dimensions: str = "SQUARE",
) -> None:
    """The whole of a job-starting slash command: acknowledge at once, check the channel
    and the attachments, submit, and point the private reply at the job's message."""
    if not await defer_private(interaction):
        return
    async with guarded(interaction):
        ctx = ui_context(interaction.client)
        check_channel(interaction)
        max_bytes = int(ctx.config.discord.max_attachment_mib * 1024 * 1024)
        max_pixels = ctx.config.engine.max_attachment_pixels
        images = await read_images(attachments, max_bytes, max_pixels) if attachments else []
        request = make_request(
            interaction,
            action,
            prompt=prompt,
            provider=provider,
            images=images,
            dimensions=dimensions,
        )
        await start_and_point(interaction, request, what=what)


async def defer_private(interaction: discord.Interaction) -> bool:
    """Acknowledge at once (ephemeral "thinking…"); False when Discord refused it."""
    try:
        await interaction.response.defer(ephemeral=True, thinking=True)
    except discord.HTTPException as err:
        log.warning("could not acknowledge interaction %s: %s", interaction.id, err)
        return False
    return True


def make_request(
    interaction: discord.Interaction,
    action: Action,
    *,
    prompt: str = "",
    provider: str | None = None,
    images: Sequence[ImageInput] = (),
    dimensions: str = "SQUARE",
) -> JobRequest:
    """A request from a slash command: who asked, where, and what."""
    return JobRequest(
        action,
        prompt=prompt,
        provider=provider or None,
        images=images,
        dimensions=dimensions,
        origin=Origin.DISCORD,
        user_id=str(interaction.user.id),
        guild_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(interaction.channel_id),
        parent_channel_id=thread_parent_id(interaction),
        # For the server's rules (roles per provider, per-role limits).
        role_ids=role_ids(interaction),
        is_manager=is_manager(interaction),
    )
