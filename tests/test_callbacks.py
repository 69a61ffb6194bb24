"""Provider callbacks (midjourney-proxy notifyHook) make news arrive sooner; they are
hints only: the job is polled, the body is never trusted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from bot.callbacks import CallbackReceiver
from bot.config import parse_config
from bot.engine.models import JobRequest, JobStatus
from bot.engine.service import Engine
from bot.http_server import HttpServer
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores


async def test_callbacks_finish_a_job_long_before_the_next_poll(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.step_seconds = 0.3  # the task moves on by time; each step is called back
        server_port = 0
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "callbacks": {
                    "public_url": "http://127.0.0.1:1",
                    "listen_host": "127.0.0.1",
                    "listen_port": server_port,
                },
                # Polls so rare that only callbacks can finish the job in time.
                "providers": [fake.provider_config(poll_interval=60)],
            }
        )
        engine = Engine(config)
        await engine.start()
        server, receiver = _listen(engine)
        await server.start()
        engine.config.http.public_url = f"http://127.0.0.1:{server.port}"
        try:
            started = time.monotonic()
            job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
            sent = fake.bodies("/submit/imagine")[0]
            assert sent["notifyHook"] == f"http://127.0.0.1:{server.port}/atelier/callback/{job.id}"
            while not (current := await engine.get(job.id)) or not current.finished:
                await asyncio.sleep(0.05)
                assert time.monotonic() - started < 20, "callbacks did not speed the job up"
            assert current.status is JobStatus.SUCCEEDED
            assert receiver.received >= 1
        finally:
            await server.stop()
            await engine.stop()
        assert fake.violations == []


async def test_callback_bodies_are_not_trusted(tmp_path: Path) -> None:
    config = parse_config(
        {"storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")}}
    )
    engine = Engine(config)
    await engine.start()
    server, _ = _listen(engine)
    await server.start()
    try:
        async with httpx.AsyncClient() as client:
            base = f"http://127.0.0.1:{server.port}/atelier/callback"
            bad = await client.post(f"{base}/..%2Fetc", json={})
            unknown = await client.post(f"{base}/abcdefghjk", json={"status": "SUCCESS"})
        assert bad.status_code == 404
        assert unknown.status_code == 200 and unknown.json() == {"ok": True, "followed": False}
        assert await engine.get("abcdefghjk") is None  # nothing was created from a body
    finally:
        await server.stop()
        await engine.stop()


def _listen(engine: Engine) -> tuple[HttpServer, CallbackReceiver]:
    server = HttpServer("127.0.0.1", 0)
    receiver = CallbackReceiver(engine)
    server.add_routes(receiver.routes())
    return server, receiver


def test_the_older_callbacks_section_still_configures_the_http_server() -> None:
    old = parse_config({"callbacks": {"public_url": "https://bot.example", "listen_port": 9}})
    assert (old.http.public_url, old.http.listen_port, old.http.listening) == (
        "https://bot.example",
        9,
        True,
    )
    both = parse_config(
        {"callbacks": {"public_url": "https://old.example"}, "http": {"enabled": True}}
    )
    assert both.http.public_url == "" and both.http.listening
    assert not parse_config({}).http.listening
