"""The job store: SQLite through aiosqlite, WAL, versioned migrations.

Every state change is written here before it is announced, so that a crash at any
point loses nothing that a user has seen. Indexed columns hold what queries filter
on; the whole job is a JSON document beside them, so that adding a field needs no
migration.

One process at a time runs a store (see `ownership.py`): it takes the store's lock the
first time it resumes jobs or writes one. Readers never take it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import aiosqlite

from bot.engine.models import Job, JobStatus
from bot.engine.ownership import Ownership

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    user_id: str  # "" for jobs from the terminal
    provider: str
    jobs: int  # sent to the provider
    succeeded: int
    failed: int


# Each entry moves the schema from version i to i+1. Never edit a shipped entry:
# append a new one.
MIGRATIONS: list[Sequence[str]] = [
    # 1: jobs
    (
        """CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            parent_id TEXT,
            action TEXT NOT NULL,
            provider TEXT NOT NULL,
            task_id TEXT,
            status TEXT NOT NULL,
            user_id TEXT,
            guild_id TEXT,
            channel_id TEXT,
            message_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            data TEXT NOT NULL
        )""",
    ),
    # 2: the runner loads active jobs by status at start; `jobs` lists the newest first;
    # quotas count a user's jobs in a time window.
    (
        "CREATE INDEX jobs_status ON jobs (status)",
        "CREATE INDEX jobs_created ON jobs (created_at)",
        "CREATE INDEX jobs_user_created ON jobs (user_id, created_at)",
    ),
    # 3: the status "queued" (waiting in Atelier, never sent) is now "waiting", so that it
    # no longer shares a word with a task in the provider's queue.
    (
        "UPDATE jobs SET status = 'waiting' WHERE status = 'queued'",
        """UPDATE jobs SET data = json_set(data, '$.status', 'waiting')
            WHERE json_extract(data, '$.status') = 'queued'""",
    ),
    # 4: what guards the owner's money. `ledger`: every charge and refund of credits,
    # one row each (a job's cost is the sum of its rows). `audit`: who did what where,
    # refusals and settings changes included. `guild_settings`: each server's own
    # settings, chosen by its managers, as one JSON document (new settings need no
    # migration).
    (
        """CREATE TABLE ledger (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            user_id TEXT,
            guild_id TEXT,
            job_id TEXT,
            provider TEXT,
            action TEXT,
            credits REAL NOT NULL
        )""",
        "CREATE INDEX ledger_user_at ON ledger (user_id, at)",
        "CREATE INDEX ledger_guild_at ON ledger (guild_id, at)",
        "CREATE INDEX ledger_job ON ledger (job_id)",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at REAL NOT NULL,
            kind TEXT NOT NULL,
            guild_id TEXT,
            channel_id TEXT,
            user_id TEXT,
            job_id TEXT,
            provider TEXT,
            action TEXT,
            credits REAL NOT NULL DEFAULT 0,
            outcome TEXT NOT NULL DEFAULT '',
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX audit_at ON audit (at)",
        "CREATE INDEX audit_guild_at ON audit (guild_id, at)",
        """CREATE TABLE guild_settings (
            guild_id TEXT PRIMARY KEY,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL,
            updated_by TEXT
        )""",
    ),
    # 5: each member's own preferences per server (/settings, /prefer), one JSON document
    # per (server, member); "" is the server of direct messages.
    (
        """CREATE TABLE user_prefs (
            guild_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            data TEXT NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (guild_id, user_id)
        )""",
    ),
    # 6: a reaction (✉️, ❌) on one of the bot's messages finds its job by message id.
    ("CREATE INDEX jobs_message ON jobs (message_id)",),
    # 7: the web editor's links that were used for a submit (each works once), by nonce.
    ("CREATE TABLE used_links (nonce TEXT PRIMARY KEY, used_at REAL NOT NULL)",),
]

SCHEMA_VERSION = len(MIGRATIONS)

# The columns of `jobs` and how each is read from a Job: the one list the writes are
# made from (the CREATE TABLE above is a shipped migration and stays as it was; a test
# checks the two agree). A new column is a migration plus one line here.
COLUMNS: tuple[tuple[str, Callable[[Job], Any]], ...] = (
    ("id", attrgetter("id")),
    ("parent_id", attrgetter("parent_id")),
    ("action", lambda job: job.action.value),
    ("provider", attrgetter("provider")),
    ("task_id", attrgetter("task_id")),
    ("status", lambda job: job.status.value),
    ("user_id", attrgetter("user_id")),
    ("guild_id", attrgetter("guild_id")),
    ("channel_id", attrgetter("channel_id")),
    ("message_id", attrgetter("message_id")),
    ("created_at", attrgetter("created_at")),
    ("updated_at", attrgetter("updated_at")),
    ("data", lambda job: json.dumps(job.to_json(), separators=(",", ":"))),
)
_NAMES = tuple(name for name, _ in COLUMNS)
_UPSERT = (
    f"INSERT INTO jobs ({', '.join(_NAMES)}) VALUES ({', '.join('?' * len(_NAMES))}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in _NAMES[1:])}"
)


async def write_job(db: aiosqlite.Connection, job: Job) -> None:
    """Write one job inside a caller's `Store.transaction()` (the same row as `save`)."""
    job.updated_at = time.time()
    await db.execute(_UPSERT, tuple(read(job) for _, read in COLUMNS))


