"""A throwaway PostgreSQL cluster for the tests: `initdb` into a temporary folder, the
server on a free loopback port, run as an unprivileged user (PostgreSQL refuses to run
as root, and CI runs as root: then the cluster runs as `nobody`).

One cluster per test session; each test gets a database of its own (CREATE DATABASE
... TEMPLATE template0 takes a few milliseconds with fsync off). When no server can be
started here, `PgCluster.start` raises `PgUnavailable` saying why, and the tests that
need it are skipped with that reason, unless ATELIER_TEST_POSTGRES=required (CI), where
a missing PostgreSQL is a failure instead.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ADMIN = "atelier"  # the cluster's superuser (trust on loopback: a throwaway cluster)
REQUIRED = os.environ.get("ATELIER_TEST_POSTGRES", "") == "required"
# Durability is pointless for a cluster deleted at the end of the session.
_FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started on this machine; the message says why."""


def find_bin_dir() -> Path:
    """The folder of initdb/pg_ctl: $ATELIER_PG_BIN, Debian's newest version, or PATH."""
    wanted = os.environ.get("ATELIER_PG_BIN")
    candidates = [Path(wanted)] if wanted else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions), key=_version, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    raise PgUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl) found under /usr/lib/postgresql/*/bin "
        "or on PATH; install Debian's `postgresql` package (.ci/run does) or set ATELIER_PG_BIN"
    )


def _version(folder: Path) -> float:
    try:
        return float(folder.parent.name)
    except ValueError:
        return 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgCluster:
    bin_dir: Path
    folder: Path
    port: int = 0
    durable: bool = False
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def start(cls, *, durable: bool = False) -> PgCluster:
        """`durable`: keep fsync on (benchmarks measure real commits)."""
        bin_dir = find_bin_dir()
        # As root the server runs as nobody, who must reach the folder: /tmp, not a
        # private $TMPDIR.
        base = "/tmp" if os.geteuid() == 0 and os.path.isdir("/tmp") else None
        folder = Path(tempfile.mkdtemp(prefix="atelier-pg-", dir=base))
        cluster = cls(bin_dir, folder, durable=durable)
        try:
            cluster._init()
            cluster._run()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cluster

    @property
    def admin_url(self) -> str:
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{ADMIN}@127.0.0.1:{self.port}/{database}"

    def next_name(self) -> str:
        return f"t{os.getpid()}_{next(self._names)}"

    def _command(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        if shutil.which("runuser") is None:
            raise PgUnavailable("running as root and `runuser` is missing: cannot drop to nobody")
        return ["runuser", "-u", "nobody", "--", *args]

    def _call(self, *args: str, timeout: float = 60) -> None:
        try:
            done = subprocess.run(
                self._command(*args), capture_output=True, text=True, timeout=timeout
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise PgUnavailable(f"{Path(args[0]).name} could not run: {err}") from err
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PgUnavailable(f"{Path(args[0]).name} failed: {' / '.join(why)}")

    def _init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "nobody")
        data = self.folder / "data"
        self._call(
            str(self.bin_dir / "initdb"), "-D", str(data), "-U", ADMIN, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _run(self) -> None:
        last: PgUnavailable | None = None
        for _ in range(3):  # the free port may be taken between probing and listening
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                f"-c max_connections=200 {'' if self.durable else _FAST}"
            )
            try:
                self._call(
                    str(self.bin_dir / "pg_ctl"), "start", "-w", "-t", "60",
                    "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
                    "-o", options,
                )  # fmt: skip
                return
            except PgUnavailable as err:
                last = err
        raise last or PgUnavailable("the server did not start")

    def create_database(self) -> str:
        """A new empty database on the cluster; its URL."""
        name = self.next_name()
        self._call(
            str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", ADMIN, "-T", "template0", name,
        )  # fmt: skip
        return self.url(name)

    def stop(self) -> None:
        try:
            self._call(
                str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D",
                str(self.folder / "data"),
            )  # fmt: skip
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
