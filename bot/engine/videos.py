"""Collecting a finished task's videos (Animate, Extend): downloaded at once through the
provider's own download (the SSRF-checked path with its byte cap and the collector's
deadline), checked to be MP4 by their bytes, kept on disk beside the job's images.

Whether a video fits a channel's upload limit is the front end's question (the limit is
per channel); the provider's links are kept with the job for when one does not."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from bot.engine.models import Job
from bot.providers.base import BadResponse, Provider

# ISO base media files (MP4, MOV) start with a box whose type, bytes 4-8, is "ftyp".
_FTYP = b"ftyp"
# Brands of the ftyp box that are no MP4 video: QuickTime movies, HEIF and AVIF stills.
_NOT_MP4_BRANDS = (b"qt  ", b"heic", b"heix", b"mif1", b"msf1", b"avif")


class VideoStore(Protocol):
    """What of the result collector this step uses."""

    async def download(self, provider: Provider, url: str) -> bytes: ...

    async def store(self, folder: str, stem: str, data: bytes, ext: str) -> str: ...


def is_mp4(data: bytes) -> bool:
    """Whether the bytes are an MP4 file (its leading ftyp box, a video brand)."""
    return len(data) >= 12 and data[4:8] == _FTYP and data[8:12] not in _NOT_MP4_BRANDS


async def collect_videos(
    store: VideoStore, provider: Provider, job: Job, urls: Sequence[str]
) -> None:
    """Download and keep the videos at `urls` as the job's results (no images)."""
    # At once, as images are: the links expire, and each download has its own deadline.
    blobs = await asyncio.gather(*(store.download(provider, url) for url in urls))
    kept: list[str] = []
    for n, data in enumerate(blobs, 1):
        if not is_mp4(data):
            raise BadResponse(
                f"the provider's video {n} is not an MP4 file; try again later.",
                provider=provider.name,
            )
        kept.append(await store.store(job.id, f"video-{n}", data, "mp4"))
    job.videos = kept
    job.video_links = list(urls)
    job.images, job.grid = [], None
