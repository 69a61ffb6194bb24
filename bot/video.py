"""Videos: fitting an mp4 under an upload limit by re-encoding it smaller.

The encoder is the ffmpeg binary that the imageio-ffmpeg wheel ships (nothing is
downloaded at run time). A video already under the limit is never touched. One over it
is re-encoded to H.264 at the bit rate its duration allows within the limit (Midjourney's
videos have no sound, so none is kept), scaled down where that rate is too low for its
size, trying a smaller budget when the first result is still too big. One encode runs at
a time (the host's cores are shared with everything else), within a time bound; what
cannot be fitted says why, and the caller links the provider's copy instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

# Fractions of the limit's bit budget tried in turn: containers and rate control overshoot.
BUDGETS = (0.85, 0.65, 0.45)
MIN_KBPS = 64  # below this a video is mush: link the original instead
ENCODE_TIMEOUT = 120.0  # seconds for one encode (a 21 s extended video takes a few)
# (kb/s below which, the tallest height kept): a low rate spread over many pixels blurs.
SCALES = ((300, 360), (900, 480), (1800, 720))

_ENCODERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _encoder() -> asyncio.Semaphore:
    """The one-encode-at-a-time gate of the running event loop."""
    loop = asyncio.get_running_loop()
    gate = _ENCODERS.get(loop)
    if gate is None:
        gate = _ENCODERS[loop] = asyncio.Semaphore(1)
    return gate


class VideoError(Exception):
    """A video could not be fitted: the words say why, fit for users, and read after
    "the video ..." ("cannot be made small enough (it is 40 MiB)")."""


@dataclass(frozen=True)
class FittedVideo:
    data: bytes
    note: str = ""  # how it was changed; "" when it is sent as it came


async def fit_video_to_limit(
    data: bytes, limit: int, *, timeout: float = ENCODE_TIMEOUT
) -> FittedVideo:
    """`data` if it fits `limit` bytes, else a smaller re-encoding that does."""
    if len(data) <= limit:
        return FittedVideo(data)
    async with _encoder():
        with tempfile.TemporaryDirectory(prefix="atelier-video-") as folder:
            source = Path(folder) / "in.mp4"
            await asyncio.to_thread(source.write_bytes, data)
            seconds = await asyncio.to_thread(_duration, source)
            for budget in BUDGETS:
                kbps = int(limit * 8 * budget / seconds / 1000)
                if kbps < MIN_KBPS:
                    break
                target = Path(folder) / f"out-{kbps}.mp4"
                await _encode(source, target, kbps, timeout)
                smaller = await asyncio.to_thread(target.read_bytes)
                if len(smaller) <= limit:
                    note = f"{_mib(len(data))} → {_mib(len(smaller))}, {kbps} kb/s"
                    return FittedVideo(smaller, note)
    raise VideoError(f"cannot be made small enough (it is {_mib(len(data))})")


def _duration(path: Path) -> float:
    """The video's length in seconds (ffmpeg reads it through)."""
    try:
        _, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (RuntimeError, OSError, ValueError) as err:
        raise VideoError(f"cannot be read as a video ({_first_line(err)})") from None
    if not seconds or seconds <= 0:
        raise VideoError("has no length to re-encode")
    return float(seconds)


def _height_for(kbps: int) -> int | None:
    for below, height in SCALES:
        if kbps < below:
            return height
    return None


async def first_frame(data: bytes, *, timeout: float = 30.0) -> bytes:
    """The video's first frame as PNG bytes (what an image check can look at)."""
    async with _encoder():
        with tempfile.TemporaryDirectory(prefix="atelier-video-") as folder:
            source, target = Path(folder) / "in.mp4", Path(folder) / "frame.png"
            await asyncio.to_thread(source.write_bytes, data)
            await _ffmpeg(
                ["-i", str(source), "-frames:v", "1", "-f", "image2", str(target)], timeout
            )
            try:
                return await asyncio.to_thread(target.read_bytes)
            except OSError:
                raise VideoError("has no frame to show") from None


async def _encode(source: Path, target: Path, kbps: int, timeout: float) -> None:
    height = _height_for(kbps)
    scale = ["-vf", f"scale=-2:'min(ih,{height})'"] if height else []
    await _ffmpeg(
        [
            *("-i", str(source), "-an", "-c:v", "libx264", "-preset", "veryfast"),
            *("-pix_fmt", "yuv420p", *scale),
            *("-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k"),
            *("-movflags", "+faststart", "-threads", "2", str(target)),
        ],
        timeout,
    )


async def _ffmpeg(arguments: list[str], timeout: float) -> None:
    """Run the wheel's ffmpeg with `arguments`, within `timeout` seconds."""
    args = ["-hide_banner", "-loglevel", "error", "-nostdin", "-y", *arguments]
    try:
        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError:
        raise VideoError("could not be re-encoded (no video encoder is installed)") from None
    process = await asyncio.create_subprocess_exec(
        exe,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            _, errors = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise VideoError(f"could not be re-encoded within {timeout:g} s") from None
    if process.returncode != 0:
        words = _first_line(errors.decode(errors="replace"))
        raise VideoError(f"could not be re-encoded (the encoder failed: {words})")


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else "no details"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"
