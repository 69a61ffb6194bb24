"""End to end per provider kind: the real bot (`python -m bot run`) against the fake
Discord and the provider fakes, all four kinds configured at once.

One bot process serves the module, with an mj-proxy server (trueai flavour, which sends
buttons), Cloudsway MaaS-MJ (variation offered; pan and outpaint absent, as Cloudsway
documents them), MaaS-Flux (batchsize 4) and the sandbox. Per kind: /imagine through that
provider, the job's message (progress, then deleted), the result with exactly the
buttons the provider serves (README, "What each action means per provider"), U2 and what
the upscale offers, the provider's own refusal of a banned word, and a prompt the provider
cannot take. Every test ends by checking that neither the Discord fake nor any provider
fake saw a request that broke its protocol.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from tests.discord_helpers import BotProcess, button_ids, job_id_in, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeMessage
from tests.fakes.maas_fake import FakeMaasFlux, FakeMaasMj
from tests.fakes.mj_proxy_fake import FakeMjProxy
from tests.test_discord_e2e import (
    RESULT_TIMEOUT,
    Env,
    acked,
    channel,
    channel_posts,
    child_of,
    imagine,
    result_of,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

EDIT_INTERVAL = 0.5
# Provider names (not kinds), so that the messages are seen to name the provider.
PROXY, YOUCHUAN, FLUX, SANDBOX = "proxy", "youchuan", "flux", "sandbox"
KINDS = {PROXY: "mj-proxy", YOUCHUAN: "maas-mj", FLUX: "maas-flux", SANDBOX: "sandbox"}
ALL = list(KINDS)

GRID = [["U1", "U2", "U3", "U4", "🔄"], ["V1", "V2", "V3", "V4"]]
UPSCALE = [
    ["Upscale (Subtle)", "Upscale (Creative)"],
    ["🪄 Vary (Subtle)", "🪄 Vary (Strong)", "🖌️ Vary (Region)"],
    ["🔍 Zoom Out 2x", "🔍 Zoom Out 1.5x", "🔍 Custom Zoom"],
    ["⬅️", "➡️", "⬆️", "⬇️"],
]
# What each provider's finished /imagine offers (labels with their emoji).
GRID_OF = {
    PROXY: GRID,
    SANDBOX: GRID,
    # U1-U4 select one of four separate images; 🔄 is a new run of the prompt (emulated).
    YOUCHUAN: [["U1", "U2", "U3", "U4", "🔄 (emulated)"], ["V1", "V2", "V3", "V4"]],
    # Flux: select and an emulated reroll only, no V row.
    FLUX: [["U1", "U2", "U3", "U4", "🔄 (emulated)"]],
}
# What U2's result offers. MaaS-MJ: its undocumented pan/outpaint calls are offered until
# they are found missing (see test_maas_mj_missing_calls_are_found_out_and_hidden).
YOUCHUAN_IMAGE = [
    ["Upscale (Subtle)", "Upscale (Creative)"],
    ["🪄 Vary (Subtle)", "🪄 Vary (Strong)", "🖌️ Vary (Region)"],
]
UPSCALE_OF: dict[str, list[list[str]]] = {
    # From the task's buttons (❤️ is not ours); no Make Square on a square upscale, as on
    # Midjourney; Midjourney's video buttons in a row of their own.
    PROXY: [*UPSCALE, ["🎞️ Animate (High motion)", "🎞️ Animate (Low motion)"]],
    SANDBOX: UPSCALE,
    YOUCHUAN: [*YOUCHUAN_IMAGE, ["🔍 Zoom Out 2x", "🔍 Zoom Out 1.5x"], ["⬅️", "➡️", "⬆️", "⬇️"]],
    FLUX: [],  # a selected Flux image offers nothing further
}
EMULATED_NOTE = {
    YOUCHUAN: f"Reroll is emulated on {YOUCHUAN}: new run of the same prompt.",
    FLUX: f"Reroll is emulated on {FLUX}: new generation of the same prompt, new seed.",
}


@dataclass
class ProvidersEnv(Env):
    # The provider fakes (FakeMjProxy, FakeMaasMj, FakeMaasFlux), set by the fixture.
    proxy: Any = None
    youchuan: Any = None
    flux: Any = None
    grids: dict[str, tuple[str, FakeMessage]] = field(default_factory=dict)  # name -> result

    def why(self) -> str:
        fakes = "\n".join(f"{n}: {f.violations}" for n, f in self.provider_fakes().items())
        return f"{super().why()}\n--- provider fakes ---\n{fakes}"

    def provider_fakes(self) -> dict[str, Any]:
        return {PROXY: self.proxy, YOUCHUAN: self.youchuan, FLUX: self.flux}

    def clean(self) -> None:
        super().clean()
        for name, fake in self.provider_fakes().items():
            assert fake.violations == [], f"{name}: {fake.violations}\n{self.why()}"


def toml_table(values: dict[str, Any]) -> str:
    """One [[providers]] entry (strings, numbers and booleans only)."""
    lines = ["[[providers]]"]
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def maas_settings(fake: Any, kind: str, name: str, **over: Any) -> dict[str, Any]:
    values = {
        "name": name,
        "kind": kind,
        "base_url": fake.base_url,
        "endpoint": fake.endpoint,
        "api_key": fake.key,
        "poll_interval": 0.1,
        "request_timeout": 5,
    }
    values.update(over)
    return values


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(
    tmp_path_factory: pytest.TempPathFactory, store_kind: str
) -> AsyncIterator[ProvidersEnv]:
    tmp = tmp_path_factory.mktemp("discord-providers")
    async with (
        FakeMjProxy(flavour="trueai", key="proxy-key") as proxy,
        FakeMaasMj(key="youchuan-key", endpoint="mjep", variation=True) as youchuan,
        FakeMaasFlux(key="flux-key", endpoint="fluxep") as flux,
    ):
        # Slow enough that the job's message shows progress (a write every 0.5 s at most).
        proxy.step_seconds = 1.0  # SUBMITTED, then IN_PROGRESS 46%, SUCCESS after 2 s
        youchuan.running_polls = 15  # ~1.5 s at a 0.1 s poll interval
        flux.running_polls = 15
        extra = "".join(
            toml_table(entry)
            for entry in (
                proxy.provider_config(PROXY, poll_interval=0.1),
                maas_settings(youchuan, "maas-mj", YOUCHUAN),
                maas_settings(flux, "maas-flux", FLUX, batchsize=4),
            )
        )
        fake = FakeDiscord()
        await fake.start()
        config = write_config(
            tmp / "config.toml",
            fake,
            tmp / "data",
            duration=1.5,
            size=256,
            edit_interval=EDIT_INTERVAL,
            channel_edits_per_5s=10,  # a write every 0.5 s per channel
            extra=extra,
        )
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        state = ProvidersEnv(fake, bot, tmp, config, proxy=proxy, youchuan=youchuan, flux=flux)
        try:
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield state
        finally:
            await bot.stop()
            await fake.stop()


# ------------------------------------------------------------------ helpers


def faces(message: FakeMessage) -> list[list[str]]:
    """Each row's buttons as "<emoji> <label>" (either may be absent)."""
    out: list[list[str]] = []
    for row in message.components:
        out.append(
            [
                " ".join(
                    part for part in ((c.get("emoji") or {}).get("name"), c.get("label")) if part
                )
                for c in row.get("components") or []
            ]
        )
    return out


