"""MaaS-MJ adapter against the fake Cloudsway server, over real HTTP on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.config import MaasMjConfig
from bot.providers.base import (
    BadKey,
    BadResponse,
    FollowUp,
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
    TaskNotFound,
    TaskSnapshot,
    TaskState,
    task_refs,
)
from bot.providers.maas_mj import MaasMjProvider, inpaint_areas, mask_size
from bot.vocab import Action
from tests.fakes.maas_fake import FakeMaasMj

KEY = "RWsecretKEY0Gd"
ENDPOINT = "eljciTfuqTxBSjXl"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
PROMPT = "a red racing car on a mountain road --ar 16:9 --v 7"


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaasMj]:
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT) as server:
        yield server
        assert server.violations == []


def make(base_url: str, client: httpx.AsyncClient, **overrides: Any) -> MaasMjProvider:
    settings: dict[str, Any] = {
        "name": "cloudsway-mj",
        "kind": "maas-mj",
        "base_url": base_url,
        "endpoint": ENDPOINT,
        "api_key": KEY,
    }
    settings.update(overrides)
    return MaasMjProvider(MaasMjConfig(**settings), client, policy=FAST)


async def finish(provider: MaasMjProvider, task_id: str) -> tuple[TaskSnapshot, list[TaskSnapshot]]:
    seen: list[TaskSnapshot] = []
    for _ in range(20):
        snap = (await provider.fetch(task_refs([task_id])))[task_id]
        seen.append(snap)
        if snap.state.finished:
            return snap, seen
    raise AssertionError("the job never finished")


async def imagine(provider: MaasMjProvider, prompt: str = PROMPT) -> TaskSnapshot:
    result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt=prompt))
    snap, _ = await finish(provider, result.task_id)
    assert snap.state is TaskState.SUCCEEDED
    return snap


def followup_set(snap: TaskSnapshot) -> set[tuple[str, int, str]]:
    return {(f.action.value, f.index, f.variant) for f in snap.followups}


def on_image(action: Action, parent: TaskSnapshot, index: int = 0, **fields: Any) -> SubmitRequest:
    """A follow-up request as the engine builds it: the parent's task id and extra."""
    return SubmitRequest(
        action,
        prompt=fields.pop("prompt", PROMPT),
        parent_task_id=parent.task_id,
        parent_extra=dict(parent.extra),
        index=index,
        **fields,
    )


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------- imagine


@pytest.mark.asyncio
async def test_imagine_lifecycle_over_the_wire(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt=PROMPT))
    # The submit answer already is the job.
    assert result.snapshot is not None and result.snapshot.state is TaskState.QUEUED
    assert result.snapshot.task_id == result.task_id
    sent = fake.api_requests("/tob/diffusion", "POST")
    assert [r.json for r in sent] == [{"text": PROMPT}]
    assert sent[0].headers["Authorization"] == f"Bearer {KEY}"
    assert sent[0].path == f"/v1/ai/{ENDPOINT}/tob/diffusion"

    snap, seen = await finish(provider, result.task_id)
    states = [s.state for s in seen]
    # status 1, then status 2 with urls still empty (keep polling), then the images.
    assert states == [TaskState.RUNNING, TaskState.RUNNING, TaskState.SUCCEEDED]
    assert seen[1].provider_status == "Success" and seen[1].image_urls == []
    assert snap.grid is False and len(snap.image_urls) == 4 and all(snap.image_urls)
    assert snap.withheld == [] and snap.progress is None and snap.seed
    assert snap.extra == {"jobId": result.task_id, "urls": snap.image_urls}
    assert followup_set(snap) == (
        {("upscale", n, "") for n in range(1, 5)}
        | {("variation", n, "") for n in range(1, 5)}
        | {("reroll", 0, "")}
    )
    assert [r.path for r in fake.api_requests("/tob/job/")] == [
        f"/v1/ai/{ENDPOINT}/tob/job/{result.task_id}"
    ] * 3

    # The images are real PNGs, downloaded without our key (the CDN does not need it).
    blobs = [await provider.download(url, 10 * 1024 * 1024) for url in snap.image_urls]
    assert all(blob.startswith(b"\x89PNG") for blob in blobs)
    assert len(set(blobs)) == 4
    cdn = [r for r in fake.requests if r.path.startswith("/cdn/")]
    assert len(cdn) == 4 and all("Authorization" not in r.headers for r in cdn)


