"""Midjourney's video buttons end to end: the real bot (`python -m bot run`) against the
fake Discord and two fake midjourney-proxy servers.

A trueai server (video on) offers Animate (High / Low motion) on an upscale; a press
sends the upscale's own customId to /mj/submit/action, and the finished VIDEO task's
four mp4s reach Discord as video attachments with U1-U4 and 🔄; U2 picks one video,
which offers Extend (High / Low motion), pressed the same way. A video over the
channel's upload limit is re-encoded to fit (the wheel's ffmpeg); one that cannot be is
left out with the provider's link. A new-api relay, whose
/submit/action refuses the video buttons, fails the job saying so and then hides them;
the sandbox never shows them.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_discord_e2e import (
    RESULT_TIMEOUT,
    Env,
    acked,
    channel,
    channel_posts,
    imagine,
    result_of,
)
from tests.test_discord_providers import (
    UPSCALE,
    custom_id_of,
    faces,
    toml_table,
    upscale_of,
)
from tests.test_discord_show import show
from tests.video_helpers import real_mp4

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

PROXY, RELAY, SANDBOX = "proxy", "relay", "sandbox"
ANIMATE_ROW = ["🎞️ Animate (High motion)", "🎞️ Animate (Low motion)"]
EXTEND_ROW = ["🎞️ Extend (High motion)", "🎞️ Extend (Low motion)"]
VIDEO_GRID = [["U1", "U2", "U3", "U4", "🔄"]]
VIDEO_BYTES = 96 * 1024


@dataclass
class VideoEnv(Env):
    proxy: Any = None
    relay: Any = None
    grids: dict[str, FakeMessage] = field(default_factory=dict)  # provider -> /imagine result
    upscales: dict[str, FakeMessage] = field(default_factory=dict)  # provider -> U2 result

    def why(self) -> str:
        fakes = f"proxy: {self.proxy.violations}\nrelay: {self.relay.violations}"
        return f"{super().why()}\n--- provider fakes ---\n{fakes}"

    def clean(self) -> None:
        super().clean()
        assert self.proxy.violations == [], self.why()
        assert self.relay.violations == [], self.why()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[VideoEnv]:
    tmp = tmp_path_factory.mktemp("discord-video")
    async with (
        FakeMjProxy(flavour="trueai", key="proxy-key") as proxy,
        FakeMjProxy(flavour="relay", key="relay-key") as relay,
    ):
        for server in (proxy, relay):
            server.script = [("IN_PROGRESS", "50%"), ("SUCCESS", "100%")]
        proxy.video_bytes = VIDEO_BYTES
        extra = toml_table(proxy.provider_config(PROXY, poll_interval=0.1)) + toml_table(
            relay.provider_config(RELAY, poll_interval=0.1)
        )
        fake = FakeDiscord()
        await fake.start()
        config = write_config(
            tmp / "config.toml", fake, tmp / "data", duration=1.0, size=256, extra=extra
        )
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        state = VideoEnv(fake, bot, tmp, config, proxy=proxy, relay=relay)
        try:
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield state
        finally:
            await bot.stop()
            await fake.stop()


# ------------------------------------------------------------------ helpers


async def upscale_on(env: VideoEnv, name: str, index: int = 2) -> FakeMessage:
    """U<index> of a square grid on `name` (each made once). Tests that press the same
    button on one upscale within [spending] duplicate_seconds get the first press's job
    (a double click), so each such test takes its own U<index>."""
    if name not in env.grids:
        where = await channel(env, f"video-{name}")
        _, job_id, _ = await imagine(env, where, f"a lighthouse on {name}", provider=name)
        env.grids[name] = await result_of(env, job_id, where)
    if index != 2:
        return await upscale_of(env, env.grids[name], index)
    if name not in env.upscales:
        env.upscales[name] = await upscale_of(env, env.grids[name], 2)
    return env.upscales[name]


async def outcome(env: VideoEnv, job_id: str, channel_id: int) -> FakeMessage:
    """The message that shows a finished job: follow-up buttons, no Cancel."""

    def find() -> FakeMessage | None:
        for m in channel_posts(env, channel_id):
            ids = [b.get("custom_id", "") for b in m.buttons()]
            done = "**Failed**" in m.content or (ids and not any("cancel" in i for i in ids))
            if job_id_in(m) == job_id and done and not m.deleted:
                return m
        return None

    try:
        return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the outcome of {job_id}")
    except TimeoutError:
        raise AssertionError(f"no outcome for {job_id}\n{env.why()}") from None


def sent_actions(fake: FakeMjProxy, since: int) -> list[str]:
    return [r.body["customId"] for r in fake.requests[since:] if r.endpoint == "/submit/action"]


def task_of(fake: FakeMjProxy, custom_id: str) -> Any:
    """The fake's task whose buttons hold `custom_id`."""
    return next(t for t in fake.tasks.values() if custom_id in {b["customId"] for b in t.buttons})


