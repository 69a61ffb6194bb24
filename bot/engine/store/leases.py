"""Leases: which live process follows each active job, and until when.

An active job is leased to one owner (a process: `owner_id()`) until `expires_at`. The
owner renews its leases while it lives (`LeaseKeeper` in bot/engine/leases.py); when it
dies they run out, and a live process takes the jobs over (`take_over`). Every change
is one transaction that checks the holder in the same step as it acts: two processes
taking over at once get different jobs (PostgreSQL: `FOR UPDATE ... SKIP LOCKED`;
SQLite: its one writer), and a result is marked delivered once, by its job's holder
(`claim_delivery`), so it is posted once.

Leases are coordination between live processes, so any process may take part: they
never need the store's owner lock (`ownership.py`).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.engine.models import Job, JobStatus

if TYPE_CHECKING:
    from bot.engine.store.base import Store
    from bot.engine.store.sql import Connection

DEFAULT_SECONDS = 30.0
_ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
_FINISHED = tuple(s.value for s in JobStatus if s.finished)
# Placing jobs (a takeover, a new job) is one at a time across processes on PostgreSQL:
# two processes placing jobs of one channel together would split it between them.
PLACE_LOCK = 0x41_74_65_6C_69_65_72_04
# Take a lease: insert it, or replace one that ran out (or is already ours).
_TAKE = (
    "INSERT INTO leases (job_id, owner, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET owner = excluded.owner, "
    "expires_at = excluded.expires_at WHERE leases.expires_at < ? OR leases.owner = ?"
)


def owner_id() -> str:
    """A name for this process, unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def lease(
        self, owner: str, job_ids: Sequence[str], seconds: float = DEFAULT_SECONDS
    ) -> list[str]:
        """Lease these jobs to `owner` where nobody live holds them; the ids it now holds
        (a job someone else holds stays theirs)."""
        if not job_ids:
            return []
        now = time.time()
        async with self.store.coordination() as db:
            for job_id in job_ids:
                await db.execute(_TAKE, (job_id, owner, now + seconds, now, owner))
            return await _held(db, owner, job_ids)

    async def take_over(
        self, owner: str, seconds: float = DEFAULT_SECONDS, limit: int = 100, *, fresh: float = 0
    ) -> list[Job]:
        """Active jobs nobody live follows (their lease ran out, or they never had one and
        are over `fresh` seconds old: younger ones are about to be leased by the process
        that stored them), leased now to `owner`, oldest first. A job whose channel
        another live process shows (it holds a job there) is leased to that process
        instead, so that one channel's Discord writes stay with one process; those are
        not returned."""
        marks = ",".join("?" * len(_ACTIVE))
        where = f"jobs.status IN ({marks}) AND (leases.job_id IS NOT NULL OR jobs.created_at < ?)"
        return await self._take(owner, seconds, where, (*_ACTIVE, time.time() - fresh), limit)

    async def take_over_undelivered(
        self, owner: str, since: float, seconds: float = DEFAULT_SECONDS, limit: int = 100
    ) -> list[Job]:
        """Finished Discord jobs (updated since `since`) whose outcome was never shown and
        whose process is gone (it died between the end and the post): leased now to
        `owner` (or to the live process that shows their channel), to be shown."""
        marks = ",".join("?" * len(_FINISHED))
        where = (
            f"jobs.status IN ({marks}) AND jobs.updated_at >= ? "
            f"AND {self.store.json_text('origin')} = ? "
            f"AND {self.store.json_text('delivered_at')} IS NULL"
        )
        return await self._take(owner, seconds, where, (*_FINISHED, since, "discord"), limit)

    async def _take(
        self, owner: str, seconds: float, where: str, args: Sequence[object], limit: int
    ) -> list[Job]:
        now = time.time()
        async with self.store.coordination() as db:
            await _one_placer(db, self.store.dialect)
            async with db.execute(
                "SELECT jobs.id, jobs.data, jobs.channel_id FROM jobs "
                f"LEFT JOIN leases ON leases.job_id = jobs.id WHERE {where} "
                "AND (leases.job_id IS NULL OR leases.expires_at < ?) "
                f"ORDER BY jobs.created_at LIMIT ?{self.store.skip_locked}",
                (*args, now, limit),
            ) as cursor:
                rows = await cursor.fetchall()
            shown_by = await _channel_owners(db, owner, {str(r[2]) for r in rows if r[2]}, now)
            for job_id, _, channel_id in rows:
                to = shown_by.get(str(channel_id), owner)
                await db.execute(_TAKE, (job_id, to, now + seconds, now, to))
            held = set(await _held(db, owner, [str(r[0]) for r in rows]))
        return [job for job_id, data, _ in rows if job_id in held and (job := _job(data))]

    async def place(
        self, owner: str, job_id: str, channel_id: str | None, seconds: float = DEFAULT_SECONDS
    ) -> str:
        """Lease a new job to the live process that shows its channel (it holds another
        active job there), else to `owner`; the owner it went to."""
        now = time.time()
        async with self.store.coordination() as db:
            await _one_placer(db, self.store.dialect)
            channels = {channel_id} if channel_id else set()
            to = (await _channel_owners(db, owner, channels, now)).get(channel_id or "", owner)
            await db.execute(_TAKE, (job_id, to, now + seconds, now, to))
            held = await _held(db, to, [job_id])
        return to if held else ""

    async def renew(self, owner: str, seconds: float = DEFAULT_SECONDS) -> list[str]:
        """Extend every lease `owner` still holds; the ids it holds (a job missing from
        them was taken over, while this process stalled past its expiry)."""
        now = time.time()
        async with self.store.coordination() as db:
            await db.execute(
                "UPDATE leases SET expires_at = ? WHERE owner = ? AND expires_at >= ?",
                (now + seconds, owner, now),
            )
            async with db.execute(
                "SELECT job_id FROM leases WHERE owner = ? AND expires_at >= ? ORDER BY job_id",
                (owner, now),
            ) as cursor:
                return [str(row[0]) for row in await cursor.fetchall()]

    async def release(self, owner: str, job_ids: Sequence[str] | None = None) -> None:
        """Give up leases (finished jobs; all of them when `job_ids` is None, at a clean
        stop, so that another process takes the jobs over at once)."""
        async with self.store.coordination() as db:
            if job_ids is None:
                await db.execute("DELETE FROM leases WHERE owner = ?", (owner,))
                return
            for job_id in job_ids:
                await db.execute(
                    "DELETE FROM leases WHERE job_id = ? AND owner = ?", (job_id, owner)
                )

    async def holder(self, job_id: str) -> str | None:
        """Who follows the job now (None: nobody live)."""
        async with self.store.db.execute(
            "SELECT owner FROM leases WHERE job_id = ? AND expires_at >= ?",
            (job_id, time.time()),
        ) as cursor:
            row = await cursor.fetchone()
        return str(row[0]) if row else None

    async def claim_delivery(self, owner: str, job_id: str) -> bool:
        """Mark a finished job's outcome delivered, if `owner` holds its lease and nobody
        delivered it yet: True means this process, and only it, posts the outcome."""
        now = time.time()
        async with self.store.coordination() as db:
            async with db.execute(
                "SELECT jobs.data FROM jobs JOIN leases ON leases.job_id = jobs.id "
                f"WHERE jobs.id = ? AND leases.owner = ? AND leases.expires_at >= ?"
                f"{self.store.skip_locked}",
                (job_id, owner, now),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return False
            document = json.loads(row[0])
            if document.get("delivered_at") is not None:
                return False
            document["delivered_at"] = now
            await db.execute(
                "UPDATE jobs SET data = ?, updated_at = ? WHERE id = ?",
                (json.dumps(document, separators=(",", ":")), now, job_id),
            )
        return True


async def _one_placer(db: Connection, dialect: str) -> None:
    """Wait for the placing lock (PostgreSQL; SQLite's one writer already is one)."""
    if dialect == "postgresql":
        await db.execute("SELECT pg_advisory_xact_lock(?)", (PLACE_LOCK,))


async def _channel_owners(
    db: Connection, owner: str, channels: set[str], now: float
) -> dict[str, str]:
    """channel id -> the other live process that holds an active job there."""
    if not channels:
        return {}
    marks = ",".join("?" * len(channels))
    async with db.execute(
        "SELECT jobs.channel_id, leases.owner FROM leases JOIN jobs ON jobs.id = leases.job_id "
        f"WHERE jobs.channel_id IN ({marks}) AND leases.owner <> ? AND leases.expires_at >= ? "
        "ORDER BY leases.expires_at",
        (*sorted(channels), owner, now),
    ) as cursor:
        return {str(channel): str(other) for channel, other in await cursor.fetchall()}


async def _held(db: Connection, owner: str, job_ids: Sequence[str]) -> list[str]:
    if not job_ids:
        return []
    marks = ",".join("?" * len(job_ids))
    async with db.execute(
        f"SELECT job_id FROM leases WHERE owner = ? AND job_id IN ({marks}) ORDER BY job_id",
        (owner, *job_ids),
    ) as cursor:
        return [str(row[0]) for row in await cursor.fetchall()]


def _job(data: str) -> Job | None:
    """The job, or None for a row this version cannot read (its lease runs out unused;
    the store's readers name such rows)."""
    try:
        return Job.from_json(json.loads(data))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
