"""What a button press or a submitted form does.

Everything is read from the store by job id: the custom_id carries nothing else, so a
month-old button works after any number of restarts. A press is acknowledged at once
(a silent defer: the new job's message, replying to the pressed one, is the answer);
problems are said privately. Vary (Region) and Custom Zoom open a form instead, which
must be the first answer, so they check the job (one local read) before anything else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import discord

from bot.engine import access
from bot.engine.audit import AuditKind
from bot.engine.models import Job, JobRequest, Origin, Region
from bot.engine.refusals import status_word
from bot.engine.settings import ServerSettings
from bot.i18n import Text
from bot.ui import custom_ids, describe, modals, remix, repost
from bot.ui.context import UiContext, ui_context
from bot.ui.custom_ids import Target
from bot.ui.outgoing import ChannelGone
from bot.ui.regions import parse_zoom, regions_from, with_zoom
from bot.ui.replies import UserError, guarded, member_locale, tell
from bot.vocab import Action, action_name
from bot.web.discord_links import offer_editor

log = logging.getLogger(__name__)

# Reads before a modal must leave time to answer within Discord's 3 s.
MODAL_READ_TIMEOUT = 1.5


def opens_modal(target: Target) -> bool:
    return (
        target.action == Action.INPAINT.value
        or (target.action == Action.ZOOM.value and target.variant == "custom")
        or describe.opens_form(target)
    )


NOT_AVAILABLE = Text("This button is not available here.")


def is_manager(interaction: discord.Interaction) -> bool:
    permissions = interaction.permissions
    return bool(permissions.manage_guild or permissions.administrator)


def role_ids(interaction: discord.Interaction) -> list[str]:
    """The presser's roles in this server (ids, @everyone left out); none in a DM."""
    user = interaction.user
    if not isinstance(user, discord.Member):
        return []
    return [str(role.id) for role in user.roles if not role.is_default()]


def thread_parent_id(interaction: discord.Interaction) -> str | None:
    """The channel a thread is in, when the interaction came from a thread (discord.py
    builds the Thread from the interaction's own channel data when it is not cached)."""
    channel = interaction.channel
    if isinstance(channel, discord.Thread) and channel.parent_id:
        return str(channel.parent_id)
    return None


def _place_of(interaction: discord.Interaction) -> tuple[str | None, str | None]:
    guild_id = getattr(interaction, "guild_id", None)
    channel_id = getattr(interaction, "channel_id", None)
    return (
        str(guild_id) if guild_id else None,
        str(channel_id) if channel_id else None,
    )


def check_press(
    ctx: UiContext,
    interaction: discord.Interaction,
    job: Job | None,
    target: Target,
    settings: ServerSettings | None = None,
) -> str | None:
    """Why this press cannot go ahead (a sentence for the presser), or None.

    A custom_id comes from the client and may be forged: the job must belong to this
    server (and this channel, unless the presser asked for it), and the action must be
    one the job offered; otherwise the press is "not available" and nothing is spent."""
    if job is None:
        return Text(
            "Job `{job_id}` no longer exists, so its buttons no longer work. "
            "Start a new one with /imagine.",
            job_id=target.job_id,
        )
    owner = job.user_id == str(interaction.user.id)
    guild_id, channel_id = _place_of(interaction)
    elsewhere = job.channel_id != channel_id and not repost.shown_here(interaction, job.id)
    if job.guild_id != guild_id or (elsewhere and not owner):
        return NOT_AVAILABLE
    if target.action == custom_ids.CANCEL:
        if not (owner or is_manager(interaction)):
            return Text("Only the person who started this job (or a server manager) can cancel it.")
        if job.finished:
            return Text(
                "Job `{job_id}` has already {status}.",
                job_id=job.id,
                status=status_word(job.status),
            )
        return None
    requester_only = access.button_access(ctx.config, settings) == access.REQUESTER
    if requester_only and not (owner or is_manager(interaction)):
        return Text("Only <@{user}> can use the buttons of this job.", user=job.user_id)
    return _check_action(ctx, job, target)