def mp4s(message: FakeMessage) -> list[Any]:
    return [a for a in message.attachments if a.filename.endswith(".mp4")]


async def press_video(env: VideoEnv, parent: FakeMessage, face: str, marker: str) -> FakeMessage:
    """Press `face` on `parent`; the outcome of the new child job (earlier children of
    the same kind are told apart by their job ids)."""
    seen = {job_id_in(m) for m in env.fake.all_messages(include_deleted=True)}
    rec = await env.fake.click_button(parent.id, custom_id_of(parent, face))
    await acked(rec, 6)

    def child() -> str | None:
        for m in channel_posts(env, parent.channel_id):
            replied = (m.message_reference or {}).get("message_id") == str(parent.id)
            job_id = job_id_in(m)
            if replied and job_id not in seen and marker in m.content.split("\n")[0]:
                return job_id
        return None

    try:
        child_id = await env.fake.wait_for(child, 20, what=f"a new {marker} job")
    except TimeoutError:
        late = "\n".join(repr(r) for r in env.fake.requests[-30:])
        raise AssertionError(f"no new {marker} job after {rec!r}\n{late}\n{env.why()}") from None
    return await outcome(env, child_id, parent.channel_id)


# ------------------------------------------------------------------ trueai: Animate, U, Extend


async def test_an_upscale_offers_animate_high_and_low(env: VideoEnv) -> None:
    upscale = await upscale_on(env, PROXY)
    assert faces(upscale) == [*UPSCALE, ANIMATE_ROW], env.why()
    env.clean()


async def test_animate_high_presses_the_upscales_button_and_posts_four_mp4s(
    env: VideoEnv,
) -> None:
    upscale = await upscale_on(env, PROXY)
    before = len(env.proxy.requests)
    result = await press_video(env, upscale, ANIMATE_ROW[0], "Animate (High motion)")
    sent = sent_actions(env.proxy, before)
    assert len(sent) == 1 and re.fullmatch(r"MJ::JOB::animate_high::1::[0-9a-f-]+::SOLO", sent[0])
    # The customId is the upscale task's own button, not one made up.
    pressed = task_of(env.proxy, sent[0])
    assert pressed.action == "UPSCALE"
    videos = mp4s(result)
    assert len(videos) == 4 == len(result.attachments), env.why()
    assert all(a.content_type == "video/mp4" and a.size == VIDEO_BYTES for a in videos)
    assert all(a.data[4:8] == b"ftyp" for a in videos)
    assert faces(result) == VIDEO_GRID, env.why()
    assert (result.message_reference or {}).get("message_id") == str(upscale.id)
    env.clean()


async def test_u2_picks_a_video_and_extend_low_extends_it(env: VideoEnv) -> None:
    upscale = await upscale_on(env, PROXY)
    grid = await press_video(env, upscale, ANIMATE_ROW[1], "Animate (Low motion)")
    assert faces(grid) == VIDEO_GRID
    before = len(env.proxy.requests)
    picked = await press_video(env, grid, "U2", "Image #2")
    sent = sent_actions(env.proxy, before)
    assert len(sent) == 1 and sent[0].startswith("MJ::JOB::video_virtual_upscale::2::"), sent
    assert len(mp4s(picked)) == 1 == len(picked.attachments), env.why()
    assert faces(picked) == [EXTEND_ROW], env.why()

    before = len(env.proxy.requests)
    extended = await press_video(env, picked, EXTEND_ROW[1], "Extend (Low motion)")
    sent = sent_actions(env.proxy, before)
    assert len(sent) == 1 and sent[0].startswith("MJ::JOB::animate_low_extend::1::"), sent
    assert task_of(env.proxy, sent[0]).result == "video_single"  # pressed on the picked video
    assert len(mp4s(extended)) == 4 and faces(extended) == VIDEO_GRID, env.why()
    env.clean()


