"""The job store's one contract, whichever database is under it (`sqlite.py`,
`postgres.py`): versioned migrations, group-committed writes, atomic steps over any
tables, and readers that skip a row they cannot read.

Every state change is written here before it is announced, so that a crash at any
point loses nothing that a user has seen. Indexed columns hold what queries filter
on; the whole job is a JSON document beside them, so that adding a field needs no
migration.

One process at a time runs a store (see `ownership.py`): it takes the store's lock the
first time it resumes jobs or writes one. Readers never take it. On PostgreSQL several
`atelier run` processes may hold that lock shared, each active job leased to one of
them (`leases.py`, `bot/engine/leasing.py`).
"""

from __future__ import annotations

import abc
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

from bot.engine.models import Job, JobStatus
from bot.engine.store.leases import Leases
from bot.engine.store.migrations import SCHEMA_VERSION
from bot.engine.store.sql import Connection, Row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Usage:
    user_id: str  # "" for jobs from the terminal
    provider: str
    jobs: int  # sent to the provider
    succeeded: int
    failed: int


# The columns of `jobs` and how each is read from a Job: the one list the writes are
# made from (the CREATE TABLE is a shipped migration and stays as it was; a test checks
# the two agree). A new column is a migration plus one line here.
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
NAMES = tuple(name for name, _ in COLUMNS)
# Valid on both databases (PostgreSQL reads `excluded` as SQLite does).
UPSERT = (
    f"INSERT INTO jobs ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))}) "
    f"ON CONFLICT (id) DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in NAMES[1:])}"
)

REPLACE_IF = (
    f"UPDATE jobs SET {', '.join(f'{n} = ?' for n in NAMES[1:])} "
    "WHERE id = ? AND status = ? RETURNING id"
)


def job_row(job: Job) -> Row:
    return tuple(read(job) for _, read in COLUMNS)


async def write_job(db: Connection, job: Job) -> None:
    """Write one job inside a caller's `Store.transaction()` (the same row as `save`)."""
    job.updated_at = time.time()
    await db.execute(UPSERT, job_row(job))


# What `patch` may set: fields of the job document, except its key and the unknown keys
# kept from a newer version. Those that also have a column of their own (status,
# message_id, ...) are set in both places.
_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
PATCHABLE = _JOB_FIELDS - {"id", "extras"}
MIRRORED = PATCHABLE & frozenset(NAMES)

# Everything not finished. WAITING/SUBMITTING are included so that a restart can see
# (and fail, never resubmit) jobs that died before the provider confirmed them.
ACTIVE = tuple(s.value for s in JobStatus if not s.finished)
FINISHED = tuple(s.value for s in JobStatus if s.finished)
# A row this version cannot read (written by a newer Atelier, or edited by hand).
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError)


def is_postgres_url(target: str | Path) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


def store_class(target: str | Path) -> type[Store]:
    """The store a target names: a `postgresql://` URL is a PostgreSQL store, anything
    else the path of a SQLite file (":memory:" included)."""
    from bot.engine.store.postgres import PostgresStore  # they import this module
    from bot.engine.store.sqlite import SqliteStore

    return PostgresStore if is_postgres_url(target) else SqliteStore


def _like_text(word: str) -> str | None:
    """`word` lower-cased for LIKE, its wildcards escaped by `!`. None for a word with a
    non-ASCII letter that has a case ("É"): SQL's lower() folds ASCII only (SQLite, and
    PostgreSQL in the C locale), so such a word is left to the caller's own check."""
    if any(not c.isascii() and c.lower() != c.upper() for c in word):
        return None
    return word.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")


def store_for(target: str | Path) -> Store:
    """The (unopened) store of a target: `Store(target)` does the same."""
    return store_class(target)(target)