@pytest.mark.asyncio
async def test_capabilities_declared(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    assert provider.kind == "maas-mj"
    assert provider.supports(Action.IMAGINE).how is How.NATIVE  # type: ignore[union-attr]
    assert provider.supports(Action.UPSCALE).how is How.SELECT  # type: ignore[union-attr]
    reroll = provider.supports(Action.REROLL)
    assert reroll is not None and reroll.how is How.EMULATED and "same prompt" in reroll.note
    for action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE, Action.INPAINT):
        assert provider.supports(action).how is How.NATIVE  # type: ignore[union-attr]
    # Undocumented on Cloudsway: offered until found out.
    for action in (Action.VARIATION, Action.VARY_SUBTLE, Action.VARY_STRONG, Action.PAN,
                   Action.ZOOM):  # fmt: skip
        assert provider.supports(action).how is How.NATIVE  # type: ignore[union-attr]
    for action in (Action.DESCRIBE, Action.BLEND, Action.SHORTEN, Action.SWAP_FACE):
        assert provider.supports(action) is None
    assert "steps" not in provider.accepted_params and "zoom" not in provider.accepted_params
    assert {"aspect", "sref", "oref", "draft", "turbo", "niji"} <= provider.accepted_params
    assert provider.batch_size == 1 and provider.max_images == 0


@pytest.mark.asyncio
async def test_mode_travels_in_the_prompt(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat", mode="relax"))
    await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a dog --fast", mode="relax"))
    texts = [r.json["text"] for r in fake.api_requests("/tob/diffusion")]
    assert texts == ["a cat --relax", "a dog --fast"]


@pytest.mark.asyncio
async def test_prompt_length_checked_before_sending(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    with pytest.raises(PromptRejected, match="8192"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="x" * 8193))
    with pytest.raises(NotOffered, match="image URLs"):
        await provider.submit(
            SubmitRequest(Action.IMAGINE, prompt="a cat", images=[ImageInput(b"png")])
        )
    assert fake.api_requests() == []


# ---------------------------------------------------------------------- withheld, failures


@pytest.mark.asyncio
async def test_withheld_images_keep_their_positions(fake: FakeMaasMj, client: httpx.AsyncClient):
    fake.withhold = {1}
    provider = make(fake.base_url, client)
    snap = await imagine(provider)
    assert snap.image_urls[1] == "" and all(snap.image_urls[i] for i in (0, 2, 3))
    assert snap.withheld == [1]
    assert ("upscale", 2, "") not in followup_set(snap)
    assert ("variation", 2, "") not in followup_set(snap)
    assert ("upscale", 3, "") in followup_set(snap)
    with pytest.raises(PromptRejected, match="withheld"):
        provider.select(snap.task_id, snap.extra, 2)
    assert provider.select(snap.task_id, snap.extra, 3).image_urls == [snap.image_urls[2]]
    # V2 on the withheld image is refused before any call.
    with pytest.raises(PromptRejected, match="withheld"):
        await provider.submit(on_image(Action.VARIATION, snap, index=2))


@pytest.mark.asyncio
async def test_all_images_withheld_is_a_failure(fake: FakeMaasMj, client: httpx.AsyncClient):
    fake.withhold = {0, 1, 2, 3}
    provider = make(fake.base_url, client)
    result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    snap, _ = await finish(provider, result.task_id)
    assert snap.state is TaskState.FAILED and "withheld all 4" in (snap.failure or "")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("comment", "words"),
    [
        ("TextReject", "refused the prompt"),
        ("BadPrompt", "could not use the prompt"),
        ("Reject", "did not pass the provider's image review"),
        ("InvalidParameter", "parameter in the prompt is not valid"),
        ("Timeout", "took too long"),
        ("CreditNotEnough", "out of credit"),
        ("Something odd", "reported a failure: Something odd"),
    ],
)
async def test_failed_job_comment_in_user_words(
    fake: FakeMaasMj, client: httpx.AsyncClient, comment: str, words: str
):
    fake.fail_comment = comment
    provider = make(fake.base_url, client)
    result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    snap, _ = await finish(provider, result.task_id)
    assert snap.state is TaskState.FAILED
    assert words in (snap.failure or "")
    assert snap.provider_status == comment


