"""Bounded resources: pixel caps before decoding, metadata stripped before images are
stored or forwarded, canvas caps, the media sweep, the free-space floor, and callback
pokes that respect backoff and a global rate."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from PIL import ExifTags, Image

from bot import media, media_pool
from bot.config import parse_config
from bot.engine.events import EventBus
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.runner import POKES_PER_SECOND, Runner
from bot.engine.service import Engine, RequestError
from bot.engine.store import Store
from bot.media import MediaError
from bot.providers.base import Provider, TaskSnapshot
from bot.ui.attachments import read_images
from bot.ui.replies import UserError
from bot.vocab import Action
from tests.discord_helpers import BotProcess, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeFile
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_engine import ScriptedProvider, make_engine, wait_done

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

GPS_LATITUDE = 2  # GPSLatitude in the GPS IFD


def gps_jpeg(size: tuple[int, int] = (40, 20)) -> bytes:
    """A JPEG with camera EXIF, a GPS position and a quarter-turn orientation tag."""
    image = Image.new("RGB", size, (200, 10, 10))
    image.paste((0, 0, 255), (0, 0, 10, 10))  # a blue corner shows where "top-left" went
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "PhoneMaker"
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (52.0, 22.0, 0.0), 3: "E", 4: (4.0, 53.0, 0.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), quality=95)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (its data is one short row)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def has_no_metadata(data: bytes) -> bool:
    image = Image.open(io.BytesIO(data))
    return (
        len(image.getexif()) == 0
        and not image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
        and b"Exif" not in data
        and b"PhoneMaker" not in data
    )


class FakeAttachment:
    """What read_images uses of a discord.Attachment."""

    def __init__(self, filename: str, data: bytes) -> None:
        self.filename = filename
        self.size = len(data)
        self._data = data

    async def read(self) -> bytes:
        return self._data


# --------------------------------------------------------------------------- pixels


def test_a_pixel_bomb_is_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = png_bomb(30_000, 30_000)  # 900 Mpx claimed in under 100 bytes
    assert len(bomb) < 100
    decoded: list[object] = []
    real_load = Image.Image.load

    def spy(image: Image.Image) -> object:
        decoded.append(image)
        return real_load(image)

    monkeypatch.setattr(Image.Image, "load", spy)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", spy)
    with pytest.raises(MediaError, match=r"at most 67 megapixels, 8192x8192"):
        media.strip_metadata(bomb, 8192 * 8192)
    with pytest.raises(MediaError, match=r"5000x5000.*at most 4 megapixels, 2000x2000"):
        media.strip_metadata(png_bomb(5_000, 5_000), 2_000 * 2_000)
    assert decoded == []


async def test_an_attachment_over_the_pixel_cap_is_refused_naming_the_file_and_limit() -> None:
    bomb = FakeAttachment("huge.png", png_bomb(9_000, 9_000))
    with pytest.raises(UserError, match=r"huge\.png.*9000x9000.*at most 25 megapixels"):
        await read_images([bomb], 1024 * 1024, max_pixels=5_000 * 5_000)  # type: ignore[list-item]


# --------------------------------------------------------------------------- metadata


def test_exif_and_gps_are_stripped_and_the_orientation_applied() -> None:
    source = gps_jpeg()
    before = Image.open(io.BytesIO(source))
    assert before.getexif().get_ifd(ExifTags.IFD.GPSInfo)[GPS_LATITUDE] == (52.0, 22.0, 0.0)
    clean = media.strip_metadata(source)
    assert has_no_metadata(clean.data)
    after = Image.open(io.BytesIO(clean.data))
    assert after.size == (20, 40) == (clean.width, clean.height)  # turned upright
    # The blue corner was top-left as stored; shown upright it is top-right.
    red, _green, blue = after.convert("RGB").getpixel((17, 2))  # type: ignore[misc]
    assert blue > 200 and red < 60


def test_png_text_chunks_go_and_clean_images_are_untouched() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "my private prompt")
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG", pnginfo=info)
    assert b"private" not in media.strip_metadata(out.getvalue()).data
    plain = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(plain, "JPEG")
    assert media.strip_metadata(plain.getvalue()).data is plain.getvalue() or (
        media.strip_metadata(plain.getvalue()).data == plain.getvalue()
    )


async def test_the_provider_receives_attachments_without_exif(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [fake.provider_config(poll_interval=60)],
            }
        )
        images = await read_images([FakeAttachment("me.jpg", gps_jpeg())], 1024 * 1024)  # type: ignore[list-item]
        async with Engine(config) as engine:
            job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat", images=images))
            sent = fake.bodies("/submit/imagine")[0]["base64Array"]
            assert len(sent) == 1
            forwarded = base64.b64decode(sent[0].split(",", 1)[1])
            assert has_no_metadata(forwarded)
            stored = (tmp_path / "m" / job.inputs[0]).read_bytes()
            assert has_no_metadata(stored)


# --------------------------------------------------------------------------- canvases


def test_compose_grid_of_huge_images_stays_under_the_canvas_cap() -> None:
    out = io.BytesIO()
    Image.new("RGB", (3000, 2000), "blue").save(out, "PNG")
    big = out.getvalue()
    grid = Image.open(io.BytesIO(media.compose_grid([big] * 4, gap=8, max_pixels=2_000_000)))
    assert grid.width * grid.height <= 2_000_000
    assert abs(grid.width / grid.height - 1.5) < 0.02  # the shape is kept


def test_a_canvas_over_the_cap_is_a_clear_error_not_a_memory_error() -> None:
    with pytest.raises(MediaError, match=r"100000x100000 pixels is larger than Atelier makes"):
        media.region_mask((100_000, 100_000), [(0.1, 0.1, 0.5, 0.5)])


# --------------------------------------------------------------------------- pokes


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_collect(provider: Provider, job: Job, snapshot: TaskSnapshot) -> None:
    return None


def _runner(tmp_path: Path, clock: _Clock) -> Runner:
    idle = ScriptedProvider("idle")
    idle.poll_interval = 30.0
    store = Store(tmp_path / "a.db")
    return Runner(store, {"idle": idle}, EventBus(), _no_collect, clock=clock)


async def test_a_poke_never_polls_a_job_sooner_than_its_backoff(tmp_path: Path) -> None:
    clock = _Clock()
    runner = _runner(tmp_path, clock)
    job = Job(id="job1", action=Action.IMAGINE, provider="idle", task_id="t1")
    runner.track(job)
    assert runner.poke("job1")
    assert runner._due["job1"] == clock.now  # a healthy job is polled at once
    job.poll_errors = 3  # backing off after errors
    runner._due["job1"] = clock.now + 90
    clock.now += 5
    assert runner.poke("job1")
    assert runner._due["job1"] == 1090  # untouched: the backoff decides


async def test_pokes_are_rate_limited_across_jobs(tmp_path: Path) -> None:
    clock = _Clock()
    runner = _runner(tmp_path, clock)
    count = POKES_PER_SECOND * 2
    for n in range(count):
        runner.track(Job(id=f"job{n}", action=Action.IMAGINE, provider="idle", task_id=f"t{n}"))
    for n in range(count):
        assert runner.poke(f"job{n}")
    brought_forward = [n for n in range(count) if runner._due[f"job{n}"] <= clock.now]
    assert len(brought_forward) == POKES_PER_SECOND
    clock.now += 1.01  # a second later there is room again
    assert runner.poke(f"job{count - 1}")
    assert runner._due[f"job{count - 1}"] <= clock.now


# --------------------------------------------------------------------------- retention

DAY = 86400.0


async def _age(engine: Engine, job_id: str, days: float) -> None:
    """Make a stored job look last changed `days` ago."""
    await engine.store.db.execute(
        "UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time() - days * DAY, job_id)
    )
    await engine.store.db.commit()


async def _stored(engine: Engine, job_id: str, status: JobStatus, **fields: Any) -> Path:
    """A job in the store with one image in its media folder."""
    job = Job(id=job_id, action=Action.IMAGINE, provider="scripted", status=status, **fields)
    await engine.store.save(job)
    folder = Path(engine.config.storage.media_dir) / job_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1.png").write_bytes(b"\x89PNG" + b"\x00" * 4096)
    return folder


async def test_the_sweep_removes_old_media_and_keeps_recent_and_running(tmp_path: Path) -> None:
    engine = make_engine(tmp_path, ScriptedProvider())
    await engine.start(run=False)
    try:
        old = await _stored(engine, "aaaaaaaaaa", JobStatus.SUCCEEDED)
        recent = await _stored(engine, "bbbbbbbbbb", JobStatus.SUCCEEDED)
        running = await _stored(engine, "cccccccccc", JobStatus.RUNNING)
        parent = await _stored(engine, "dddddddddd", JobStatus.SUCCEEDED)
        used = await _stored(engine, "eeeeeeeeee", JobStatus.SUCCEEDED)
        await _stored(engine, "ffffffffff", JobStatus.SUBMITTED, parent_id="dddddddddd")
        await _stored(engine, "gggggggggg", JobStatus.SUCCEEDED, parent_id="eeeeeeeeee")
        for job_id in ("aaaaaaaaaa", "cccccccccc", "dddddddddd", "eeeeeeeeee"):
            await _age(engine, job_id, 40)
        assert await engine.retention.sweep() == ["aaaaaaaaaa"]
        assert [p.name for p in old.iterdir()] == ["swept.json"]
        for kept in (recent, running, parent, used):  # parent: a running job reads it
            assert (kept / "1.png").exists()  # used: a button was pressed on it lately
        assert await engine.retention.sweep() == []  # swept once only
        # Over the size cap, the least recently used finished job goes first, and
        # nothing used in the last hour goes at all.
        engine.retention.retention_days = 0
        engine.retention.max_total_bytes = 3 * 4100
        await _age(engine, "bbbbbbbbbb", 2)
        await _age(engine, "gggggggggg", 1)
        swept = await engine.retention.sweep()  # e was last used through g: a tie
        assert swept[0] == "bbbbbbbbbb" and sorted(swept[1:]) == ["eeeeeeeeee", "gggggggggg"]
        assert (running / "1.png").exists() and (parent / "1.png").exists()
    finally:
        await engine.stop()


async def test_a_button_on_a_swept_job_answers_clearly_and_sends_nothing(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider)
    await engine.start()
    try:
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        done = await wait_done(engine, job.id)
        assert done.status is JobStatus.SUCCEEDED and done.images
        await _age(engine, job.id, 31)
        assert await engine.retention.sweep() == [job.id]
        sent = len(provider.submitted)
        with pytest.raises(RequestError, match=r"were removed after 30 days") as refused:
            await engine.submit(JobRequest(Action.UPSCALE, parent_id=job.id, index=1))
        assert refused.value.reason == "media gone"
        assert len(provider.submitted) == sent
    finally:
        await engine.stop()


async def test_below_the_free_space_floor_new_jobs_are_refused_and_nothing_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    free = {"bytes": 100 * 1024 * 1024}

    def disk_usage(path: object) -> shutil._ntuple_diskusage:
        return shutil._ntuple_diskusage(10**12, 10**12 - free["bytes"], free["bytes"])

    monkeypatch.setattr("bot.engine.retention.shutil.disk_usage", disk_usage)
    provider = ScriptedProvider()
    engine = make_engine(tmp_path, provider, min_free_mib=500)
    await engine.start()
    try:
        with pytest.raises(RequestError, match=r"disk is almost full \(100 MiB free") as refused:
            await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        assert refused.value.reason == "disk"
        assert provider.submitted == []
        assert await engine.recent() == []  # nothing stored either
        free["bytes"] = 10 * 1024**3
        monkeypatch.setattr("bot.engine.retention.FREE_SPACE_CACHE", 0.0)
        job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a cat"))
        assert len(provider.submitted) == 1 and job.id
    finally:
        await engine.stop()


# --------------------------------------------------------------------------- the pool


async def test_uploads_filling_the_shared_workers_do_not_hold_up_result_saving() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def slow_upload() -> None:
        started.release()
        release.wait(10)

    blockers = [
        asyncio.ensure_future(media.run_image_work(media.Lane.SHARED, slow_upload))
        for _ in range(media_pool.SHARED_WORKERS + 3)  # more than the lane has workers
    ]
    try:
        for _ in range(media_pool.SHARED_WORKERS):
            assert await asyncio.to_thread(started.acquire, True, 5)
        assert not started.acquire(timeout=0.2)  # the rest wait: the lane is bounded
        out = io.BytesIO()
        Image.new("RGB", (32, 32), "red").save(out, "PNG")
        async with asyncio.timeout(5):  # the reserved worker is free
            info = await media.a_inspect_image(out.getvalue(), lane=media.Lane.RESULTS)
        assert info.width == 32
    finally:
        release.set()
        await asyncio.gather(*blockers)


# --------------------------------------------------------------------------- on Discord


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def discord_env(
    tmp_path_factory: pytest.TempPathFactory, store_kind: str
) -> AsyncIterator[DiscordEnv]:
    tmp = tmp_path_factory.mktemp("bounded-e2e")
    fake = FakeDiscord()
    await fake.start()
    config = write_config(tmp / "config.toml", fake, tmp / "data")
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield DiscordEnv(fake, tmp / "data" / "media")
    finally:
        await bot.stop()
        await fake.stop()


@dataclass
class DiscordEnv:
    fake: FakeDiscord
    media_dir: Path


@pytest.mark.asyncio(loop_scope="module")
async def test_on_discord_a_bomb_is_refused_and_a_photo_is_stored_without_gps(
    discord_env: DiscordEnv,
) -> None:
    fake = discord_env.fake
    where = await fake.add_channel("uploads")
    bomb = await fake.send_slash_command(
        "describe",
        attachments={"image": FakeFile("bomb.png", png_bomb(9_000, 9_000))},
        channel_id=where,
    )
    refusal = await bomb.wait_response(20)
    assert "bomb.png" in refusal.content and "9000x9000" in refusal.content
    assert "at most 67 megapixels, 8192x8192" in refusal.content
    assert re.search(r"`[0-9a-z]{10}`", refusal.content) is None  # no job
    photo = await fake.send_slash_command(
        "describe",
        attachments={"image": FakeFile("me.jpg", gps_jpeg())},
        channel_id=where,
    )
    reply = await photo.wait_response(20)
    match = re.search(r"`([0-9a-z]{10})`", reply.content)
    assert match, reply.content
    stored = discord_env.media_dir / match.group(1) / "input-1.jpg"
    await fake.wait_for(stored.exists, 10, what="the stored input")
    assert has_no_metadata(stored.read_bytes())
