"""How long fitting a video under an upload limit takes (bot/video.py).

    .venv/bin/python bench/video_fit.py [--runs 3]

Run from the repository root. For each case it makes a test film with the ffmpeg of the
imageio-ffmpeg wheel (a testsrc2 pattern: fine detail, so a bit rate holds as set),
like Midjourney's videos (no sound): 5 s at 480 px (an Animate) and 21 s at 720 px (an
Extend chain, HD), and fits it to Discord's 10 MiB default limit and to a 2 MiB one.
Printed per case: the film's size, the fitted size, the rate chosen and the wall time
(median of --runs). One encode runs at a time, as in the bot; the host's other load
counts (the bench says its CPU count).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import video
from tests.video_helpers import real_mp4

MIB = 1024 * 1024
CASES = (  # (seconds, side px, source kb/s, limit bytes)
    (5.0, 480, 4000, 10 * MIB),
    (5.0, 480, 4000, 2 * MIB),
    (21.0, 720, 6000, 10 * MIB),
    (21.0, 720, 6000, 2 * MIB),
)


async def main(runs: int) -> None:
    print(f"cpus: {os.cpu_count()}  runs per case: {runs}")
    print(f"{'film':>22} {'source':>9} {'limit':>7} {'fitted':>9} {'how':>28} {'time':>8}")
    for seconds, side, kbps, limit in CASES:
        film = real_mp4(seconds, side, kbps)
        times: list[float] = []
        fitted = video.FittedVideo(film)
        for _ in range(runs):
            start = time.perf_counter()
            fitted = await video.fit_video_to_limit(film, limit)
            times.append(time.perf_counter() - start)
        name = f"{seconds:g} s {side}x{side}"
        print(
            f"{name:>22} {len(film) / MIB:>7.2f}Mi {limit // MIB:>5}Mi "
            f"{len(fitted.data) / MIB:>7.2f}Mi {fitted.note or 'as it came':>28} "
            f"{statistics.median(times):>7.2f}s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args().runs))
