"""The optional check of result images (`[moderation] image_check`, off by default).

A detector looks at each result image before it is posted; what happens to one it
flags is the server's choice (`ServerSettings.image_check`): "spoiler" posts it behind
Discord's spoiler cover, "withhold" does not post it (Atelier keeps the file), "off"
(the default) posts as usual. Channels marked NSFW, and direct messages, are never
checked. Previews are not checked, so where images are checked none is shown. The
check runs on a worker thread, one image at a time, so a slow model never holds the
event loop or starves other work of both cores.

The one detector shipped is NudeNet (`pip install -e '.[nsfw]'`): its wheel carries
its ONNX model (nudenet/320n.onnx), so nothing is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from bot.engine.models import Job
from bot.engine.settings import SettingsStore
from bot.i18n import Text
from bot.ui.outgoing import FileSpec

log = logging.getLogger(__name__)

SPOILER, WITHHOLD = "spoiler", "withhold"
SPOILER_PREFIX = "SPOILER_"  # Discord shows an attachment so named behind a cover
# NudeNet's classes that flag an image; the covered ones, faces, feet, ... do not.
EXPOSED = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)


class Detector(Protocol):
    """Says whether an image should not be shown as is. Called on a worker thread."""

    name: str

    def flags(self, data: bytes) -> bool: ...


class NudeNetDetector:
    """NudeNet's detector on onnxruntime, with the model its package ships."""

    name = "nudenet"

    def __init__(self, min_score: float = 0.5) -> None:
        from nudenet import NudeDetector  # the optional extra; imported only when used

        self.min_score = min_score
        self._model: Any = NudeDetector()

    def flags(self, data: bytes) -> bool:
        found: list[dict[str, Any]] = self._model.detect(data)
        return any(d["class"] in EXPOSED and d["score"] >= self.min_score for d in found)


def build_detector(kind: str, min_score: float) -> Detector | None:
    """The detector `[moderation] image_check` names; None for "off"."""
    if kind == "nudenet":
        return NudeNetDetector(min_score)
    return None


class ImageCheck:
    """Applies a server's choice to the result images a detector flags."""

    def __init__(
        self, detector: Detector, settings: SettingsStore, is_nsfw: Callable[[int], bool]
    ) -> None:
        self.detector = detector
        self.settings = settings
        self.is_nsfw = is_nsfw
        self._one_at_a_time = asyncio.Semaphore(1)

    async def mode_for(self, job: Job) -> str | None:
        """SPOILER or WITHHOLD when the job's images are checked where it is shown; None
        when they are not (the server chose "off", an NSFW channel, a direct message)."""
        settings = await self.settings.get(job.guild_id)
        mode = settings.image_check if settings is not None else "off"
        channel = int(job.channel_id) if job.channel_id and job.channel_id.isdigit() else None
        if mode not in (SPOILER, WITHHOLD) or channel is None or self.is_nsfw(channel):
            return None
        return mode

    async def apply(
        self, job: Job, files: list[FileSpec], notes: list[str]
    ) -> tuple[list[FileSpec], list[str]]:
        """The files to post (covered or left out where flagged) and the notes to show."""
        mode = await self.mode_for(job)
        if mode is None:
            return files, notes
        kept: list[FileSpec] = []
        flagged = 0
        for spec in files:
            if not await self._flags(job, spec):
                kept.append(spec)
                continue
            flagged += 1
            if mode == SPOILER:
                kept.append(replace(spec, name=SPOILER_PREFIX + spec.name))
        if flagged:
            if mode == SPOILER:
                done = Text("marked as spoilers")
            else:
                done = Text("withheld (Atelier keeps them)")
            note = Text(
                "{n} image(s) flagged by this server's image check: {done}.", n=flagged, done=done
            )
            notes = [*notes, note]
        return kept, notes

    async def _flags(self, job: Job, spec: FileSpec) -> bool:
        async with self._one_at_a_time:
            try:
                return await asyncio.to_thread(self.detector.flags, spec.data)
            except Exception:
                # A server that asked for the check never gets an unchecked image shown
                # plainly: one the detector cannot read counts as flagged.
                log.exception("the %s image check failed on job %s", self.detector.name, job.id)
                return True
