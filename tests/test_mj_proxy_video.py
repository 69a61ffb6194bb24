"""The mj-proxy adapter and Midjourney's video buttons, over real HTTP against the fake
server: the customIds pressed, how a finished video task reads (trueai's and new-api's
shapes), Make Square where Midjourney offers it, and a relay that refuses video."""

from __future__ import annotations

import httpx
import pytest

from bot.config import MjProxyConfig
from bot.providers.base import NotOffered, SubmitRequest, TaskSnapshot, TaskState
from bot.providers.mj_proxy import MjProxyProvider
from bot.vocab import VIDEO_ACTIONS, Action
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_mj_proxy import imagine_done, make, press

H = "4d6dc2a7-4808-48cb-b248-e8e1f352ece2"


async def upscaled(provider: MjProxyProvider, prompt: str = "a red fox") -> TaskSnapshot:
    return await press(provider, await imagine_done(provider, prompt), Action.UPSCALE, 2)


def offered(snapshot: TaskSnapshot) -> set[tuple[Action, int]]:
    return {(f.action, f.index) for f in snapshot.followups}


@pytest.mark.asyncio
async def test_animate_u2_and_extend_press_the_servers_own_buttons(
    client: httpx.AsyncClient,
) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscale = await upscaled(provider)
        assert {(Action.ANIMATE_HIGH, 0), (Action.ANIMATE_LOW, 0)} <= offered(upscale)

        grid = await press(provider, upscale, Action.ANIMATE_HIGH)
        sent = fake.bodies("/submit/action")[-1]
        assert sent["customId"].startswith("MJ::JOB::animate_high::1::")
        assert sent["taskId"] == upscale.task_id
        assert len(grid.video_urls) == 4 and grid.image_urls == [] and not grid.grid
        assert all(".mp4" in url for url in grid.video_urls)
        assert offered(grid) == {(Action.UPSCALE, n) for n in range(1, 5)} | {(Action.REROLL, 0)}

        picked = await press(provider, grid, Action.UPSCALE, 3)
        assert fake.bodies("/submit/action")[-1]["customId"].startswith(
            "MJ::JOB::video_virtual_upscale::3::"
        )
        assert picked.video_urls == [grid.video_urls[2]]  # that one, not its parent's four
        assert offered(picked) == {(Action.EXTEND_HIGH, 0), (Action.EXTEND_LOW, 0)}

        longer = await press(provider, picked, Action.EXTEND_HIGH)
        assert fake.bodies("/submit/action")[-1]["customId"].startswith(
            "MJ::JOB::animate_high_extend::1::"
        )
        assert len(longer.video_urls) == 4
        again = await press(provider, grid, Action.REROLL)  # 🔄 on a video grid films again
        assert len(again.video_urls) == 4
        assert fake.count("/submit/change") == 0 and fake.violations == []


def test_a_new_api_video_task_reads_as_video(client: httpx.AsyncClient) -> None:
    """new-api's MidjourneyDto: videoUrl and videoUrls [{url}], no contentType; a relay
    may drop the buttons."""
    config = MjProxyConfig(name="relay", kind="mj-proxy", base_url="http://relay.example")
    provider = MjProxyProvider(config, client)
    task = {
        "id": "1",
        "action": "VIDEO",
        "status": "SUCCESS",
        "progress": "100%",
        "imageUrl": "https://cdn.example/v/0.mp4",
        "videoUrl": "https://cdn.example/v/0.mp4",
        "videoUrls": [{"url": f"https://cdn.example/v/{n}.mp4"} for n in range(4)],
        "buttons": [],
    }
    snap = provider.snapshot(task)
    assert snap.state is TaskState.SUCCEEDED
    assert snap.video_urls == [f"https://cdn.example/v/{n}.mp4" for n in range(4)]
    assert snap.image_urls == [] and snap.followups == []
    running = provider.snapshot({**task, "status": "IN_PROGRESS", "progress": "40%"})
    assert running.preview_url is None  # an mp4 is no preview picture


@pytest.mark.asyncio
async def test_make_square_only_on_a_non_square_upscale(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        square = await upscaled(provider, "a red fox")
        wide = await upscaled(provider, "a red fox --ar 16:9")
        tall = await upscaled(provider, "a red fox --ar 2:3")
        assert (Action.MAKE_SQUARE, 0) not in offered(square)
        assert (Action.MAKE_SQUARE, 0) in offered(wide) and (Action.MAKE_SQUARE, 0) in offered(tall)
        width, height = wide.extra["width"], wide.extra["height"]
        assert width > height and round(width / height) == 2  # 16:9 of a 128 px grid, halved
        squared = await press(provider, wide, Action.MAKE_SQUARE)
        assert squared.grid and squared.extra["width"] == squared.extra["height"]


@pytest.mark.asyncio
async def test_without_video_on_an_upscale_offers_no_animate(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        fake.video = False  # trueai's Setting.EnableVideo off
        upscale = await upscaled(make(fake, client))
        assert not {a for a, _ in offered(upscale)} & VIDEO_ACTIONS


@pytest.mark.asyncio
async def test_a_relay_refusing_video_buttons_stops_offering_them(
    client: httpx.AsyncClient,
) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscale = await upscaled(provider)
        assert provider.supports(Action.ANIMATE_LOW) is not None
        followup = next(f for f in upscale.followups if f.action is Action.ANIMATE_LOW)
        request = SubmitRequest(
            Action.ANIMATE_LOW,
            parent_task_id=upscale.task_id,
            parent_extra=upscale.extra,
            ref=followup.ref,
        )
        with pytest.raises(NotOffered, match="does not serve Midjourney's video buttons"):
            await provider.submit(request)
        assert all(provider.supports(a) is None for a in VIDEO_ACTIONS)
        assert provider.supports(Action.UPSCALE) is not None  # the rest still works
        with pytest.raises(NotOffered):  # refused here, nothing sent
            await provider.submit(request)
        assert fake.count("/submit/action") == 2  # U2 and the one refused video press


@pytest.mark.asyncio
async def test_animate_with_remix_on_answers_the_animate_modal(client: httpx.AsyncClient) -> None:
    """trueai with the account's Remix on turns a VIDEO press into "MJ::AnimateModal::
    prompt" (DiscordService): the task waits as MODAL; the adapter answers with the
    prompt and the task goes on to its videos."""
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscale = await upscaled(provider, "a blue fox")
        fake.remix = True
        grid = await press(provider, upscale, Action.ANIMATE_LOW)
        assert grid.state is TaskState.SUCCEEDED and len(grid.video_urls) == 4
        assert fake.bodies("/submit/modal")[-1] == {"taskId": grid.task_id, "prompt": "a blue fox"}
        assert fake.violations == []
