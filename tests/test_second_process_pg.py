"""Two processes on one PostgreSQL store, as users start them (`python -m bot ...`).

The same promises as tests/test_second_process.py makes for SQLite, where PostgreSQL's
session advisory lock stands in for the lock file: a second `imagine` refuses with exit
2 and never sends anything, `jobs` just reads, and `wait` follows a job read-only and,
when the owner is killed (`kill -9`: the server drops the lock with the connection),
takes over without sending the job again.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import asyncpg

from bot.engine.models import JobStatus
from tests.cli_helpers import run_cli, start_cli, toml_value
from tests.test_second_process import HeldMjProxy, finish, held, line_with, sent_prompts

__all__ = ["held"]  # the fixture, shared with the SQLite tests


def write_pg_config(folder: Path, url: str, provider: dict[str, Any]) -> Path:
    lines = [
        "[storage]",
        f"url = {toml_value(url)}",
        f"media_dir = {toml_value(str(folder / 'data' / 'media'))}",
        "",
        "[[providers]]",
        *(f"{k} = {toml_value(v)}" for k, v in provider.items() if v is not None),
    ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class Rows:
    """prompt -> (job id, status, task id), as another reader of the database sees them."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[str, tuple[str, str, str | None]] = {}

    async def refresh(self) -> dict[str, tuple[str, str, str | None]]:
        conn = await asyncpg.connect(self.url)
        try:
            if await conn.fetchval("SELECT to_regclass('jobs')") is None:
                return {}
            rows = await conn.fetch(
                "SELECT data::jsonb ->> 'prompt', id, status, task_id FROM jobs"
            )
        finally:
            await conn.close()
        self.seen = {r[0]: (r[1], r[2], r[3]) for r in rows}
        return self.seen

    async def until_sent(self, prompt: str) -> str:
        async def sent() -> bool:
            return bool((await self.refresh()).get(prompt, ("", "", None))[2])

        async def poll() -> None:
            while not await sent():
                await asyncio.sleep(0.1)

        try:
            await asyncio.wait_for(poll(), 60)
        except TimeoutError:
            raise AssertionError(f"{prompt!r} was never sent") from None
        return self.seen[prompt][0]


async def test_one_process_runs_a_postgresql_store_and_a_follower_takes_over_after_kill_9(
    tmp_path: Path, held: HeldMjProxy, postgres_url: str
) -> None:
    write_pg_config(tmp_path, postgres_url, held.provider_config())
    rows = Rows(postgres_url)
    first = await start_cli("imagine", "a boat at sea", cwd=tmp_path)
    follower: asyncio.subprocess.Process | None = None
    try:
        job_id = await rows.until_sent("a boat at sea")
        second = await run_cli("imagine", "second", cwd=tmp_path)
        assert second.code == 2, second.err
        assert f"the store {postgres_url} is in use by another Atelier process" in second.err
        assert "[storage] url" in second.err and "Traceback" not in second.err
        listed = await run_cli("jobs", cwd=tmp_path)  # readers never stand in the way
        assert listed.code == 0 and "a boat at sea" in listed.out

        follower = await start_cli("wait", job_id, cwd=tmp_path)
        said = await line_with(follower, "read-only")
        assert postgres_url in said and job_id in said
        first.send_signal(signal.SIGKILL)  # no clean shutdown: the server frees the lock
        await first.wait()
        held.held = False
        code, _, err = await finish(follower)
        assert code == 0, err
    finally:
        for process in (first, follower):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
    assert len(list((tmp_path / "out").glob(f"{job_id}-[1-4].png"))) == 4
    assert sent_prompts(held) == ["a boat at sea"]  # taken over, not sent again
    assert "second" not in await rows.refresh()
    assert rows.seen["a boat at sea"][1] == JobStatus.SUCCEEDED.value
    again = await run_cli("imagine", "and one more", cwd=tmp_path)  # free again
    assert again.code == 0, again.err
