"""The midjourney-proxy adapter against the fake server, over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot import media
from bot.config import MaasMjConfig, MjProxyConfig, parse_config
from bot.engine.models import Job, JobRequest, JobStatus
from bot.engine.service import Engine
from bot.providers.base import (
    BadKey,
    BadResponse,
    Feature,
    How,
    ImageGone,
    ImageInput,
    NotOffered,
    PromptRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    SubmitRequest,
    SubmitResult,
    TaskNotFound,
    TaskRef,
    TaskSnapshot,
    TaskState,
    task_refs,
)
from bot.providers.maas_mj import MaasMjProvider
from bot.providers.mj_proxy import (
    MJ_PARAM_NAMES,
    MjProxyProvider,
    followup_for_custom_id,
    parse_progress,
    split_numbered,
)
from bot.providers.mj_proxy._buttons import MASK_MAX_SIDE, mask_data_url, mask_size
from bot.vocab import VIDEO_ACTIONS, Action
from tests.fakes.maas_fake import FakeMaasMj
from tests.fakes.mj_proxy_fake import DEFAULT_SHORTEN, FakeMjProxy

FAST = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)
SECRET = "sk-TOPSECRET-9f8e7d6c"
H = "3dbbd469-36af-4a0f-8f02-df6c579e7011"


def png(size: tuple[int, int] = (16, 16), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def image(colour: tuple[int, int, int] = (200, 30, 30)) -> ImageInput:
    return ImageInput(png(colour=colour))


def decode_data_url(value: str) -> Image.Image:
    assert value.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(value.split(",", 1)[1])))


def make(fake: FakeMjProxy, client: httpx.AsyncClient, **overrides: Any) -> MjProxyProvider:
    provider = MjProxyProvider(
        MjProxyConfig(**fake.provider_config(**overrides)), client, policy=FAST
    )
    provider.modal_wait = 1.0
    provider.modal_poll = 0.01
    return provider


async def finish(provider: MjProxyProvider, ref: TaskRef, polls: int = 12) -> TaskSnapshot:
    """Poll as the runner does: with what the job asked for and its provider data, which
    gathers the submit's data and every snapshot's extra."""
    data = dict(ref.data)
    for _ in range(polls):
        snap = (await provider.fetch([TaskRef(ref.task_id, ref.action, data)]))[ref.task_id]
        data.update(snap.extra)
        if snap.state.finished:
            return snap
    raise AssertionError(f"task {ref.task_id} did not finish: {snap}")


def job_ref(request: SubmitRequest, result: SubmitResult) -> TaskRef:
    """The ref the runner builds for a job just sent."""
    return TaskRef(result.task_id, request.action, dict(result.data))


async def run(provider: MjProxyProvider, request: SubmitRequest) -> TaskSnapshot:
    """Submit and poll until the task is done."""
    return await finish(provider, job_ref(request, await provider.submit(request)))


async def imagine_done(provider: MjProxyProvider, prompt: str = "a red fox") -> TaskSnapshot:
    return await run(provider, SubmitRequest(Action.IMAGINE, prompt=prompt, text=prompt))


def vary_region(parent: TaskSnapshot) -> SubmitRequest:
    """Vary (Region) on the top-left quarter of `parent`, through its own button."""
    followup = next(f for f in parent.followups if f.action == Action.INPAINT)
    return SubmitRequest(
        Action.INPAINT,
        parent_task_id=parent.task_id,
        parent_extra=parent.extra,
        ref=followup.ref,
        parent_image_size=(64, 64),
        regions=[(0, 0, 0.5, 0.5)],
    )


async def press(
    provider: MjProxyProvider,
    parent: TaskSnapshot,
    action: Action,
    index: int = 0,
    variant: str = "",
    **kwargs: Any,
) -> TaskSnapshot:
    followup = next(
        f
        for f in parent.followups
        if f.action == action and f.index == index and f.variant == variant
    )
    request = SubmitRequest(
        action,
        parent_task_id=parent.task_id,
        parent_extra=parent.extra,
        index=index,
        variant=variant,
        ref=followup.ref,
        **kwargs,
    )
    return await run(provider, request)


# --------------------------------------------------------------------------- happy paths


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["novicezk", "trueai", "relay"])
async def test_imagine_progresses_to_a_grid(flavour: str, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour=flavour, key=SECRET) as fake:
        provider = make(fake, client)
        result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a red fox"))
        assert result.task_id.isdigit()  # relays send a JSON number: kept as a string
        first = (await provider.fetch(task_refs([result.task_id])))[result.task_id]
        assert first.state == TaskState.SUBMITTED and first.progress == 0
        running = (await provider.fetch(task_refs([result.task_id])))[result.task_id]
        assert running.state == TaskState.RUNNING and running.progress == 46
        assert running.preview_url and not running.image_urls
        done = (await provider.fetch(task_refs([result.task_id])))[result.task_id]
        assert done.state == TaskState.SUCCEEDED and done.progress == 100
        assert done.grid and len(done.image_urls) == 1 and done.preview_url is None
        offered = {(f.action, f.index) for f in done.followups}
        assert offered == {(Action.UPSCALE, i) for i in range(1, 5)} | {
            (Action.VARIATION, i) for i in range(1, 5)
        } | {(Action.REROLL, 0)}

        grid = Image.open(io.BytesIO(await provider.download(done.image_urls[0], 1 << 20)))
        assert grid.size == (128, 128)
        assert grid.convert("RGB").getpixel((96, 96)) == (240, 200, 40)  # 4th quadrant
        assert fake.violations == []
        if flavour == "relay":  # the relay's own image link needed the key
            assert fake.count("/image/") == 1
        if flavour == "trueai":
            assert done.seed == fake.seed_value
            assert len(done.extra["imageUrls"]) == 4
            assert (done.extra["width"], done.extra["height"]) == (128, 128)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("flavour", "strict", "style", "header", "value"),
    [
        ("novicezk", None, "mj-api-secret", "mj-api-secret", SECRET),
        ("trueai", None, "authorization", "authorization", SECRET),
        ("trueai", None, "mj-api-secret", "mj-api-secret", SECRET),
        ("relay", None, "bearer", "authorization", f"Bearer {SECRET}"),
        ("relay", None, "mj-api-secret", "mj-api-secret", SECRET),
        ("relay", "bearer", "bearer", "authorization", f"Bearer {SECRET}"),
    ],
)
async def test_auth_styles_that_work(
    flavour: str,
    strict: str | None,
    style: str,
    header: str,
    value: str,
    client: httpx.AsyncClient,
) -> None:
    async with FakeMjProxy(strict, key=SECRET, flavour=flavour) as fake:
        provider = make(fake, client, auth_style=style)
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert fake.requests[-1].headers[header] == value
        assert (await provider.check()).status == "healthy"


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["novicezk", "relay"])
async def test_default_bearer_style_also_works_where_only_mj_api_secret_is_read(
    flavour: str, client: httpx.AsyncClient
) -> None:
    # novicezk reads mj-api-secret only; the default style sends it beside the Bearer.
    async with FakeMjProxy(None, key=SECRET, flavour=flavour) as fake:
        provider = make(fake, client, auth_style="bearer")
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert (await provider.check()).status == "healthy"
        assert fake.violations == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("flavour", "strict", "style"),
    [
        ("trueai", None, "bearer"),  # trueai takes "Bearer <key>" verbatim as the token
        ("relay", "bearer", "authorization"),
        ("relay", "bearer", "mj-api-secret"),
    ],
)
async def test_wrong_auth_style_is_a_bad_key(
    flavour: str, strict: str | None, style: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(strict, key=SECRET, flavour=flavour) as fake:
        provider = make(fake, client, auth_style=style)
        with pytest.raises(BadKey) as caught:
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert "auth_style" in str(caught.value) and SECRET not in repr(caught.value)
        assert (await provider.check()).status == "bad_key"
        with pytest.raises(BadKey):
            await provider.fetch(task_refs(["1"]))


@pytest.mark.asyncio
async def test_imagine_body_images_niji_filter_and_hooks(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(
            fake,
            client,
            account_filter={"modes": ["FAST"], "remix": False},
            notify_hook="https://bot.example/hook",
        )
        prompt = "https://example.com/a.png a red fox --niji 6"
        await provider.submit(
            SubmitRequest(
                Action.IMAGINE,
                prompt=prompt,
                params={"niji": "6"},
                image_urls=["https://example.com/a.png"],
                images=[image(), image((0, 0, 255))],
            )
        )
        body = fake.bodies("/submit/imagine")[-1]
        assert body["prompt"] == prompt  # image URLs stay in the prompt text
        assert body["botType"] == "NIJI_JOURNEY"
        assert [decode_data_url(x).getpixel((0, 0)) for x in body["base64Array"]] == [
            (200, 30, 30),
            (0, 0, 255),
        ]
        assert body["accountFilter"] == {"modes": ["FAST"], "remix": False}
        assert body["notifyHook"] == "https://bot.example/hook"

        await provider.submit(
            SubmitRequest(Action.IMAGINE, prompt="plain", callback_url="https://x.example/cb")
        )
        body = fake.bodies("/submit/imagine")[-1]
        assert body["botType"] == "MID_JOURNEY" and "base64Array" not in body
        assert body["notifyHook"] == "https://x.example/cb"
        assert fake.violations == []


@pytest.mark.asyncio
async def test_mode_by_path(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client, mode_style="path", mode="turbo")
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox", mode="relax"))
        assert fake.requests[-1].path == "/mj-relax/mj/submit/imagine"
        assert fake.bodies("/submit/imagine")[-1]["prompt"] == "a fox"
        parent = await imagine_done(provider)  # no request mode: the configured turbo
        assert fake.requests[0].mode == "relax"
        assert [r.mode for r in fake.requests if r.endpoint == "/submit/imagine"][-1] == "turbo"
        await press(provider, parent, Action.UPSCALE, 1, mode="fast")
        action = next(r for r in fake.requests if r.endpoint == "/submit/action")
        assert action.path == "/mj-fast/mj/submit/action"
        assert fake.violations == []


@pytest.mark.asyncio
async def test_mode_by_prompt(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client, mode_style="prompt", mode="relax")
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox --ar 2:3"))
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox --fast"))
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox", mode="turbo"))
        prompts = [b["prompt"] for b in fake.bodies("/submit/imagine")]
        assert prompts == ["a fox --ar 2:3 --relax", "a fox --fast", "a fox --turbo"]
        assert all(r.path.startswith("/mj/") for r in fake.requests)


# --------------------------------------------------------------------------- buttons


@pytest.mark.parametrize(
    ("custom_id", "action", "index", "variant"),
    [
        (f"MJ::JOB::upsample::3::{H}", Action.UPSCALE, 3, ""),
        (f"MJ::JOB::variation::4::{H}", Action.VARIATION, 4, ""),
        (f"MJ::JOB::variation::1::{H}::SOLO", Action.VARIATION, 1, ""),
        (f"MJ::JOB::reroll::0::{H}::SOLO", Action.REROLL, 0, ""),
        (f"MJ::JOB::upsample_v6_2x_subtle::1::{H}::SOLO", Action.UPSCALE_SUBTLE, 0, ""),
        (f"MJ::JOB::upsample_v6r1_2x_creative::1::{H}::SOLO", Action.UPSCALE_CREATIVE, 0, ""),
        (f"MJ::JOB::upsample_v7_2x_subtle::1::{H}::SOLO", Action.UPSCALE_SUBTLE, 0, ""),
        (f"MJ::JOB::v7_2x_creative::1::{H}::SOLO", Action.UPSCALE_CREATIVE, 0, ""),
        (f"MJ::JOB::low_variation::1::{H}::SOLO", Action.VARY_SUBTLE, 0, ""),
        (f"MJ::JOB::high_variation::1::{H}::SOLO", Action.VARY_STRONG, 0, ""),
        (f"MJ::Inpaint::1::{H}::SOLO", Action.INPAINT, 0, ""),
        (f"MJ::Outpaint::50::1::{H}::SOLO", Action.ZOOM, 0, "2"),
        (f"MJ::Outpaint::75::1::{H}::SOLO", Action.ZOOM, 0, "1.5"),
        (f"MJ::Outpaint::100::1::{H}::SOLO", Action.MAKE_SQUARE, 0, ""),
        (f"MJ::CustomZoom::{H}", Action.ZOOM, 0, "custom"),
        (f"MJ::JOB::pan_up::1::{H}::SOLO", Action.PAN, 0, "up"),
        (f"MJ::JOB::pan_left::1::{H}::SOLO", Action.PAN, 0, "left"),
        # Video (trueai's CustomComponentModel / TaskInfo.SetVideo*Buttons).
        (f"MJ::JOB::animate_high::1::{H}::SOLO", Action.ANIMATE_HIGH, 0, ""),
        (f"MJ::JOB::animate_low::1::{H}::SOLO", Action.ANIMATE_LOW, 0, ""),
        (f"MJ::JOB::animate_high_extend::1::{H}", Action.EXTEND_HIGH, 0, ""),
        (f"MJ::JOB::animate_low_extend::1::{H}", Action.EXTEND_LOW, 0, ""),
        (f"MJ::JOB::video_virtual_upscale::2::{H}", Action.UPSCALE, 2, ""),
    ],
)
def test_custom_id_mapping(custom_id: str, action: Action, index: int, variant: str) -> None:
    followup = followup_for_custom_id(custom_id)
    assert followup is not None
    assert (followup.action, followup.index, followup.variant, followup.ref) == (
        action,
        index,
        variant,
        custom_id,
    )


@pytest.mark.parametrize(
    "custom_id",
    [
        f"MJ::BOOKMARK::{H}",
        "MJ::Picread::Retry",
        "MJ::Job::PicReader::1",
        f"MJ::JOB::upsample_v5_2x::1::{H}::SOLO",
    ],
)
def test_buttons_we_do_not_model_are_ignored(custom_id: str) -> None:
    assert followup_for_custom_id(custom_id) is None


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["v6", "v6r1", "v7"])
async def test_every_button_goes_through_action(version: str, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.upscale_version = version
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        for followup in grid.followups:
            await press(provider, grid, followup.action, followup.index, followup.variant)
        upscaled = await press(provider, grid, Action.UPSCALE, 2)
        assert not upscaled.grid and len(upscaled.image_urls) == 1
        offered = {(f.action, f.variant) for f in upscaled.followups}
        assert offered == {
            (Action.UPSCALE_SUBTLE, ""),
            (Action.UPSCALE_CREATIVE, ""),
            (Action.VARY_SUBTLE, ""),
            (Action.VARY_STRONG, ""),
            (Action.INPAINT, ""),
            (Action.ZOOM, "2"),
            (Action.ZOOM, "1.5"),
            (Action.ZOOM, "custom"),
            *((Action.PAN, d) for d in ("left", "right", "up", "down")),
            (Action.ANIMATE_HIGH, ""),
            (Action.ANIMATE_LOW, ""),
        }  # no Make Square: "a red fox" is square
        # The ignored button (❤️) stays in extra, not in followups.
        assert len(upscaled.extra["buttons"]) == 15
        for followup in upscaled.followups:
            if followup.action in (Action.INPAINT,) or followup.variant == "custom":
                continue  # modal flows: tested below
            result = await press(provider, upscaled, followup.action, 0, followup.variant)
            expect_grid = followup.action not in (
                Action.UPSCALE_SUBTLE,
                Action.UPSCALE_CREATIVE,
                *VIDEO_ACTIONS,
            )
            assert result.grid is expect_grid
            assert bool(result.video_urls) is (followup.action in VIDEO_ACTIONS)
        sent = [b["customId"] for b in fake.bodies("/submit/action")]
        assert sent[:9] == [f.ref for f in grid.followups]
        assert f"upsample_{version}_2x_subtle" in " ".join(sent)
        assert fake.count("/submit/change") == 0 and fake.violations == []


@pytest.mark.asyncio
async def test_buttons_found_in_parent_extra_when_ref_is_empty(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        request = SubmitRequest(
            Action.VARIATION, parent_task_id=grid.task_id, parent_extra=grid.extra, index=3
        )
        await provider.submit(request)
        assert fake.bodies("/submit/action")[-1]["customId"].startswith("MJ::JOB::variation::3")
        # A button the parent lacks and /change cannot serve is refused before sending.
        with pytest.raises(NotOffered):
            await provider.submit(
                SubmitRequest(Action.PAN, parent_task_id=grid.task_id, variant="left")
            )


@pytest.mark.asyncio
async def test_change_fallback_without_buttons(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="novicezk") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        assert "buttons" not in grid.extra and all(f.ref == "" for f in grid.followups)
        upscaled = await press(provider, grid, Action.UPSCALE, 2)
        assert not upscaled.grid and upscaled.followups == []
        await press(provider, grid, Action.VARIATION, 4)
        reroll = await press(provider, grid, Action.REROLL)
        assert reroll.grid
        bodies = fake.bodies("/submit/change")
        assert [(b["action"], b["index"]) for b in bodies] == [
            ("UPSCALE", 2),
            ("VARIATION", 4),
            ("REROLL", 1),
        ]
        assert fake.count("/submit/action") == 0 and fake.violations == []


@pytest.mark.asyncio
async def test_relay_change_needs_index_even_for_reroll(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        # A job stored before the server sent buttons: no ref, no buttons in extra.
        request = SubmitRequest(Action.REROLL, parent_task_id=grid.task_id)
        result = await provider.submit(request)
        assert fake.bodies("/submit/change")[-1] == {
            "state": "atelier",
            "taskId": grid.task_id,
            "action": "REROLL",
            "index": 1,
        }
        assert (await finish(provider, job_ref(request, result))).grid
        assert fake.violations == []


@pytest.mark.asyncio
async def test_action_missing_on_server_falls_back_to_change(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="novicezk") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        request = SubmitRequest(
            Action.UPSCALE, parent_task_id=grid.task_id, index=1, ref=f"MJ::JOB::upsample::1::{H}"
        )
        await run(provider, request)
        assert fake.count("/submit/action") == 1 and fake.count("/submit/change") == 1
        with pytest.raises(NotOffered):  # no /change for this one: the 404 stands
            await provider.submit(
                SubmitRequest(
                    Action.PAN,
                    parent_task_id=grid.task_id,
                    variant="up",
                    ref=f"MJ::JOB::pan_up::1::{H}::SOLO",
                )
            )


@pytest.mark.asyncio
async def test_trueai_without_change_is_not_offered(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        with pytest.raises(NotOffered):
            await provider.submit(
                SubmitRequest(Action.UPSCALE, parent_task_id=grid.task_id, index=1)
            )


# --------------------------------------------------------------------------- modal flows


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["trueai", "relay"])
async def test_vary_region_completes_the_modal_with_a_mask(
    flavour: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour=flavour) as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider, "a red fox in snow")
        upscaled = await press(provider, grid, Action.UPSCALE, 1)
        size = (64, 64)  # the upscaled image the user drew on
        result = await press(
            provider,
            upscaled,
            Action.INPAINT,
            parent_image_size=size,
            regions=[(0.25, 0.25, 0.75, 0.5)],
        )
        assert result.state == TaskState.SUCCEEDED and result.grid
        modal = fake.bodies("/submit/modal")[-1]
        assert modal["prompt"] == "a red fox in snow"
        mask = decode_data_url(modal["maskBase64"]).convert("L")
        assert mask.size == size
        assert mask.getpixel((32, 24)) == 255 and mask.getpixel((32, 40)) == 0
        assert mask.getpixel((5, 5)) == 0 and mask.getpixel((60, 20)) == 0
        inpaint_task = fake.bodies("/submit/modal")[-1]["taskId"]
        assert fake.tasks[inpaint_task].mask is not None
        if flavour == "relay":  # 21 rewritten to 1: MODAL was seen by fetching
            assert fake.count(f"/task/{inpaint_task}/fetch") >= 2
        assert fake.violations == []


@pytest.mark.asyncio
async def test_custom_zoom_sends_the_zoom_in_the_prompt(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider, "a fox --ar 3:2 --zoom 1.2")
        upscaled = await press(provider, grid, Action.UPSCALE, 4)
        await press(provider, upscaled, Action.ZOOM, 0, "custom", params={"zoom": "1.8"})
        modal = fake.bodies("/submit/modal")[-1]
        assert modal["prompt"] == "a fox --ar 3:2 --zoom 1.8"
        assert "maskBase64" not in modal and fake.violations == []


@pytest.mark.asyncio
async def test_modal_that_never_comes_fails_clearly(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        provider.modal_wait = 0.2
        grid = await imagine_done(provider)
        upscaled = await press(provider, grid, Action.UPSCALE, 1)
        fake.modal_never = True
        with pytest.raises(ProviderError, match="never asked for the region"):
            await press(
                provider,
                upscaled,
                Action.INPAINT,
                parent_image_size=(64, 64),
                regions=[(0, 0, 0.5, 0.5)],
            )
        assert fake.count("/submit/modal") == 0


@pytest.mark.asyncio
async def test_inpaint_input_is_checked_before_sending(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        base = {"parent_task_id": "1", "ref": f"MJ::Inpaint::1::{H}::SOLO"}
        with pytest.raises(PromptRejected, match="region"):
            await provider.submit(SubmitRequest(Action.INPAINT, parent_image_size=(9, 9), **base))
        with pytest.raises(PromptRejected, match="size"):
            await provider.submit(SubmitRequest(Action.INPAINT, regions=[(0, 0, 1, 1)], **base))
        with pytest.raises(PromptRejected, match="1, 2, 3 or 4"):
            await provider.submit(SubmitRequest(Action.UPSCALE, parent_task_id="1", index=5))
        assert fake.requests == []


@pytest.mark.asyncio
async def test_remix_modal_on_code_21(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider, "a blue fox")
        fake.remix = True
        result = await press(provider, grid, Action.VARIATION, 2)
        assert result.state == TaskState.SUCCEEDED
        assert fake.bodies("/submit/modal")[-1] == {
            "taskId": result.task_id,
            "prompt": "a blue fox",
        }
        assert fake.violations == []


# A 0.1%-wide area of a 500 px image: half a pixel, which round() used to drop (200.55 and
# 201.05 both round to 201) and media.pixel_box widens outwards to columns 200-201.
THIN = (0.4011, 0.2, 0.4021, 0.6)


def white_box(mask: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box of a mask's white pixels (exclusive right/bottom, as pixel_box)."""
    return mask.convert("L").point(lambda v: 255 if v == 255 else 0).getbbox()