def custom_id_of(message: FakeMessage, face: str) -> str:
    for row, shown in zip(message.components, faces(message), strict=True):
        for component, text in zip(row.get("components") or [], shown, strict=True):
            if text == face:
                return str(component["custom_id"])
    raise AssertionError(f"no button {face!r} on {faces(message)}")


async def click(env: ProvidersEnv, message: FakeMessage, face: str) -> None:
    """Press the button shown as `face`; a press is answered by a silent defer."""
    await acked(await env.fake.click_button(message.id, custom_id_of(message, face)), 6)


async def outcome_of(env: ProvidersEnv, job_id: str, channel_id: int) -> FakeMessage:
    """The result of a job, buttons or not: its images attached, no Cancel button."""

    def find() -> FakeMessage | None:
        for m in channel_posts(env, channel_id):
            ids = button_ids(m)
            if job_id_in(m) == job_id and m.attachments and not any("cancel" in i for i in ids):
                return m
        return None

    try:
        return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the result of job {job_id}")
    except TimeoutError:
        raise AssertionError(f"no result for {job_id}\n{env.why()}") from None


async def failure_of(env: ProvidersEnv, job_id: str, channel_id: int) -> FakeMessage:
    def find() -> FakeMessage | None:
        return next(
            (
                m
                for m in channel_posts(env, channel_id)
                if job_id_in(m) == job_id and "**Failed**" in m.content
            ),
            None,
        )

    try:
        return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"job {job_id} to fail")
    except TimeoutError:
        raise AssertionError(f"job {job_id} did not fail\n{env.why()}") from None


