"""The shared provider HTTP layer: one answer -> error mapping, secrets scrubbed before
anything is cut, and check results as an enum. Over real HTTP on loopback, through each
adapter's public calls, wherever bytes cross a wire."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from bot.config import MaasFluxConfig, MaasMjConfig, MjProxyConfig
from bot.providers.base import (
    BadResponse,
    CheckResult,
    CheckStatus,
    HttpAnswer,
    ProviderError,
    ProviderHttp,
    ProviderUnavailable,
    RetryPolicy,
    SubmitRequest,
    TaskState,
    answer_error,
    clip,
    safe_text,
    scrub,
    task_refs,
)
from bot.providers.maas_flux import MaasFluxProvider
from bot.providers.maas_mj import MaasMjProvider
from bot.providers.mj_proxy import MjProxyProvider
from bot.providers.scrubbing import SNIPPET_LIMIT, WORDS_LIMIT
from bot.vocab import Action
from tests.fakes.maas_fake import FakeMaasFlux, FakeMaasMj
from tests.fakes.mj_proxy_fake import FakeMjProxy

KEY = "sk-LEAKCHECK-0123456789abcdef"
ENDPOINT = "epSecretPath42xyz"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
# The body snippet a non-JSON 200 is quoted with (see HttpAnswer.json).
JSON_SNIPPET = 80


def leaks(text: str, secret: str = KEY, run: int = 8) -> list[str]:
    """Every `run`-character piece of `secret` that shows in `text`: a half key counts."""
    return [
        secret[i : i + run] for i in range(len(secret) - run + 1) if secret[i : i + run] in text
    ]


def around(limit: int, secret: str = KEY) -> range:
    """Offsets that put `secret` across a cut at `limit` characters, and just either side."""
    return range(max(0, limit - len(secret) - 2), limit + 3)


def echo(offset: int, secret: str = KEY) -> str:
    return "x" * offset + secret + " was refused"


def mj(fake: FakeMaasMj, client: httpx.AsyncClient) -> MaasMjProvider:
    config = MaasMjConfig(name="cw-mj", kind="maas-mj", base_url=fake.base_url,
                          endpoint=ENDPOINT, api_key=KEY)  # fmt: skip
    return MaasMjProvider(config, client, policy=FAST)


def flux(fake: FakeMaasFlux, client: httpx.AsyncClient) -> MaasFluxProvider:
    config = MaasFluxConfig(name="cw-flux", kind="maas-flux", base_url=fake.base_url,
                            endpoint=ENDPOINT, api_key=KEY)  # fmt: skip
    return MaasFluxProvider(config, client, policy=FAST)


def proxy(fake: FakeMjProxy, client: httpx.AsyncClient, **overrides: Any) -> MjProxyProvider:
    return MjProxyProvider(MjProxyConfig(**fake.provider_config(**overrides)), client, policy=FAST)


async def error_of(call: Awaitable[Any]) -> ProviderError:
    try:
        await call
    except ProviderError as err:
        return err
    raise AssertionError("the call did not fail")


# ---------------------------------------------------------------------- the scrubber


def test_scrub_comes_before_the_cut_at_every_offset() -> None:
    for limit in (JSON_SNIPPET, SNIPPET_LIMIT, WORDS_LIMIT):
        for offset in around(limit):
            text = safe_text(echo(offset), [KEY], limit)
            assert len(text) <= limit and leaks(text) == [], (limit, offset, text)
            # The order matters: cut inside the key first, and a piece of it survives.
            if offset + 8 <= limit - 1 < offset + len(KEY):
                assert leaks(scrub(clip(echo(offset), limit), [KEY]))


def test_scrub_replaces_the_longer_secret_first_and_skips_tiny_ones() -> None:
    assert scrub(f"Bearer {KEY} and {KEY}", [KEY, f"Bearer {KEY}"]) == "*** and ***"
    assert scrub("a bad answer", ["bad", ""]) == "a bad answer"  # 3 characters: words


def test_an_answer_never_shows_its_secrets_in_its_repr() -> None:
    answer = HttpAnswer(500, httpx.Headers(), b"", provider="p", secrets=(KEY,))
    assert KEY not in repr(answer)
    http = ProviderHttp(httpx.AsyncClient(), "http://h", {"mj-api-secret": KEY}, provider="p")
    assert KEY in http.secrets and KEY not in repr(http)


# ---------------------------------------------------------------------- keys echoed on the wire


@pytest.mark.asyncio
async def test_maas_mj_key_echoed_at_every_cut_never_leaks(client: httpx.AsyncClient) -> None:
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT) as fake:
        provider = mj(fake, client)
        imagine = SubmitRequest(Action.IMAGINE, prompt="a cat")
        faults: list[tuple[int, dict[str, Any]]] = []
        for offset in around(WORDS_LIMIT):
            faults += [(offset, {"status": 400, "message": echo(offset)})]  # JSON words
            faults += [(offset, {"status": 418, "text": echo(offset)})]  # a plain-text body
            faults += [(offset, {"status": 502, "text": f"<title>{echo(offset)}</title>"})]
        for offset in around(JSON_SNIPPET):
            faults += [(offset, {"status": 200, "text": echo(offset)})]  # quoted as not JSON
        for offset, fault in faults:
            fake.fail(path="/tob/diffusion", **fault)
            err = await error_of(provider.submit(imagine))
            assert leaks(str(err)) == [] and ENDPOINT not in str(err), (offset, str(err))
            assert KEY not in repr(err)
        assert fake.violations == []


@pytest.mark.asyncio
async def test_maas_failure_words_are_scrubbed(client: httpx.AsyncClient) -> None:
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT) as fake:
        provider = mj(fake, client)
        fake.queued_polls = fake.running_polls = 0
        for offset in around(WORDS_LIMIT):
            fake.fail_comment = echo(offset)
            task = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a cat"))
            snap = (await provider.fetch(task_refs([task.task_id])))[task.task_id]
            assert snap.state is TaskState.FAILED
            for text in (snap.failure or "", snap.provider_status):
                assert leaks(text) == [], (offset, text)
    async with FakeMaasFlux(key=KEY, endpoint=ENDPOINT) as fake:
        provider = flux(fake, client)
        for offset in around(WORDS_LIMIT):
            fake.fail(200, path="/images/generations",
                      body={"status": "failed", "message": echo(offset)})  # fmt: skip
            err = await error_of(provider.submit(SubmitRequest(Action.IMAGINE, text="a cat")))
            assert leaks(str(err)) == [], (offset, str(err))


@pytest.mark.asyncio
async def test_mj_proxy_key_echoed_at_every_cut_never_leaks(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay", key=KEY) as fake:
        provider = proxy(fake, client)
        imagine = SubmitRequest(Action.IMAGINE, prompt="a fox")
        for offset in [*around(SNIPPET_LIMIT), *around(WORDS_LIMIT)]:
            coded = json.dumps({"code": 4, "description": echo(offset)})
            for status, body in ((418, echo(offset)), (400, coded), (503, echo(offset))):
                fake.fail_http(status, body=body, match="imagine")
                err = await error_of(provider.submit(imagine))
                assert leaks(str(err)) == [], (status, offset, str(err))
        for offset in around(JSON_SNIPPET):
            fake.fail_http(200, body=echo(offset), match="fetch", times=FAST.attempts)
            reader = proxy(fake, client, batch_fetch=False)
            err = await error_of(reader.fetch(task_refs(["1"])))
            assert isinstance(err, BadResponse) and leaks(str(err)) == [], (offset, str(err))


@pytest.mark.asyncio
async def test_mj_proxy_fail_reason_with_the_key_is_scrubbed(client: httpx.AsyncClient) -> None:
    async with FakeMjProxy(flavour="relay", key=KEY) as fake:
        fake.script = [("SUCCESS", "100%")]
        provider = proxy(fake, client)
        for offset in around(WORDS_LIMIT):
            fake.fail_with = echo(offset)
            task = await provider.submit(SubmitRequest(Action.IMAGINE, prompt="a fox"))
            snap = (await provider.fetch(task_refs([task.task_id])))[task.task_id]
            assert snap.state is TaskState.FAILED and snap.failure
            assert leaks(snap.failure) == [] and leaks(repr(snap.extra)) == [], (offset, snap)


# ---------------------------------------------------------------------- one mapping


@pytest.mark.asyncio
async def test_the_same_html_502_is_the_same_error_kind_everywhere(
    client: httpx.AsyncClient,
) -> None:
    errors: dict[str, ProviderError] = {}
    imagine = SubmitRequest(Action.IMAGINE, prompt="a cat", text="a cat")
    async with FakeMaasMj(key=KEY, endpoint=ENDPOINT) as fake:
        provider = mj(fake, client)
        fake.fail(502, html=True, path="/tob/diffusion")
        errors["maas-mj submit"] = await error_of(provider.submit(imagine))
        fake.fail(502, html=True, path="/tob/job/", times=FAST.attempts)
        errors["maas-mj fetch"] = await error_of(provider.fetch(task_refs(["j"])))
        fake.fail(502, html=True, path="/img/", times=FAST.attempts)
        image = f"{fake.origin}/img/1.png"
        errors["maas-mj download"] = await error_of(provider.download(image, 1 << 20))
        assert (await provider.check()).status is CheckStatus.HEALTHY
        fake.fail(502, html=True, times=FAST.attempts)
        assert (await provider.check()).status is CheckStatus.ERROR
    async with FakeMaasFlux(key=KEY, endpoint=ENDPOINT) as fake:
        fake.fail(502, html=True, path="/images/generations")
        errors["maas-flux submit"] = await error_of(flux(fake, client).submit(imagine))
    async with FakeMjProxy(flavour="relay", key=KEY) as fake:
        fake.send_html(status=502, match="imagine")
        errors["mj-proxy submit"] = await error_of(proxy(fake, client).submit(imagine))
        fake.send_html(status=502, match="fetch", times=FAST.attempts)
        reader = proxy(fake, client, batch_fetch=False)
        errors["mj-proxy fetch"] = await error_of(reader.fetch(task_refs(["1"])))
        assert (await proxy(fake, client).check()).status is CheckStatus.HEALTHY
    for where, err in errors.items():
        assert type(err) is ProviderUnavailable and err.kind == "unavailable", (where, err)
        assert "502" in str(err) and err.retryable, (where, str(err))


def test_an_adapter_hook_overrides_only_its_own_status() -> None:
    answer = HttpAnswer(403, httpx.Headers(), b'{"message": "no"}', provider="p")
    hooks = {403: lambda failure: BadResponse(f"mine{failure.said}", provider="p")}
    assert str(answer_error(answer, overrides=hooks)) == "mine: no"
    shared = answer_error(HttpAnswer(503, httpx.Headers(), b"", provider="p"), overrides=hooks)
    assert type(shared) is ProviderUnavailable and str(shared).startswith("p is busy")
    # A hook that returns None leaves the status to the shared reading.
    fallback: dict[int, Callable[..., ProviderError | None]] = {403: lambda failure: None}
    assert "refused the request (HTTP 403: no)" in str(answer_error(answer, overrides=fallback))


# ---------------------------------------------------------------------- check results


def test_check_results_are_the_enum_with_the_documented_words() -> None:
    assert [s.value for s in CheckStatus] == ["healthy", "bad_key", "unreachable", "error"]
    result = CheckResult("bad_key", "x")  # type: ignore[arg-type]  # a bare word, coerced
    assert result.status is CheckStatus.BAD_KEY and not result.ok
    assert f"{CheckStatus.UNREACHABLE:<12}|" == "unreachable |"  # as `atelier check` prints
    with pytest.raises(ValueError):
        CheckResult("fine", "x")  # type: ignore[arg-type]
