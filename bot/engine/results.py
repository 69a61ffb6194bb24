"""Collecting a finished task's results: images downloaded at once (provider URLs
expire) within a deadline each, checked by their bytes, split or composed into grids,
kept on disk. Image work here runs on media's lane reserved for results, so a burst of
uploads never delays results that are already paid for."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot import media
from bot.engine.models import Job
from bot.engine.retention import check_present
from bot.engine.videos import collect_videos
from bot.providers.base import BadResponse, Provider, ProviderUnavailable, TaskSnapshot


class ResultCollector:
    def __init__(
        self, media_dir: str | Path, max_download_bytes: int, download_timeout: float = 60.0
    ) -> None:
        self.media_dir = Path(media_dir)
        self.max_download_bytes = max_download_bytes
        # One download's whole time, retries and redirects included: a host that sends a
        # byte now and then would otherwise pass every per-read timeout and hold the job
        # (and its provider's concurrency slot) "running" for ever.
        self.download_timeout = download_timeout

    def path(self, relative: str) -> Path:
        return self.media_dir / relative

    async def __call__(self, provider: Provider, job: Job, snapshot: TaskSnapshot) -> None:
        """Fill `job` with the results of `snapshot` (status is set by the runner)."""
        job.seed = snapshot.seed or job.seed
        job.texts = list(snapshot.texts)
        job.followups = list(snapshot.followups)
        job.withheld = list(snapshot.withheld)
        job.provider_status = snapshot.provider_status
        job.provider_data.update(snapshot.extra)
        job.preview_url = None
        if snapshot.video_urls:
            await collect_videos(self, provider, job, snapshot.video_urls)
            return
        urls = [(i, url) for i, url in enumerate(snapshot.image_urls) if url]
        if not urls:
            if not job.texts:
                raise BadResponse(
                    "the provider sent no images (they may all have been withheld by its review).",
                    provider=provider.name,
                )
            return
        blobs = await asyncio.gather(*(self.download(provider, url) for _, url in urls))
        for blob in blobs:
            try:
                await media.a_inspect_image(blob, lane=media.Lane.RESULTS)
            except media.MediaError as err:
                raise BadResponse(f"the provider's image is unusable: {err}") from None
        folder = f"{job.id}"
        if snapshot.grid and len(blobs) == 1:
            job.grid = await self._write(folder, "grid", blobs[0])
            parts = await media.a_split_grid(blobs[0], lane=media.Lane.RESULTS)
            job.images = [
                await self._write(folder, str(n), part) for n, part in enumerate(parts, 1)
            ]
            return
        # Separate images: keep positions, so that image n is still U<n> ("" = withheld).
        images = [""] * len(snapshot.image_urls)
        for (position, _), blob in zip(urls, blobs, strict=True):
            images[position] = await self._write(folder, str(position + 1), blob)
        job.images = images
        job.grid = None
        if len(blobs) > 1:
            grid = await media.a_compose_grid(blobs, lane=media.Lane.RESULTS)
            job.grid = await self._write(folder, "grid", grid)

    async def download(self, provider: Provider, url: str) -> bytes:
        """One image of `provider`, within the byte cap and the download deadline."""
        try:
            async with asyncio.timeout(self.download_timeout):
                return await provider.download(url, self.max_download_bytes)
        except TimeoutError:
            raise ProviderUnavailable(
                f"the image download did not finish within {self.download_timeout:g} s "
                "(the image host is too slow); try again later.",
                provider=provider.name,
            ) from None

    async def _write(self, folder: str, stem: str, data: bytes, ext: str | None = None) -> str:
        if ext is None:
            mime = media.sniff_mime(data) or "image/png"
            ext = mime.split("/")[-1].replace("jpeg", "jpg")
        relative = f"{folder}/{stem}.{ext}"
        target = self.media_dir / relative

        def write() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            tmp.replace(target)

        await asyncio.to_thread(write)
        return relative

    async def store(self, folder: str, stem: str, data: bytes, ext: str) -> str:
        """Keep a result file of a kind media does not sniff (an mp4): its relative path."""
        return await self._write(folder, stem, data, ext)

    async def copy_image(self, source: str, job: Job, stem: str = "1") -> str:
        """Reuse an image of another job (a SELECT action needs no download)."""
        data = await self.read(source)
        return await self._write(job.id, stem, data)

    async def image_size(self, relative: str) -> tuple[int, int] | None:
        """The size of a stored image; None when it cannot be read. Raises MediaGone
        when the retention sweep removed it (a button on that job cannot work)."""
        check_present(self.media_dir, relative, only_swept=True)
        try:
            data = await asyncio.to_thread(self.path(relative).read_bytes)
            info = await media.a_inspect_image(data)
        except (OSError, media.MediaError):
            return None
        return (info.width, info.height)

    async def save_input(self, job: Job, n: int, data: bytes) -> str:
        return await self._write(job.id, f"input-{n}", data)

    async def read(self, relative: str) -> bytes:
        """A stored image or input. Raises MediaGone (a RequestError that says why) when
        it is gone, e.g. removed by the retention sweep."""
        check_present(self.media_dir, relative)
        try:
            return await asyncio.to_thread(self.path(relative).read_bytes)
        except FileNotFoundError:
            check_present(self.media_dir, relative)  # removed just now: say so
            raise
