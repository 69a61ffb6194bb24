"""bot.video: an mp4 over an upload limit re-encoded under it by the wheel's ffmpeg; one
under the limit left as it is; what is no video refused in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import video
from bot.engine.settings import SettingsStore
from bot.engine.videos import is_mp4
from bot.ui import job_media
from bot.ui.image_check import ImageCheck
from tests.test_image_check import RedAlert, choose, job, settings
from tests.video_helpers import real_mp4

__all__ = ["settings"]  # the fixture, shared with test_image_check


@pytest.mark.asyncio
async def test_a_video_under_the_limit_is_sent_as_it_came() -> None:
    data = real_mp4()
    fitted = await video.fit_video_to_limit(data, len(data))
    assert fitted.data is data and fitted.note == ""


@pytest.mark.asyncio
async def test_a_video_over_the_limit_is_re_encoded_under_it() -> None:
    data = real_mp4()
    limit = len(data) // 4
    fitted = await video.fit_video_to_limit(data, limit)
    assert len(fitted.data) <= limit and is_mp4(fitted.data)
    assert "→" in fitted.note and "kb/s" in fitted.note
    again = await video.fit_video_to_limit(fitted.data, len(fitted.data) * 2)
    assert again.data is fitted.data  # what fits is not touched again


@pytest.mark.asyncio
async def test_a_limit_no_bit_rate_can_meet_is_refused() -> None:
    with pytest.raises(video.VideoError, match="cannot be made small enough"):
        await video.fit_video_to_limit(real_mp4(), 8 * 1024)  # 5 s in 8 KiB: ~10 kb/s


@pytest.mark.asyncio
async def test_bytes_that_are_no_video_say_so() -> None:
    fake = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100_000
    with pytest.raises(video.VideoError, match="cannot be read as a video"):
        await video.fit_video_to_limit(fake, 50_000)


def test_is_mp4_reads_the_ftyp_box() -> None:
    assert is_mp4(real_mp4())
    assert not is_mp4(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    assert not is_mp4(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20)  # a HEIF still


@pytest.mark.asyncio
async def test_a_first_frame_is_a_png_of_the_film() -> None:
    frame = await video.first_frame(real_mp4(1.0, 64, 200, "color=c=0xDC1414"))
    assert frame[:8] == b"\x89PNG\r\n\x1a\n"


class Media:
    """The engine's media folder, as job_media reads it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def preview(self, job: object) -> bytes | None:
        return None

    def media_path(self, relative: str) -> Path:
        return self.root / relative


@pytest.mark.asyncio
async def test_the_image_check_looks_at_each_videos_first_frame(
    tmp_path: Path, settings: SettingsStore
) -> None:
    await choose(settings, "spoiler")
    red, blue = real_mp4(1.0, 64, 200, "color=c=0xDC1414"), real_mp4(1.0, 64, 200, "color=c=blue")
    done = job()
    done.videos = ["v/video-1.mp4", "v/video-2.mp4", "v/video-3.mp4"]
    (tmp_path / "v").mkdir()
    for rel, data in zip(done.videos, (red, blue, b"\x00\x00\x00\x18ftypisom"), strict=True):
        (tmp_path / rel).write_bytes(data)
    detector = RedAlert()
    check = ImageCheck(detector, settings, lambda channel: False)
    files, notes = await job_media.result_files(Media(tmp_path), done, 10 * 2**20, check)
    names = [f.name for f in files]
    assert names[0].startswith("SPOILER_") and names[0].endswith("_1.mp4")  # the red film
    assert not names[1].startswith("SPOILER_")  # the blue one
    assert names[2].startswith("SPOILER_")  # no frame to check: never shown unchecked
    assert files[0].data == red and files[1].data == blue  # the films, not their frames
    assert "2 image(s) flagged" in notes[-1]
