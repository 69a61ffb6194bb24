"""The sandbox provider: real pictures, progress from the clock, state on disk."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageStat

from bot import media
from bot.config import SandboxConfig
from bot.providers.base import (
    BadResponse,
    Feature,
    FollowUp,
    How,
    ImageInput,
    ImageTooLarge,
    PromptRejected,
    SubmitRequest,
    TaskNotFound,
    TaskSnapshot,
    TaskState,
    task_refs,
)
from bot.providers.sandbox import ACCEPTED_PARAMS, SandboxProvider
from bot.vocab import VIDEO_ACTIONS, Action

DURATION = 10.0
START = 1_750_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(
    state_dir: Path, clock: Clock, *, size: int = 512, duration: float = DURATION, **extra: Any
) -> SandboxProvider:
    config = SandboxConfig(
        name="sandbox",
        kind="sandbox",
        duration=duration,
        size=size,
        state_dir=str(state_dir),
        **extra,
    )
    return SandboxProvider(config, None, clock=clock)


@pytest.fixture
def sandbox(tmp_path: Path, clock: Clock) -> SandboxProvider:
    return make(tmp_path, clock)


def imagine(prompt: str, **params: str) -> SubmitRequest:
    words = prompt.split(" --")[0]
    return SubmitRequest(Action.IMAGINE, prompt=prompt, text=words, params=params)


async def run(provider: SandboxProvider, clock: Clock, request: SubmitRequest) -> TaskSnapshot:
    """Submit, let the clock run past the job's duration, and fetch the result."""
    task_id = (await provider.submit(request)).task_id
    clock.now += DURATION + 1
    snap = (await provider.fetch(task_refs([task_id])))[task_id]
    assert snap.state is TaskState.SUCCEEDED, snap
    return snap


def follow(parent: TaskSnapshot, action: Action, **fields: Any) -> SubmitRequest:
    return SubmitRequest(action, parent_task_id=parent.task_id, **fields)


