"""Posting a finished job's result again (/show), through the presenter's paced sender.

The repost is the job's result message as it was first posted: the same text, the
images read from the store's media (re-encoded to fit this channel), and the same
buttons. Buttons carry only an action and the job id, so they work on the repost like
on the original. A press outside the job's own channel is let through when the message
it comes from is one of ours marked as a repost of that job (the mark is on the repost
only, so a press forged onto a copy of the original result is still refused).
"""

from __future__ import annotations

from dataclasses import replace

import discord

from bot.engine.models import Job
from bot.i18n import CATALOGUES, ENGLISH, Text, tr
from bot.ui import render
from bot.ui.outgoing import TooLarge
from bot.ui.presenter import Presenter

# Smallest upload limit tried after Discord refused a repost as too large.
MIN_LIMIT = 256 * 1024
MARK = Text("🔁 Shown again")


def stored_images(job: Job) -> list[str]:
    """The job's result images (paths relative to the media folder)."""
    return [job.grid] if job.grid else [rel for rel in job.images if rel]


def _marked(content: str, shown_by: str, locale: str | None) -> str:
    said = tr(locale, "{mark} by <@{user}> with /show", mark=MARK, user=shown_by)
    mark = f"\n-# {said}"
    room = render.CONTENT_LIMIT - len(mark)
    return (content if len(content) <= room else content[: room - 1] + "…") + mark


async def repost(
    presenter: Presenter, job: Job, channel_id: int, *, limit: int | None, shown_by: str
) -> int:
    """Post `job`'s result in `channel_id` (paced with the channel's other writes) and
    return the message id. Nobody is pinged: the requester already was, the first time.
    SendError (ChannelGone, ...) propagates."""
    limit = limit or presenter.sender.upload_limit(job.guild_id)
    for _ in range(2):
        files, notes = await presenter.result_files(job, limit)
        locale = presenter.locale_of(job.guild_id)
        result = render.result(job, presenter.support_of(job), notes, locale=locale)
        message = replace(
            result, content=_marked(result.content, shown_by, locale), mention_user=None
        )
        message.files = files
        await presenter.pacer.acquire(channel_id)
        presenter.writes += 1
        try:
            posted = await presenter.sender.send(channel_id, message, reply_to=None)
            if presenter.posted is not None:  # ✉️ and ❌ on the repost find the job
                presenter.posted(job.id, channel_id, posted)
            return posted
        except TooLarge:
            # The limit we were told (or assumed) was too generous: shrink once and retry.
            limit = max(MIN_LIMIT, int(limit * 0.6))
    raise TooLarge("the images do not fit this channel's upload limit")


def shown_here(interaction: discord.Interaction, job_id: str) -> bool:
    """Whether the pressed message is one of ours marked as a repost of job `job_id`
    (a repost's buttons work wherever /show put them)."""
    message = interaction.message
    client_user = interaction.client.user
    if message is None or client_user is None or message.author.id != client_user.id:
        return False
    # The mark and the job's line are in the language the repost was written in.
    content = message.content
    marked = any(MARK.render(locale) in content for locale in (ENGLISH, *CATALOGUES))
    return marked and any(
        tr(locale, "job `{job_id}`", job_id=job_id) in content for locale in (ENGLISH, *CATALOGUES)
    )
