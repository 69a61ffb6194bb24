"""Memory held by 20 simultaneous 8192-pixel uploads, through the real attachment path.

    python bench/upload_memory.py [--uploads 20] [--side 8192] [--workers 2 6 20]

Makes `uploads` JPEGs of side x side pixels, each with camera EXIF and a GPS position
(half of them also with a quarter-turn orientation, so that stripping rotates them:
the worst case), then for each worker count runs, in a fresh process, all uploads at
once as the bot does for 20 slash commands: bot.ui.attachments.read_images (header
check, pixel cap, decode, EXIF stripped by re-encoding) and ResultCollector.save_input
(written to the media folder). Prints, per worker count: wall time, peak RSS above the
process's baseline (Linux VmHWM after clear_refs) and the tracemalloc peak (Python
objects only: Pillow's pixel buffers are not traced, RSS shows them).

Workers: 2 is Atelier's shared image lane (bot.media_pool); asyncio.to_thread, used
before, ran on the loop's default pool, min(32, CPUs + 4) threads: 6 on a 2-core
machine, 20 or more on a server with 16 cores or more.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import ExifTags, Image

from bot import media_pool
from bot.engine.models import Job, new_job_id
from bot.engine.results import ResultCollector
from bot.ui.attachments import read_images
from bot.vocab import Action


class Upload:
    """What read_images uses of a discord.Attachment."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.size = len(data)
        self._data = data

    async def read(self) -> bytes:
        return self._data


def make_images(folder: Path, count: int, side: int) -> list[Path]:
    base = Image.merge(
        "RGB",
        [
            Image.linear_gradient("L").resize((side, side)),
            Image.radial_gradient("L").resize((side, side)),
            Image.linear_gradient("L").rotate(90).resize((side, side)),
        ],
    )
    paths = []
    for n in range(count):
        exif = Image.Exif()
        exif[0x0112] = 6 if n % 2 else 1
        exif[0x010F] = "PhoneMaker"
        exif[ExifTags.IFD.GPSInfo] = {
            1: "N",
            2: (52.0, 22.0, float(n)),
            3: "E",
            4: (4.0, 53.0, 0.0),
        }
        out = io.BytesIO()
        base.save(out, "JPEG", quality=90, exif=exif.tobytes())
        path = folder / f"upload-{n}.jpg"
        path.write_bytes(out.getvalue())
        paths.append(path)
    return paths


def _status(field: str) -> int:
    """A VmRSS/VmHWM figure of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


async def upload_all(paths: list[Path], media_dir: Path) -> int:
    datas = [path.read_bytes() for path in paths]
    collector = ResultCollector(media_dir, 50 * 1024 * 1024)

    async def one(n: int, data: bytes) -> int:
        images = await read_images([Upload(f"upload-{n}.jpg", data)], 64 * 1024 * 1024)  # type: ignore[list-item]
        job = Job(id=new_job_id(), action=Action.IMAGINE, provider="bench")
        await collector.save_input(job, 1, images[0].data)
        return len(images[0].data)

    del paths
    return sum(await asyncio.gather(*(one(n, data) for n, data in enumerate(datas))))


def child(workers: int, folder: Path) -> None:
    """One measured run (in a process of its own, so that peaks do not mix)."""
    media_pool.set_workers(media_pool.Lane.SHARED, workers)
    paths = sorted(folder.glob("upload-*.jpg"))
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    baseline = _status("VmRSS")
    tracemalloc.start()
    started = time.perf_counter()
    written = asyncio.run(upload_all(paths, folder / f"media-{workers}"))
    wall = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    peak = _status("VmHWM") - baseline
    mib = 1024 * 1024
    print(
        f"workers={workers:>2}  uploads={len(paths)}  wall={wall:6.1f} s  "
        f"peak RSS +{peak / mib:7.0f} MiB  tracemalloc peak {traced_peak / mib:6.0f} MiB  "
        f"written {written / mib:.0f} MiB",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--side", type=int, default=8192)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 6, 20])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.workers[0], args.child)
        return
    folder = Path(tempfile.mkdtemp(prefix="atelier-upload-bench-"))
    paths = make_images(folder, args.uploads, args.side)
    size = sum(p.stat().st_size for p in paths) / 1024 / 1024
    print(f"{args.uploads} JPEGs of {args.side}x{args.side} with GPS EXIF, {size:.0f} MiB in all")
    for workers in args.workers:
        command = [sys.executable, __file__, "--child", str(folder), "--workers", str(workers)]
        subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
