"""MaaS-Flux-1-schnell adapter against the fake Cloudsway server, over real HTTP."""

from __future__ import annotations

import io
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from PIL import Image

from bot.config import MaasFluxConfig
from bot.providers.base import (
    BadKey,
    BadResponse,
    How,
    NotOffered,
    PromptRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    SubmitRequest,
    TaskSnapshot,
    TaskState,
    task_refs,
)
from bot.providers.maas_flux import ASPECT_RATIOS, MaasFluxProvider
from bot.vocab import Action
from tests.fakes.maas_fake import FakeMaasFlux

KEY = "RWfluxSECRET77"
ENDPOINT = "lXynAhfbAiD"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMaasFlux]:
    async with FakeMaasFlux(key=KEY, endpoint=ENDPOINT) as server:
        yield server
        assert server.violations == []


def make(base_url: str, client: httpx.AsyncClient, **overrides: Any) -> MaasFluxProvider:
    settings: dict[str, Any] = {
        "name": "flux",
        "kind": "maas-flux",
        "base_url": base_url,
        "endpoint": ENDPOINT,
        "api_key": KEY,
    }
    settings.update(overrides)
    return MaasFluxProvider(MaasFluxConfig(**settings), client, policy=FAST)


def words(text: str, **params: str) -> SubmitRequest:
    return SubmitRequest(Action.IMAGINE, prompt=text, text=text, params=params)


async def finish(provider: MaasFluxProvider, task_id: str) -> tuple[TaskSnapshot, list[TaskState]]:
    states: list[TaskState] = []
    for _ in range(20):
        snap = (await provider.fetch(task_refs([task_id])))[task_id]
        states.append(snap.state)
        if snap.state.finished:
            return snap, states
    raise AssertionError("the task never finished")


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------- imagine


