"""Which process runs a store: an OS lock on `<db>.lock` beside the database.

Only one process may send, poll and finish the jobs of one SQLite store: a second one
would resume the first one's queued jobs (paying twice) and post results twice. The
owner holds an exclusive `flock` on the lock file for as long as its store is open. The
OS drops the lock with the process, however it ends (`kill -9` included), so there is
no PID file to clean up and no stale owner to guess about.

Readers (`atelier jobs`, `usage`, a `wait` that follows another process's job) never
take the lock, so they never stand in an owner's way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl


class StoreInUse(RuntimeError):
    """Another live process runs this store. Worded for the operator."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(
            f"the store {path} is in use by another Atelier process (an `atelier run` or "
            "`atelier imagine` that is still running). Stop that process first, or give "
            "this one a [storage] path of its own; `atelier jobs` and `atelier wait JOB_ID` "
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