async def upscaled_500(provider: MjProxyProvider, fake: FakeMjProxy) -> TaskSnapshot:
    fake.grid_size = (1000, 1000)  # U1 of it: 500 x 500
    upscaled = await press(provider, await imagine_done(provider), Action.UPSCALE, 1)
    assert fake.tasks[upscaled.task_id].size == (500, 500)
    return upscaled


@pytest.mark.asyncio
async def test_a_thin_region_still_reaches_the_mask(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscaled = await upscaled_500(provider, fake)
        await press(
            provider, upscaled, Action.INPAINT, parent_image_size=(500, 500), regions=[THIN]
        )
        sent = decode_data_url(fake.bodies("/submit/modal")[-1]["maskBase64"])
        assert sent.size == (500, 500)
        assert white_box(sent) == media.pixel_box(THIN, (500, 500)) == (200, 100, 202, 300)
        assert sent.convert("L").histogram()[255] == 2 * 200
        inpaint_task = fake.bodies("/submit/modal")[-1]["taskId"]
        assert white_box(fake.tasks[inpaint_task].mask) == (200, 100, 202, 300)
        assert fake.violations == []  # the old mask had "no white region"


@pytest.mark.asyncio
async def test_both_midjourney_adapters_draw_the_same_pixels(client: httpx.AsyncClient) -> None:
    box = media.pixel_box(THIN, (500, 500))
    assert box is not None
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscaled = await upscaled_500(provider, fake)
        await press(
            provider, upscaled, Action.INPAINT, parent_image_size=(500, 500), regions=[THIN]
        )
        mask_box = white_box(decode_data_url(fake.bodies("/submit/modal")[-1]["maskBase64"]))
    async with FakeMaasMj(key="maas-key", endpoint="ep") as maas:
        settings = {"name": "mj", "kind": "maas-mj", "base_url": maas.base_url,
                    "endpoint": "ep", "api_key": "maas-key"}  # fmt: skip
        adapter = MaasMjProvider(MaasMjConfig(**settings), client, policy=FAST)
        grid = await adapter.submit(SubmitRequest(Action.IMAGINE, prompt="a red fox"))
        for _ in range(20):
            snap = (await adapter.fetch(task_refs([grid.task_id])))[grid.task_id]
            if snap.state.finished:
                break
        picked = adapter.select(grid.task_id, snap.extra, 1)
        await adapter.submit(
            SubmitRequest(Action.INPAINT, prompt="a blue fox", parent_task_id=grid.task_id,
                          parent_extra=dict(picked.extra), parent_image_size=(500, 500),
                          regions=[THIN])
        )  # fmt: skip
        areas = maas.api_requests("/tob/inpaint")[-1].json["mask"]["areas"]
    left, top, right, bottom = box
    assert areas == [
        {
            "width": 500,
            "height": 500,
            "points": [left, top, right, top, right, bottom, left, bottom],
        }
    ]
    assert mask_box == box


@pytest.mark.asyncio
async def test_regions_that_are_no_area_are_refused_before_sending(
    client: httpx.AsyncClient,
) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        request = SubmitRequest(
            Action.INPAINT,
            parent_task_id="1",
            ref=f"MJ::Inpaint::1::{H}::SOLO",
            parent_image_size=(500, 500),
            regions=[(0.5, 0.5, 0.5, 0.9), (0.1, 0.3, 0.2, 0.3)],  # a line, a line
        )
        with pytest.raises(PromptRejected, match="region"):
            await provider.submit(request)
        assert fake.requests == []


@pytest.mark.asyncio
async def test_the_mask_of_an_absurd_image_size_is_bounded() -> None:
    # A size read from a corrupt row: the mask keeps the shape, capped at Midjourney's
    # largest side, and the region still falls where it was drawn.
    request = SubmitRequest(Action.INPAINT, regions=[(0.5, 0.5, 1.0, 1.0)])
    mask = decode_data_url(await mask_data_url(request, (40_000, 20_000)))
    assert mask.size == (MASK_MAX_SIDE, MASK_MAX_SIDE // 2) == (4096, 2048)
    assert white_box(mask) == (2048, 1024, 4096, 2048)
    assert mask_size((1456, 816)) == (1456, 816)  # real Midjourney sizes are kept


@pytest.mark.asyncio
async def test_a_restarted_adapter_reads_what_the_store_kept(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        before = make(fake, client)
        upscaled = await press(before, await imagine_done(before), Action.UPSCALE, 1)
        fake.modal_linger_polls = 2  # trueai keeps MODAL until its queue starts the task
        request = vary_region(upscaled)
        inpaint = job_ref(request, await before.submit(request))
        # A describe whose task does not say so: the generic word trueai uses for actions.
        describe = fake.add_task(action="ACTION", result="describe")
        stored = TaskRef(describe.id, Action.DESCRIBE)
        after = make(fake, client)  # a restart: a new adapter, nothing in memory
        # Without what the store holds, the same answers can only be guessed at: the
        # answered modal reads as a new question, the describe as an image.
        guessed = await after.fetch(task_refs([inpaint.task_id, describe.id]))
        assert guessed[inpaint.task_id].state == TaskState.NEEDS_INPUT
        assert guessed[describe.id].texts == [] and guessed[describe.id].image_urls
        read = await after.fetch([inpaint, stored])
        assert read[inpaint.task_id].state == TaskState.SUBMITTED
        assert read[inpaint.task_id].provider_status == "MODAL"
        assert read[describe.id].state == TaskState.SUCCEEDED
        assert read[describe.id].texts == split_numbered(fake.describe_answer)
        assert len(read[describe.id].texts) == 4 and read[describe.id].image_urls == []
        assert (await finish(after, inpaint)).state == TaskState.SUCCEEDED
        assert fake.violations == []


async def until_done(engine: Engine, job_id: str, seconds: float = 10.0) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = await engine.get(job_id)
        if job is not None and job.finished:
            return job
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish: {await engine.get(job_id)}")


@pytest.mark.asyncio
@pytest.mark.both_stores
async def test_the_engine_keeps_the_answered_modal_across_a_restart(tmp_path: Path) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "providers": [fake.provider_config()],
            }
        )
        engine = Engine(config)
        await engine.start()
        grid = await engine.submit(JobRequest(Action.IMAGINE, prompt="a red fox"))
        grid = await until_done(engine, grid.id)
        upscaled = await engine.submit(JobRequest(Action.UPSCALE, parent_id=grid.id, index=1))
        upscaled = await until_done(engine, upscaled.id)
        fake.modal_linger_polls = 1_000_000  # answered, but the queue does not start it
        job = await engine.submit(
            JobRequest(Action.INPAINT, parent_id=upscaled.id, regions=[(0.0, 0.0, 0.5, 0.5)])
        )
        while fake.count("/submit/modal") == 0 or (await engine.get(job.id)).task_id is None:
            await asyncio.sleep(0.02)
        task_id = (await engine.get(job.id)).task_id
        await engine.stop()
        fetched = fake.count(f"/task/{task_id}/fetch") + fake.count("list-by-condition")
        engine = Engine(config)  # a restart: new adapters, nothing in memory
        await engine.start()
        try:
            while fake.count(f"/task/{task_id}/fetch") + fake.count("list-by-condition") < (
                fetched + 3
            ):
                await asyncio.sleep(0.02)
            resumed = await engine.get(job.id)
            assert fake.tasks[task_id].status == "MODAL"  # the server still says MODAL
            assert resumed is not None and resumed.status is JobStatus.SUBMITTED
            fake.tasks[task_id].modal_linger = 0  # the queue starts it
            done = await until_done(engine, job.id)
            assert done.status is JobStatus.SUCCEEDED and len(done.images) == 4
        finally:
            await engine.stop()
        assert fake.count("/submit/modal") == 1 and fake.violations == []


# --------------------------------------------------------------------------- other actions


@pytest.mark.asyncio
@pytest.mark.parametrize("count", [2, 5])
async def test_blend(count: int, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        images = [image((i * 40, 0, 0)) for i in range(count)]
        request = SubmitRequest(Action.BLEND, images=images, dimensions="PORTRAIT")
        done = await run(provider, request)
        assert done.grid and {f.action for f in done.followups} >= {Action.UPSCALE}
        body = fake.bodies("/submit/blend")[-1]
        assert len(body["base64Array"]) == count and body["dimensions"] == "PORTRAIT"
        assert fake.violations == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("count", "dimensions"), [(1, "SQUARE"), (6, "SQUARE"), (2, "WIDE")])
async def test_blend_refused_before_sending(
    count: int, dimensions: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        with pytest.raises(PromptRejected):
            await provider.submit(
                SubmitRequest(Action.BLEND, images=[image()] * count, dimensions=dimensions)
            )
        assert fake.requests == []


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["finalPrompt", "description", "prompt"])
async def test_describe_gives_four_prompts(where: str, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.describe_in = where
        provider = make(fake, client)
        request = SubmitRequest(Action.DESCRIBE, images=[image(), image()])
        done = await run(provider, request)
        assert len(done.texts) == 4
        assert (
            done.texts[0]
            == "a red fox sitting in fresh snow, soft watercolor, muted palette --ar 1:1"
        )
        assert all("\u20e3" not in text for text in done.texts)
        assert done.image_urls == [] and done.followups == []
        assert decode_data_url(fake.bodies("/submit/describe")[-1]["base64"]).size == (16, 16)
        assert fake.violations == []


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["finalPrompt", "description"])
async def test_shorten(where: str, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.shorten_in = where
        provider = make(fake, client)
        request = SubmitRequest(Action.SHORTEN, prompt="a very long prompt about a red fox")
        done = await run(provider, request)
        assert done.texts == split_numbered(DEFAULT_SHORTEN)
        assert done.texts[0] == "red fox, snow, watercolor" and len(done.texts) == 5


@pytest.mark.asyncio
async def test_plus_extras_off(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client, plus_extras=False)
        assert provider.supports(Action.SHORTEN) is None
        assert provider.supports(Action.SWAP_FACE) is None
        with pytest.raises(NotOffered):
            await provider.submit(SubmitRequest(Action.SHORTEN, prompt="x"))
        assert fake.requests == []


@pytest.mark.asyncio
async def test_face_swap(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai", key=SECRET) as fake:
        provider = make(fake, client, mode="relax", mode_style="path")
        with pytest.raises(PromptRejected):
            await provider.submit(SubmitRequest(Action.SWAP_FACE, images=[image()]))
        request = SubmitRequest(Action.SWAP_FACE, images=[image(), image((0, 90, 0))])
        done = await run(provider, request)
        assert not done.grid and len(done.image_urls) == 1 and done.followups == []
        assert fake.requests[0].path == "/mj/insight-face/swap"
        assert set(fake.bodies("/insight-face/swap")[0]) >= {"sourceBase64", "targetBase64"}
        assert fake.violations == []


@pytest.mark.asyncio
async def test_cancel_and_image_seed(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        task_id = (await provider.submit(SubmitRequest(Action.IMAGINE, prompt="fox"))).task_id
        await provider.cancel(task_id)
        snap = (await provider.fetch(task_refs([task_id])))[task_id]
        assert snap.state == TaskState.CANCELLED and snap.failure == "取消任务"
        done = await imagine_done(provider)
        assert await provider.image_seed(done.task_id) == fake.seed_value
        with pytest.raises(TaskNotFound):
            await provider.image_seed("999")
    for flavour in ("novicezk", "relay"):  # no cancel route: Spring 404 / relay web page
        async with FakeMjProxy(flavour=flavour) as fake:
            provider = make(fake, client)
            with pytest.raises(NotOffered):
                await provider.cancel("1")
    async with FakeMjProxy(flavour="novicezk") as fake:
        with pytest.raises(NotOffered):
            await make(fake, client).image_seed("1")


# --------------------------------------------------------------------------- fetch


@pytest.mark.asyncio
async def test_batch_fetch_many_ids(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        provider.batch_size = 20  # a small batch, to see the ids cut into several
        ids = [fake.add_task(prompt=f"fox {i}").id for i in range(45)]
        unknown = ["1", "2", "3", "4", "5"]
        snaps = await provider.fetch(task_refs(ids + unknown + ids[:3]))  # duplicates asked once
        assert set(snaps) == set(ids)
        assert all(s.state == TaskState.SUBMITTED for s in snaps.values())
        sizes = [len(b["ids"]) for b in fake.bodies("/task/list-by-condition")]
        assert sizes == [20, 20, 10]
        assert fake.count("/fetch") == 0 and fake.violations == []


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["novicezk", "trueai", "relay"])
async def test_batch_fetch_falls_back_and_remembers(
    flavour: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour=flavour) as fake:
        fake.list_by_condition = False
        provider = make(fake, client)
        ids = [fake.add_task().id for _ in range(3)]
        first = await provider.fetch(task_refs([*ids, "424242"]))
        second = await provider.fetch(task_refs(ids))
        assert set(first) == set(second) == set(ids)
        assert second[ids[0]].state == TaskState.RUNNING  # each fetch advanced the tasks
        assert fake.count("/task/list-by-condition") == 1  # not asked again
        assert fake.count("/fetch", "GET") == 7


@pytest.mark.asyncio
async def test_batch_fetch_off_by_config(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client, batch_fetch=False)
        assert Feature.BATCH_FETCH not in provider.features
        task = fake.add_task()
        assert set(await provider.fetch(task_refs([task.id]))) == {task.id}
        assert fake.count("/task/list-by-condition") == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["novicezk", "trueai", "relay"])
async def test_unknown_ids_are_absent(flavour: str, client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour=flavour) as fake:
        provider = make(fake, client, batch_fetch=False)
        known = fake.add_task().id
        assert set(await provider.fetch(task_refs(["1", known, "2"]))) == {known}
        fake.fail_http(200, body='{"code": 4, "description": "task not found"}', match="/9/")
        assert await provider.fetch(task_refs(["9"])) == {}


@pytest.mark.asyncio
async def test_every_status_and_odd_progress(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        script = [
            ("NOT_START", None),
            ("SUBMITTED", ""),
            ("IN_PROGRESS", "N/A"),
            ("IN_PROGRESS", "46%"),
            ("PAUSED_FOR_REASONS", "7"),
            ("MODAL", "0%"),
            ("IN_PROGRESS", 88),
            ("CANCEL", "12%"),
        ]
        task = fake.add_task(script=script)
        seen = [(await provider.fetch(task_refs([task.id])))[task.id] for _ in script]
        assert [s.state for s in seen] == [
            TaskState.QUEUED,
            TaskState.SUBMITTED,
            TaskState.RUNNING,
            TaskState.RUNNING,
            TaskState.RUNNING,
            TaskState.NEEDS_INPUT,
            TaskState.RUNNING,
            TaskState.CANCELLED,
        ]
        assert [s.progress for s in seen[:5]] == [None, None, None, 46.0, 7.0]
        assert seen[4].provider_status == "PAUSED_FOR_REASONS"
    assert [parse_progress(v) for v in ("100%", "0.5", "abc", True, 250)] == [
        100.0,
        0.5,
        None,
        None,
        100.0,
    ]


@pytest.mark.asyncio
async def test_failure_keeps_the_servers_words(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        fake.fail_with = "[Banned prompt detected] Sorry! Our AI moderator thinks this prompt..."
        provider = make(fake, client)
        done = await imagine_done(provider)
        assert done.state == TaskState.FAILED and done.failure == fake.fail_with
        assert done.image_urls == [] and done.followups == []


# --------------------------------------------------------------------------- submit codes


@pytest.mark.asyncio
async def test_queued_submissions_are_accepted(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        fake.queue_code(22, numberOfQueues=3)
        result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert result.snapshot is not None and result.snapshot.queue_position == 3
        assert result.snapshot.state == TaskState.QUEUED and result.task_id in fake.tasks
        fake.queue_code(21, "任务已存在", status="SUCCESS")
        assert (await provider.submit(SubmitRequest(Action.IMAGINE, prompt="b"))).task_id
    async with FakeMjProxy(flavour="relay") as fake:  # relays rewrite 22 to 1
        fake.queue_code(22)
        result = await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a"))
        assert result.snapshot is None and result.task_id in fake.tasks


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        ({"code": 23, "description": "队列已满，请稍后尝试"}, RateLimited, "队列已满"),
        ({"code": 3, "description": "无可用的账号实例"}, ProviderUnavailable, "无可用的账号实例"),
        ({"code": 4, "description": "prompt不能为空"}, PromptRejected, "prompt不能为空"),
        ({"code": 9, "description": "系统异常"}, ProviderUnavailable, "系统异常"),
        ({"code": 27, "description": "something odd"}, ProviderError, "something odd"),
        ({"success": False, "code": -1, "message": "今日绘图次数已达上限"}, ProviderError,
         "今日绘图次数已达上限"),
    ],
)  # fmt: skip
async def test_submit_error_codes(
    answer: dict[str, Any], error: type[ProviderError], words: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.queue_answer(answer)
        with pytest.raises(error) as caught:
            await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert type(caught.value) is error or error is ProviderError
        assert words in str(caught.value)


@pytest.mark.asyncio
async def test_banned_prompt_names_the_word(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        with pytest.raises(PromptRejected, match="'forbidden'") as caught:
            await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a forbidden fox"))
        assert "可能包含敏感词" in str(caught.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["trueai", "relay"])
async def test_action_on_unknown_parent(flavour: str, client: httpx.AsyncClient) -> None:
    # trueai: 404 + {"code": 3}; relay: 400 + {"code": 4}: never "endpoint not offered".
    async with FakeMjProxy(flavour=flavour) as fake:
        request = SubmitRequest(
            Action.UPSCALE, parent_task_id="77", index=1, ref=f"MJ::JOB::upsample::1::{H}"
        )
        with pytest.raises((TaskNotFound, PromptRejected)) as caught:
            await make(fake, client).submit(request)
        assert "task" in str(caught.value) or "任务" in str(caught.value)


# --------------------------------------------------------------------------- transport


@pytest.mark.asyncio
async def test_401_with_empty_body(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="novicezk", key=SECRET) as fake:
        fake.fail_http(401, times=5)
        provider = make(fake, client)
        with pytest.raises(BadKey):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a"))
        with pytest.raises(BadKey):
            await provider.fetch(task_refs(["1"]))


@pytest.mark.asyncio
async def test_429_retry_honours_retry_after(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        fake.fail_http(429, times=2, retry_after=0.15, match="imagine")
        started = time.monotonic()
        result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert time.monotonic() - started >= 0.3
        assert result.task_id and fake.count("/submit/imagine") == 3
        fake.fail_http(429, times=10, retry_after=0.01, match="imagine")
        with pytest.raises(RateLimited):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))


@pytest.mark.asyncio
async def test_500_retried_for_reads_not_for_submissions(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        task = fake.add_task()
        fake.fail_http(500, times=2, match="list-by-condition")
        assert set(await provider.fetch(task_refs([task.id]))) == {task.id}
        assert fake.count("/task/list-by-condition") == 3
        fake.fail_http(502, times=1, match="imagine")
        with pytest.raises(ProviderUnavailable):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert fake.count("/submit/imagine") == 1  # may have been accepted: never sent twice


@pytest.mark.asyncio
async def test_html_and_malformed_answers(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        fake.send_html(match="imagine")
        with pytest.raises(BadResponse, match="not JSON"):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        fake.send_malformed(match="imagine")
        with pytest.raises(BadResponse):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        fake.send_html(match="fetch", times=10)
        with pytest.raises(BadResponse):
            await make(fake, client, batch_fetch=False).fetch(task_refs(["1"]))


@pytest.mark.asyncio
async def test_connection_reset(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        fake.reset_connection(match="imagine")
        with pytest.raises(ProviderUnavailable):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert fake.count("/submit/imagine") == 1
        task = fake.add_task()
        fake.reset_connection(match="list-by-condition")
        assert set(await provider.fetch(task_refs([task.id]))) == {task.id}  # reads are retried


@pytest.mark.asyncio
async def test_slow_answer_times_out(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client, request_timeout=0.2)
        fake.slow(1.0, match="imagine")
        with pytest.raises(ProviderUnavailable, match="in time"):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))


@pytest.mark.asyncio
async def test_expired_image_urls(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.script = [("SUCCESS", "100%")]
        fake.image_ttl_fetches = 1
        provider = make(fake, client)
        done = await imagine_done(provider)
        assert (await provider.download(done.image_urls[0], 1 << 20)).startswith(b"\x89PNG")
        with pytest.raises(ImageGone, match="expired"):
            await provider.download(done.image_urls[0], 1 << 20)
        other = await imagine_done(provider)
        fake.expire_images()
        with pytest.raises(ImageGone, match="HTTP 403"):
            await provider.download(other.image_urls[0], 1 << 20)
        fake.image_ttl_seconds = -60  # ex= already in the past
        fake.image_ttl_fetches = None
        with pytest.raises(ImageGone, match="expired"):
            await provider.download((await imagine_done(provider)).image_urls[0], 1 << 20)
        assert fake.violations == []  # the key never went to the CDN


@pytest.mark.asyncio
async def test_check_tells_the_cases_apart(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay", key=SECRET) as fake:
        assert (await make(fake, client).check()).status == "healthy"
        fake.list_by_condition = False  # relay: web page for list-by-condition and list
        assert (await make(fake, client).check()).status == "healthy"
        bad = await make(fake, client, api_key="nope").check()
        assert bad.status == "bad_key" and "api_key" in bad.detail
        fake.fail_http(503)
        assert (await make(fake, client).check()).status == "error"
        fake.send_html(times=3)
        html = await make(fake, client).check()
        assert html.status == "error" and "web page" in html.detail
        url = fake.base_url
    gone = await make(fake, client, base_url=url).check()
    assert gone.status == "unreachable" and "\n" not in gone.detail
    assert all(SECRET not in c.detail for c in (bad, html, gone))


@pytest.mark.asyncio
async def test_no_secret_in_errors_or_reprs(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay", key=SECRET) as fake:
        provider = make(fake, client)
        errors: list[BaseException] = []
        fake.queue_answer({"code": 4, "description": f"token {SECRET} has no quota"})
        fake.queue_answer({"error": {"message": f"bad token {SECRET}"}}, status=401)
        for _ in range(3):
            if len(errors) == 2:
                fake.fail_http(429, times=10, retry_after=0)
            try:
                await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
            except ProviderError as err:
                errors.append(err)
        fake.send_html(times=10, match="fetch")
        try:
            await make(fake, client, batch_fetch=False).fetch(task_refs(["1"]))
        except ProviderError as err:
            errors.append(err)
        assert len(errors) == 4
        assert "***" in str(errors[0]) and "no quota" in str(errors[0])
        for text in [*map(str, errors), *map(repr, errors), repr(provider), str(provider)]:
            assert SECRET not in text
        assert SECRET not in repr(provider.config)


def test_declared_capabilities() -> None:
    config = MjProxyConfig(name="mj", kind="mj-proxy", base_url="http://x", poll_interval=7)
    provider = MjProxyProvider(config, httpx.AsyncClient())
    assert provider.kind == "mj-proxy" and provider.poll_interval == 7
    assert provider.batch_size == 200
    for action in Action:
        support = provider.supports(action)
        assert support is not None and support.how == How.NATIVE
    assert provider.features == {
        Feature.CANCEL,
        Feature.BATCH_FETCH,
        Feature.CALLBACKS,
        Feature.MODES,
        Feature.PROGRESS,
        Feature.PREVIEW,
        Feature.IMAGE_SEED,
    }
    assert "steps" not in MJ_PARAM_NAMES and {"niji", "zoom", "sref", "relax"} <= MJ_PARAM_NAMES
    plain = MjProxyProvider(config.model_copy(update={"poll_interval": None}), httpx.AsyncClient())
    assert plain.poll_interval == 3.0


def test_snapshot_of_odd_finished_tasks() -> None:
    config = MjProxyConfig(name="mj", kind="mj-proxy", base_url="http://x")
    provider = MjProxyProvider(config, httpx.AsyncClient())
    # SUCCESS stored a moment before imageUrl: still running, so the runner polls again.
    early = provider.snapshot({"id": 5, "action": "IMAGINE", "status": "SUCCESS"})
    assert early.task_id == "5" and early.state == TaskState.RUNNING and early.progress == 100
    # A describe that finished without its prompts is a failure, not an empty success.
    empty = provider.snapshot({"id": "6", "action": "DESCRIBE", "status": "SUCCESS"})
    assert empty.state == TaskState.FAILED and "prompts" in (empty.failure or "")
    # A callback payload (notifyHook) reads the same as a fetch; imageUrls as plain strings.
    hook = provider.snapshot(
        {
            "id": "7",
            "action": "UPSCALE",
            "status": "SUCCESS",
            "imageUrl": "https://cdn.example/u.png",
            "imageUrls": ["https://cdn.example/u.png"],
            "seed": 12345,
            "properties": {"finalPrompt": "a fox"},
        }
    )
    assert hook.state == TaskState.SUCCEEDED and not hook.grid and hook.seed == "12345"
    assert hook.followups == [] and hook.extra["finalPrompt"] == "a fox"
    failed = provider.snapshot({"id": "8", "status": "FAILURE", "failReason": ""})
    assert failed.state == TaskState.FAILED and failed.failure


@pytest.mark.asyncio
async def test_callbacks_carry_the_task(client: httpx.AsyncClient) -> None:
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    try:
        async with FakeMjProxy(flavour="trueai") as fake:
            provider = make(fake, client)
            request = SubmitRequest(Action.IMAGINE, prompt="a fox", callback_url=url)
            done = await run(provider, request)
            for _ in range(100):
                if received and received[-1]["status"] == "SUCCESS":
                    break
                await asyncio.sleep(0.01)
        statuses = [payload["status"] for payload in received]
        assert statuses[0] == "NOT_START" and statuses[-1] == "SUCCESS"
        last = provider.snapshot(received[-1])
        assert last.state == TaskState.SUCCEEDED and last.image_urls == done.image_urls
    finally:
        await runner.cleanup()


# --------------------------------------------------------------------------- real-server quirks


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "answer",
    [
        # trueai's queue-full is code 9, never 23 (DiscordService.RedisEnqueue).
        {"code": 9, "description": "提交失败，队列已满，请稍后重试", "properties": {}},
        # trueai's per-user caps: code 4 from imagine, {"success": false} elsewhere.
        {"code": 4, "description": "并发数已达上限"},
        {"success": False, "code": -1, "message": "队列数已达上限", "timestamp": "1"},
    ],
)
async def test_busy_answers_are_rate_limited(
    answer: dict[str, Any], client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.queue_answer(answer)
        with pytest.raises(RateLimited):  # nothing was accepted: the engine sends it later
            await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert fake.count("/submit/imagine") == 1 and not fake.tasks
        fake.queue_answer({"success": False, "code": -1, "message": "今日绘图次数已达上限"})
        with pytest.raises(ProviderError) as caught:  # a daily quota: no point waiting
            await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert not isinstance(caught.value, RateLimited)


def test_failure_reason_is_never_the_description() -> None:
    provider = MjProxyProvider(
        MjProxyConfig(name="mj", kind="mj-proxy", base_url="http://x"), httpx.AsyncClient()
    )
    # new-api keeps its submit answer in `description` (and fails rows without a reason);
    # novicezk and trueai keep the command there.
    for description in ("提交成功", "/imagine a red fox"):
        snap = provider.snapshot(
            {"id": "1", "status": "FAILURE", "progress": "100%", "description": description}
        )
        assert snap.state == TaskState.FAILED
        assert snap.failure and description not in snap.failure
    # trueai's cancel: FAILURE "取消任务" is a cancellation.
    cancelled = provider.snapshot({"id": "2", "status": "FAILURE", "failReason": "取消任务"})
    assert cancelled.state == TaskState.CANCELLED and cancelled.failure == "取消任务"


@pytest.mark.asyncio
@pytest.mark.parametrize("flavour", ["trueai", "relay"])
async def test_modal_status_after_the_modal_is_not_a_new_question(
    flavour: str, client: httpx.AsyncClient
) -> None:
    async with FakeMjProxy(flavour=flavour) as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        upscaled = await press(provider, await imagine_done(provider), Action.UPSCALE, 1)
        request = vary_region(upscaled)
        ref = job_ref(request, await provider.submit(request))
        task_id = ref.task_id
        raw = fake.tasks[task_id]
        assert raw.status == "MODAL" and raw.modal is None  # answered, not started yet
        snap = (await provider.fetch([ref]))[task_id]
        assert snap.state == TaskState.SUBMITTED and snap.provider_status == "MODAL"
        assert (await finish(provider, ref)).state == TaskState.SUCCEEDED
        # A MODAL task whose modal was never sent still asks for input.
        other = fake.add_task(script=[("MODAL", "0%")])
        assert (await provider.fetch(task_refs([other.id])))[
            other.id
        ].state == TaskState.NEEDS_INPUT


@pytest.mark.asyncio
async def test_list_by_condition_with_one_id_twice(client: httpx.AsyncClient) -> None:
    # new-api stores a second row for a task id after /submit/modal, and list-by-condition
    # returns both (model.GetByMJIds): the stale MODAL row must not hide the live one.
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        task_id = fake.add_task().id
        rows = [
            {"id": task_id, "status": "IN_PROGRESS", "progress": "50%", "action": "MODAL"},
            {"id": task_id, "status": "MODAL", "progress": "0%", "action": "INPAINT"},
        ]
        for order in (rows, rows[::-1]):
            fake.fail_http(200, body=json.dumps(order), match="list-by-condition")
            snap = (await provider.fetch(task_refs([task_id])))[task_id]
            assert snap.state == TaskState.RUNNING and snap.progress == 50.0


@pytest.mark.asyncio
async def test_relay_code_4_task_not_found(client: httpx.AsyncClient) -> None:
    # new-api: 400 {"code": 4, "description": "task_not_found "} / "task_no_found ".
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        request = SubmitRequest(
            Action.UPSCALE, parent_task_id="77", index=1, ref=f"MJ::JOB::upsample::1::{H}"
        )
        with pytest.raises(TaskNotFound):
            await provider.submit(request)
        with pytest.raises(TaskNotFound):
            await provider.image_seed("999")
        fake.queue_answer({"code": 4, "description": "prompt_is_required "}, status=400)
        with pytest.raises(PromptRejected):  # other code-4 words stay a refusal
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))


@pytest.mark.asyncio
async def test_image_seed_not_found_is_not_an_account_problem(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client)
        done = await imagine_done(provider)
        # trueai TaskService.SubmitSeed: {"code": 3, "description": "未找到 seed"}
        fake.fail_http(200, body='{"code": 3, "description": "未找到 seed"}', match="image-seed")
        with pytest.raises(ProviderError, match="no seed") as caught:
            await provider.image_seed(done.task_id)
        assert not isinstance(caught.value, ProviderUnavailable)


@pytest.mark.asyncio
async def test_cancel_redirect_is_not_a_success(client: httpx.AsyncClient) -> None:
    # new-api behind FRONTEND_BASE_URL: 301 to the front end, empty body for a POST.
    async with FakeMjProxy(flavour="relay") as fake:
        fake.fail_http(301, match="cancel")
        with pytest.raises(NotOffered):
            await make(fake, client).cancel("1")


@pytest.mark.asyncio
async def test_relay_web_page_for_a_missing_route(client: httpx.AsyncClient) -> None:
    # A relay without /submit/action (older new-api/one-api) serves its web page with 200:
    # U/V/🔄 still go through /submit/change; other buttons are not offered.
    async with FakeMjProxy(flavour="relay") as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = make(fake, client)
        grid = await imagine_done(provider)
        fake.send_html(match="/submit/action", times=2)
        upscaled = await press(provider, grid, Action.UPSCALE, 2)
        assert upscaled.state == TaskState.SUCCEEDED
        assert fake.count("/submit/action") == 1 and fake.count("/submit/change") == 1
        with pytest.raises(NotOffered):
            await press(provider, upscaled, Action.PAN, 0, "left")
        fake.send_html(match="/submit/shorten")
        with pytest.raises(NotOffered):
            await provider.submit(SubmitRequest(Action.SHORTEN, prompt="a long prompt"))


@pytest.mark.asyncio
async def test_describe_prompts_one_a_line(client: httpx.AsyncClient) -> None:
    # trueai's official/partner accounts: unnumbered prompts joined with "\r\n".
    prompts = [f"a red fox, style {n} --ar 1:1" for n in range(1, 5)]
    async with FakeMjProxy(flavour="trueai") as fake:
        fake.describe_answer = "\r\n".join(prompts)
        provider = make(fake, client)
        request = SubmitRequest(Action.DESCRIBE, images=[image()])
        done = await run(provider, request)
        assert done.texts == prompts


@pytest.mark.asyncio
async def test_mode_path_on_a_server_without_it_says_how_to_fix_it(
    client: httpx.AsyncClient,
) -> None:
    async with FakeMjProxy(flavour="novicezk") as fake:  # context path /mj only
        provider = make(fake, client, mode_style="path", mode="relax")
        with pytest.raises(NotOffered, match='mode_style = "prompt"'):
            await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        await make(fake, client, mode_style="prompt", mode="relax").submit(
            SubmitRequest(Action.IMAGINE, prompt="a fox")
        )
        assert fake.bodies("/submit/imagine")[-1]["prompt"] == "a fox --relax"


@pytest.mark.asyncio
async def test_image_seed_may_take_longer_than_a_request(client: httpx.AsyncClient) -> None:
    # trueai's image-seed waits (up to 60 s) for a worker to ask Discord.
    async with FakeMjProxy(flavour="trueai") as fake:
        provider = make(fake, client, request_timeout=0.2)
        done = await imagine_done(provider)
        fake.slow(0.5, match="image-seed", times=FAST.attempts)
        assert await provider.image_seed(done.task_id) == fake.seed_value


@pytest.mark.asyncio
async def test_relay_key_without_the_model_is_not_a_bad_key(client: httpx.AsyncClient) -> None:
    # new-api's distributor: 403 {"error": {"message": "该令牌无权访问模型 mj_shorten"}}.
    async with FakeMjProxy(flavour="relay") as fake:
        provider = make(fake, client)
        forbidden = {"error": {"message": "该令牌无权访问模型 mj_shorten", "type": "new_api_error"}}
        fake.queue_answer(forbidden, status=403)
        with pytest.raises(NotOffered, match="mj_shorten"):
            await provider.submit(SubmitRequest(Action.SHORTEN, prompt="a long prompt"))
        fake.queue_answer({"error": {"message": "无效的令牌", "type": "new_api_error"}}, status=403)
        with pytest.raises(BadKey):
            await provider.submit(SubmitRequest(Action.SHORTEN, prompt="a long prompt"))


@pytest.mark.asyncio
async def test_relay_upstream_failure_is_unavailable(client: httpx.AsyncClient) -> None:
    # new-api: 400 {"code": 5 (MjErrorUnknown), "description": "do_request_failed "}.
    async with FakeMjProxy(flavour="relay") as fake:
        answer = {"code": 5, "description": "do_request_failed ", "type": "upstream_error"}
        fake.queue_answer(answer, status=400)
        with pytest.raises(ProviderUnavailable, match="do_request_failed"):
            await make(fake, client).submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
        assert fake.count("/submit/imagine") == 1  # a submission is never sent twice