async def test_show_of_a_video_job_whose_videos_were_swept_says_so(env: VideoEnv) -> None:
    upscale = await upscale_on(env, PROXY, 1)
    result = await press_video(env, upscale, ANIMATE_ROW[0], "Animate (High motion)")
    job_id = job_id_in(result)
    assert job_id and len(mp4s(result)) == 4, env.why()
    folder = env.tmp / "data" / "media" / job_id
    swept = [p for p in folder.iterdir() if p.suffix == ".mp4"]
    assert len(swept) == 4, sorted(folder.iterdir())
    for path in swept:  # what media retention does to an old job's files
        path.unlink()
    said = await show(env, job_id, result.channel_id)
    assert f"The videos of job `{job_id}` are no longer kept" in said, said
    assert not any("Shown again" in m.content for m in channel_posts(env, result.channel_id))
    env.clean()


async def test_a_video_over_the_upload_limit_is_linked_not_attached(env: VideoEnv) -> None:
    upscale = await upscale_on(env, PROXY, 3)
    env.fake.set_upload_limit(64 * 1024)  # under the fake's 96 KiB videos
    try:
        result = await press_video(env, upscale, ANIMATE_ROW[0], "Animate (High motion)")
    finally:
        env.fake.set_upload_limit(10 * 1024 * 1024)
    assert result.attachments == [], env.why()
    links = re.findall(r"<(http://[^>]+\.mp4[^>]*)>", result.content)
    assert len(links) == 4, result.content
    # The fake's shells are no film: they cannot be re-encoded, so each is linked.
    assert "Video 1 is over this channel's 64 KiB upload limit and cannot be read as a video" in (
        result.content
    ), result.content
    video_task = next(t for t in env.proxy.tasks.values() if t.video_urls and t.id in links[0])
    assert links == video_task.video_urls  # the provider's own links, in order
    assert faces(result) == VIDEO_GRID  # the buttons still work on it
    env.clean()


async def test_a_real_video_over_the_upload_limit_is_re_encoded_to_fit(env: VideoEnv) -> None:
    upscale = await upscale_on(env, PROXY, 4)
    film = real_mp4()
    limit = len(film) // 3
    env.proxy.video_data = film
    env.fake.set_upload_limit(limit)
    try:
        result = await press_video(env, upscale, ANIMATE_ROW[0], "Animate (High motion)")
    finally:
        env.fake.set_upload_limit(10 * 1024 * 1024)
        env.proxy.video_data = None
    videos = mp4s(result)
    assert len(videos) == 4, env.why()
    assert all(a.size <= limit and a.data[4:8] == b"ftyp" for a in videos)
    assert all(a.size < len(film) for a in videos)
    assert "Video 1 was re-encoded to fit this channel's" in result.content, result.content
    assert "the original is kept by Atelier" in result.content
    env.clean()


# ------------------------------------------------------------------ providers without video


async def test_the_sandbox_never_shows_video_buttons(env: VideoEnv) -> None:
    upscale = await upscale_on(env, SANDBOX)
    shown = [face for row in faces(upscale) for face in row]
    assert shown and not any("Animate" in f or "Extend" in f for f in shown), shown
    env.clean()


async def test_a_relay_that_refuses_video_says_so_and_hides_it(env: VideoEnv) -> None:
    upscale = await upscale_on(env, RELAY)
    assert faces(upscale)[-1] == ANIMATE_ROW  # passed through from its upstream
    before = len(env.relay.requests)
    failed = await press_video(env, upscale, ANIMATE_ROW[0], "Animate (High motion)")
    assert "**Failed**" in failed.content, failed.content
    assert "does not serve Midjourney's video buttons" in failed.content, failed.content
    assert len(sent_actions(env.relay, before)) == 1  # asked once, refused
    # Found out: the other video button is refused at once, with nothing sent.
    rec = await env.fake.click_button(upscale.id, custom_id_of(upscale, ANIMATE_ROW[1]))
    answer = await private_answer(env, rec)
    assert "Animate (Low motion) is not offered" in answer.content, answer.content
    assert len(sent_actions(env.relay, before)) == 1
    # Results made after that offer no video buttons.
    where = await channel(env, "video-relay-later")
    _, job_id, _ = await imagine(env, where, "a second lighthouse", provider=RELAY)
    later = await upscale_of(env, await result_of(env, job_id, where), 3)
    assert faces(later) == UPSCALE, env.why()
    env.clean()


async def private_answer(env: VideoEnv, rec: Any) -> FakeMessage:
    """What the presser alone was told (the interaction's response or a follow-up)."""

    def find() -> FakeMessage | None:
        # A press is deferred without a message (the pressed message is its "original").
        for message in (rec.original, *rec.followups):
            if message is not None and message.ephemeral and message.content:
                return message
        return None

    try:
        return await env.fake.wait_for(find, 20, what="a private answer")
    except TimeoutError:
        raise AssertionError(f"{rec!r}: {rec.original!r} {rec.followups!r}") from None
