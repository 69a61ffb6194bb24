"""The Vary (Region) editor's two steps: opening the page and submitting it.

Both ask what the button asks (the job is still this server's and still offers Vary
(Region), the member may press its buttons); the submit then builds the child job's
request as the button's form does (bot/ui/actions.py) and goes through the same
`Engine.submit`, so the same checks, spend and audit apply. Who asks, and from where,
comes from the signed link, never from the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.engine import access
from bot.engine.intake import RequestError
from bot.engine.models import Action, Job, JobRequest, Origin, Polygon
from bot.i18n import Text
from bot.ui import actions
from bot.ui.context import UiContext
from bot.ui.custom_ids import Target
from bot.ui.outgoing import SendError
from bot.web import used_links
from bot.web.signing import Claims, LinkError

log = logging.getLogger(__name__)

USED = Text("This link was already used to start a job. Press Vary (Region) again for a new one.")


@dataclass(frozen=True)
class Started:
    job_id: str
    link: str  # the child's message, or its channel when it could not be posted yet


def target_of(claims: Claims) -> Target:
    return Target(Action.INPAINT.value, claims.job_id, claims.index, claims.variant)


def picked_image(job: Job, index: int) -> str | None:
    """The image Vary (Region) redraws: the pressed one (the engine picks alike)."""
    if not job.images:
        return None
    return job.images[index - 1] if 0 < index <= len(job.images) else job.images[0]


async def open_job(ctx: UiContext, claims: Claims) -> Job:
    """The job an editor link is about, or LinkError when its button would refuse."""
    job = await ctx.engine.get(claims.job_id)
    settings = await ctx.engine.settings.get(claims.guild_id)
    if job is None:
        raise LinkError(Text("Job `{job_id}` no longer exists.", job_id=claims.job_id), 404)
    allowed = ctx.config.discord.allowed_guild_ids
    if not access.guild_allowed(claims.guild_id, allowed, Origin.DISCORD):
        raise LinkError(actions.NOT_IN_THIS_SERVER)
    if job.guild_id != claims.guild_id:
        raise LinkError(actions.NOT_AVAILABLE, 404)
    owner = job.user_id == claims.user_id
    requester_only = access.button_access(ctx.config, settings) == access.REQUESTER
    if requester_only and not (owner or claims.is_manager):
        raise LinkError(
            Text("Only the person who started job `{job_id}` can use its buttons.", job_id=job.id)
        )
    problem = actions.check_action(ctx, job, target_of(claims))
    if problem:
        raise LinkError(problem)
    if picked_image(job, claims.index) is None:
        raise LinkError(Text("Job `{job_id}` has no image to redraw.", job_id=job.id), 404)
    return job


def child_request(claims: Claims, job: Job, prompt: str, shapes: list[Polygon]) -> JobRequest:
    """What the button's form would ask for, by the member the link was given to."""
    return JobRequest(
        Action.INPAINT,
        origin=Origin.DISCORD,
        user_id=claims.user_id,
        guild_id=claims.guild_id,
        channel_id=claims.channel_id,
        parent_channel_id=claims.parent_channel_id,
        role_ids=claims.role_ids,
        is_manager=claims.is_manager,
        parent_id=job.id,
        index=claims.index,
        variant=claims.variant,
        prompt=prompt,
        polygons=shapes,
    )


async def submit(ctx: UiContext, claims: Claims, prompt: str, shapes: list[Polygon]) -> Started:
    """Start the child job and post its message where the button was pressed.

    RequestError (the engine's refusal, worded for the member) and LinkError propagate;
    the link stays usable after a refusal, so the member can fix the prompt."""
    job = await open_job(ctx, claims)
    store = ctx.engine.store
    if not await used_links.take(store, claims.nonce):
        raise LinkError(USED, 409)
    try:
        child = await ctx.engine.submit(child_request(claims, job, prompt, shapes))
    except RequestError:
        await used_links.give_back(store, claims.nonce)
        raise
    return Started(child.id, await _announce(ctx, claims, child))


async def _announce(ctx: UiContext, claims: Claims, child: Job) -> str:
    """Post the child's message (a reply to the pressed one); the link to show."""
    channel_id = int(claims.channel_id or 0)
    channel_link = f"https://discord.com/channels/{claims.guild_id or '@me'}/{channel_id}"
    reply_to = int(claims.reply_to) if claims.reply_to else None
    try:
        message_id = await ctx.presenter.announce(
            child,
            channel_id,
            reply_to=reply_to,
            limit=ctx.sender.upload_limit(claims.guild_id),
        )
    except SendError as err:  # the job runs; its result is posted when the channel takes it
        log.warning("job %s started from the web editor; its message failed: %s", child.id, err)
        return channel_link
    if message_id is None:
        return channel_link
    return ctx.sender.jump_url(claims.guild_id, channel_id, message_id)
