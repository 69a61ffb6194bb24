"""Which process runs a store: an OS lock on `<db>.lock` beside a SQLite database, a
session advisory lock on a PostgreSQL one.

Only one process may send, poll and finish the jobs of one SQLite store: a second one
would resume the first one's queued jobs (paying twice) and post results twice. The
owner holds an exclusive `flock` on the lock file for as long as its store is open. The
OS drops the lock with the process, however it ends (`kill -9` included), so there is
no PID file to clean up and no stale owner to guess about.

On PostgreSQL the owner holds `pg_try_advisory_lock` on a connection of its own for as
long as its store is open; the server drops it when that connection ends, which the
process's death ends too. `atelier run` processes that share a PostgreSQL store (each
job leased to one of them: `leasing.py`) hold the same lock *shared*, so any number of
them run together, while a process that would run the store alone (`atelier imagine`)
is refused as long as one of them lives, and they are refused while it runs.

Readers (`atelier jobs`, `usage`, a `wait` that follows another process's job) never
take the lock, so they never stand in an owner's way.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

if TYPE_CHECKING:
    import asyncpg


class StoreInUse(RuntimeError):
    """Another live process runs this store. Worded for the operator."""

    def __init__(self, path: Path | str) -> None:
        self.path = path
        own = "a [storage] path" if isinstance(path, Path) else "a database ([storage] url)"
        super().__init__(
            f"the store {path} is in use by another Atelier process (an `atelier run` or "
            "`atelier imagine` that is still running). Stop that process first, or give "
            f"this one {own} of its own; `atelier jobs` and `atelier wait JOB_ID` "
            "can read it meanwhile."
        )


class Ownership:
    """The exclusive lock on one store. `claim()` is idempotent; `release()` too."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.lock_path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    @property
    def owned(self) -> bool:
        return self._fd is not None

    def try_claim(self) -> bool:
        """Take the lock if nobody holds it; never waits. True when this process owns it."""
        if self._fd is not None:
            return True
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def claim(self) -> None:
        """Take the lock, or raise StoreInUse when another process holds it."""
        if not self.try_claim():
            raise StoreInUse(self.database)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def _lock(fd: int) -> bool:
    """An exclusive, non-blocking lock on `fd` that dies with it (and with the process)."""
    try:
        if sys.platform == "win32":
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError on POSIX, PermissionError on Windows
        return False
    return True


# The advisory lock that says which process runs a PostgreSQL store: one number per
# database ("Atelier" and 1 in ASCII), away from what other applications would pick.
OWNER_LOCK = 0x41_74_65_6C_69_65_72_01


class AdvisoryOwnership:
    """The PostgreSQL store's owner lock, held on a connection of its own.

    `claim()` cannot ask the server (it is not a coroutine): it raises when an earlier
    attempt was refused and otherwise leaves the answer to `aclaim()`, which the store
    awaits before its first resume or write. A refused process keeps its connection for
    the next attempt (a follower asks every half second)."""

    def __init__(self, where: str, connect: Callable[[], Awaitable[asyncpg.Connection]]) -> None:
        self.where = where
        self._connect = connect
        self._conn: asyncpg.Connection | None = None
        self._held = False
        self._refused = False
        # `atelier run` processes sharing the store by leases hold the lock shared: many
        # of them at once, and none beside a process that runs the store alone.
        self.shared = False
        # One attempt at a time: the lock is per session, so a second connection of
        # this same process asking meanwhile would be refused by the first.
        self._asking = asyncio.Lock()

    @property
    def owned(self) -> bool:
        return self._held and self._conn is not None and not self._conn.is_closed()

    async def try_claim(self) -> bool:
        async with self._asking:
            if self.owned:
                return True
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            try:
                how = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
                self._held = bool(await self._conn.fetchval(f"SELECT {how}($1)", OWNER_LOCK))
            except BaseException:
                conn, self._conn = self._conn, None
                conn.terminate()
                raise
            self._refused = not self._held
            return self._held

    def claim(self) -> None:
        if not self.owned and self._refused:
            raise StoreInUse(self.where)

    async def aclaim(self) -> None:
        if not await self.try_claim():
            raise StoreInUse(self.where)

    async def release(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None and not conn.is_closed():
            await conn.close()  # the server drops the lock with the session