def _check_action(ctx: UiContext, job: Job, target: Target) -> str | None:
    try:
        action = Action(target.action)
    except ValueError:
        return Text("This button is from a version of Atelier that no longer offers it.")
    if not ctx.engine.has_provider(job.provider):
        return Text(
            "The provider {provider!r} is no longer configured here.", provider=job.provider
        )
    if describe.handles(target):  # the buttons under a describe/shorten answer
        return describe.problem(job, target)
    if ctx.engine.offers(job, action, target.index, target.variant) is None:
        number = f" {target.index}" if target.index else ""
        what = Text(
            "{action}{number} is not offered for job `{job_id}` on {provider}.",
            action=action_name(action),
            number=number,
            job_id=job.id,
            provider=job.provider,
        )
        # Never offered by this job (a forged or foreign custom_id) vs. no longer served.
        return (
            Text("{refusal} {reason}", refusal=NOT_AVAILABLE, reason=what)
            if job.offers(action, target.index, target.variant) is None
            else what
        )
    return None


# The web editor's submit asks the same (it has no interaction).
check_action = _check_action


def _request(
    interaction: discord.Interaction,
    target: Target,
    job: Job,
    *,
    prompt: str = "",
    regions: Sequence[Region] = (),
) -> JobRequest:
    """The child job a press asks for; it belongs to whoever pressed."""
    return replace(
        _asker(interaction, Action(target.action)),
        parent_id=job.id,
        index=target.index,
        variant=target.variant,
        prompt=prompt,
        regions=regions,
    )


def _asker(interaction: discord.Interaction, action: Action) -> JobRequest:
    """A request of `action` by whoever pressed, from where they pressed."""
    return JobRequest(
        action,
        origin=Origin.DISCORD,
        user_id=str(interaction.user.id),
        guild_id=str(interaction.guild_id) if interaction.guild_id else None,
        channel_id=str(interaction.channel_id),
        parent_channel_id=thread_parent_id(interaction),
        role_ids=role_ids(interaction),
        is_manager=is_manager(interaction),
    )


async def start_job(
    ctx: UiContext,
    interaction: discord.Interaction,
    request: JobRequest,
    *,
    reply_to: int | None,
    while_waiting: Callable[[Job], Awaitable[None]] | None = None,
) -> tuple[Job, int | None]:
    """Submit, then post the job's message in the channel. RequestError propagates.

    In a busy channel the post may wait for Discord's per-channel limit; then
    `while_waiting` is told first, so the person who asked is not left guessing."""
    job = await ctx.engine.submit(request)
    limit = interaction.filesize_limit
    ctx.sender.note_limit(request.guild_id, limit)
    assert interaction.channel_id is not None
    pacer = ctx.presenter.pacer
    busy = (
        pacer.has_urgent(interaction.channel_id)  # others already wait to post there
        or pacer.ready_in(interaction.channel_id) > BUSY_CHANNEL_SECONDS
    )
    if while_waiting is not None and busy:
        await while_waiting(job)
    try:
        message_id = await ctx.presenter.announce(
            job, interaction.channel_id, reply_to=reply_to, limit=limit
        )
    except ChannelGone:
        raise UserError(
            Text(
                "Job `{job_id}` started, but I cannot post in this channel (I need Send "
                "Messages, Attach Files and Read Message History). /jobs lists it.",
                job_id=job.id,
            )
        ) from None
    return job, message_id


# A channel whose next write is further off than this counts as busy.
BUSY_CHANNEL_SECONDS = 1.5


async def press(interaction: discord.Interaction, target: Target) -> None:
    """A press on one of our buttons (called by the DynamicItem)."""
    ctx = ui_context(interaction.client)
    async with guarded(interaction):
        if opens_modal(target) or await remix.wants_form(ctx, interaction, target):
            await _open_modal(ctx, interaction, target)
            return
        await interaction.response.defer()  # within 3 s, whatever comes next
        job = await _pressed_job(ctx, interaction, target)
        if job is None:
            return
        if target.action == custom_ids.CANCEL:
            cancelled = await ctx.engine.cancel(job.id)
            if cancelled.finished:
                said = Text("Job `{job_id}` is cancelled.", job_id=cancelled.id)
            else:
                said = Text(
                    "Job `{job_id}` is cancelled once the provider answers (it is being sent).",
                    job_id=cancelled.id,
                )
            await tell(interaction, said)
            return
        reply_to = interaction.message.id if interaction.message else None
        if describe.handles(target):  # 🔄 or "Imagine all" under a describe answer

            async def start(request: JobRequest) -> Job:
                return (await start_job(ctx, interaction, request, reply_to=reply_to))[0]

            asker = _asker(interaction, Action.IMAGINE)
            await describe.on_press(ctx, interaction, asker, job, target, start)
            return
        await start_job(ctx, interaction, _request(interaction, target, job), reply_to=reply_to)


