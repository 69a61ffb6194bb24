"""Keeping the media folder bounded: finished jobs' images are swept after a retention
(days since the job was last used, and a total size), in the background; and new jobs
are refused while the disk is nearly full, before anything is sent or charged.

A swept job keeps its folder with one small marker file, so that a button pressed on
it later answers "the images of this job were removed after N days" (MediaGone, a
RequestError) instead of failing on a missing file.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.engine.intake import RequestError
from bot.engine.loop import BackgroundLoop
from bot.engine.models import JobStatus, is_job_id
from bot.engine.store import Store
from bot.i18n import Text

log = logging.getLogger(__name__)

SWEPT_MARKER = "swept.json"
SWEEP_EVERY = 3600.0  # seconds between two sweeps
FIRST_SWEEP_AFTER = 60.0  # after start: let the bot settle first
# A job used this recently is never swept to meet the size cap: its buttons were just
# shown, and someone is likely to press one.
RECENT_USE = 3600.0
FREE_SPACE_CACHE = 2.0  # seconds a free-space reading is reused (every submit asks)
_ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
_CHUNK = 500  # ids per query (SQLite allows 999 parameters on old builds)


class MediaGone(RequestError):
    """A follow-up needs images of a job that were swept (or are missing)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="media gone")


def check_present(media_dir: Path, relative: str, *, only_swept: bool = False) -> None:
    """Raise MediaGone, worded by the sweep's marker, when `relative` is not on disk
    (with `only_swept`, only when the sweep removed it)."""
    if (media_dir / relative).is_file():
        return
    job_id = relative.split("/", 1)[0]
    marker = media_dir / job_id / SWEPT_MARKER
    try:
        why = json.loads(marker.read_text("utf-8"))
    except (OSError, ValueError):
        if only_swept:
            return
        raise MediaGone(
            Text(
                "The images of job {job_id} are no longer stored, so its buttons cannot be "
                "used any more; start a new job.",
                job_id=job_id,
            )
        ) from None
    if why.get("days"):
        how = Text("after {days:g} days", days=why["days"])
    else:
        how = Text("to keep this bot's image storage under {cap:g} MiB", cap=why.get("cap_mib", 0))
    raise MediaGone(
        Text(
            "The images of job {job_id} were removed {how}, so its buttons cannot be used "
            "any more; start a new job.",
            job_id=job_id,
            how=how,
        )
    )


@dataclass
class _Folder:
    job_id: str
    size: int
    last_use: float  # the newest of: the job's last change, a follow-up, a reuse
    finished: bool = True  # unknown jobs (no row) count as finished
    protected: bool = False  # a running job's, or one a running job reads from


