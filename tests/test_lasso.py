"""Vary (Region) with freehand lassos (`JobRequest.polygons`), as the web editor sends
them through `Engine.submit`: each provider gets them in its own form, over real HTTP
against the fakes (mj-proxy's PNG mask, MaaS-MJ's polygon areas), and the sandbox
redraws inside them and nowhere else."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops

from bot import media
from bot.config import MaasMjConfig, parse_config
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.service import Engine
from bot.providers.base import PromptRejected, RetryPolicy, SubmitRequest
from bot.providers.maas_mj import MaasMjProvider, inpaint_areas
from bot.vocab import Action
from tests.fakes.maas_fake import FakeMaasMj
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.lasso_helpers import TRIANGLE, mask_errors, only_black_and_white, wobbly_lasso
from tests.test_mj_proxy import until_done
from tests.test_sandbox import Clock, cells, difference, follow, imagine, picture, run
from tests.test_sandbox import make as make_sandbox

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
LASSO = wobbly_lasso((0.7, 0.7), 0.15)
BOX = (0.0, 0.0, 0.2, 0.1)


def decode(data_url: str) -> Image.Image:
    assert data_url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1])))


# --------------------------------------------------------------------------- the mask


@pytest.mark.parametrize("size", [(200, 200), (150, 90), (97, 131)])
def test_the_mask_is_white_inside_each_lasso_and_black_outside(size: tuple[int, int]) -> None:
    counter_clockwise = wobbly_lasso((0.3, 0.7), 0.12, points=30, clockwise=False)
    mask = Image.open(io.BytesIO(media.region_mask(size, [BOX], [TRIANGLE, counter_clockwise])))
    assert mask.size == size and only_black_and_white(mask)
    assert mask_errors(mask, [TRIANGLE, counter_clockwise], [BOX]) == []
    # and the areas are really there: a third or so of the picture is white
    assert 0.25 < mask.convert("L").histogram()[255] / (size[0] * size[1]) < 0.5


def test_a_thin_lasso_keeps_its_pixels_and_none_beyond() -> None:
    needle = ((0.30, 0.2), (0.3004, 0.8), (0.3002, 0.5))  # 0.08 px wide on 200 px
    mask = Image.open(io.BytesIO(media.region_mask((200, 200), [], [needle]))).convert("L")
    box = mask.getbbox()
    assert box is not None
    left, top, right, bottom = box
    assert right - left <= 2 and 59 <= left <= 60
    assert top <= 41 and bottom >= 159  # the whole length, not a dot
    assert mask_errors(mask, [needle]) == []


def test_a_mask_needs_an_area() -> None:
    with pytest.raises(media.MediaError, match="at least one area"):
        media.region_mask((100, 100), [], [])


# --------------------------------------------------------------------------- mj-proxy


@pytest.mark.asyncio
async def test_mj_proxy_receives_the_lassos_drawn_into_its_mask(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        fake.grid_size = (400, 400)  # U1: 200 x 200
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [fake.provider_config()],
            }
        )
        async with Engine(config) as engine:
            upscaled = await upscale(engine, index=1)
            job = await engine.submit(
                JobRequest(
                    Action.INPAINT,
                    parent_id=upscaled.id,
                    regions=[BOX],
                    polygons=[TRIANGLE, LASSO],
                )
            )
            done = await until_done(engine, job.id)
        assert done.status is JobStatus.SUCCEEDED, done.failure
        mask = decode(fake.bodies("/submit/modal")[-1]["maskBase64"])
        assert mask.size == (200, 200)  # the image's own size
        assert mask_errors(mask, [TRIANGLE, LASSO], [BOX]) == []
        assert fake.violations == []  # only black and white, white somewhere
        # Kept with the job, as the member drew them (for a restart or a reroll).
        assert done.polygons == [TRIANGLE, LASSO] and done.regions == [BOX]
        assert Job.from_json(done.to_json()).polygons == [TRIANGLE, LASSO]


async def upscale(engine: Engine, index: int) -> Job:
    grid = await until_done(engine, (await engine.submit(JobRequest(Action.IMAGINE, "a fox"))).id)
    picked = await engine.submit(JobRequest(Action.UPSCALE, parent_id=grid.id, index=index))
    return await until_done(engine, picked.id)


# --------------------------------------------------------------------------- MaaS-MJ


def test_maas_areas_are_the_lassos_corners_in_pixels_clockwise() -> None:
    areas = inpaint_areas([BOX], (1000, 500), [TRIANGLE, TRIANGLE[::-1]])
    triangle = [100, 75, 850, 150, 350, 450]  # clockwise on screen, as drawn
    assert areas == [
        {"width": 1000, "height": 500, "points": [0, 0, 200, 0, 200, 50, 0, 50]},
        {"width": 1000, "height": 500, "points": triangle},
        # drawn the other way round: the same area, the same points
        {"width": 1000, "height": 500, "points": triangle},
    ]
    lasso = inpaint_areas([], (1000, 500), [LASSO])[0]["points"]
    assert len(lasso) == 2 * len(LASSO)  # every corner of the freehand stroke
    assert lasso[:2] == [round(LASSO[0][0] * 1000), round(LASSO[0][1] * 500)]


@pytest.mark.asyncio
async def test_maas_receives_polygon_areas_in_its_own_form(tmp_path: Path) -> None:
    async with FakeMaasMj(key="maas-key", endpoint="ep") as fake:
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [maas_settings(fake)],
            }
        )
        async with Engine(config) as engine:
            picked = await upscale(engine, index=2)
            job = await engine.submit(
                JobRequest(
                    Action.INPAINT,
                    prompt="a blue fox",
                    parent_id=picked.id,
                    polygons=[TRIANGLE[::-1]],  # drawn counter-clockwise
                )
            )
            done = await until_done(engine, job.id)
        assert done.status is JobStatus.SUCCEEDED, done.failure
        sent = fake.api_requests("/tob/inpaint")[-1].json
        assert sent["imageNo"] == 1 and sent["remixPrompt"] == "a blue fox"
        # The 512 px image: (0.1, 0.15) -> (51, 77), ... clockwise, in whole pixels.
        assert sent["mask"] == {
            "areas": [{"width": 512, "height": 512, "points": [51, 77, 435, 154, 179, 461]}]
        }
        assert fake.violations == []


def maas_settings(fake: FakeMaasMj) -> dict[str, Any]:
    return {"name": "maas", "kind": "maas-mj", "base_url": fake.base_url, "endpoint": "ep",
            "api_key": "maas-key", "poll_interval": 0.05}  # fmt: skip


@pytest.mark.asyncio
async def test_maas_refuses_a_lasso_too_small_for_a_polygon(client: httpx.AsyncClient) -> None:
    async with FakeMaasMj(key="maas-key", endpoint="ep") as fake:
        adapter = MaasMjProvider(MaasMjConfig(**maas_settings(fake)), client, policy=FAST)
        speck = ((0.5, 0.5), (0.5005, 0.5), (0.5, 0.5005))  # a quarter of a pixel
        request = SubmitRequest(
            Action.INPAINT, parent_task_id="j1", parent_image_size=(512, 512), polygons=[speck]
        )
        with pytest.raises(PromptRejected, match=r"too small .* draw a larger one"):
            adapter.validate(request)
        with pytest.raises(PromptRejected, match="too small"):
            await adapter.submit(request)
        assert fake.api_requests("/tob/inpaint") == []


# --------------------------------------------------------------------------- sandbox


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.mark.asyncio
async def test_the_sandbox_redraws_inside_the_lasso_and_nowhere_else(
    tmp_path: Path, clock: Clock
) -> None:
    sandbox = make_sandbox(tmp_path, clock)
    grid = await run(sandbox, clock, imagine("a quiet harbour"))
    upscaled = await run(sandbox, clock, follow(grid, Action.UPSCALE, index=4))
    lassoed = await run(sandbox, clock, follow(upscaled, Action.INPAINT, polygons=[LASSO]))
    boxed = await run(sandbox, clock, follow(upscaled, Action.INPAINT, regions=[BOX]))
    ones, others = cells(await picture(sandbox, lassoed)), cells(await picture(sandbox, boxed))
    size = ones[0].size
    assert lassoed.grid and size == (256, 256)
    lasso_mask = media.draw_mask(size, [], [LASSO])
    either = ImageChops.lighter(lasso_mask, media.draw_mask(size, [BOX]))
    for a, b in zip(ones, others, strict=True):
        changed = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
        changed = changed.point(lambda v: 255 if v else 0)
        assert ImageChops.subtract(changed, either).getbbox() is None  # nothing else moved
    # Inside the lasso the picture is new; outside it (and the box) it is the parent's.
    before = (await picture(sandbox, upscaled)).resize(size)
    core = (165, 165, 195, 195)  # well inside the lasso around (179, 179)
    clear = (0, 60, 110, 160)  # clear of both
    for cell in ones:
        assert difference(cell.crop(core), before.crop(core)) > 15
        assert difference(cell.crop(clear), before.crop(clear)) < 2


@pytest.mark.asyncio
async def test_the_sandbox_redraws_a_thin_lasso(tmp_path: Path, clock: Clock) -> None:
    sandbox = make_sandbox(tmp_path, clock)
    upscaled = await run(
        sandbox, clock, follow(await run(sandbox, clock, imagine("a fox")), Action.UPSCALE, index=1)
    )
    needle = ((0.30, 0.2), (0.3004, 0.8), (0.3002, 0.5))
    one = await run(sandbox, clock, follow(upscaled, Action.INPAINT, polygons=[needle]))
    other = await run(sandbox, clock, follow(upscaled, Action.INPAINT, regions=[BOX]))
    a, b = cells(await picture(sandbox, one))[0], cells(await picture(sandbox, other))[0]
    needle_mask = media.draw_mask(a.size, [], [needle])
    changed = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).convert("L")
    assert ImageChops.multiply(changed.point(lambda v: 255 if v else 0), needle_mask).getbbox()