def posted(fake: Any) -> list[Any]:
    """The JSON bodies a provider fake was POSTed (either fake's record)."""
    return [getattr(r, "json", r.body) for r in fake.requests if r.method == "POST"]


def replies_to(message: FakeMessage, parent: FakeMessage) -> bool:
    return (message.message_reference or {}).get("message_id") == str(parent.id)


async def ensure_grid(env: ProvidersEnv, name: str) -> tuple[str, FakeMessage]:
    """The /imagine result of `name` (made by test_imagine, or here)."""
    if name not in env.grids:
        where = await channel(env, f"grid-{name}")
        _, job_id, _ = await imagine(env, where, f"a grid on {name}", provider=name)
        env.grids[name] = (job_id, await result_of(env, job_id, where))
    return env.grids[name]


async def upscale_of(env: ProvidersEnv, grid: FakeMessage, index: int) -> FakeMessage:
    """Press U<index> on a grid; the child's result (a reply to the grid, its parent's
    result, whether or not the child's progress message came first)."""
    await click(env, grid, f"U{index}")
    child_id, child_msg = await child_of(env, grid, f"Image #{index}")
    result = await outcome_of(env, child_id, grid.channel_id)
    assert replies_to(result, grid), env.why()
    if result.id != child_msg.id:  # the progress message went when the result came
        await env.fake.wait_for(lambda: env.fake.get_message(child_msg.id).deleted, 10)
    assert f"from `{job_id_in(grid)}`" in result.content
    return result


# ------------------------------------------------------------------ every kind


@pytest.mark.parametrize("name", ALL)
async def test_imagine_progress_then_result_with_the_providers_buttons(
    env: ProvidersEnv, name: str
) -> None:
    fake = env.fake
    where = await channel(env, f"imagine-{name}")
    _, job_id, job_msg = await imagine(env, where, f"a lighthouse on {name}", provider=name)
    for part in (f"<@{fake.user_id}>", f"a lighthouse on {name}", f"{name} ·", job_id):
        assert part in job_msg.content, job_msg.content

    result = await result_of(env, job_id, where)
    assert not result.message_reference  # a new message (an imagine has no parent)
    assert result.attachments and all(a.filename.endswith(".png") for a in result.attachments)
    assert faces(result) == GRID_OF[name], env.why()
    if name in EMULATED_NOTE:
        assert EMULATED_NOTE[name] in result.content, result.content
    else:
        assert "emulated" not in result.content

    await fake.wait_for(lambda: fake.get_message(job_msg.id).deleted, 10)  # one message
    final = fake.get_message(job_msg.id)
    shown = [str(e.body.get("content", "")) for e in final.edits]
    assert any("🎨" in text for text in shown), shown  # progress was shown while it ran
    if name == PROXY:
        assert any("46%" in text for text in shown), shown  # the server's own figure
    if name in (YOUCHUAN, FLUX):
        assert any("Working — started <t:" in text for text in shown), shown  # no figure
    env.grids[name] = (job_id, result)
    env.clean()


