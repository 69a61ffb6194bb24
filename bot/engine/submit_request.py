"""The provider request for a stored job.

Everything comes from the store (the job, its parent, its saved input images), so a job
queued before a restart, or handed to another process, is sent exactly as it was asked.
"""

from __future__ import annotations

import contextlib

from bot import media
from bot.engine.models import Job
from bot.engine.prompt import ParsedPrompt, PromptError, parse_prompt
from bot.engine.results import ResultCollector
from bot.providers.base import ImageInput, SubmitRequest


async def build(
    job: Job,
    parent: Job | None,
    images: list[ImageInput] | None,
    results: ResultCollector,
    callback_url: str | None,
) -> SubmitRequest:
    """The request for `job` (a follow-up of `parent`); `images` given, or None to read
    the job's stored inputs."""
    parsed: ParsedPrompt | None = None
    if job.prompt:
        with contextlib.suppress(PromptError):  # validated when the job was made
            parsed = parse_prompt(job.prompt)
    if images is None:
        images = []
        for path in job.inputs:
            data = await results.read(path)
            images.append(ImageInput(data, media.sniff_mime(data) or "image/png"))
    followup = parent.offers(job.action, job.index, job.variant) if parent else None
    size = None
    if parent is not None and parent.images:
        chosen = 0 < job.index <= len(parent.images)
        pick = parent.images[job.index - 1] if chosen else parent.images[0]
        size = await results.image_size(pick) if pick else None
    return SubmitRequest(
        action=job.action,
        prompt=parsed.raw if parsed else job.prompt,
        text=parsed.text if parsed else "",
        params=job.params,
        image_urls=parsed.image_urls if parsed else (),
        images=images,
        mode=job.mode,
        parent_task_id=parent.task_id if parent else None,
        parent_extra=dict(parent.provider_data) if parent else {},
        parent_image_size=size,
        index=job.index,
        variant=job.variant,
        strength=job.strength,
        ref=followup.ref if followup else "",
        regions=list(job.regions),
        polygons=list(job.polygons),
        dimensions=job.dimensions,
        callback_url=callback_url,
    )
