"""Two processes on one store, as users start them: `python -m bot ...` in a folder.

The process that runs a store (an `imagine` here) holds its lock; a second `imagine` or
`run` refuses with exit 2 and never sends the first one's queued job; `jobs` just reads;
`wait` follows a job read-only and, when the owner is killed (`kill -9`), takes over.
The provider is the fake midjourney-proxy, serving in the test's event loop, with its
tasks held still until the test lets them finish.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.engine.models import Job, JobStatus, new_job_id
from bot.engine.store import Store
from bot.vocab import Action
from tests import discord_helpers
from tests.cli_helpers import run_cli, start_cli, toml_value, write_config
from tests.fakes.discord_fake import FakeDiscord
from tests.fakes.mj_proxy_fake import FakeMjProxy, FakeTask

WAIT = 60.0


class HeldMjProxy(FakeMjProxy):
    """Tasks stay where they are while `held`; then run their script as usual."""

    def __init__(self) -> None:
        super().__init__(flavour="relay")
        self.held = True

    def _advance(self, task: FakeTask) -> None:
        if not self.held:
            super()._advance(task)


def stored(db: Path) -> dict[str, tuple[str, str, str | None]]:
    """prompt -> (job id, status, task id), as another reader of the store sees them."""
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT json_extract(data, '$.prompt'), id, status, task_id FROM jobs"
            ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return {}
    return {prompt: (job_id, status, task_id) for prompt, job_id, status, task_id in rows}


async def until(check: Any, what: str, timeout: float = WAIT) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def line_with(process: asyncio.subprocess.Process, text: str) -> str:
    """Read the process's stderr up to the first line containing `text`."""
    assert process.stderr is not None
    seen = []
    while True:
        line = (await asyncio.wait_for(process.stderr.readline(), WAIT)).decode()
        seen.append(line)
        if text in line:
            return line
        if not line:
            raise AssertionError(f"{text!r} never came; stderr:\n{''.join(seen)}")


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    out, err = await asyncio.wait_for(process.communicate(), WAIT)
    return process.returncode or 0, out.decode(), err.decode()


@pytest.fixture
async def held() -> AsyncIterator[HeldMjProxy]:
    async with HeldMjProxy() as fake:
        yield fake


def sent_prompts(fake: FakeMjProxy) -> list[str]:
    return [str(body["prompt"]).split(" --")[0] for body in fake.bodies("/submit/imagine")]


async def leave_waiting(db: Path, prompt: str) -> None:
    """A job an earlier process queued and never sent (safe, and due, to send)."""
    store = Store(db)
    await store.open()
    try:
        await store.save(Job(id=new_job_id(), action=Action.IMAGINE, provider="mj", prompt=prompt))
    finally:
        await store.close()


async def test_a_second_process_refuses_and_the_queued_job_is_sent_once(
    tmp_path: Path, held: HeldMjProxy
) -> None:
    write_config(tmp_path, [held.provider_config(max_concurrent=1)])
    db = tmp_path / "data" / "atelier.db"
    await leave_waiting(db, "left waiting")
    first = await start_cli("imagine", "first", cwd=tmp_path)
    try:
        # The owner sent the job it found waiting; its own job waits for the free slot.
        await until(
            lambda: (
                stored(db).get("first", ("", "", None))[1] == "waiting"
                and stored(db)["left waiting"][2] is not None
            ),
            "the first process to send one job and queue the other",
        )
        second = await run_cli("imagine", "second", cwd=tmp_path)
        assert second.code == 2, second.err
        assert f"the store {db} is in use by another Atelier process" in second.err
        assert "Stop that process first" in second.err and "Traceback" not in second.err

        async with FakeDiscord() as discord:
            bot_config = discord_helpers.write_config(
                tmp_path / "bot.toml", discord, tmp_path / "data"
            )
            code, output = await discord_helpers.run_to_exit(bot_config)
        assert code == 2, output
        assert f"the store {db} is in use" in output and "Traceback" not in output

        listed = await run_cli("jobs", cwd=tmp_path)  # readers never stand in the way
        assert listed.code == 0 and "first" in listed.out and "left waiting" in listed.out

        held.held = False
        code, _, err = await finish(first)
        assert code == 0, err
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert sorted(sent_prompts(held)) == ["first", "left waiting"]  # each sent once
    assert "second" not in stored(db)
    assert stored(db)["first"][1] == "succeeded"


def config_on_the_same_store(folder: Path, store_folder: Path, provider: dict[str, Any]) -> Path:
    """A config of its own (another provider address), on another folder's store."""
    folder.mkdir()
    lines = [
        "[storage]",
        f"path = {toml_value(str(store_folder / 'data' / 'atelier.db'))}",
        f"media_dir = {toml_value(str(store_folder / 'data' / 'media'))}",
        "",
        "[[providers]]",
        *(f"{k} = {toml_value(v)}" for k, v in provider.items()),
    ]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def test_wait_follows_another_process_read_only(tmp_path: Path, held: HeldMjProxy) -> None:
    write_config(tmp_path, [held.provider_config()])
    db = tmp_path / "data" / "atelier.db"
    first = await start_cli("imagine", "a fox in the snow", cwd=tmp_path)
    follower: asyncio.subprocess.Process | None = None
    async with FakeMjProxy(flavour="relay") as spy:
        # The follower's provider is another server: any call it made would show there.
        other = config_on_the_same_store(tmp_path / "b", tmp_path, spy.provider_config())
        try:
            await until(lambda: stored(db).get("a fox in the snow", ("", "", None))[2], "a task")
            job_id = stored(db)["a fox in the snow"][0]
            follower = await start_cli("wait", job_id, "--config", str(other), cwd=tmp_path / "b")
            said = await line_with(follower, "read-only")
            assert str(db) in said and job_id in said
            held.held = False
            code, _, err = await finish(first)
            assert code == 0, err
            code, out, err = await finish(follower)
            assert code == 0, err
        finally:
            for process in (first, follower):
                if process is not None and process.returncode is None:
                    process.kill()
                    await process.wait()
        assert spy.requests == []  # never sent, never polled by the follower
    assert len(list((tmp_path / "b" / "out").glob(f"{job_id}-[1-4].png"))) == 4
    assert f"image 4: out/{job_id}-4.png" in out
    assert sent_prompts(held) == ["a fox in the snow"]


async def test_after_kill_9_the_follower_takes_over(tmp_path: Path, held: HeldMjProxy) -> None:
    write_config(tmp_path, [held.provider_config()])
    db = tmp_path / "data" / "atelier.db"
    first = await start_cli("imagine", "a boat at sea", cwd=tmp_path)
    follower: asyncio.subprocess.Process | None = None
    try:
        await until(lambda: stored(db).get("a boat at sea", ("", "", None))[2], "a task")
        job_id = stored(db)["a boat at sea"][0]
        follower = await start_cli("wait", job_id, cwd=tmp_path)
        await line_with(follower, "read-only")
        first.send_signal(signal.SIGKILL)  # no clean shutdown: only the OS frees the lock
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
    assert stored(db)["a boat at sea"][1] == JobStatus.SUCCEEDED.value
    again = await run_cli("imagine", "and one more", cwd=tmp_path)  # free again
    assert again.code == 0, again.err
