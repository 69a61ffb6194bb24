"""Running the real bot (`python -m bot run`) against the fake Discord, for e2e tests.

The bot runs as an asyncio subprocess, so the fake keeps serving in the test's event
loop. Its output goes to a log file (a full pipe would block the bot); `log_text()`
shows it in assertion messages.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests import stores
from tests.fakes.discord_fake import FakeDiscord, FakeMessage

REPO = Path(__file__).resolve().parents[1]


def write_config(
    path: Path,
    fake: FakeDiscord,
    data_dir: Path,
    *,
    duration: float = 2.0,
    size: int = 512,
    edit_interval: float = 0.5,
    channel_edits_per_5s: int = 4,
    button_access: str = "anyone",
    token: str | None = None,
    extra: str = "",
) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"""
[discord]
token = "{fake.token if token is None else token}"
api_base_url = "{fake.base_url}"
guild_ids = [{fake.guild_id}]
edit_interval = {edit_interval}
channel_edits_per_5s = {channel_edits_per_5s}
button_access = "{button_access}"
max_attachment_mib = 2

[storage]
{stores.storage_line(data_dir / "atelier.db")}
media_dir = "{data_dir / "media"}"

[[providers]]
name = "sandbox"
kind = "sandbox"
duration = {duration}
size = {size}
poll_interval = 0.3
state_dir = "{data_dir / "sandbox"}"
{extra}
""",
        encoding="utf-8",
    )
    return path


class BotProcess:
    """`python -m bot run --config <path>` as a child process."""

    def __init__(self, config: Path, log_path: Path, args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.log_path = log_path
        self.args = args  # more `atelier run` options, e.g. ("--shard-ids", "0")
        self.proc: asyncio.subprocess.Process | None = None
        self._log: Any = None

    async def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        env = dict(os.environ)
        env.pop("DISCORD_TOKEN", None)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(self.config),
            *self.args,
            cwd=str(REPO),
            env=env,
            stdout=self._log,
            stderr=self._log,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    async def kill(self) -> None:
        await self.stop(signal.SIGKILL)

    async def http_port(self, timeout: float = 30.0) -> int:
        """The port `[http] listen_port = 0` got, as the bot logs it at start."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            found = re.search(r"HTTP server listening on [^\s:]+:(\d+)", self.log_text(10**7))
            if found:
                return int(found.group(1))
            if not self.running:
                break
            await asyncio.sleep(0.1)
        raise AssertionError(f"the bot did not say its HTTP port\n{self.log_text()}")

    def log_text(self, tail: int = 6000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except OSError:
            return "(no log)"


async def run_to_exit(
    config: Path, timeout: float = 60.0, args: tuple[str, ...] = ()
) -> tuple[int, str]:
    """Run `python -m bot run` (with more `args`) to its end; (exit code, its output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(config),
        *args,
        cwd=str(REPO),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
    return proc.returncode if proc.returncode is not None else -1, output.decode(errors="replace")


def job_id_in(message: FakeMessage) -> str | None:
    """The job id shown on a job message ("job `abcdefghjk`")."""
    match = re.search(r"job `([0-9a-z]{10})`", message.content)
    return match.group(1) if match else None


def is_result(message: FakeMessage) -> bool:
    """A posted result: images attached and follow-up buttons (not the Cancel button)."""
    ids = button_ids(message)
    return bool(message.attachments) and any(not i.startswith("at1:cancel:") for i in ids)


def button_ids(message: FakeMessage) -> list[str]:
    return [b["custom_id"] for b in message.buttons() if "custom_id" in b]


def labels(message: FakeMessage) -> list[str]:
    return [
        str(b.get("label") or (b.get("emoji") or {}).get("name") or "") for b in message.buttons()
    ]


def rows(message: FakeMessage) -> list[list[str]]:
    out: list[list[str]] = []
    for row in message.components:
        out.append(
            [
                str(c.get("label") or (c.get("emoji") or {}).get("name") or "")
                for c in row.get("components") or []
            ]
        )
    return out


def predicate_all(*checks: Callable[[FakeMessage], bool]) -> Callable[[FakeMessage], bool]:
    return lambda m: all(check(m) for check in checks)