@pytest.mark.asyncio
async def test_imagine_lifecycle_over_the_wire(fake: FakeMaasFlux, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    request = SubmitRequest(
        Action.IMAGINE,
        prompt="a fruit basket --ar 16:9 --seed 42 --steps 6",
        text="a fruit basket",
        params={"aspect": "16:9", "seed": "42", "steps": "6"},
    )
    result = await provider.submit(request)
    assert result.task_id
    sent = fake.api_requests("/images/generations", "POST")
    assert [r.json for r in sent] == [
        {"prompts": "a fruit basket", "batchsize": 4, "aspect_ratio": "16:9", "step": 6,
         "seed": 42}
    ]  # fmt: skip
    assert sent[0].headers["Authorization"] == f"Bearer {KEY}"
    assert sent[0].path == f"/v2/ai/{ENDPOINT}/images/generations"

    snap, states = await finish(provider, result.task_id)
    assert states == [TaskState.RUNNING, TaskState.SUCCEEDED]
    assert snap.grid is False and len(snap.image_urls) == 4 and snap.progress is None
    assert snap.extra == {"taskId": result.task_id, "imageUrls": snap.image_urls}
    assert [(f.action, f.index) for f in snap.followups] == [
        (Action.UPSCALE, 1),
        (Action.UPSCALE, 2),
        (Action.UPSCALE, 3),
        (Action.UPSCALE, 4),
        (Action.REROLL, 0),
    ]
    assert fake.api_requests("/images/tasks/")[0].path == (
        f"/v2/ai/{ENDPOINT}/images/tasks/{result.task_id}"
    )
    blob = await provider.download(snap.image_urls[0], 10 * 1024 * 1024)
    image = Image.open(io.BytesIO(blob))
    assert image.format == "PNG" and image.size == (1280 // 4, 720 // 4)
    cdn = [r for r in fake.requests if r.path.startswith("/cdn/")]
    assert cdn and all("Authorization" not in r.headers for r in cdn)


@pytest.mark.asyncio
async def test_capabilities_declared(client: httpx.AsyncClient):
    config = MaasFluxConfig(name="flux", kind="maas-flux", endpoint="ep", api_key="k")
    provider = MaasFluxProvider(config, client)
    assert provider.kind == "maas-flux"
    assert provider.supports(Action.IMAGINE).how is How.NATIVE  # type: ignore[union-attr]
    assert provider.supports(Action.UPSCALE).how is How.SELECT  # type: ignore[union-attr]
    reroll = provider.supports(Action.REROLL)
    assert reroll is not None and reroll.how is How.EMULATED and "new seed" in reroll.note
    for action in Action:
        if action not in (Action.IMAGINE, Action.UPSCALE, Action.REROLL):
            assert provider.supports(action) is None, action
    assert provider.accepted_params == frozenset({"aspect", "seed", "steps"})
    assert provider.features == frozenset()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("given", "sent"),
    [*((ratio, ratio) for ratio in ASPECT_RATIOS), ("32:18", "16:9"), ("2:2", "1:1")],
)
async def test_aspect_ratio_mapping(
    fake: FakeMaasFlux, client: httpx.AsyncClient, given: str, sent: str
):
    provider = make(fake.base_url, client)
    await provider.submit(words("a cat", aspect=given))
    assert fake.api_requests("/images/generations")[-1].json["aspect_ratio"] == sent


@pytest.mark.asyncio
async def test_unsupported_aspect_ratio_names_the_seven(
    fake: FakeMaasFlux, client: httpx.AsyncClient
):
    provider = make(fake.base_url, client)
    with pytest.raises(PromptRejected) as caught:
        # The prompt rules hand over the ratio reduced (21:9 -> 7:3); quote what was typed.
        await provider.submit(
            SubmitRequest(Action.IMAGINE, prompt="a cat --ar 21:9", text="a cat",
                          params={"aspect": "7:3"})
        )  # fmt: skip
    message = str(caught.value)
    assert "--ar 21:9 is not one" in message
    assert all(ratio in message for ratio in ("1:1", "2:3", "3:2", "3:4", "4:3", "16:9", "9:16"))
    assert fake.api_requests() == []


@pytest.mark.asyncio
async def test_defaults_and_ranges(fake: FakeMaasFlux, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, steps=8, batchsize=2)
    await provider.submit(words("a cat"))
    assert fake.api_requests("/images/generations")[-1].json == {
        "prompts": "a cat",
        "batchsize": 2,
        "aspect_ratio": "1:1",
        "step": 8,
        "seed": 0,
    }
    with pytest.raises(PromptRejected, match="--steps from 4 to 10"):
        await provider.submit(words("a cat", steps="12"))
    with pytest.raises(PromptRejected, match="image prompts"):
        await provider.submit(
            SubmitRequest(Action.IMAGINE, prompt="https://x/y.png a cat", text="a cat",
                          image_urls=["https://x/y.png"])
        )  # fmt: skip
    with pytest.raises(PromptRejected, match="no words"):
        await provider.submit(words("   "))
    assert len(fake.api_requests("/images/generations")) == 1


@pytest.mark.asyncio
async def test_reroll_is_a_new_generation_with_a_new_seed(
    fake: FakeMaasFlux, client: httpx.AsyncClient
):
    provider = make(fake.base_url, client)
    first = await provider.submit(words("a cat", seed="7"))
    again = SubmitRequest(Action.REROLL, prompt="a cat --seed 7", text="a cat",
                          params={"seed": "7"}, parent_task_id=first.task_id)  # fmt: skip
    second = await provider.submit(again)
    assert second.task_id != first.task_id
    bodies = [r.json for r in fake.api_requests("/images/generations")]
    assert bodies[0]["seed"] == 7 and bodies[1]["seed"] == 0
    assert bodies[0]["prompts"] == bodies[1]["prompts"] == "a cat"


@pytest.mark.asyncio
async def test_select_picks_one_image_and_offers_nothing_more(
    fake: FakeMaasFlux, client: httpx.AsyncClient
):
    provider = make(fake.base_url, client)
    result = await provider.submit(words("a cat"))
    grid, _ = await finish(provider, result.task_id)
    picked = provider.select(grid.task_id, grid.extra, 2)
    assert picked.state is TaskState.SUCCEEDED
    assert picked.image_urls == [grid.image_urls[1]]
    assert picked.followups == []
    assert picked.extra == {"taskId": grid.task_id, "imageNo": 1}
    with pytest.raises(ProviderError, match="no image 5"):
        provider.select(grid.task_id, grid.extra, 5)
    requests_before = len(fake.requests)
    direct = await provider.submit(
        SubmitRequest(Action.UPSCALE, parent_task_id=grid.task_id,
                      parent_extra=dict(grid.extra), index=2)
    )  # fmt: skip
    assert direct.snapshot is not None and direct.snapshot.image_urls == picked.image_urls
    assert len(fake.requests) == requests_before


@pytest.mark.asyncio
@pytest.mark.parametrize(("batch", "buttons"), [(1, 0), (3, 3), (8, 4)])
async def test_buttons_follow_the_batch_size(
    fake: FakeMaasFlux, client: httpx.AsyncClient, batch: int, buttons: int
):
    provider = make(fake.base_url, client, batchsize=batch)
    result = await provider.submit(words("a cat"))
    snap, _ = await finish(provider, result.task_id)
    assert len(snap.image_urls) == batch
    assert [f.index for f in snap.followups if f.action is Action.UPSCALE] == list(
        range(1, buttons + 1)
    )
    assert snap.followups[-1].action is Action.REROLL


@pytest.mark.asyncio
async def test_other_actions_are_not_offered(fake: FakeMaasFlux, client: httpx.AsyncClient):
    provider = make(fake.base_url, client)
    for action in (Action.UPSCALE_SUBTLE, Action.VARIATION, Action.VARY_STRONG, Action.INPAINT,
                   Action.ZOOM, Action.PAN, Action.DESCRIBE, Action.BLEND):  # fmt: skip
        with pytest.raises(NotOffered):
            await provider.submit(SubmitRequest(action, prompt="a cat", parent_task_id="t"))
    assert fake.api_requests() == []


@pytest.mark.asyncio
async def test_fake_accepts_batchsize_as_a_string(fake: FakeMaasFlux, client: httpx.AsyncClient):
    # The vendor's own example sends "batchsize": "2"; the fake must take it as they do.
    answer = await client.post(
        f"{fake.base_url}/{ENDPOINT}/images/generations",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"prompts": "a fruit basket", "aspect_ratio": "2:3", "batchsize": "2", "step": 10},
    )
    assert answer.status_code == 200 and answer.json()["status"] == "success"
    provider = make(fake.base_url, client)
    snap, _ = await finish(provider, answer.json()["taskId"])
    assert len(snap.image_urls) == 2