@pytest.mark.parametrize("name", ALL)
async def test_u2_gives_the_providers_upscale_buttons(env: ProvidersEnv, name: str) -> None:
    _, grid = await ensure_grid(env, name)
    before = {n: len(f.requests) for n, f in env.provider_fakes().items()}
    upscale = await upscale_of(env, grid, 2)
    assert len(upscale.attachments) == 1
    assert faces(upscale) == UPSCALE_OF[name], env.why()
    if name in (YOUCHUAN, FLUX):
        # A selection: the image is already there, so the provider heard nothing of it.
        fake = env.provider_fakes()[name]
        posts = [r for r in fake.requests[before[name] :] if r.method == "POST"]
        assert posts == []
    if name == PROXY:
        actions = [
            r.body for r in env.proxy.requests[before[PROXY] :] if r.endpoint == "/submit/action"
        ]
        assert len(actions) == 1 and actions[0]["customId"].startswith("MJ::JOB::upsample::2::")
    env.clean()


@pytest.mark.parametrize("name", ALL)
async def test_banned_word_fails_in_the_providers_words(env: ProvidersEnv, name: str) -> None:
    where = await channel(env, f"banned-{name}")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a forbidden castle", "provider": name}, channel_id=where
    )
    await acked(rec, 5)
    words = {
        PROXY: "banned word: 'forbidden'): 可能包含敏感词",  # code 24 and its bannedWord
        YOUCHUAN: "(HTTP 403): Prompt contains sensitive words",
        FLUX: "(HTTP 403): Prompt contains sensitive words",
        SANDBOX: '"forbidden" is not allowed here',
    }[name]
    # The provider refused at once: the private reply already says why, and links the job.
    reply = await rec.wait_response(20)
    match = re.search(r"Job `([0-9a-z]{10})` failed", reply.content)
    assert reply.ephemeral and match and words in reply.content, reply.content
    message = await failure_of(env, match.group(1), where)
    assert str(message.id) in reply.content
    text = message.content
    assert not message.components and not message.attachments
    assert f"-# {name} ·" in text and words in text, text
    assert "Reword the prompt" in text, text
    fake = env.provider_fakes().get(name)
    if fake is not None:  # the provider itself refused it, not Atelier
        assert any("forbidden" in json.dumps(body) for body in posted(fake)), posted(fake)
    env.clean()


@pytest.mark.parametrize(
    ("name", "prompt", "named"),
    [
        (FLUX, "a cat --chaos 5", "--chaos"),
        (FLUX, "a cat --ar 5:4", "16:9"),  # a ratio Flux cannot draw: the seven are named
        (YOUCHUAN, "a cat --steps 6", "--steps"),
    ],
)
async def test_prompt_the_provider_cannot_take_is_refused_privately(
    env: ProvidersEnv, name: str, prompt: str, named: str
) -> None:
    provider_fake = env.provider_fakes()[name]
    before = len(provider_fake.requests)
    where = await channel(env, f"refused-{name}")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": prompt, "provider": name}, channel_id=where
    )
    await acked(rec, 5)
    reply = await rec.wait_response(10)
    assert reply.ephemeral and named in reply.content, reply.content
    await asyncio.sleep(0.5)
    assert channel_posts(env, where) == []
    assert [r for r in provider_fake.requests[before:] if r.method == "POST"] == []
    env.clean()


# ------------------------------------------------------------------ mj-proxy


async def test_mj_proxy_v3_and_reroll_use_the_tasks_buttons(env: ProvidersEnv) -> None:
    grid_job, grid = await ensure_grid(env, PROXY)
    before = len(env.proxy.requests)
    for face in ("V3", "🔄"):
        await click(env, grid, face)
    (var_id, _), (re_id, _) = await asyncio.gather(
        child_of(env, grid, "Variations (Image #3)"), child_of(env, grid, "Reroll")
    )
    variation, reroll = await asyncio.gather(
        result_of(env, var_id, grid.channel_id), result_of(env, re_id, grid.channel_id)
    )
    assert faces(variation) == GRID and faces(reroll) == GRID
    assert f"from `{grid_job}`" in variation.content
    sent = sorted(
        r.body["customId"].split("::")[2]
        for r in env.proxy.requests[before:]
        if r.endpoint == "/submit/action"
    )
    assert sent == ["reroll", "variation"], sent
    env.clean()


