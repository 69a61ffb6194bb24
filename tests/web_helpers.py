"""The real bot with its web pages, the fake Discord, an mj-proxy fake and headless
Chromium (Debian's, driven by Playwright): shared by the browser tests and by
bench/web_submit.py.

Nothing is downloaded: Playwright is told to use /usr/bin/chromium, never its own build.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.discord_helpers import BotProcess, is_result, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage, InteractionRecord
from tests.fakes.maas_fake import FakeMaasMj
from tests.fakes.mj_proxy_fake import FakeMjProxy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
PROXY, MAAS = "proxy", "maas"
RESULT_TIMEOUT = 40.0


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return (
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
            ".ci/run does so"
        )
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is missing: pip install -e '.[dev]'"
    return None


async def until(page: Any, expression: str, timeout: float = 15.0) -> None:
    """Wait until a JavaScript expression is true in the page. (Playwright's own
    wait_for_function polls with eval inside the page, which the pages' CSP forbids.)"""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def toml_entry(values: dict[str, Any]) -> str:
    lines = ["[[providers]]"]
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


@dataclass
class WebEnv:
    fake: FakeDiscord
    proxy: FakeMjProxy
    maas: FakeMaasMj
    bot: BotProcess
    tmp: Path
    public_url: str
    browser: Any  # playwright Browser

    def why(self) -> str:
        return (
            f"{self.fake.summary()}\n--- proxy ---\n{self.proxy.violations}"
            f"\n--- maas ---\n{self.maas.violations}"
            f"\n--- bot log ---\n{self.bot.log_text()}"
        )

    def posts(self, channel_id: int) -> list[FakeMessage]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m.webhook_id is None and not m.ephemeral
        ]

    async def find(
        self, channel_id: int, check: Callable[[FakeMessage], bool], what: str, timeout: float
    ) -> FakeMessage:
        def found() -> FakeMessage | None:
            return next((m for m in self.posts(channel_id) if check(m)), None)

        try:
            return await self.fake.wait_for(found, timeout, what=what)
        except TimeoutError:
            raise AssertionError(f"no {what}\n{self.why()}") from None

    async def result(self, channel_id: int, job_id: str) -> FakeMessage:
        def done(m: FakeMessage) -> bool:
            return job_id_in(m) == job_id and is_result(m)

        return await self.find(channel_id, done, f"result of {job_id}", RESULT_TIMEOUT)

    async def imagine(
        self, channel_id: int, prompt: str, user_id: int | None = None, provider: str = PROXY
    ) -> str:
        rec = await self.fake.send_slash_command(
            "imagine",
            {"prompt": prompt, "provider": provider},
            channel_id=channel_id,
            user_id=user_id,
        )
        reply = await rec.wait_response(20)
        match = re.search(r"job `([0-9a-z]{10})`", reply.content)
        assert match, f"{reply.content}\n{self.why()}"
        return match.group(1)

    async def press(
        self,
        message: FakeMessage,
        label: str,
        user_id: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        for button in message.buttons():
            if label in str(button.get("label") or ""):
                return await self.fake.click_button(
                    message.id, str(button["custom_id"]), user_id=user_id, locale=locale
                )
        raise AssertionError(f"no button {label!r} on {message!r}")

    async def upscale(
        self,
        channel_id: int,
        user_id: int | None = None,
        provider: str = PROXY,
        prompt: str = "a harbour at dawn",
    ) -> FakeMessage:
        """/imagine (on the mj-proxy fake unless told), then U1: the upscale's result."""
        grid_id = await self.imagine(channel_id, prompt, user_id, provider)
        grid = await self.result(channel_id, grid_id)
        await (await self.press(grid, "U1", user_id)).wait_ack(5)

        def child(m: FakeMessage) -> bool:
            ref = m.message_reference or {}
            return ref.get("message_id") == str(grid.id) and "Image #1" in m.content

        first = await self.find(channel_id, child, "the upscale's message", 20)
        job_id = job_id_in(first)
        assert job_id
        return await self.result(channel_id, job_id)


def link_of(rec: InteractionRecord) -> str:
    """The URL of the link button in a private answer."""
    assert rec.original is not None, rec
    for button in rec.original.buttons():
        if button.get("style") == 5:
            return str(button["url"])
    raise AssertionError(f"no link button in {rec.original.content!r}")


async def editor_link(
    env: WebEnv, upscale: FakeMessage, user_id: int | None = None, locale: str = "en-US"
) -> str:
    rec = await env.press(upscale, "Vary (Region)", user_id, locale)
    await rec.wait_ack(5)
    assert rec.ack_type == 4, rec  # a private message with the link, not the form
    await rec.wait_response(10)
    assert rec.original is not None and rec.original.ephemeral
    return link_of(rec)


async def gallery_link(
    env: WebEnv,
    channel_id: int,
    user_id: int | None = None,
    everyone: bool = False,
    locale: str = "en-US",
) -> InteractionRecord:
    options = {"everyone": True} if everyone else {}
    rec = await env.fake.send_slash_command(
        "gallery", options, channel_id=channel_id, user_id=user_id, locale=locale
    )
    await rec.wait_response(10)
    return rec


async def listening(bot: BotProcess, timeout: float = 60.0) -> bool:
    """Whether the bot got its HTTP port; False when it stopped as the port was taken."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        text = bot.log_text(10**6)
        if "HTTP server listening on" in text:
            return True
        if not bot.running:
            return "address already in use" not in text
        await asyncio.sleep(0.1)
    return True  # slow: the waits that follow say what is wrong


@contextlib.asynccontextmanager
async def web_env(
    tmp: Path, *, sandbox_size: int = 256, more_toml: str = ""
) -> AsyncIterator[WebEnv]:
    """One bot (the mj-proxy and MaaS-MJ fakes, the sandbox) with its pages at a public
    URL, and Chromium."""
    from playwright.async_api import async_playwright

    async with (
        FakeMjProxy(flavour="trueai", key="proxy-key") as proxy,
        FakeMaasMj(key="maas-key", endpoint="mjep") as maas,
        async_playwright() as pw,
    ):
        proxy.grid_size = (1024, 1024)  # an upscale of 512 x 512: room to draw
        maas_entry = {
            "name": MAAS,
            "kind": "maas-mj",
            "base_url": maas.base_url,
            "endpoint": maas.endpoint,
            "api_key": maas.key,
            "poll_interval": 0.1,
            "request_timeout": 5,
        }
        providers = toml_entry(proxy.provider_config(PROXY, poll_interval=0.1)) + toml_entry(
            maas_entry
        )
        fake = FakeDiscord()
        await fake.start()
        # The public URL names the port, so it is picked before the bot starts; another
        # process (a second test worker) may take it first: then again on another port.
        for attempt in range(3):
            port = free_port()
            public_url = f"http://127.0.0.1:{port}"
            extra = providers + (
                f'\n[http]\npublic_url = "{public_url}"\nlisten_host = "127.0.0.1"\n'
                f"listen_port = {port}\n{more_toml}"
            )
            config = write_config(
                tmp / "config.toml", fake, tmp / "data", duration=1.0, size=sandbox_size,
                extra=extra,
            )  # fmt: skip
            bot = BotProcess(config, tmp / f"bot{attempt or ''}.log")
            await bot.start()
            if await listening(bot) or attempt == 2:
                break
            await bot.stop()
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield WebEnv(fake, proxy, maas, bot, tmp, public_url, browser)
        finally:
            await browser.close()
            await bot.stop()
            await fake.stop()