@pytest.mark.asyncio
async def test_fake_records_violations(client: httpx.AsyncClient):
    async with FakeMaasFlux(key=KEY, endpoint=ENDPOINT) as fake:
        answer = await client.post(
            f"{fake.base_url}/{ENDPOINT}/images/generations",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"prompts": "x", "aspect_ratio": "21:9", "step": 3},
        )
        assert answer.status_code == 400 and len(fake.violations) == 1


# ---------------------------------------------------------------------- failures and errors


@pytest.mark.asyncio
async def test_refusal_with_http_200_keeps_their_words(
    fake: FakeMaasFlux, client: httpx.AsyncClient
):
    fake.refuse_with = {"status": "failed", "message": "prompt violates the usage policy"}
    provider = make(fake.base_url, client)
    with pytest.raises(ProviderError, match="prompt violates the usage policy"):
        await provider.submit(words("a cat"))


@pytest.mark.asyncio
async def test_failed_task(fake: FakeMaasFlux, client: httpx.AsyncClient):
    fake.fail_status = "failed"
    provider = make(fake.base_url, client)
    result = await provider.submit(words("a cat"))
    snap, _ = await finish(provider, result.task_id)
    assert snap.state is TaskState.FAILED
    assert "failed" in (snap.failure or "") and "Image generation failed" in (snap.failure or "")