# ---------------------------------------------------------------------- select and upscale


@pytest.mark.asyncio
async def test_select_and_upscales(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    picked = provider.select(grid.task_id, grid.extra, 3)
    assert picked.state is TaskState.SUCCEEDED
    assert picked.image_urls == [grid.image_urls[2]]
    assert picked.extra == {"jobId": grid.task_id, "imageNo": 2}
    assert {
        ("upscale_subtle", 0, ""),
        ("upscale_creative", 0, ""),
        ("vary_subtle", 0, ""),
        ("vary_strong", 0, ""),
        ("inpaint", 0, ""),
    } <= followup_set(picked)
    assert fake.api_requests("/tob/upscale") == []  # a selection calls nothing

    # submit(UPSCALE) answers the same selection without a call.
    direct = await provider.submit(on_image(Action.UPSCALE, grid, index=3))
    assert direct.snapshot is not None and direct.snapshot.image_urls == picked.image_urls

    for action, kind in ((Action.UPSCALE_SUBTLE, 0), (Action.UPSCALE_CREATIVE, 1)):
        # The engine passes the selection's task id (the grid's) and its extra.
        request = SubmitRequest(
            action, parent_task_id=grid.task_id, parent_extra=dict(picked.extra)
        )
        result = await provider.submit(request)
        assert fake.api_requests("/tob/upscale")[-1].json == {
            "jobId": grid.task_id,
            "imageNo": 2,
            "type": kind,
        }
        upscaled, _ = await finish(provider, result.task_id)
        assert upscaled.state is TaskState.SUCCEEDED and len(upscaled.image_urls) == 1
        # Vary (Region) only: /tob/inpaint takes any job and an image number.
        assert upscaled.followups == [FollowUp(Action.INPAINT)]


@pytest.mark.asyncio
async def test_upscale_of_a_vanished_job_is_task_not_found(
    fake: FakeMaasMj, client: httpx.AsyncClient
):
    provider = make(fake.base_url, client)
    request = SubmitRequest(
        Action.UPSCALE_SUBTLE, parent_task_id="gone", parent_extra={"jobId": "gone", "imageNo": 0}
    )
    with pytest.raises(TaskNotFound, match="no longer knows"):
        await provider.submit(request)
    assert provider.supports(Action.UPSCALE_SUBTLE) is not None


# ---------------------------------------------------------------------- variation


@pytest.mark.asyncio
async def test_variation_found_at_run_time(client: httpx.AsyncClient):
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT, variation=True) as fake:
        provider = make(fake.base_url, client)
        grid = await imagine(provider)
        assert provider.offered("variation") is None
        result = await provider.submit(on_image(Action.VARIATION, grid, index=3))
        # V3 = strong variation of image 3 (imageNo 2).
        assert fake.api_requests("/tob/variation")[-1].json == {
            "jobId": grid.task_id,
            "imageNo": 2,
            "type": 1,
        }
        assert provider.offered("variation") is True
        varied, _ = await finish(provider, result.task_id)
        assert len(varied.image_urls) == 4 and ("variation", 1, "") in followup_set(varied)

        picked = provider.select(grid.task_id, grid.extra, 1)
        request = SubmitRequest(
            Action.VARY_SUBTLE, parent_task_id=grid.task_id, parent_extra=dict(picked.extra)
        )
        await provider.submit(request)
        assert fake.api_requests("/tob/variation")[-1].json == {
            "jobId": grid.task_id,
            "imageNo": 0,
            "type": 0,
        }
        assert fake.violations == []