# ------------------------------------------------------------------ MaaS-MJ


async def test_maas_mj_upscale_creative_calls_tob_upscale(env: ProvidersEnv) -> None:
    _, grid = await ensure_grid(env, YOUCHUAN)
    selected = await upscale_of(env, grid, 2)
    before = len(env.youchuan.requests)
    await click(env, selected, "Upscale (Creative)")
    child_id, _ = await child_of(env, selected, "Upscale (Creative)")
    result = await outcome_of(env, child_id, selected.channel_id)
    assert len(result.attachments) == 1
    assert faces(result) == [["🖌️ Vary (Region)"]]  # /tob/inpaint on the upscaled job
    calls = [r for r in env.youchuan.requests[before:] if r.path.endswith("/tob/upscale")]
    assert len(calls) == 1, [r.path for r in env.youchuan.requests[before:]]
    body = calls[0].json
    parents = [
        j
        for j in env.youchuan.jobs.values()
        if j.kind == "diffusion" and j.text.split(" --")[0] in grid.content
    ]
    assert len(parents) == 1, [j.text for j in env.youchuan.jobs.values()]
    assert body == {"jobId": parents[0].id, "imageNo": 1, "type": 1}, body  # image 2, creative
    env.clean()


async def test_maas_mj_missing_calls_are_found_out_and_hidden(env: ProvidersEnv) -> None:
    """Pan and outpaint are not documented by Cloudsway: offered until the first 404, which
    is remembered, and the buttons disappear from then on."""
    fake = env.fake
    _, grid = await ensure_grid(env, YOUCHUAN)
    selected = await upscale_of(env, grid, 3)
    assert faces(selected) == UPSCALE_OF[YOUCHUAN]
    for face, marker, endpoint, what in (
        ("🔍 Zoom Out 2x", "Zoom Out 2x", "outpaint", "Zoom Out"),
        ("⬅️", "Pan left", "pan", "Pan"),
    ):
        await click(env, selected, face)
        child_id, _ = await child_of(env, selected, marker)
        failed = await failure_of(env, child_id, selected.channel_id)
        said = failed.content
        assert f"{YOUCHUAN} does not offer {what}" in said, said
        assert f"HTTP 404 for /tob/{endpoint}" in said, said
        assert "other buttons still work" in said, said  # not "try again"
        assert env.youchuan.api_requests(f"/tob/{endpoint}", "POST"), endpoint
    # The old message still shows the buttons; pressing one now is refused privately.
    rec = await fake.click_button(selected.id, custom_id_of(selected, "🔍 Zoom Out 1.5x"))
    await acked(rec, 6)
    said = await rec.wait_followup(10)
    assert said.ephemeral and "Zoom Out is not offered" in said.content, said.content
    # A new selection offers only what is there.
    fresh = await upscale_of(env, grid, 4)
    assert faces(fresh) == YOUCHUAN_IMAGE, env.why()
    env.clean()


async def test_maas_mj_v1_is_a_strong_variation(env: ProvidersEnv) -> None:
    _, grid = await ensure_grid(env, YOUCHUAN)
    before = len(env.youchuan.requests)
    await click(env, grid, "V1")
    child_id, _ = await child_of(env, grid, "Variations (Image #1)")
    result = await result_of(env, child_id, grid.channel_id)
    assert faces(result) == GRID_OF[YOUCHUAN]
    calls = [r for r in env.youchuan.requests[before:] if r.path.endswith("/tob/variation")]
    assert [(c.json["imageNo"], c.json["type"]) for c in calls] == [(0, 1)]
    env.clean()