@pytest.mark.asyncio
async def test_http_errors(fake: FakeMaasFlux, client: httpx.AsyncClient):
    with pytest.raises(BadKey):
        await make(fake.base_url, client, api_key="wrong-key").submit(words("a cat"))
    provider = make(fake.base_url, client)
    with pytest.raises(PromptRejected, match="sensitive words"):
        await provider.submit(words("a forbidden cat"))
    fake.credit = False
    with pytest.raises(ProviderError, match="out of credit") as caught:
        await provider.submit(words("a cat"))
    assert not caught.value.retryable
    fake.credit = True
    fake.fail(400, path="/images/generations", message="prompts too long", reason="Bad")
    with pytest.raises(PromptRejected, match="prompts too long"):
        await provider.submit(words("a cat"))
    assert await provider.fetch(task_refs(["no-such-task"])) == {}


@pytest.mark.asyncio
async def test_retries_and_transport_failures(fake: FakeMaasFlux, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, request_timeout=0.3)
    fake.fail(429, times=2, path="/images/generations", retry_after="0")
    result = await provider.submit(words("a cat"))
    assert len(fake.api_requests("/images/generations")) == 3
    fake.fail(429, times=5, path="/images/generations", retry_after="0")
    with pytest.raises(RateLimited):
        await provider.submit(words("a cat"))
    fake.fail(500, times=1, path="/images/generations", message="Server busy")
    with pytest.raises(ProviderUnavailable, match="Server busy"):
        await provider.submit(words("a cat"))
    # Reads are retried (FAST allows 3 attempts): a 503, then a reset, then the answer.
    fake.fail(503, times=1, path="/images/tasks/")
    fake.fail(times=1, path="/images/tasks/", reset=True)
    snap = (await provider.fetch(task_refs([result.task_id])))[result.task_id]
    assert snap.state is TaskState.RUNNING
    fake.fail(times=1, path="/images/generations", reset=True)
    with pytest.raises(ProviderUnavailable, match="may have started"):
        await provider.submit(words("a cat"))
    fake.fail(times=1, path="/images/generations", delay=1.0)
    with pytest.raises(ProviderUnavailable, match="did not answer in time"):
        await provider.submit(words("a cat"))
    fake.fail(200, times=1, path="/images/generations", html=True)
    with pytest.raises(BadResponse, match="not JSON"):
        await provider.submit(words("a cat"))
    fake.fail(200, times=3, path="/images/tasks/", malformed=True)
    with pytest.raises(BadResponse):
        await provider.fetch(task_refs([result.task_id]))


# ---------------------------------------------------------------------- check, secrets


@pytest.mark.asyncio
async def test_check(fake: FakeMaasFlux, client: httpx.AsyncClient):
    assert (await make(fake.base_url, client).check()).status == "healthy"
    assert (await make(fake.base_url, client, api_key="nope-nope").check()).status == "bad_key"
    gone = await make(f"http://127.0.0.1:{closed_port()}/v2/ai", client).check()
    assert gone.status == "unreachable"
    fake.fail(200, times=5, html=True)
    assert (await make(fake.base_url, client).check()).status == "error"


@pytest.mark.asyncio
async def test_no_secret_in_any_error(fake: FakeMaasFlux, client: httpx.AsyncClient):
    provider = make(fake.base_url, client, request_timeout=0.3)
    echo = f"key {KEY} at /v2/ai/{ENDPOINT}"
    errors: list[ProviderError] = []
    for fault in (
        {"status": 400, "message": echo},
        {"status": 503, "message": echo},
        {"status": 200, "body": {"status": "failed", "message": echo}},
        {"status": 200, "malformed": True},
        {"reset": True},
    ):
        fake.fail(path="/images/generations", **fault)
        try:
            await provider.submit(words("a cat"))
        except ProviderError as err:
            errors.append(err)
    try:
        await make(fake.base_url, client, api_key="x" + KEY).fetch(task_refs(["t"]))
    except ProviderError as err:
        errors.append(err)
    assert len(errors) == 6
    for err in errors:
        assert KEY not in str(err) and ENDPOINT not in str(err), str(err)