@pytest.mark.asyncio
@pytest.mark.parametrize("absent_status", [404, 405])
async def test_variation_absent_is_remembered(client: httpx.AsyncClient, absent_status: int):
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT, absent_status=absent_status) as fake:
        provider = make(fake.base_url, client)
        grid = await imagine(provider)
        with pytest.raises(NotOffered, match=f"does not offer Vary .*HTTP {absent_status}"):
            await provider.submit(on_image(Action.VARIATION, grid, index=1))
        assert provider.offered("variation") is False
        for action in (Action.VARIATION, Action.VARY_SUBTLE, Action.VARY_STRONG):
            assert provider.supports(action) is None
        # Later snapshots and selections stop offering it...
        again = await imagine(provider)
        assert not any(f.action is Action.VARIATION for f in again.followups)
        picked = provider.select(again.task_id, again.extra, 1)
        assert not {f.action for f in picked.followups} & {Action.VARY_SUBTLE, Action.VARY_STRONG}
        # ...and a stale button fails at once, without asking the provider again.
        with pytest.raises(NotOffered, match="found out earlier"):
            await provider.submit(on_image(Action.VARY_STRONG, picked))
        assert len(fake.api_requests("/tob/variation")) == 1
        # Other actions are unaffected.
        assert provider.supports(Action.UPSCALE_SUBTLE) is not None
        assert fake.violations == []


@pytest.mark.asyncio
async def test_variation_on_a_vanished_job_does_not_hide_variation(client: httpx.AsyncClient):
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT, variation=True) as fake:
        provider = make(fake.base_url, client)
        request = SubmitRequest(
            Action.VARIATION, parent_task_id="gone", parent_extra={"jobId": "gone"}, index=1
        )
        with pytest.raises(TaskNotFound):
            await provider.submit(request)
        assert provider.supports(Action.VARIATION) is not None


# ---------------------------------------------------------------------- reroll, inpaint


