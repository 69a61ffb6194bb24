"""Bounded resources: pixel caps before decoding, metadata stripped before images are
stored or forwarded, canvas caps, the media sweep, the free-space floor, and callback
pokes that respect backoff and a global rate."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from bot import media
from bot.config import parse_config
from bot.engine.events import EventBus
from bot.engine.models import Job, JobRequest
from bot.engine.runner import POKES_PER_SECOND, Runner
from bot.engine.service import Engine
from bot.engine.store import Store
from bot.media import MediaError
from bot.providers.base import Provider, TaskSnapshot
from bot.ui.attachments import read_images
from bot.ui.replies import UserError
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_engine import ScriptedProvider

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