# What `patch` may set: fields of the job document, except its key and the unknown keys
# kept from a newer version. Those that also have a column of their own (status,
# message_id, ...) are set in both places.
_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
_PATCHABLE = _JOB_FIELDS - {"id", "extras"}
_MIRRORED = _PATCHABLE & frozenset(_NAMES)

# Everything not finished. WAITING/SUBMITTING are included so that a restart can see
# (and fail, never resubmit) jobs that died before the provider confirmed them.
_ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
_FINISHED = tuple(s.value for s in JobStatus if s.finished)
# A row this version cannot read (written by a newer Atelier, or edited by hand).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None
        self.writes = 0  # job rows written, for benchmarks
        self.commits = 0
        self._pending: list[tuple[list[tuple[Any, ...]], asyncio.Future[None]]] = []
        self._write_lock = asyncio.Lock()
        self._ownership = None if str(path) == ":memory:" else Ownership(self.path)
        self._unreadable: set[str] = set()  # job ids already logged as unreadable

    async def open(self, *, upto: int | None = None) -> None:
        """Open (creating the file and folder) and migrate to `upto` (default: latest)."""
        if self._ownership is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        self._db.row_factory = aiosqlite.Row
        await self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes (kill -9) in WAL mode; only a power
        # cut may lose the last commits.
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self.migrate(upto)

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._ownership is not None:
            self._ownership.release()

    # ---- who runs it ----

    @property
    def owned(self) -> bool:
        """Whether this process runs the store (holds its lock)."""
        return self._ownership is None or self._ownership.owned

    def claim(self) -> None:
        """Become the process that runs this store, or raise StoreInUse.

        Taken lazily, by the first resume or write, so that a process that only reads
        (`atelier jobs`) never takes it."""
        if self._ownership is not None:
            self._ownership.claim()

    async def version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def migrate(self, upto: int | None = None) -> int:
        target = SCHEMA_VERSION if upto is None else upto
        current = await self.version()
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer Atelier (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade Atelier."
            )
        for version in range(current, target):
            # One transaction per step: a failed step leaves the previous version intact.
            await self.db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[version]:
                    await self.db.execute(statement)
                await self.db.execute(f"PRAGMA user_version = {version + 1}")
                await self.db.commit()
            except Exception:
                await self.db.rollback()
                raise
        return target

    # ---- jobs ----

    @staticmethod
    def _row(job: Job) -> tuple[Any, ...]:
        return tuple(read(job) for _, read in COLUMNS)

    async def save(self, job: Job) -> None:
        await self.save_many([job])

    async def save_many(self, jobs: Iterable[Job]) -> None:
        """Write jobs durably; returns once they are committed.

        Writers that arrive together share one transaction (group commit): with a
        thousand jobs moving at once this is one commit per burst, not per job, and
        the single connection never sees two writers interleave.
        """
        self.claim()
        now = time.time()
        rows = []
        for job in jobs:
            job.updated_at = now
            rows.append(self._row(job))
        if not rows:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, done))
        async with self._write_lock:
            if not done.done():
                await self._flush()
        await done

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        rows = [row for part, _ in batch for row in part]
        try:
            await self.db.executemany(_UPSERT, rows)
            await self.db.commit()
        except Exception as err:
            with contextlib.suppress(Exception):
                await self.db.rollback()
            for _, done in batch:
                done.set_exception(err)
            return
        self.writes += len(rows)
        self.commits += 1
        for _, done in batch:
            done.set_result(None)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic step over any tables: no other write of this store runs between
        its statements, and it commits whole or not at all. (Checking a user's budget and
        recording the charge is one such step, so no two requests both pass a limit.)"""
        self.claim()
        async with self._write_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                with contextlib.suppress(Exception):
                    await self.db.rollback()
                raise
            await self.db.commit()

    async def patch(self, job_id: str, **values: Any) -> None:
        """Set a few fields of a stored job without rewriting the rest.

        Front ends use this for what they own (where the job is shown, whether its
        outcome was delivered), so that they never overwrite newer state from the runner
        with an older copy of the job.
        """
        if not values:
            return
        unknown = sorted(set(values) - _PATCHABLE)
        if unknown:
            raise ValueError(f"not fields a stored job can be patched in: {', '.join(unknown)}")
        self.claim()
        plain = {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
        paths = ", ".join(f"'$.{name}', ?" for name in plain)
        columns = "".join(f", {name} = ?" for name in plain if name in _MIRRORED)
        args = [*plain.values(), *(v for k, v in plain.items() if k in _MIRRORED)]
        async with self._write_lock:
            await self.db.execute(
                f"UPDATE jobs SET data = json_set(data, {paths}){columns} WHERE id = ?",
                (*args, job_id),
            )
            await self.db.commit()
        self.writes += 1

    # ---- reading ----

    async def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Job]:
        """The jobs a `SELECT id, data ...` finds, without the rows this version cannot
        read: one bad row must not stop the bot, or hide every other job."""
        async with self.db.execute(sql, args) as cursor:
            rows = await cursor.fetchall()
        jobs = []
        for job_id, data in rows:
            try:
                jobs.append(Job.from_json(json.loads(data)))
            except _UNREADABLE as err:
                if job_id not in self._unreadable:  # once per job, not at every listing
                    self._unreadable.add(job_id)
                    log.warning(
                        "job %s in %s cannot be read by this version of Atelier and is "
                        "skipped (written by a newer version, or edited by hand?): %s: %s",
                        job_id,
                        self.path,
                        type(err).__name__,
                        err,
                    )
        return jobs

    async def undelivered(self, origin: str, since: float) -> list[Job]:
        """Finished jobs of a front end whose outcome it never confirmed showing."""
        marks = ",".join("?" * len(_FINISHED))
        return await self._read(
            f"SELECT id, data FROM jobs WHERE status IN ({marks}) AND updated_at >= ? "
            "AND json_extract(data, '$.origin') = ? "
            "AND json_extract(data, '$.delivered_at') IS NULL ORDER BY created_at",
            (*_FINISHED, since, origin),
        )

    async def get(self, job_id: str) -> Job | None:
        found = await self._read("SELECT id, data FROM jobs WHERE id = ?", (job_id,))
        return found[0] if found else None

    async def job_for_message(self, channel_id: str, message_id: str) -> Job | None:
        """The job whose recorded message this is (a job keeps one message id, its
        newest; indexed, since every reaction on a bot message may ask)."""
        found = await self._read(
            "SELECT id, data FROM jobs WHERE message_id = ? AND channel_id = ? LIMIT 1",
            (message_id, channel_id),
        )
        return found[0] if found else None

    async def active(self) -> list[Job]:
        """The unfinished jobs, for the process that resumes them: only the one that runs
        the store may (another one would send its queued jobs a second time)."""
        self.claim()
        marks = ",".join("?" * len(_ACTIVE))
        return await self._read(
            f"SELECT id, data FROM jobs WHERE status IN ({marks}) ORDER BY created_at", _ACTIVE
        )

    async def recent(
        self, limit: int = 20, *, user_id: str | None = None, guild_id: str | None = None
    ) -> list[Job]:
        where, args = [], []
        if user_id is not None:
            where.append("user_id = ?")
            args.append(user_id)
        if guild_id is not None:
            where.append("guild_id = ?")
            args.append(guild_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        return await self._read(
            f"SELECT id, data FROM jobs {clause} ORDER BY created_at DESC LIMIT ?", (*args, limit)
        )

    async def watch(self, job_id: str, *, every: float = 0.5) -> AsyncIterator[Job]:
        """Follow a job that another process runs, read-only: the stored job each time it
        changes, until it finishes.

        Ends early when the job cannot be read any more, or when nobody runs the store
        any more (the owner stopped or was killed): this process then holds the store's
        lock, and the caller may resume the job itself."""
        seen: float | None = None
        while True:
            job = await self.get(job_id)
            if job is None:
                return
            if job.updated_at != seen:
                seen = job.updated_at
                yield job
            if job.finished or (self._ownership is not None and self._ownership.try_claim()):
                return
            await asyncio.sleep(every)

    async def count_sent_since(self, user_id: str, since: float) -> int:
        """Jobs of a user that reached a provider (have a task id) since `since`."""
        async with self.db.execute(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ? "
            "AND task_id IS NOT NULL",
            (user_id, since),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def usage(self, since: float, guild_id: str | None = None) -> list[Usage]:
        """Jobs per user and provider since `since`: who spends what."""
        where = "created_at >= ? AND task_id IS NOT NULL"
        args: list[Any] = [since]
        if guild_id is not None:
            where += " AND guild_id = ?"
            args.append(guild_id)
        async with self.db.execute(
            "SELECT COALESCE(user_id, ''), provider, COUNT(*), "
            "SUM(status = 'succeeded'), SUM(status = 'failed') "
            f"FROM jobs WHERE {where} GROUP BY user_id, provider "
            "ORDER BY COUNT(*) DESC",
            args,
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Usage(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows
        ]

    async def count_active_for(self, user_id: str) -> int:
        marks = ",".join("?" * len(_ACTIVE))
        async with self.db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({marks})",
            (user_id, *_ACTIVE),
        ) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0
