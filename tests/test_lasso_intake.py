"""What `Engine.submit` refuses of drawn lassos (`JobRequest.polygons`), before anything
is stored, spent or sent, and what it keeps of those it takes."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import SandboxConfig, parse_config
from bot.engine.models import Job, JobRequest, JobStatus, Polygon
from bot.engine.service import Engine, RequestError
from bot.providers.sandbox import SandboxProvider
from bot.vocab import Action
from tests.lasso_helpers import TRIANGLE, wobbly_lasso
from tests.test_mj_proxy import until_done

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores


def settings(tmp_path: Path) -> dict[str, object]:
    return {
        "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "media")},
        "providers": [
            {"name": "sandbox", "kind": "sandbox", "duration": 0, "size": 128,
             "state_dir": str(tmp_path / "sandbox")},
        ],
    }  # fmt: skip


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    async with Engine(parse_config(settings(tmp_path))) as running:
        yield running


async def upscaled(engine: Engine) -> Job:
    grid = await until_done(engine, (await engine.submit(JobRequest(Action.IMAGINE, "a fox"))).id)
    picked = await engine.submit(JobRequest(Action.UPSCALE, parent_id=grid.id, index=1))
    return await until_done(engine, picked.id)


async def jobs_in(engine: Engine) -> int:
    async with engine.store.db.execute("SELECT COUNT(*) FROM jobs") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


LINE: Polygon = ((0.1, 0.1), (0.5, 0.5), (0.9, 0.9))
OUTSIDE: Polygon = ((1.2, 0.1), (1.5, 0.4), (1.3, 0.8))  # right of the picture: an edge
NOT_A_NUMBER: Polygon = ((0.1, 0.1), (math.nan, 0.5), (0.9, 0.2))
ENDLESS: Polygon = ((0.1, 0.1), (math.inf, 0.5), (0.9, 0.2))


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("polygons", "words"),
    [
        ([((0.1, 0.1), (0.9, 0.9))], "Drawn area 1 has 2 points; a lasso needs at least 3."),
        ([TRIANGLE, wobbly_lasso((0.5, 0.5), 0.2, points=201)], "Drawn area 2 has 201 points"),
        ([NOT_A_NUMBER], "Drawn area 1 has a point that is not a pair of numbers"),
        ([ENDLESS], "not a pair of numbers; draw it again."),
        ([LINE], "Drawn area 1 encloses no part of the image"),
        ([OUTSIDE], "encloses no part of the image (a line, or outside the picture)"),
        ([TRIANGLE] * 21, "Vary (Region) takes at most 20 areas; you drew 21."),
    ],
)
async def test_bad_lassos_are_refused_with_what_to_do(
    engine: Engine, polygons: list[Polygon], words: str
) -> None:
    parent = await upscaled(engine)
    before = await jobs_in(engine)
    with pytest.raises(RequestError) as refused:
        await engine.submit(JobRequest(Action.INPAINT, parent_id=parent.id, polygons=polygons))
    assert words in str(refused.value)
    assert await jobs_in(engine) == before  # nothing stored (nor spent, nor sent)


@pytest.mark.asyncio
async def test_rectangles_and_lassos_count_together(engine: Engine) -> None:
    parent = await upscaled(engine)
    boxes = [(0.0, 0.0, 0.1, 0.1)] * 15
    with pytest.raises(RequestError, match="at most 20 areas; you drew 21"):
        await engine.submit(
            JobRequest(Action.INPAINT, parent_id=parent.id, regions=boxes, polygons=[TRIANGLE] * 6)
        )
    job = await engine.submit(
        JobRequest(Action.INPAINT, parent_id=parent.id, regions=boxes, polygons=[TRIANGLE] * 5)
    )
    assert (await until_done(engine, job.id)).status is JobStatus.SUCCEEDED


@pytest.mark.asyncio
async def test_lassos_are_only_for_vary_region(engine: Engine) -> None:
    grid = await until_done(engine, (await engine.submit(JobRequest(Action.IMAGINE, "a fox"))).id)
    with pytest.raises(RequestError) as refused:
        await engine.submit(
            JobRequest(Action.VARIATION, parent_id=grid.id, index=2, polygons=[TRIANGLE])
        )
    assert "Only Vary (Region) takes drawn areas" in str(refused.value)
    assert "Send it again without them." in str(refused.value)


@pytest.mark.asyncio
async def test_a_lasso_is_clamped_to_the_picture_and_kept(engine: Engine) -> None:
    parent = await upscaled(engine)
    spilling = ((-0.2, 0.5), (0.5, -0.3), (1.4, 1.1))
    job = await engine.submit(JobRequest(Action.INPAINT, parent_id=parent.id, polygons=[spilling]))
    done = await until_done(engine, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert done.polygons == [((0.0, 0.5), (0.5, 0.0), (1.0, 1.0))]
    assert done.regions == []
    # The stored document holds them too (no migration: they live in the job's JSON).
    async with engine.store.db.execute("SELECT data FROM jobs WHERE id = ?", (job.id,)) as c:
        row = await c.fetchone()
    assert row is not None and '"polygons":[[[0.0,0.5],[0.5,0.0],[1.0,1.0]]]' in row[0]


class BoxesOnly(SandboxProvider):
    """A provider whose Vary (Region) takes rectangles only."""

    takes_polygons = False


@pytest.mark.asyncio
async def test_a_provider_without_lassos_refuses_them_and_never_boxes_them(
    tmp_path: Path,
) -> None:
    config = parse_config(settings(tmp_path))
    sandbox = config.providers[0]
    assert isinstance(sandbox, SandboxConfig)
    async with Engine(config, providers={"sandbox": BoxesOnly(sandbox)}) as engine:
        parent = await upscaled(engine)
        before = await jobs_in(engine)
        with pytest.raises(RequestError) as refused:
            await engine.submit(
                JobRequest(
                    Action.INPAINT,
                    parent_id=parent.id,
                    regions=[(0.1, 0.1, 0.4, 0.4)],
                    polygons=[TRIANGLE],
                )
            )
        assert str(refused.value) == (
            "sandbox cannot redraw a freehand (lasso) area, only rectangles. Draw the areas "
            "with the rectangle tool, or use a provider that takes lassos."
        )
        assert await jobs_in(engine) == before
        # Rectangles alone still work there, as today.
        job = await engine.submit(
            JobRequest(Action.INPAINT, parent_id=parent.id, regions=[(0.1, 0.1, 0.4, 0.4)])
        )
        assert (await until_done(engine, job.id)).status is JobStatus.SUCCEEDED
