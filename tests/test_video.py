"""bot.video: an mp4 over an upload limit re-encoded under it by the wheel's ffmpeg; one
under the limit left as it is; what is no video refused in words."""

from __future__ import annotations

import pytest

from bot import video
from bot.engine.videos import is_mp4
from tests.video_helpers import real_mp4


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