async def picture(provider: SandboxProvider, snap: TaskSnapshot) -> Image.Image:
    assert len(snap.image_urls) == 1
    data = await provider.download(snap.image_urls[0], 50 * 1024 * 1024)
    assert media.sniff_mime(data) == "image/png"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def cells(grid: Image.Image) -> list[Image.Image]:
    return [Image.open(io.BytesIO(c)) for c in media.split_grid(_png(grid))]


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute pixel difference, 0-255."""
    if a.size != b.size:
        b = b.resize(a.size)
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def upload(image: Image.Image) -> ImageInput:
    return ImageInput(_png(image))


# --------------------------------------------------------------------------- declarations


def test_declares_every_action_natively_and_its_features(sandbox: SandboxProvider) -> None:
    for action in Action:
        support = sandbox.supports(action)
        if action in VIDEO_ACTIONS:  # it draws pictures: no video, hidden, never faked
            assert support is None, action
            continue
        assert support is not None and support.how is How.NATIVE
    assert sandbox.kind == "sandbox"
    assert {
        Feature.CANCEL,
        Feature.PROGRESS,
        Feature.PREVIEW,
        Feature.BATCH_FETCH,
        Feature.IMAGE_SEED,
    } <= sandbox.features
    assert sandbox.batch_size >= 100
    assert {
        "aspect",
        "seed",
        "chaos",
        "stylize",
        "no",
        "zoom",
        "niji",
        "sref",
        "cref",
        "weird",
        "tile",
        "raw",
        "iw",
    } <= ACCEPTED_PARAMS
    assert sandbox.accepted_params == ACCEPTED_PARAMS


async def test_check_is_healthy_and_says_where_state_lives(
    sandbox: SandboxProvider, tmp_path: Path
) -> None:
    result = await sandbox.check()
    assert result.ok
    assert str(tmp_path.resolve()) in result.detail


# --------------------------------------------------------------------------- imagine


async def test_imagine_gives_a_grid_in_the_requested_aspect(tmp_path: Path, clock: Clock) -> None:
    provider = make(tmp_path, clock, size=1024)
    snap = await run(provider, clock, imagine("a lighthouse at dusk --ar 3:2", aspect="3:2"))
    assert snap.grid is True
    assert snap.seed and snap.seed.isdigit()
    grid = await picture(provider, snap)
    assert grid.width == 1024
    assert grid.width / grid.height == pytest.approx(1.5, abs=0.01)
    assert (snap.extra["width"], snap.extra["height"]) == grid.size
    four = cells(grid)
    assert {c.size for c in four} == {(512, 341)}
    # Four distinct pictures, not one repeated.
    for i in range(4):
        for j in range(i + 1, 4):
            assert difference(four[i], four[j]) > 5
    assert snap.followups == [
        *(FollowUp(Action.UPSCALE, n) for n in range(1, 5)),
        *(FollowUp(Action.VARIATION, n) for n in range(1, 5)),
        FollowUp(Action.REROLL),
    ]


async def test_same_prompt_and_seed_give_identical_bytes_across_instances(
    tmp_path: Path, clock: Clock
) -> None:
    one = make(tmp_path / "one", clock)
    two = make(tmp_path / "two", clock)
    request = imagine("a red fox in snow --seed 42", seed="42")
    a = await run(one, clock, request)
    b = await run(two, clock, request)
    assert a.seed == b.seed == "42"
    first = await one.download(a.image_urls[0], 10**8)
    assert first == await two.download(b.image_urls[0], 10**8)
    # Without --seed the seed comes from the words: still deterministic.
    c = await run(one, clock, imagine("a red fox in snow"))
    d = await run(two, clock, imagine("a red fox in snow"))
    assert c.seed == d.seed
    assert await one.download(c.image_urls[0], 10**8) == await two.download(d.image_urls[0], 10**8)


async def test_different_prompts_or_seeds_give_different_pictures(
    sandbox: SandboxProvider, clock: Clock
) -> None:
    fox = await picture(sandbox, await run(sandbox, clock, imagine("a red fox in snow")))
    sea = await picture(sandbox, await run(sandbox, clock, imagine("a blue ocean at night")))
    reseeded = await picture(
        sandbox, await run(sandbox, clock, imagine("a red fox in snow --seed 7", seed="7"))
    )
    assert difference(fox, sea) > 10
    assert difference(fox, reseeded) > 10
    # Colour words steer the palette.
    red, _, blue = ImageStat.Stat(fox.convert("RGB")).mean
    red2, _, blue2 = ImageStat.Stat(sea.convert("RGB")).mean
    assert red - blue > red2 - blue2


async def test_bad_parameters_are_refused(sandbox: SandboxProvider) -> None:
    with pytest.raises(PromptRejected, match="--ar"):
        await sandbox.submit(imagine("x --ar 9:1", aspect="9:1"))
    with pytest.raises(PromptRejected, match="--ar"):
        await sandbox.submit(imagine("x --ar wide", aspect="wide"))
    with pytest.raises(PromptRejected, match="--seed"):
        await sandbox.submit(imagine("x --seed -3", seed="-3"))


# --------------------------------------------------------------------------- progress


async def test_progress_moves_with_the_clock(sandbox: SandboxProvider, clock: Clock) -> None:
    result = await sandbox.submit(imagine("a slow painting"))
    assert result.snapshot is not None and result.snapshot.state is TaskState.QUEUED
    task_id = result.task_id

    async def at(seconds: float) -> TaskSnapshot:
        clock.now = START + seconds
        return (await sandbox.fetch(task_refs([task_id])))[task_id]

    assert (await at(0.5)).state is TaskState.QUEUED
    early, late = await at(2), await at(8)
    assert early.state is late.state is TaskState.RUNNING
    assert early.progress is not None and late.progress is not None
    assert 0 <= early.progress < late.progress < 100
    assert early.preview_url and late.preview_url and early.preview_url != late.preview_url
    assert not early.image_urls

    preview = await sandbox.download(late.preview_url, 10**8)
    small = Image.open(io.BytesIO(preview))
    assert small.size == (512, 512)  # previews are at most 512 px

    done = await at(DURATION)
    assert done.state is TaskState.SUCCEEDED and done.progress == 100
    assert done.preview_url is None and done.image_urls
    # The preview is a blurred version of the result.
    final = await picture(sandbox, done)
    blurred_diff = difference(final.resize(small.size), small)
    assert 0 < blurred_diff < 40


async def test_progress_with_the_real_clock(tmp_path: Path) -> None:
    config = SandboxConfig(
        name="s", kind="sandbox", duration=0.4, size=128, state_dir=str(tmp_path)
    )
    provider = SandboxProvider(config, None)
    assert provider.poll_interval <= 0.1
    task_id = (await provider.submit(imagine("quick"))).task_id
    await asyncio.sleep(0.5)
    assert (await provider.fetch(task_refs([task_id])))[task_id].state is TaskState.SUCCEEDED


# --------------------------------------------------------------------------- state on disk


async def test_state_survives_a_new_instance(tmp_path: Path, clock: Clock) -> None:
    first = make(tmp_path, clock)
    grid_task = await run(first, clock, imagine("a castle in fog --ar 2:3", aspect="2:3"))
    grid_bytes = await first.download(grid_task.image_urls[0], 10**8)
    running = (await first.submit(imagine("still running"))).task_id
    clock.now += 3
    before = (await first.fetch(task_refs([running])))[running]
    del first

    second = make(tmp_path, clock)  # a new process, in effect: nothing in memory
    again = await second.fetch(task_refs([grid_task.task_id, running]))
    assert again[grid_task.task_id] == grid_task
    assert again[running].state is TaskState.RUNNING
    assert again[running].progress == before.progress
    assert await second.download(grid_task.image_urls[0], 10**8) == grid_bytes
    # Follow-ups read their parent from disk.
    upscale = await run(second, clock, follow(grid_task, Action.UPSCALE, index=2))
    assert (await picture(second, upscale)).size == (341, 512)
    clock.now += DURATION
    assert (await second.fetch(task_refs([running])))[running].state is TaskState.SUCCEEDED
    files = sorted(p.name for p in (tmp_path / "tasks").iterdir())
    assert all(name.endswith(".json") for name in files)  # no temporary files left


async def test_fetch_many_reads_each_file_once(tmp_path: Path, clock: Clock) -> None:
    writer = make(tmp_path, clock)
    ids = [(await writer.submit(imagine(f"job {n}"))).task_id for n in range(100)]
    reader = make(tmp_path, clock)
    first = await reader.fetch(task_refs(ids))
    assert len(first) == 100
    for path in (tmp_path / "tasks").iterdir():
        path.unlink()
    # Specs are kept in memory after the first read; the clock gives the progress.
    clock.now += DURATION
    again = await reader.fetch(task_refs(ids))
    assert len(again) == 100
    assert {s.state for s in again.values()} == {TaskState.SUCCEEDED}


async def test_unknown_and_malformed_ids_are_absent(sandbox: SandboxProvider) -> None:
    assert await sandbox.fetch(task_refs(["1234567890123456", "../../etc/passwd", "", "abc"])) == {}
    with pytest.raises(TaskNotFound):
        await sandbox.cancel("1234567890123456")
    with pytest.raises(TaskNotFound):
        await sandbox.submit(
            SubmitRequest(Action.UPSCALE, parent_task_id="1234567890123456", index=1)
        )
    with pytest.raises(TaskNotFound):
        await sandbox.download("sandbox://1234567890123456/1", 10**8)
    with pytest.raises(BadResponse):
        await sandbox.download("https://example.com/a.png", 10**8)


# --------------------------------------------------------------------------- refusals


async def test_banned_words_fail_like_a_banned_prompt(tmp_path: Path, clock: Clock) -> None:
    provider = make(tmp_path, clock, banned_words=["forbidden", "dark magic"])
    with pytest.raises(PromptRejected, match='"forbidden"') as caught:
        await provider.submit(imagine("a Forbidden garden"))
    assert caught.value.provider == "sandbox"
    with pytest.raises(PromptRejected, match="dark magic"):
        await provider.submit(imagine("the DARK  MAGIC tower".replace("  ", " ")))
    # Whole words only: "unforbiddenly" is another word.
    await provider.submit(imagine("an unforbiddenly sunny day"))


async def test_cancel(sandbox: SandboxProvider, clock: Clock, tmp_path: Path) -> None:
    task_id = (await sandbox.submit(imagine("to be cancelled"))).task_id
    clock.now += 3
    await sandbox.cancel(task_id)
    snap = (await sandbox.fetch(task_refs([task_id])))[task_id]
    assert snap.state is TaskState.CANCELLED and not snap.image_urls
    clock.now += DURATION
    assert (await sandbox.fetch(task_refs([task_id])))[task_id].state is TaskState.CANCELLED
    assert (await make(tmp_path, clock).fetch(task_refs([task_id])))[
        task_id
    ].state is TaskState.CANCELLED
    # Too late to cancel a finished job: it stays finished.
    done = await run(sandbox, clock, imagine("already done"))
    await sandbox.cancel(done.task_id)
    assert (await sandbox.fetch(task_refs([done.task_id])))[
        done.task_id
    ].state is TaskState.SUCCEEDED


async def test_follow_ups_need_a_finished_grid(sandbox: SandboxProvider, clock: Clock) -> None:
    running = await sandbox.submit(imagine("not yet"))
    with pytest.raises(PromptRejected, match="not finished"):
        await sandbox.submit(SubmitRequest(Action.UPSCALE, parent_task_id=running.task_id, index=1))
    grid = await run(sandbox, clock, imagine("a grid"))
    with pytest.raises(PromptRejected, match="1-4"):
        await sandbox.submit(follow(grid, Action.UPSCALE, index=5))
    single = await run(sandbox, clock, follow(grid, Action.UPSCALE, index=1))
    with pytest.raises(PromptRejected, match="grid"):
        await sandbox.submit(follow(single, Action.VARIATION, index=1))
    with pytest.raises(PromptRejected, match="zoom"):
        await sandbox.submit(follow(single, Action.ZOOM, variant="custom", params={"zoom": "3"}))
    with pytest.raises(PromptRejected, match="area"):
        await sandbox.submit(follow(single, Action.INPAINT, regions=[]))


async def test_download_respects_the_byte_cap(sandbox: SandboxProvider, clock: Clock) -> None:
    snap = await run(sandbox, clock, imagine("a big one"))
    with pytest.raises(ImageTooLarge):
        await sandbox.download(snap.image_urls[0], 1000)


# --------------------------------------------------------------------------- every action


async def test_grid_follow_ups(sandbox: SandboxProvider, clock: Clock) -> None:
    grid_snap = await run(sandbox, clock, imagine("autumn forest --ar 3:2", aspect="3:2"))
    grid = await picture(sandbox, grid_snap)
    parent_cells = cells(grid)

    upscale = await run(sandbox, clock, follow(grid_snap, Action.UPSCALE, index=3))
    big = await picture(sandbox, upscale)
    assert upscale.grid is False
    assert big.size == (512, 341)  # the cell, re-rendered at full size
    assert difference(big.resize(parent_cells[2].size), parent_cells[2]) < 6
    assert difference(big.resize(parent_cells[0].size), parent_cells[0]) > 10
    assert upscale.followups == [
        FollowUp(Action.UPSCALE_SUBTLE),
        FollowUp(Action.UPSCALE_CREATIVE),
        FollowUp(Action.VARY_SUBTLE),
        FollowUp(Action.VARY_STRONG),
        FollowUp(Action.ZOOM, variant="2"),
        FollowUp(Action.ZOOM, variant="1.5"),
        FollowUp(Action.ZOOM, variant="custom"),
        FollowUp(Action.PAN, variant="left"),
        FollowUp(Action.PAN, variant="right"),
        FollowUp(Action.PAN, variant="up"),
        FollowUp(Action.PAN, variant="down"),
        FollowUp(Action.INPAINT),
        FollowUp(Action.MAKE_SQUARE),  # a 3:2 image
    ]

    variation = await run(sandbox, clock, follow(grid_snap, Action.VARIATION, index=2))
    varied = cells(await picture(sandbox, variation))
    assert variation.grid and len(varied) == 4
    # Variations of cell 2: closer to it than to another cell, yet not copies of it.
    for cell in varied:
        assert 0.5 < difference(cell, parent_cells[1]) < difference(cell, parent_cells[3])

    reroll = await run(sandbox, clock, follow(grid_snap, Action.REROLL))
    assert reroll.grid and reroll.seed != grid_snap.seed
    rerolled = await picture(sandbox, reroll)
    assert rerolled.size == grid.size and difference(rerolled, grid) > 10
    # A reroll of a reroll works as well.
    assert (await run(sandbox, clock, follow(reroll, Action.REROLL))).grid


async def test_upscale_follow_ups(sandbox: SandboxProvider, clock: Clock) -> None:
    grid_snap = await run(sandbox, clock, imagine("desert dunes --ar 3:2", aspect="3:2"))
    upscale = await run(sandbox, clock, follow(grid_snap, Action.UPSCALE, index=1))
    base = await picture(sandbox, upscale)
    assert base.size == (512, 341)

    subtle = await run(sandbox, clock, follow(upscale, Action.UPSCALE_SUBTLE))
    creative = await run(sandbox, clock, follow(upscale, Action.UPSCALE_CREATIVE))
    subtle_image, creative_image = await picture(sandbox, subtle), await picture(sandbox, creative)
    assert subtle_image.size == creative_image.size == (1024, 683)
    assert difference(subtle_image.resize(base.size), base) < 4
    assert difference(creative_image, subtle_image) > difference(
        subtle_image.resize(base.size), base
    )
    assert FollowUp(Action.UPSCALE_SUBTLE) not in subtle.followups
    assert FollowUp(Action.VARY_STRONG) in subtle.followups

    for action in (Action.VARY_SUBTLE, Action.VARY_STRONG):
        snap = await run(sandbox, clock, follow(upscale, action))
        grid = await picture(sandbox, snap)
        assert snap.grid and grid.size == (512, 342)  # cells of 256x171, 3:2
    subtle_grid = cells(
        await picture(sandbox, await run(sandbox, clock, follow(upscale, Action.VARY_SUBTLE)))
    )
    strong_grid = cells(
        await picture(sandbox, await run(sandbox, clock, follow(upscale, Action.VARY_STRONG)))
    )
    small_base = base.resize(subtle_grid[0].size)
    assert sum(difference(c, small_base) for c in subtle_grid) < sum(
        difference(c, small_base) for c in strong_grid
    )


async def test_zoom_and_pan(sandbox: SandboxProvider, clock: Clock) -> None:
    grid_snap = await run(sandbox, clock, imagine("green valley --ar 3:2", aspect="3:2"))
    upscale = await run(sandbox, clock, follow(grid_snap, Action.UPSCALE, index=1))
    base = await picture(sandbox, upscale)

    zoom2 = await run(sandbox, clock, follow(upscale, Action.ZOOM, variant="2"))
    zoomed = cells(await picture(sandbox, zoom2))
    assert zoom2.grid and zoomed[0].size == (256, 171)
    # The old picture sits in the middle at half size; the border is new.
    # (inner 128x86 at (64, 42); a margin of 8 px skips its soft edge)
    middle = zoomed[0].crop((64 + 8, 42 + 8, 192 - 8, 128 - 8))
    inner = base.resize((128, 86)).crop((8, 8, 120, 78))
    assert difference(middle, inner) < 12
    assert difference(zoomed[0], zoomed[1]) > 3  # each cell draws its own surroundings

    zoom15 = await run(sandbox, clock, follow(upscale, Action.ZOOM, variant="1.5"))
    assert (await picture(sandbox, zoom15)).size == (512, 342)
    custom = await run(
        sandbox,
        clock,
        follow(upscale, Action.ZOOM, variant="custom", params={"zoom": "1.2", "aspect": "1:1"}),
    )
    assert (await picture(sandbox, custom)).size == (512, 512)  # Custom Zoom may reshape

    left = cells(
        await picture(
            sandbox, await run(sandbox, clock, follow(upscale, Action.PAN, variant="left"))
        )
    )
    assert left[0].width / left[0].height == pytest.approx(2.25, abs=0.02)
    # Panned left: the old picture is on the right of the new one.
    old_part = left[0].crop((left[0].width // 3 + 10, 0, left[0].width, left[0].height))
    assert (
        difference(
            old_part,
            base.resize((left[0].width * 2 // 3, left[0].height)).crop(
                (10, 0, left[0].width * 2 // 3, left[0].height)
            ),
        )
        < 12
    )
    up = await run(sandbox, clock, follow(upscale, Action.PAN, variant="up"))
    up_cell = cells(await picture(sandbox, up))[0]
    assert up_cell.width / up_cell.height == pytest.approx(1.0, abs=0.02)
    for variant in ("right", "down"):
        assert (await run(sandbox, clock, follow(upscale, Action.PAN, variant=variant))).grid


async def test_inpaint_redraws_only_the_regions(sandbox: SandboxProvider, clock: Clock) -> None:
    grid_snap = await run(sandbox, clock, imagine("a quiet harbour"))
    upscale = await run(sandbox, clock, follow(grid_snap, Action.UPSCALE, index=4))
    snap = await run(
        sandbox, clock, follow(upscale, Action.INPAINT, regions=[(0.5, 0.5, 1.0, 1.0)])
    )
    four = cells(await picture(sandbox, snap))
    assert snap.grid and four[0].size == (256, 256)
    before = (await picture(sandbox, upscale)).resize((256, 256))
    outside = (0, 0, 110, 110)  # clear of the region and of its soft edge
    inside = (150, 150, 250, 250)
    for cell in four:
        assert difference(cell.crop(outside), before.crop(outside)) < 2
        assert difference(cell.crop(inside), before.crop(inside)) > 15
    assert difference(four[0].crop(inside), four[1].crop(inside)) > 1  # redrawn differently


async def test_inpaint_redraws_exactly_the_mask_other_providers_are_sent(
    sandbox: SandboxProvider, clock: Clock
) -> None:
    # media.region_mask is what mj-proxy and the others send for Vary (Region): the
    # sandbox redraws those very pixels, a region thinner than a pixel included (it is
    # rounded outwards to one pixel, not dropped).
    grid_snap = await run(sandbox, clock, imagine("a quiet harbour"))
    upscale = await run(sandbox, clock, follow(grid_snap, Action.UPSCALE, index=4))
    thin = (0.2, 0.3, 0.2003, 0.7)  # 0.08 px wide on a 256 px cell
    wide = (0.6, 0.1, 0.9, 0.4)
    one = await run(sandbox, clock, follow(upscale, Action.INPAINT, regions=[thin]))
    other = await run(sandbox, clock, follow(upscale, Action.INPAINT, regions=[wide]))
    ones, others = cells(await picture(sandbox, one)), cells(await picture(sandbox, other))
    size = ones[0].size
    mask_thin = Image.open(io.BytesIO(media.region_mask(size, [thin]))).convert("L")
    mask_wide = Image.open(io.BytesIO(media.region_mask(size, [wide]))).convert("L")
    assert mask_thin.getbbox() is not None
    either = ImageChops.lighter(mask_thin, mask_wide)
    for a, b in zip(ones, others, strict=True):
        diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
        changed = (
            diff.point(lambda v: 255 if v else 0).convert("L").point(lambda v: 255 if v else 0)
        )
        assert ImageChops.subtract(changed, either).getbbox() is None  # nothing else moved
        assert ImageChops.multiply(changed, mask_thin).getbbox() is not None  # thin: redrawn
        assert ImageChops.multiply(changed, mask_wide).getbbox() is not None


async def test_describe_reads_the_picture(sandbox: SandboxProvider, clock: Clock) -> None:
    red = Image.new("RGB", (300, 200), (220, 20, 30))
    snap = await run(sandbox, clock, SubmitRequest(Action.DESCRIBE, images=[upload(red)]))
    assert not snap.image_urls
    assert len(snap.texts) == 4
    assert [t[:3] for t in snap.texts] == ["1️⃣", "2️⃣", "3️⃣", "4️⃣"]
    assert all(t.endswith("--ar 3:2") for t in snap.texts)
    assert "red" in snap.texts[0]

    night = Image.new("RGB", (200, 400), (10, 20, 90))
    night.paste((240, 240, 250), (80, 40, 120, 80))  # a moon
    texts = (
        await run(sandbox, clock, SubmitRequest(Action.DESCRIBE, images=[upload(night)]))
    ).texts
    assert "blue" in texts[0] and "--ar 1:2" in texts[0]
    assert "moody" in texts[0] and texts != snap.texts

    with pytest.raises(PromptRejected, match="not an image"):
        await sandbox.submit(SubmitRequest(Action.DESCRIBE, images=[ImageInput(b"<html>")]))
    with pytest.raises(PromptRejected, match="image"):
        await sandbox.submit(SubmitRequest(Action.DESCRIBE))


@pytest.mark.parametrize(
    ("dimensions", "ratio"), [("PORTRAIT", 2 / 3), ("SQUARE", 1.0), ("LANDSCAPE", 3 / 2)]
)
async def test_blend_dimensions(
    sandbox: SandboxProvider, clock: Clock, dimensions: str, ratio: float
) -> None:
    images = [upload(Image.new("RGB", (64, 64), colour)) for colour in ("red", "blue", "yellow")]
    snap = await run(
        sandbox, clock, SubmitRequest(Action.BLEND, images=images, dimensions=dimensions)
    )
    grid = await picture(sandbox, snap)
    assert snap.grid and max(grid.size) == 512
    assert grid.width / grid.height == pytest.approx(ratio, abs=0.01)
    # The first cell mixes all three evenly: neither pure red, blue nor yellow.
    r, g, b = ImageStat.Stat(cells(grid)[0].convert("RGB")).mean
    assert min(r, g, b) > 40 and max(r, g, b) < 230
    # Rerolling a blend reuses its stored images.
    assert (await picture(sandbox, await run(sandbox, clock, follow(snap, Action.REROLL)))).size


async def test_blend_needs_two_to_five_images(sandbox: SandboxProvider) -> None:
    one = upload(Image.new("RGB", (8, 8)))
    with pytest.raises(PromptRejected, match="2 to 5"):
        await sandbox.submit(SubmitRequest(Action.BLEND, images=[one]))
    with pytest.raises(PromptRejected, match="2 to 5"):
        await sandbox.submit(SubmitRequest(Action.BLEND, images=[one] * 6))


async def test_shorten(sandbox: SandboxProvider, clock: Clock) -> None:
    prompt = (
        "a very beautiful highly detailed painting of an old lighthouse on a rocky cliff "
        "at sunset, dramatic lighting, 8k --ar 3:2"
    )
    request = SubmitRequest(Action.SHORTEN, prompt=prompt, text=prompt.split(" --")[0])
    snap = await run(sandbox, clock, request)
    assert 2 <= len(snap.texts) <= 5
    assert snap.texts[0].startswith("1️⃣ ")
    lengths = [len(t) for t in snap.texts]
    assert lengths == sorted(lengths, reverse=True) and lengths[0] < len(prompt)
    assert all(t.endswith("--ar 3:2") for t in snap.texts)
    assert all("lighthouse" in t for t in snap.texts)
    assert not any("beautiful" in t or "8k" in t for t in snap.texts)


async def test_swap_face(sandbox: SandboxProvider, clock: Clock) -> None:
    face = Image.new("RGB", (100, 100), (250, 200, 160))
    target = Image.new("RGB", (300, 400), (20, 60, 20))
    snap = await run(
        sandbox, clock, SubmitRequest(Action.SWAP_FACE, images=[upload(face), upload(target)])
    )
    result = await picture(sandbox, snap)
    assert snap.grid is False and snap.followups == []
    assert result.size == (300, 400)
    assert result.getpixel((150, 144))[:3] == pytest.approx((250, 200, 160), abs=3)  # the face
    assert result.getpixel((10, 390))[:3] == (20, 60, 20)  # the rest of the target
    with pytest.raises(PromptRejected, match="two images"):
        await sandbox.submit(SubmitRequest(Action.SWAP_FACE, images=[upload(face)]))


async def test_image_prompts_set_the_palette(sandbox: SandboxProvider, clock: Clock) -> None:
    red = upload(Image.new("RGB", (64, 64), (230, 20, 20)))
    request = SubmitRequest(Action.IMAGINE, prompt="a study", text="a study", images=[red])
    grid = await picture(sandbox, await run(sandbox, clock, request))
    r, g, b = ImageStat.Stat(grid.convert("RGB")).mean
    assert r > g + 30 and r > b + 30


async def test_check_reports_an_unwritable_state_dir(tmp_path: Path, clock: Clock) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = await make(blocker, clock).check()
    assert result.status == "error" and "a-file" in result.detail