class MediaRetention(BackgroundLoop):
    """The hourly sweep of storage.media_dir, and the free-space floor."""

    name = "atelier-media-sweep"

    def __init__(self, store: Store, config: Config, clock: Callable[[], float]) -> None:
        super().__init__()
        self.store = store
        self.media_dir = Path(config.storage.media_dir)
        self.retention_days = config.media.retention_days
        self.max_total_bytes = int(config.media.max_total_mib * 1024 * 1024)
        self.min_free_bytes = int(config.engine.min_free_mib * 1024 * 1024)
        self.clock = clock
        self._next_sweep = 0.0
        self._free: tuple[float, int] | None = None  # (monotonic time, bytes free)

    # ---- the free-space floor ----

    def check_free_space(self) -> None:
        """Refuse a new job ("disk") while the media disk is below the floor."""
        if not self.min_free_bytes:
            return
        now = time.monotonic()
        if self._free is None or now - self._free[0] > FREE_SPACE_CACHE:
            self._free = (now, shutil.disk_usage(_existing(self.media_dir)).free)
        free = self._free[1]
        if free < self.min_free_bytes:
            raise RequestError(
                Text(
                    "The bot's disk is almost full ({free} free; it needs {needed}), so it "
                    "takes no new jobs for now. Nothing was sent or charged; please tell the "
                    "bot's owner.",
                    free=_mib(free),
                    needed=_mib(self.min_free_bytes),
                ),
                reason="disk",
            )

    # ---- the sweep ----

    def start(self) -> None:
        if self.retention_days or self.max_total_bytes:
            self._next_sweep = self.clock() + FIRST_SWEEP_AFTER
            self._start_loop()

    def _seconds_to_next(self) -> float:
        return max(1.0, min(60.0, self._next_sweep - self.clock()))

    async def _turn(self) -> None:
        if self.clock() >= self._next_sweep:
            self._next_sweep = self.clock() + SWEEP_EVERY
            await self.sweep()

    async def sweep(self) -> list[str]:
        """Sweep once; returns the ids of the jobs whose images were removed."""
        folders = await asyncio.to_thread(_scan, self.media_dir)
        if not folders:
            return []
        await self._describe(folders)
        now = self.clock()
        swept: list[str] = []
        kept = sorted((f for f in folders.values() if not f.protected), key=lambda f: f.last_use)
        if self.retention_days:
            cutoff = now - self.retention_days * 86400
            for folder in [f for f in kept if f.finished and f.last_use < cutoff]:
                await self._remove(folder, {"days": self.retention_days})
                swept.append(folder.job_id)
        total = sum(f.size for f in folders.values() if f.job_id not in swept)
        if self.max_total_bytes and total > self.max_total_bytes:
            for folder in kept:
                if total <= self.max_total_bytes:
                    break
                if folder.job_id in swept or not folder.finished:
                    continue
                if folder.last_use > now - RECENT_USE:
                    break  # sorted by last use: every later one is recent too
                await self._remove(folder, {"cap_mib": self.max_total_bytes / 1024 / 1024})
                swept.append(folder.job_id)
                total -= folder.size
            if total > self.max_total_bytes:
                log.warning(
                    "media folder %s holds %s, over its cap of %s, but the rest is in use",
                    self.media_dir,
                    _mib(total),
                    _mib(self.max_total_bytes),
                )
        if swept:
            log.info("media sweep removed the images of %d job(s)", len(swept))
        return swept

    async def _remove(self, folder: _Folder, why: dict[str, float]) -> None:
        why = {**why, "at": self.clock()}
        await asyncio.to_thread(_empty, self.media_dir / folder.job_id, why)

    async def _describe(self, folders: dict[str, _Folder]) -> None:
        """Fill in each folder's job: finished or not, last use, protected."""
        ids = list(folders)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for job_id, status, updated_at in await self._rows(
                f"SELECT id, status, updated_at FROM jobs WHERE id IN ({marks})", chunk
            ):
                folder = folders[job_id]
                folder.finished = status not in _ACTIVE
                folder.protected = not folder.finished
                folder.last_use = updated_at  # the files' time counts only for orphans
        # A follow-up uses its parent; a rerun's inputs are files in an older job's folder.
        field = self.store.json_text("inputs")
        for parent_id, status, updated_at, inputs in await self._rows(
            f"SELECT parent_id, status, updated_at, {field} FROM jobs "
            f"WHERE parent_id IS NOT NULL OR {field} != '[]'"
        ):
            running = status in _ACTIVE
            for used in _used_folders(parent_id, inputs):
                read = folders.get(used)
                if read is not None:
                    read.last_use = max(read.last_use, updated_at)
                    read.protected = read.protected or running

    async def _rows(self, sql: str, args: Sequence[str] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the job store."""
        async with self.store.db.execute(sql, args) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]


def _used_folders(parent_id: str | None, inputs: str | None) -> Iterable[str]:
    if parent_id:
        yield parent_id
    try:
        paths = json.loads(inputs or "[]")
    except ValueError:
        return
    for path in paths if isinstance(paths, list) else ():
        if isinstance(path, str):
            yield path.split("/", 1)[0]


def _scan(media_dir: Path) -> dict[str, _Folder]:
    """The job folders not yet swept, with their size and newest file time."""
    folders: dict[str, _Folder] = {}
    if not media_dir.is_dir():
        return folders
    for entry in media_dir.iterdir():
        if not entry.is_dir() or not is_job_id(entry.name):
            continue
        if (entry / SWEPT_MARKER).exists():
            continue
        files = [(p.stat().st_size, p.stat().st_mtime) for p in entry.iterdir() if p.is_file()]
        if files:
            size = sum(s for s, _ in files)
            folders[entry.name] = _Folder(entry.name, size, max(m for _, m in files))
    return folders


def _empty(folder: Path, why: dict[str, float]) -> None:
    """Delete a job's images, leaving the marker that tells its buttons why."""
    (folder / SWEPT_MARKER).write_text(json.dumps(why), "utf-8")
    for path in folder.iterdir():
        if path.name != SWEPT_MARKER and path.is_file():
            path.unlink(missing_ok=True)


def _existing(path: Path) -> Path:
    """`path`, or its nearest existing parent (the media folder is made lazily)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} MiB"
