"""The optional image check: a flagged result is posted as a spoiler or withheld, as the
server chose, never in NSFW channels. The policy is tested with `RedAlert`, a real
detector of this test's own (a colour rule, deterministic); NudeNet itself only where
the nsfw extra is installed."""

from __future__ import annotations

import importlib.util
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from bot.config import ConfigError, parse_config
from bot.engine.models import EventKind, Job, JobUpdate
from bot.engine.settings import SettingsStore
from bot.engine.store import Store
from bot.ui.image_check import ImageCheck, NudeNetDetector
from bot.ui.outgoing import FileSpec
from tests.test_ui_presenter import (
    CHANNEL,
    RecordingSender,
    StubEngine,
    copy,
    finish,
    make_job,
    presenter_for,
    wait_until,
)

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

RED, BLUE = (220, 20, 20), (20, 40, 220)


def png(colour: tuple[int, int, int], size: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


class RedAlert:
    """Flags images that are mostly red: a deterministic detector for the policy."""

    name = "red-alert"

    def __init__(self) -> None:
        self.seen = 0

    def flags(self, data: bytes) -> bool:
        self.seen += 1
        r, g, b = ImageStat.Stat(Image.open(io.BytesIO(data)).convert("RGB")).mean
        return r > 150 and g < 80 and b < 80


class Broken:
    name = "broken"

    def flags(self, data: bytes) -> bool:
        raise RuntimeError("model failed")


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[SettingsStore]:
    store = Store(tmp_path / "a.db")
    await store.open()
    try:
        yield SettingsStore(store, time.time)
    finally:
        await store.close()


async def choose(settings: SettingsStore, mode: str, guild: str = "7") -> None:
    chosen = await settings.get(guild)
    assert chosen is not None
    chosen.image_check = mode
    await settings.save(chosen, by="admin")


FILES = [FileSpec("a_1.png", png(RED)), FileSpec("a_2.png", png(BLUE))]


def job() -> Job:
    return make_job("jjjjjjjjjj")


async def test_spoiler_covers_only_the_flagged_image(settings: SettingsStore) -> None:
    await choose(settings, "spoiler")
    check = ImageCheck(RedAlert(), settings, lambda channel: False)
    files, notes = await check.apply(job(), FILES, ["kept note"])
    assert [f.name for f in files] == ["SPOILER_a_1.png", "a_2.png"]
    assert files[0].data == FILES[0].data
    assert notes == ["kept note", "1 image(s) flagged by this server's image check: "
                     "marked as spoilers."]  # fmt: skip


async def test_withhold_leaves_the_flagged_image_out(settings: SettingsStore) -> None:
    await choose(settings, "withhold")
    files, notes = await ImageCheck(RedAlert(), settings, lambda c: False).apply(job(), FILES, [])
    assert [f.name for f in files] == ["a_2.png"]
    assert "withheld" in notes[0]


async def test_no_check_in_nsfw_channels_when_off_or_outside_a_server(
    settings: SettingsStore,
) -> None:
    detector = RedAlert()
    await choose(settings, "withhold")
    nsfw = ImageCheck(detector, settings, lambda channel: channel == CHANNEL)
    assert await nsfw.apply(job(), FILES, []) == (FILES, [])
    direct = make_job("dddddddddd", guild_id=None)
    assert await nsfw.apply(direct, FILES, []) == (FILES, [])
    await choose(settings, "off")
    assert await ImageCheck(detector, settings, lambda c: False).apply(job(), FILES, []) == (
        FILES, [],
    )  # fmt: skip
    assert detector.seen == 0


async def test_an_image_the_detector_cannot_read_counts_as_flagged(
    settings: SettingsStore,
) -> None:
    await choose(settings, "spoiler")
    files, _ = await ImageCheck(Broken(), settings, lambda c: False).apply(job(), FILES, [])
    assert all(f.name.startswith("SPOILER_") for f in files)


async def test_the_presenter_posts_a_flagged_result_as_a_spoiler(
    tmp_path: Path, settings: SettingsStore
) -> None:
    await choose(settings, "spoiler")
    engine, sender = StubEngine(tmp_path), RecordingSender()
    presenter = presenter_for(engine, sender)
    presenter.image_check = ImageCheck(RedAlert(), settings, lambda c: False)
    grid = make_job("ssssssssss", progress=0)
    engine.jobs[grid.id] = copy(grid)
    await presenter.announce(copy(grid), CHANNEL, limit=10 * 1024 * 1024)
    done = finish(engine, grid, tmp_path)
    (tmp_path / grid.id / "grid.png").write_bytes(png(RED, 256))
    presenter.on_update(JobUpdate(copy(done), EventKind.SUCCEEDED))
    await wait_until(lambda: any(w.message.files for w in sender.writes), 5)
    result = next(w for w in sender.writes if w.message.files)
    assert result.message.files is not None
    assert [f.name[:8] for f in result.message.files] == ["SPOILER_"]
    assert "flagged by this server's image check" in result.message.content + str(
        result.message.embeds
    )
    await presenter.close(1)


async def test_where_images_are_checked_progress_shows_no_preview(
    tmp_path: Path, settings: SettingsStore
) -> None:
    """A preview is never checked, so where the server checks images none is shown:
    neither one Discord would fetch by URL nor one Atelier would attach. The progress
    line still moves; in an NSFW channel (not checked) the preview comes as usual."""
    await choose(settings, "withhold")
    engine, sender = StubEngine(tmp_path), RecordingSender()
    presenter = presenter_for(engine, sender)
    nsfw: set[int] = set()
    presenter.image_check = ImageCheck(RedAlert(), settings, lambda c: c in nsfw)

    async def progress(job_id: str, url: str) -> Any:
        job = make_job(job_id, progress=5)
        engine.jobs[job.id] = copy(job)
        await presenter.announce(copy(job), CHANNEL, limit=10 * 1024 * 1024)
        job.progress, job.preview_url = 40.0, url
        presenter.on_update(JobUpdate(copy(job), EventKind.PROGRESS))
        await wait_until(lambda: any("40%" in w.message.content for w in edits(job_id)), 5)
        return next(w for w in edits(job_id) if "40%" in w.message.content).message

    def edits(job_id: str) -> list[Any]:
        return [w for w in sender.writes if w.kind == "edit" and job_id in w.message.content]

    for n, url in enumerate(("https://cdn.example/preview.webp", "sandbox://preview")):
        shown = await progress(f"pppppppp{n}a", url)
        assert not shown.files and not shown.embeds, shown
    nsfw.add(CHANNEL)
    shown = await progress("ppppppppnn", "https://cdn.example/preview.webp")
    assert shown.embeds, shown  # not checked there: shown by URL as usual
    await presenter.close(1)


def test_the_config_names_the_extra_a_detector_needs() -> None:
    base = {"providers": [{"name": "sandbox", "kind": "sandbox"}]}
    assert parse_config(base).moderation.image_check == "off"
    wanted = {**base, "moderation": {"image_check": "nudenet"}}
    if importlib.util.find_spec("nudenet") is None:
        with pytest.raises(ConfigError, match=r"pip install -e '\.\[nsfw\]'"):
            parse_config(wanted)
    else:
        assert parse_config(wanted).moderation.image_check == "nudenet"
    with pytest.raises(ConfigError, match="image_check"):
        parse_config({**base, "moderation": {"image_check": "guess"}})


def test_nudenet_ships_its_model_and_passes_a_plain_image() -> None:
    nudenet = pytest.importorskip("nudenet")
    assert (Path(nudenet.__file__).parent / "320n.onnx").stat().st_size > 1_000_000
    assert NudeNetDetector().flags(png(BLUE, 320)) is False
