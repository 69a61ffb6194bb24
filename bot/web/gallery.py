"""What a gallery link shows: the member's own jobs of one server (or, for a manager
who asked, the whole server's), newest first, filtered by prompt words and provider.

Private jobs (`--stealth`) and other servers' jobs are never shown, whoever asks;
`visible` is also what the image route asks before serving a file.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.engine.models import Job
from bot.ui.context import UiContext
from bot.ui.repost import stored_images
from bot.web.signing import Claims

# The newest jobs (of those the filters find) read per page.
MAX_JOBS = 200
PRIVATE_PARAMS = ("stealth",)


@dataclass(frozen=True)
class Filters:
    words: tuple[str, ...] = ()
    provider: str = ""

    @classmethod
    def read(cls, query: str, provider: str) -> Filters:
        return cls(tuple(query.lower().split())[:10], provider.strip()[:32])

    def keep(self, job: Job) -> bool:
        prompt = job.prompt.lower()
        if self.provider and job.provider != self.provider:
            return False
        return all(word in prompt for word in self.words)


def is_private(job: Job) -> bool:
    return any(name in job.params for name in PRIVATE_PARAMS)


def visible(claims: Claims, job: Job) -> bool:
    """Whether the link's member may see this job in their gallery."""
    if is_private(job) or job.guild_id is None or job.guild_id != claims.guild_id:
        return False
    return job.user_id == claims.user_id or (claims.server_wide and claims.is_manager)


@dataclass(frozen=True)
class Entry:
    job: Job
    images: list[int]  # which stored images (1-based) there are to show
    message_link: str | None


async def entries(
    ctx: UiContext, claims: Claims, filters: Filters
) -> tuple[list[Entry], list[str]]:
    """The jobs to list, and every provider they used (for the filter's choices)."""
    whose = None if claims.server_wide and claims.is_manager else claims.user_id
    # The filters narrow the store's read, so a search reaches past the newest MAX_JOBS.
    jobs = await ctx.engine.recent(
        MAX_JOBS,
        user_id=whose,
        guild_id=claims.guild_id,
        provider=filters.provider or None,
        mentioning=filters.words,
    )
    shown = [job for job in jobs if visible(claims, job)]
    providers = sorted({job.provider for job in shown})
    listed = []
    for job in filter(filters.keep, shown):
        images = stored_images(job)
        numbers = [n for n, rel in enumerate(images, 1) if ctx.engine.media_path(rel).is_file()]
        listed.append(Entry(job, numbers, _message_link(ctx, job)))
    return listed, providers


def _message_link(ctx: UiContext, job: Job) -> str | None:
    if not (job.message_id and job.channel_id):
        return None
    return ctx.sender.jump_url(job.guild_id, int(job.channel_id), int(job.message_id))


def image_of(job: Job, number: int) -> str | None:
    """The stored image `number` (1-based) of a job, as the gallery numbers them."""
    images = stored_images(job)
    return images[number - 1] if 0 < number <= len(images) else None