@pytest.mark.parametrize(("name", "call"), [(YOUCHUAN, "/tob/diffusion"), (FLUX, "/generations")])
async def test_emulated_reroll_runs_the_prompt_again(
    env: ProvidersEnv, name: str, call: str
) -> None:
    _, grid = await ensure_grid(env, name)
    fake = env.provider_fakes()[name]
    before = len(fake.requests)
    await click(env, grid, "🔄 (emulated)")
    child_id, _ = await child_of(env, grid, "Reroll")
    result = await result_of(env, child_id, grid.channel_id)
    assert faces(result) == GRID_OF[name] and EMULATED_NOTE[name] in result.content
    calls = [r.json for r in fake.requests[before:] if r.path.endswith(call)]
    assert len(calls) == 1, calls
    prompt = calls[0].get("text") or calls[0].get("prompts")
    assert prompt and prompt.split(" --")[0] in grid.content, calls
    if name == FLUX:
        assert calls[0]["seed"] == 0 and calls[0]["batchsize"] == 4  # a new seed, four again
    env.clean()


# ------------------------------------------------------------------ Make Square, after an upscale


async def test_mj_proxy_make_square_presses_the_servers_outpaint_100(env: ProvidersEnv) -> None:
    # Midjourney offers Make Square on a non-square upscale only: a 3:2 grid's U4.
    where = await channel(env, "make-square-proxy")
    _, job_id, _ = await imagine(env, where, "a wide harbour --ar 3:2", provider=PROXY)
    grid = await result_of(env, job_id, where)
    upscale = await upscale_of(env, grid, 4)
    assert faces(upscale)[0] == [*UPSCALE[0], "Make Square"], env.why()
    before = len(env.proxy.requests)
    await click(env, upscale, "Make Square")
    child_id, _ = await child_of(env, upscale, "Make Square")
    result = await outcome_of(env, child_id, upscale.channel_id)
    assert faces(result) == GRID, env.why()  # four outpainted images
    sent = [r.body for r in env.proxy.requests[before:] if r.endpoint == "/submit/action"]
    assert len(sent) == 1 and sent[0]["customId"].startswith("MJ::Outpaint::100::1::"), sent
    env.clean()


async def test_maas_mj_vary_region_on_an_upscaled_job(env: ProvidersEnv) -> None:
    _, grid = await ensure_grid(env, YOUCHUAN)
    selected = await upscale_of(env, grid, 2)  # V1 was pressed: "Image #1" would match it
    await click(env, selected, "Upscale (Subtle)")
    upscale_id, _ = await child_of(env, selected, "Upscale (Subtle)")
    upscaled = await outcome_of(env, upscale_id, selected.channel_id)
    rec = await env.fake.click_button(upscaled.id, custom_id_of(upscaled, "🖌️ Vary (Region)"))
    form = await acked(rec, 9)
    assert form.modal is not None
    fields = {"area": ["left"], "box": "", "prompt": "a green sail"}
    await acked(await env.fake.submit_modal(form.modal["custom_id"], fields, source=form), 5)
    child_id, _ = await child_of(env, upscaled, "Vary (Region)")
    result = await outcome_of(env, child_id, upscaled.channel_id)
    assert faces(result) == GRID_OF[YOUCHUAN], env.why()
    upscale_jobs = [j for j in env.youchuan.jobs.values() if j.kind == "upscale"]
    calls = [r.json for r in env.youchuan.requests if r.path.endswith("/tob/inpaint")]
    assert calls and calls[-1]["jobId"] == upscale_jobs[-1].id and calls[-1]["imageNo"] == 0
    assert calls[-1]["remixPrompt"] == "a green sail"
    env.clean()


# ------------------------------------------------------------------ all of it


async def test_no_violations_anywhere(env: ProvidersEnv) -> None:
    env.clean()
    keys = [f.key for f in env.provider_fakes().values()]
    for message in env.fake.all_messages(include_deleted=True):
        texts = [message.text(), *(str(e.body) for e in message.edits)]
        assert not any(k in t for k in keys for t in texts), message.content  # no key leaks
    assert "Traceback" not in env.bot.log_text(200_000), env.bot.log_text()