@pytest.mark.asyncio
async def test_reroll_is_a_new_run_of_the_same_prompt(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    result = await provider.submit(on_image(Action.REROLL, grid))
    assert result.task_id != grid.task_id
    assert [r.json for r in fake.api_requests("/tob/diffusion")] == [{"text": PROMPT}] * 2


@pytest.mark.asyncio
async def test_inpaint_regions_become_pixel_polygons(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    picked = provider.select(grid.task_id, grid.extra, 2)
    request = SubmitRequest(
        Action.INPAINT,
        prompt="a blue racing car",
        parent_task_id=grid.task_id,
        parent_extra=dict(picked.extra),
        parent_image_size=(1024, 1024),
        regions=[(0.1, 0.2, 0.5, 0.6), (0.9, 0.9, 0.7, 0.95)],
    )
    result = await provider.submit(request)
    assert fake.api_requests("/tob/inpaint")[-1].json == {
        "jobId": grid.task_id,
        "imageNo": 1,
        "mask": {
            "areas": [
                {"width": 1024, "height": 1024, "points": [102, 204, 512, 204, 512, 615, 102, 615]},
                {"width": 1024, "height": 1024, "points": [716, 921, 922, 921, 922, 973, 716, 973]},
            ]
        },
        "remixPrompt": "a blue racing car",
    }
    redrawn, _ = await finish(provider, result.task_id)
    assert redrawn.state is TaskState.SUCCEEDED and len(redrawn.image_urls) == 4

    with pytest.raises(PromptRejected, match="at least one area"):
        await provider.submit(
            SubmitRequest(Action.INPAINT, parent_task_id=grid.task_id,
                          parent_extra=dict(picked.extra), regions=[(0.5, 0.5, 0.5, 0.9)])
        )  # fmt: skip
    assert len(fake.api_requests("/tob/inpaint")) == 1


def test_mask_size_stays_in_the_vendor_bounds():
    assert mask_size((1024, 1024)) == (1024, 1024)
    assert mask_size(None) == (1024, 1024)
    assert mask_size((8192, 2048)) == (4096, 1024)  # long side down to 4096
    assert mask_size((400, 200)) == (1000, 500)  # short side up to 500
    assert mask_size((6000, 400)) == (4096, 500)  # too extreme: clamped
    for size in ((1, 1), (100000, 3), (640, 480), (4097, 4097)):
        width, height = mask_size(size)
        assert 500 <= width <= 4096 and 500 <= height <= 4096
    areas = inpaint_areas([(0.0, 0.0, 1.0, 1.0)], (400, 200))
    assert areas == [{"width": 1000, "height": 500, "points": [0, 0, 1000, 0, 1000, 500, 0, 500]}]


# ---------------------------------------------------------------------- zoom and pan


@pytest.mark.asyncio
async def test_pan_and_zoom_absent_are_not_offered(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    picked = provider.select(grid.task_id, grid.extra, 1)
    assert ("pan", 0, "left") in followup_set(picked) and ("zoom", 0, "2") in followup_set(picked)
    with pytest.raises(NotOffered, match="Pan"):
        await provider.submit(on_image(Action.PAN, picked, variant="left"))
    with pytest.raises(NotOffered, match="Zoom Out"):
        await provider.submit(on_image(Action.ZOOM, picked, variant="2"))
    assert provider.supports(Action.PAN) is None and provider.supports(Action.ZOOM) is None
    later = provider.select(grid.task_id, grid.extra, 1)
    assert not {f.action for f in later.followups} & {Action.PAN, Action.ZOOM}


@pytest.mark.asyncio
async def test_pan_and_zoom_present(client: httpx.AsyncClient):
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT, pan=True, outpaint=True) as fake:
        provider = make(fake.base_url, client)
        grid = await imagine(provider)
        picked = provider.select(grid.task_id, grid.extra, 4)
        for variant, direction in (("down", 0), ("right", 1), ("up", 2), ("left", 3)):
            await provider.submit(on_image(Action.PAN, picked, variant=variant))
            assert fake.api_requests("/tob/pan")[-1].json == {
                "jobId": grid.task_id,
                "imageNo": 3,
                "direction": direction,
                "scale": 1.5,
            }
        result = await provider.submit(on_image(Action.ZOOM, picked, variant="1.5"))
        assert fake.api_requests("/tob/outpaint")[-1].json == {
            "jobId": grid.task_id,
            "imageNo": 3,
            "scale": 1.5,
        }
        zoomed, _ = await finish(provider, result.task_id)
        assert zoomed.state is TaskState.SUCCEEDED
        # Custom zoom takes its factor from --zoom, within the outpaint range.
        await provider.submit(
            on_image(Action.ZOOM, picked, variant="custom", params={"zoom": "1.8"})
        )
        assert fake.api_requests("/tob/outpaint")[-1].json["scale"] == 1.8
        with pytest.raises(PromptRejected, match=r"1\.1 to 2"):
            await provider.submit(on_image(Action.ZOOM, picked, variant="custom"))
        assert provider.offered("pan") is True and provider.offered("outpaint") is True
        assert fake.violations == []


# ---------------------------------------------------------------------- errors


@pytest.mark.asyncio
async def test_http_400_invalid_prompt(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    with pytest.raises(PromptRejected, match="Invalid parameter --repeat"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat --repeat 3"))


@pytest.mark.asyncio
async def test_http_401_bad_key(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, api_key="wrong-key-123")
    with pytest.raises(BadKey, match="api_key"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    with pytest.raises(BadKey):
        await provider.fetch(task_refs(["whatever"]))


@pytest.mark.asyncio
async def test_no_key_configured(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, api_key=None)
    with pytest.raises(BadKey, match="no api_key"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    assert (await provider.check()).status == "bad_key"
    assert fake.api_requests() == []


@pytest.mark.asyncio
async def test_http_402_out_of_credit(fake: FakeMaasMj, client: httpx.AsyncClient):
    fake.credit = False
    provider = make(fake.base_url, client)
    with pytest.raises(ProviderError, match="out of credit") as caught:
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    assert type(caught.value) is ProviderError and not caught.value.retryable
    assert "Insufficient account balance" in str(caught.value)


@pytest.mark.asyncio
async def test_http_403_sensitive_prompt(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    with pytest.raises(PromptRejected, match="sensitive words"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a forbidden thing"))


@pytest.mark.asyncio
async def test_unknown_job_is_absent_from_fetch(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    found = await provider.fetch(task_refs(["no-such-job", grid.task_id]))
    assert list(found) == [grid.task_id]


@pytest.mark.asyncio
async def test_429_is_retried_after_retry_after(fake: FakeMaasMj, client: httpx.AsyncClient):
    fake.fail(429, times=2, path="/tob/diffusion", retry_after="0",
              message="Maximum concurrency reached", reason="Too_Many_Requests")  # fmt: skip
    provider = make(fake.base_url, client)
    result = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    assert result.task_id
    assert len(fake.api_requests("/tob/diffusion")) == 3


@pytest.mark.asyncio
async def test_plan_concurrency_cap_is_rate_limited(fake: FakeMaasMj, client: httpx.AsyncClient):
    fake.max_running = 1
    provider = make(fake.base_url, client)
    await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    with pytest.raises(RateLimited, match="Maximum concurrency") as caught:
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a dog"))
    assert caught.value.retryable
    assert len(fake.api_requests("/tob/diffusion")) == 1 + FAST.attempts


@pytest.mark.asyncio
async def test_server_busy_keeps_the_vendor_message(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    fake.fail(503, times=1, path="/tob/diffusion", message="Server is busy, retry later")
    with pytest.raises(ProviderUnavailable, match="Server is busy, retry later"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    # A submission that may have been accepted is never sent twice.
    assert len(fake.api_requests("/tob/diffusion")) == 1

    grid = await imagine(provider)
    fake.fail(500, times=2, path="/tob/job/")
    assert (await provider.fetch(task_refs([grid.task_id])))[
        grid.task_id
    ].state is TaskState.SUCCEEDED
    fake.fail(500, times=5, path="/tob/job/")
    with pytest.raises(ProviderUnavailable, match="busy"):
        await provider.fetch(task_refs([grid.task_id]))


@pytest.mark.asyncio
async def test_error_body_inside_http_200(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    fake.fail(200, times=1, path="/tob/diffusion",
              body={"code": 500, "message": "Busy now", "reason": "Server_Busy"})  # fmt: skip
    with pytest.raises(ProviderUnavailable, match="Busy now"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))


@pytest.mark.asyncio
async def test_html_and_malformed_answers(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    fake.fail(200, times=1, path="/tob/diffusion", html=True)
    with pytest.raises(BadResponse, match="not JSON"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    fake.fail(200, times=1, path="/tob/diffusion", malformed=True)
    with pytest.raises(BadResponse):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    fake.fail(502, times=1, path="/tob/diffusion", html=True)
    with pytest.raises(ProviderUnavailable, match="HTTP 502"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    grid = await imagine(provider)
    fake.fail(200, times=5, path="/tob/job/", html=True)
    with pytest.raises(BadResponse):
        await provider.fetch(task_refs([grid.task_id]))


@pytest.mark.asyncio
async def test_connection_reset_and_slow_answers(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, request_timeout=0.3)
    grid = await imagine(provider)
    fake.fail(times=1, path="/tob/job/", reset=True)
    assert (await provider.fetch(task_refs([grid.task_id])))[
        grid.task_id
    ].state is TaskState.SUCCEEDED
    fake.fail(times=1, path="/tob/diffusion", reset=True)
    with pytest.raises(ProviderUnavailable, match="may have started"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
    fake.fail(times=1, path="/tob/diffusion", delay=1.0)
    with pytest.raises(ProviderUnavailable, match="did not answer in time"):
        await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))


@pytest.mark.asyncio
async def test_expired_image_links(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    fake.expire_images()
    before = len(fake.requests)
    with pytest.raises(ImageGone, match="expired"):
        await provider.download(grid.image_urls[0], 10 * 1024 * 1024)
    assert len(fake.requests) - before == 1  # a dead link is not asked for again


@pytest.mark.asyncio
async def test_many_ids_are_fetched_concurrently_but_bounded(
    fake: FakeMaasMj, client: httpx.AsyncClient
):
    provider = make(fake.base_url, client)
    ids = [
        (await provider.submit(SubmitRequest(Action.IMAGINE, prompt=f"cat {n}"))).task_id
        for n in range(9)
    ]
    fake.delay = 0.05
    found = await provider.fetch(task_refs(ids))
    assert set(found) == set(ids)
    assert 2 <= fake.peak_inflight <= 4


# ---------------------------------------------------------------------- check, secrets


@pytest.mark.asyncio
async def test_check(fake: FakeMaasMj, client: httpx.AsyncClient):
    assert (await make(fake.base_url, client).check()).status == "healthy"
    assert (await make(fake.base_url, client, api_key="nope-nope").check()).status == "bad_key"
    unreachable = await make(f"http://127.0.0.1:{closed_port()}/v1/ai", client).check()
    assert unreachable.status == "unreachable" and "Cannot reach" in unreachable.detail
    fake.fail(200, times=5, html=True)
    assert (await make(fake.base_url, client).check()).status == "error"
    fake.faults.clear()
    fake.fail(500, times=5)
    busy = await make(fake.base_url, client).check()
    assert busy.status == "error" and "busy" in busy.detail


@pytest.mark.asyncio
async def test_no_secret_in_any_error(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, request_timeout=0.3)
    errors: list[BaseException] = []

    async def collect(coro: Any) -> None:
        try:
            await coro
        except ProviderError as err:
            errors.append(err)

    echo = f"bad key {KEY} for /v1/ai/{ENDPOINT}"  # a server that echoes what it got
    scenarios: list[tuple[dict[str, Any], str]] = [
        ({"status": 400, "message": echo}, "/tob/diffusion"),
        ({"status": 500, "message": echo}, "/tob/diffusion"),
        ({"status": 429, "message": echo, "times": 5, "retry_after": "0"}, "/tob/diffusion"),
        ({"status": 200, "malformed": True}, "/tob/diffusion"),
        ({"status": 200, "body": {"code": 402, "message": echo}}, "/tob/diffusion"),
        ({"reset": True}, "/tob/diffusion"),
        ({"delay": 1.0}, "/tob/diffusion"),
    ]
    for fault, path in scenarios:
        fake.fail(path=path, **fault)
        await collect(provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat")))
    await collect(make(fake.base_url, client, api_key="x" + KEY).fetch(task_refs(["a"])))
    await collect(make(f"http://127.0.0.1:{closed_port()}/v1/ai", client).fetch(task_refs(["a"])))
    assert len(errors) == len(scenarios) + 2
    for err in errors:
        assert KEY not in str(err) and ENDPOINT not in str(err), str(err)
    checks = [await make(fake.base_url, client, api_key="x" + KEY).check()]
    assert all(KEY not in c.detail and ENDPOINT not in c.detail for c in checks)


@pytest.mark.asyncio
async def test_followup_ref_shape_is_json_safe(fake: FakeMaasMj, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    grid = await imagine(provider)
    for item in grid.followups + provider.select(grid.task_id, grid.extra, 1).followups:
        assert FollowUp.from_json(item.to_json()) == item