class Store(abc.ABC):
    """`Store(target)` opens the store a target names: a `postgresql://` URL is a
    PostgreSQL store, anything else the path of a SQLite file (":memory:" included)."""

    dialect: str

    def __new__(cls, target: str | Path) -> Store:
        return object.__new__(store_class(target) if cls is Store else cls)

    def __init__(self, target: str | Path) -> None:
        self.where = str(target)  # what messages call it (never with a password)
        self.writes = 0  # job rows written, for benchmarks
        self.commits = 0
        self._pending: list[tuple[list[Row], asyncio.Future[None]]] = []
        self._write_lock = asyncio.Lock()
        self._unreadable: set[str] = set()  # job ids already logged as unreadable

    # ---- what each database does its own way ----

    @abc.abstractmethod
    async def open(self, *, upto: int | None = None) -> None:
        """Connect and migrate to `upto` (default: latest)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    @abc.abstractmethod
    def db(self) -> Connection:
        """For reads (and, on SQLite, writes followed by `commit()`) outside a step."""

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """One atomic step over any tables: no other step of this store (of any process,
        on PostgreSQL) runs between its statements, and it commits whole or not at all.
        (Checking a user's budget and recording the charge is one such step, so no two
        requests both pass a limit.)"""

    # Appended to the SELECT of a claim (leases): PostgreSQL locks the job rows it
    # returns and skips those another process's claim holds; SQLite's one writer needs
    # neither.
    skip_locked = ""

    @abc.abstractmethod
    def coordination(self) -> contextlib.AbstractAsyncContextManager[Connection]:
        """A transaction between live processes (leases): atomic, taken by any process,
        not only the one that runs the store, and on PostgreSQL not behind the lock that
        orders `transaction()` steps (row locks keep claims apart)."""

    @property
    def leases(self) -> Leases:
        """Which live process follows which active job (`leases.py`)."""
        return Leases(self)

    @abc.abstractmethod
    async def version(self) -> int: ...

    @abc.abstractmethod
    async def migrate(self, upto: int | None = None) -> int:
        """Apply the missing steps under the database's lock, so that two processes
        starting together migrate once; returns the version reached."""

    @abc.abstractmethod
    async def _write_rows(self, rows: list[Row]) -> None:
        """Upsert job rows in one transaction."""

    @abc.abstractmethod
    def _patch_statement(self, values: dict[str, Any], job_id: str) -> tuple[str, Row]:
        """An UPDATE of some document fields of one job (and of the columns that mirror
        them), with its arguments."""

    @abc.abstractmethod
    def json_text(self, name: str) -> str:
        """An SQL expression for one top-level field of a job's `data` (NULL when absent
        or null; an array or object as its JSON text), for queries on either database."""

    # ---- who runs it ----

    @property
    @abc.abstractmethod
    def owned(self) -> bool:
        """Whether this process runs the store."""

    @abc.abstractmethod
    def claim(self) -> None:
        """Become the process that runs this store, or raise StoreInUse.

        Taken lazily, by the first resume or write, so that a process that only reads
        (`atelier jobs`) never takes it."""

    async def _claim(self) -> None:
        """`claim`, where the database must be asked (PostgreSQL)."""
        self.claim()

    @abc.abstractmethod
    async def _try_claim(self) -> bool:
        """Take the store if nobody runs it; never waits. True when this process runs it."""

    def check_version(self, current: int) -> None:
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.where} was written by a newer Atelier (schema {current}, "
                f"this one knows {SCHEMA_VERSION}); upgrade Atelier."
            )

    # ---- jobs ----

    async def save(self, job: Job) -> None:
        await self.save_many([job])

    async def save_many(self, jobs: Iterable[Job]) -> None:
        """Write jobs durably; returns once they are committed.

        Writers that arrive together share one transaction (group commit): with a
        thousand jobs moving at once this is one commit per burst, not per job, and
        the connection never sees two writers interleave.
        """
        await self._claim()
        now = time.time()
        rows = []
        for job in jobs:
            job.updated_at = now
            rows.append(job_row(job))
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
            await self._write_rows(rows)
        except Exception as err:
            for _, done in batch:
                done.set_exception(err)
            return
        self.writes += len(rows)
        self.commits += 1
        for _, done in batch:
            done.set_result(None)

    async def replace_if(self, job: Job, expected: JobStatus) -> bool:
        """Write `job` whole only if the stored job's status is still `expected`; True
        when it was written. One conditional UPDATE, so a change another process made
        meanwhile (a Cancel pressed there while this one was about to send the job)
        wins, and this write is dropped."""
        await self._claim()
        job.updated_at = time.time()
        row = job_row(job)
        async with (
            self.coordination() as db,
            db.execute(REPLACE_IF, (*row[1:], job.id, expected.value)) as cursor,
        ):
            written = bool(await cursor.fetchall())
        self.writes += written
        return written

    async def patch(self, job_id: str, **values: Any) -> None:
        """Set a few fields of a stored job without rewriting the rest.

        Front ends use this for what they own (where the job is shown, whether its
        outcome was delivered), so that they never overwrite newer state from the runner
        with an older copy of the job.
        """
        if not values:
            return
        unknown = sorted(set(values) - PATCHABLE)
        if unknown:
            raise ValueError(f"not fields a stored job can be patched in: {', '.join(unknown)}")
        await self._claim()
        plain = {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}
        sql, args = self._patch_statement(plain, job_id)
        async with self.transaction() as db:
            await db.execute(sql, args)
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
                        self.where,
                        type(err).__name__,
                        err,
                    )
        return jobs

    async def undelivered(self, origin: str, since: float) -> list[Job]:
        """Finished jobs of a front end whose outcome it never confirmed showing."""
        marks = ",".join("?" * len(FINISHED))
        return await self._read(
            f"SELECT id, data FROM jobs WHERE status IN ({marks}) AND updated_at >= ? "
            f"AND {self.json_text('origin')} = ? "
            f"AND {self.json_text('delivered_at')} IS NULL ORDER BY created_at",
            (*FINISHED, since, origin),
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
        await self._claim()
        marks = ",".join("?" * len(ACTIVE))
        return await self._read(
            f"SELECT id, data FROM jobs WHERE status IN ({marks}) ORDER BY created_at", ACTIVE
        )

    async def recent(
        self,
        limit: int = 20,
        *,
        user_id: str | None = None,
        guild_id: str | None = None,
        provider: str | None = None,
        mentioning: Sequence[str] = (),
    ) -> list[Job]:
        """The newest jobs, by these filters. `mentioning`: words the prompt holds, in
        any case (a search narrows here, over every job, not over the newest few)."""
        where, args = [], []
        for column, value in (("user_id", user_id), ("guild_id", guild_id), ("provider", provider)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for word in mentioning:
            pattern = _like_text(word)
            if pattern is not None:
                where.append(f"lower({self.json_text('prompt')}) LIKE ? ESCAPE '!'")
                args.append(f"%{pattern}%")
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
            if job.finished or await self._try_claim():
                return
            await asyncio.sleep(every)

    async def _count(self, sql: str, args: Sequence[Any]) -> int:
        async with self.db.execute(sql, args) as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def count_sent_since(self, user_id: str, since: float) -> int:
        """Jobs of a user that reached a provider (have a task id) since `since`."""
        return await self._count(
            "SELECT COUNT(*) FROM jobs WHERE user_id = ? AND created_at >= ? "
            "AND task_id IS NOT NULL",
            (user_id, since),
        )

    async def usage(self, since: float, guild_id: str | None = None) -> list[Usage]:
        """Jobs per user and provider since `since`: who spends what."""
        where = "created_at >= ? AND task_id IS NOT NULL"
        args: list[Any] = [since]
        if guild_id is not None:
            where += " AND guild_id = ?"
            args.append(guild_id)
        async with self.db.execute(
            "SELECT COALESCE(user_id, ''), provider, COUNT(*), "
            "SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) "
            f"FROM jobs WHERE {where} GROUP BY user_id, provider "
            "ORDER BY COUNT(*) DESC",
            args,
        ) as cursor:
            rows = await cursor.fetchall()
        return [
            Usage(str(r[0]), str(r[1]), int(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows
        ]

    async def count_active_for(self, user_id: str) -> int:
        marks = ",".join("?" * len(ACTIVE))
        return await self._count(
            f"SELECT COUNT(*) FROM jobs WHERE user_id = ? AND status IN ({marks})",
            (user_id, *ACTIVE),
        )
