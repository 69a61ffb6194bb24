"""Real MP4 files for tests, made by the ffmpeg that the imageio-ffmpeg wheel ships."""

from __future__ import annotations

import functools
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg


@functools.cache
def real_mp4(
    seconds: float = 5.0, side: int = 480, kbps: int = 3000, pattern: str = "testsrc2"
) -> bytes:
    """A `side` x `side` H.264 film of `seconds` at about `kbps`, no sound (as
    Midjourney's videos): ffmpeg's `pattern` source (testsrc2's detail keeps it near its
    bit rate; "color=c=red" is one flat colour)."""
    joiner = ":" if "=" in pattern else "="  # lavfi: name=opt:opt
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "test.mp4"
        subprocess.run(
            [
                imageio_ffmpeg.get_ffmpeg_exe(),
                *("-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi"),
                *("-i", f"{pattern}{joiner}size={side}x{side}:rate=24", "-t", f"{seconds}"),
                *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
                *("-b:v", f"{kbps}k", "-minrate", f"{kbps}k", "-maxrate", f"{kbps}k"),
                *("-bufsize", f"{kbps}k", str(target)),
            ],
            check=True,
            timeout=60,
        )
        return target.read_bytes()
