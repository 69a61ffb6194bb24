"""The images a job's messages carry: its live preview and its result files.

Kept apart from the presenter (which decides when messages are written): here only what
is attached, fitted to the channel's upload limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Protocol

from bot import media, video
from bot.engine.models import Job
from bot.i18n import Text
from bot.ui.image_check import SPOILER_PREFIX, ImageCheck
from bot.ui.outgoing import FileSpec

log = logging.getLogger(__name__)

MAX_RESULT_FILES = 10  # Discord's attachments per message


class MediaSource(Protocol):
    """Where a job's images come from (the engine)."""

    async def preview(self, job: Job) -> bytes | None: ...

    def media_path(self, relative: str) -> Path: ...


async def preview(
    source: MediaSource, job: Job, attached: str | None, limit: int
) -> tuple[str | None, list[FileSpec] | None, str | None]:
    """(embed URL, files to attach or None to keep, what is attached afterwards), given
    the preview `attached` to the message now.

    http(s) previews are shown by URL (Discord fetches them). Other schemes, such as
    the sandbox's `sandbox://`, are fetched through the engine (bounded in size and
    time) and attached, once per distinct preview; a preview that cannot be had is
    skipped (the progress line still moves)."""
    url = job.preview_url
    if not url:
        return None, None, attached
    if url.startswith(("http://", "https://")):
        return url, ([] if attached else None), None
    if url == attached:
        return None, None, url
    data = await source.preview(job)
    if data is None:
        return None, None, attached
    try:
        image = await media.a_fit_to_limit(data, limit)
    except media.MediaError as err:
        log.debug("skipping the preview of job %s: %s", job.id, err)
        return None, None, attached
    return None, [FileSpec(f"preview.{image.ext}", image.data)], url


async def result_files(
    source: MediaSource, job: Job, limit: int, image_check: ImageCheck | None
) -> tuple[list[FileSpec], list[str]]:
    """The images to attach, each re-encoded (only when needed) to fit `limit`, and the
    notes to show about them."""
    if job.videos:
        return await video_files(source, job, limit, image_check)
    if job.grid:
        picks = [("", job.grid)]
    else:
        picks = [(f"_{n}", rel) for n, rel in enumerate(job.images, 1) if rel]
        picks = picks[:MAX_RESULT_FILES]
    files: list[FileSpec] = []
    notes: list[str] = []
    stem = _slug(job.prompt) or job.action.value
    for suffix, rel in picks:
        try:
            data = await asyncio.to_thread(source.media_path(rel).read_bytes)
            # Results go on the reserved lane: uploads queueing never delay them.
            image = await media.a_fit_to_limit(data, limit, lane=media.Lane.RESULTS)
        except (OSError, media.MediaError) as err:
            log.warning("image %s of job %s cannot be attached: %s", rel, job.id, err)
            notes.append(
                Text("An image of this job could not be attached ({error}).", error=str(err))
            )
            continue
        if image.note:
            notes.append(
                Text(
                    "Re-encoded to fit this channel's {limit} upload limit ({how}); "
                    "the original is kept by Atelier.",
                    limit=_mib(limit),
                    how=image.note,
                )
            )
        files.append(FileSpec(f"{stem}_{job.id}{suffix}.{image.ext}", image.data))
    if image_check is not None:  # flagged images: spoilers, or left out
        return await image_check.apply(job, files, notes)
    return files, notes


async def video_files(
    source: MediaSource, job: Job, limit: int, image_check: ImageCheck | None = None
) -> tuple[list[FileSpec], list[str]]:
    """A video job's mp4 files: as they came, or re-encoded smaller where one is over
    `limit` (bot.video). One that cannot be fitted is left out, and a note gives the
    provider's link to it instead."""
    files: list[FileSpec] = []
    notes: list[str] = []
    stem = _slug(job.prompt) or job.action.value
    numbered = len(job.videos) > 1
    for n, rel in enumerate(job.videos, 1):
        suffix = f"_{n}" if numbered else ""
        link = job.video_links[n - 1] if n <= len(job.video_links) else ""
        try:
            data = await asyncio.to_thread(source.media_path(rel).read_bytes)
        except OSError as err:
            log.warning("video %s of job %s cannot be attached: %s", rel, job.id, err)
            notes.append(_video_note(n, numbered, Text("could not be attached"), link))
            continue
        try:
            fitted = await video.fit_video_to_limit(data, limit)
        except video.VideoError as err:
            why = Text(
                "is over this channel's {limit} upload limit and {error}",
                limit=_mib(limit),
                error=str(err),
            )
            notes.append(_video_note(n, numbered, why, link))
            continue
        if fitted.note:
            notes.append(
                Text(
                    "{which} was re-encoded to fit this channel's {limit} upload limit "
                    "({how}); the original is kept by Atelier.",
                    which=_which(n, numbered),
                    limit=_mib(limit),
                    how=fitted.note,
                )
            )
        files.append(FileSpec(f"{stem}_{job.id}{suffix}.mp4", fitted.data))
    if image_check is not None:
        return await _checked_videos(job, files, notes, image_check)
    return files, notes


async def _checked_videos(
    job: Job, files: list[FileSpec], notes: list[str], image_check: ImageCheck
) -> tuple[list[FileSpec], list[str]]:
    """The server's image check on each video's first frame: a flagged video is covered
    or left out as a flagged image is. A video whose frame cannot be read goes to the
    check as it is, which the check counts as flagged (never shown unchecked)."""
    frames: list[FileSpec] = []
    for spec in files:
        try:
            frame = await video.first_frame(spec.data)
        except video.VideoError as err:
            log.warning("no first frame of %s of job %s to check: %s", spec.name, job.id, err)
            frame = spec.data
        frames.append(FileSpec(spec.name, frame))
    kept, notes = await image_check.apply(job, frames, notes)
    films = {spec.name: spec.data for spec in files}
    return [FileSpec(k.name, films[k.name.removeprefix(SPOILER_PREFIX)]) for k in kept], notes


def _which(n: int, numbered: bool) -> Text:
    return Text("Video {n}", n=n) if numbered else Text("The video")


def _video_note(n: int, numbered: bool, why: Text, link: str) -> Text:
    where = (
        Text("; watch it at the provider: <{link}>", link=link)
        if link.startswith(("https://", "http://"))
        else Text("; the provider gave no link to it")
    )
    return Text("{which} {why}{where}.", which=_which(n, numbered), why=why, where=where)


def _slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower().split("--")[0])
    return "_".join(words)[:40].strip("_")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"
