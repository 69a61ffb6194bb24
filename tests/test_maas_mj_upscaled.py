"""After an upscale on MaaS-MJ: what the upscaled job offers, and Vary (Region) on it,
over real HTTP against the fake Cloudsway server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.config import MaasMjConfig
from bot.providers.base import (
    FollowUp,
    RetryPolicy,
    SubmitRequest,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.providers.maas_mj import MaasMjProvider
from bot.vocab import Action
from tests.fakes.maas_fake import FakeMaasMj

KEY = "RWsecretKEY0Gd"
ENDPOINT = "upscaledEP"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaasMj]:
    # Every optional Youchuan call present: the upscale still offers only Vary (Region).
    async with FakeMaasMj(
        key=KEY, endpoint=ENDPOINT, variation=True, pan=True, outpaint=True
    ) as server:
        yield server
        assert server.violations == []


def make(fake: FakeMaasMj, client: httpx.AsyncClient) -> MaasMjProvider:
    config = MaasMjConfig(
        name="youchuan", kind="maas-mj", base_url=fake.base_url, endpoint=ENDPOINT, api_key=KEY
    )
    return MaasMjProvider(config, client, policy=FAST)


async def finish(provider: MaasMjProvider, task_id: str, action: Action) -> TaskSnapshot:
    for _ in range(30):
        snap = (await provider.fetch([TaskRef(task_id, action, {})]))[task_id]
        if snap.state.finished:
            assert snap.state is TaskState.SUCCEEDED, snap
            return snap
    raise AssertionError("the job never finished")


async def upscaled(provider: MaasMjProvider, kind: Action) -> TaskSnapshot:
    """/imagine, U3, then Upscale (Subtle) or (Creative) of it."""
    grid_result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox --ar 3:2"))
    grid = await finish(provider, grid_result.task_id, Action.IMAGINE)
    picked = provider.select(grid.task_id, grid.extra, 3)
    request = SubmitRequest(kind, parent_task_id=grid.task_id, parent_extra=dict(picked.extra))
    result = await provider.submit(request)
    return await finish(provider, result.task_id, kind)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE])
async def test_an_upscaled_job_offers_vary_region_only(
    fake: FakeMaasMj, client: httpx.AsyncClient, kind: Action
) -> None:
    provider = make(fake, client)
    done = await upscaled(provider, kind)
    assert len(done.image_urls) == 1
    assert done.followups == [FollowUp(Action.INPAINT)]
    assert provider.supports(Action.INPAINT) is not None


@pytest.mark.asyncio
async def test_vary_region_on_the_upscaled_job_calls_inpaint_with_its_image(
    fake: FakeMaasMj, client: httpx.AsyncClient
) -> None:
    provider = make(fake, client)
    done = await upscaled(provider, Action.UPSCALE_CREATIVE)
    request = SubmitRequest(
        Action.INPAINT,
        prompt="a blue fox",
        parent_task_id=done.task_id,
        parent_extra=dict(done.extra),  # as the engine keeps it: jobId and urls
        parent_image_size=(1536, 1024),
        regions=[(0.0, 0.0, 0.5, 0.5)],
    )
    result = await provider.submit(request)
    sent = fake.api_requests("/tob/inpaint")[-1].json
    assert sent["jobId"] == done.task_id and sent["imageNo"] == 0  # its one image
    assert sent["remixPrompt"] == "a blue fox"
    assert sent["mask"] == {
        "areas": [{"width": 1536, "height": 1024, "points": [0, 0, 768, 0, 768, 512, 0, 512]}]
    }
    redrawn = await finish(provider, result.task_id, Action.INPAINT)
    assert len(redrawn.image_urls) == 4  # a grid of four redrawn images, as Midjourney's
    assert fake.jobs[result.task_id].kind == "inpaint"