async def _pressed_job(
    ctx: UiContext,
    interaction: discord.Interaction,
    target: Target,
    *,
    timeout: float | None = None,
) -> Job | None:
    """The job a press or a form is about, or None once the presser is told why not."""
    if not await guild_admitted(ctx, interaction):
        return None
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    try:
        async with asyncio.timeout(timeout):
            job = await ctx.engine.get(target.job_id)
            settings = await ctx.engine.settings.get(guild_id)
    except TimeoutError:
        raise UserError(Text("Atelier is busy right now; press the button again.")) from None
    problem = check_press(ctx, interaction, job, target, settings)
    if problem:
        await tell(interaction, problem)
        return None
    return job


async def guild_admitted(ctx: UiContext, interaction: discord.Interaction) -> bool:
    """False (the person told privately, the refusal in the audit) when this server is
    not one of `[discord] allowed_guild_ids`. Commands, buttons and forms all ask."""
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    if access.guild_allowed(guild_id, ctx.config.discord.allowed_guild_ids, Origin.DISCORD):
        return True
    if interaction.type is discord.InteractionType.autocomplete:
        return False  # no answer, and no audit line per keystroke
    await ctx.engine.audit.record(
        AuditKind.REFUSAL,
        guild_id=guild_id,
        channel_id=str(interaction.channel_id) if interaction.channel_id else None,
        user_id=str(interaction.user.id),
        outcome="guild",
        detail="a server not in [discord] allowed_guild_ids",
    )
    await tell(interaction, NOT_IN_THIS_SERVER)
    return False


NOT_IN_THIS_SERVER = Text("Atelier is not available in this server.")


async def _open_modal(ctx: UiContext, interaction: discord.Interaction, target: Target) -> None:
    job = await _pressed_job(ctx, interaction, target, timeout=MODAL_READ_TIMEOUT)
    if job is None:
        return
    locale = member_locale(interaction)  # a form is seen by the presser only
    if target.action == Action.INPAINT.value and await offer_editor(interaction, target):
        return  # [http] public_url is set: a link to the web editor instead of the form
    if describe.opens_form(target):
        form = describe.prompt_form(target, job, locale)
    elif target.action == Action.INPAINT.value:
        form = modals.region_modal(target, job, locale)
    elif remix.handles(target):  # Remix is on: the prompt to edit first
        form = remix.form(target, job, locale)
    else:
        form = modals.zoom_modal(target, job, locale)
    await interaction.response.send_modal(form)


async def on_modal_submit(interaction: discord.Interaction) -> None:
    """Listener for every interaction: handles submissions of our forms."""
    if interaction.type is not discord.InteractionType.modal_submit:
        return
    data: Mapping[str, Any] = interaction.data or {}
    target = custom_ids.parse_modal(str(data.get("custom_id", "")))
    if target is None:
        return
    ctx = ui_context(interaction.client)
    async with guarded(interaction):
        await interaction.response.defer(ephemeral=True, thinking=True)
        values = modals.read_values(data.get("components") or [])
        job = await _pressed_job(ctx, interaction, target)
        if job is None:
            return
        prompt = (values.get(modals.PROMPT) or [""])[0].strip()
        if describe.opens_form(target):  # a prompt of a describe/shorten answer, edited
            text = prompt or job.texts[target.index - 1]
            asker = _asker(interaction, Action.IMAGINE)
            request = await describe.imagine_request(ctx, asker, job, text)
        elif target.action == Action.INPAINT.value:
            regions = regions_from(values.get(modals.AREA, []), values.get(modals.BOX, [""])[0])
            request = _request(interaction, target, job, regions=regions, prompt=prompt)
        elif remix.handles(target):  # a Remix form: its prompt is the new job's own
            request = _request(interaction, target, job, prompt=prompt or job.prompt)
        else:
            factor = parse_zoom((values.get(modals.FACTOR) or [""])[0])
            request = _request(
                interaction, target, job, prompt=with_zoom(prompt or job.prompt, factor)
            )
        reply_to = interaction.message.id if interaction.message else None
        child, message_id = await start_job(ctx, interaction, request, reply_to=reply_to)
        link = (
            ctx.sender.jump_url(child.guild_id, interaction.channel_id or 0, message_id)
            if message_id
            else Text("this channel")
        )
        await tell(
            interaction, Text("✅ Started job `{job_id}` → {link}", job_id=child.id, link=link)
        )
