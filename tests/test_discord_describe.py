"""End to end: where /describe and /shorten lead, and /blend's dimensions, on the wire.

The real bot (`python -m bot run`) against the fake Discord and the mj-proxy fake (which
takes image prompts: base64Array on /mj/submit/imagine). Describe's 2️⃣ opens a form
holding the second prompt; submitting it imagines the edited prompt with the described
image as image prompt. "Imagine all" starts one imagine per prompt; 🔄 describes the same
image again. /shorten's buttons open the same form. /blend sends its dimensions.
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from bot.engine.models import Job, JobStatus
from bot.ui import custom_ids, describe, layout
from bot.ui.custom_ids import Target
from bot.vocab import Action
from tests.discord_helpers import BotProcess, button_ids, job_id_in, rows, write_config
from tests.fakes.discord_fake import FakeDiscord, FakeFile, FakeMessage, InteractionRecord
from tests.fakes.mj_proxy_fake import DEFAULT_DESCRIBE, FakeMjProxy
from tests.test_discord_e2e import (
    RESULT_TIMEOUT,
    Env,
    acked,
    channel,
    channel_posts,
    child_of,
    png_bytes,
    press,
)
from tests.test_discord_providers import toml_table

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

PROXY = "proxy"
COLOUR = (20, 120, 220)


@dataclass
class DescribeEnv(Env):
    proxy: Any = None

    def clean(self) -> None:
        super().clean()
        assert self.proxy.violations == [], f"{self.proxy.violations}\n{self.why()}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(
    tmp_path_factory: pytest.TempPathFactory, store_kind: str
) -> AsyncIterator[DescribeEnv]:
    tmp = tmp_path_factory.mktemp("discord-describe")
    async with FakeMjProxy(flavour="trueai", key="proxy-key") as proxy:
        fake = FakeDiscord()
        await fake.start()
        extra = toml_table(proxy.provider_config(PROXY, poll_interval=0.1))
        config = write_config(tmp / "config.toml", fake, tmp / "data", extra=extra)
        bot = BotProcess(config, tmp / "bot.log")
        await bot.start()
        state = DescribeEnv(fake, bot, tmp, config, proxy=proxy)
        try:
            await fake.wait_ready(60)
            await fake.wait_commands_synced(60)
            yield state
        finally:
            await bot.stop()
            await fake.stop()


async def command(
    env: Env, name: str, where: int, *, user_id: int | None = None, **options: Any
) -> str:
    """A job-starting slash command; the id of its job."""
    attachments = options.pop("attachments", None)
    rec = await env.fake.send_slash_command(
        name, options, attachments=attachments, channel_id=where, user_id=user_id
    )
    await acked(rec, 5)
    reply = await rec.wait_response(20)
    match = re.search(r"`([0-9a-z]{10})`", reply.content)
    assert match, f"{reply.content}\n{env.why()}"
    return match.group(1)


async def text_result(env: Env, job_id: str, where: int) -> FakeMessage:
    """A describe/shorten answer: its prompts' buttons."""

    def find() -> FakeMessage | None:
        return next(
            (
                m
                for m in channel_posts(env, where)
                if job_id_in(m) == job_id and any(":imagine:" in i for i in button_ids(m))
            ),
            None,
        )

    return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the answer of {job_id}")


async def described(env: DescribeEnv, where: int, user_id: int | None = None) -> FakeMessage:
    job_id = await command(
        env,
        "describe",
        where,
        user_id=user_id,
        provider=PROXY,
        attachments={"image": FakeFile("photo.png", png_bytes(COLOUR))},
    )
    return await text_result(env, job_id, where)


def form_prompt(rec: InteractionRecord) -> str:
    """The prompt a form opened with (its text input's default)."""
    assert rec.modal is not None, rec
    for top in rec.modal.get("components") or []:
        inner = [top["component"]] if "component" in top else top.get("components") or []
        for component in inner:
            if component.get("custom_id") == "prompt":
                return str(component.get("value") or "")
    raise AssertionError(f"no prompt field in {rec.modal}")


def colour_of(data_url: str) -> tuple[int, ...]:
    raw = base64.b64decode(data_url.split(",", 1)[1])
    pixel = Image.open(io.BytesIO(raw)).convert("RGB").getpixel((10, 10))
    assert isinstance(pixel, tuple)
    return pixel


async def wait_count(env: DescribeEnv, endpoint: str, count: int) -> None:
    await env.fake.wait_for(
        lambda: env.proxy.count(endpoint) >= count or None,
        RESULT_TIMEOUT,
        what=f"{count} requests to {endpoint}",
    )


async def test_describe_prompt_opens_a_form_then_imagines_with_the_image(
    env: DescribeEnv,
) -> None:
    where = await channel(env, "describe-form")
    answer = await described(env, where)
    assert rows(answer) == [["1️⃣", "2️⃣", "3️⃣", "4️⃣"], ["Imagine all", "🔄"]]
    before = env.proxy.count("/submit/imagine")

    form = await acked(await press(env, answer, "2️⃣"), 9)  # the form is the first answer
    second = "fox portrait in winter forest, children's book illustration --ar 1:1"
    assert form_prompt(form) == second and form.modal is not None
    edited = "fox portrait in a winter forest at night --ar 1:1"
    submitted = await env.fake.submit_modal(
        form.modal["custom_id"], {"prompt": edited}, source=form
    )
    said = await submitted.wait_response(20)
    assert said.ephemeral and "Started job" in said.content, f"{said.content}\n{env.why()}"
    await wait_count(env, "/submit/imagine", before + 1)
    body = env.proxy.bodies("/submit/imagine")[-1]
    assert body["prompt"] == edited
    images = body.get("base64Array") or []
    assert len(images) == 1 and colour_of(images[0]) == COLOUR, env.why()  # the image prompt
    child_id, _ = await child_of(env, answer, "winter forest at night")
    assert child_id != job_id_in(answer)
    env.clean()


async def test_imagine_all_and_describe_again(env: DescribeEnv) -> None:
    where = await channel(env, "describe-all")
    answer = await described(env, where)
    imagines = env.proxy.count("/submit/imagine")
    describes = env.proxy.count("/submit/describe")

    rec = await acked(await press(env, answer, "Imagine all"), 6)
    said = await rec.wait_followup(20)
    assert "Started 4 imagine jobs" in said.content, f"{said.content}\n{env.why()}"
    await wait_count(env, "/submit/imagine", imagines + 4)
    prompts = [b["prompt"] for b in env.proxy.bodies("/submit/imagine")[-4:]]
    assert sorted(prompts) == sorted(answer_prompts()), prompts

    await acked(await press(env, answer, "🔄"), 6)
    await wait_count(env, "/submit/describe", describes + 1)
    body = env.proxy.bodies("/submit/describe")[-1]
    assert colour_of(body["base64"]) == COLOUR  # the same image, described again
    again = await env.fake.wait_for(
        lambda: next(
            (
                m
                for m in channel_posts(env, where)
                if (m.message_reference or {}).get("message_id") == str(answer.id)
                and any(":describe:" in i for i in button_ids(m))
            ),
            None,
        ),
        RESULT_TIMEOUT,
        what="the second describe's answer",
    )
    assert job_id_in(again) != job_id_in(answer)
    env.clean()


def answer_prompts() -> list[str]:
    """The prompts of the mj-proxy fake's describe answer (as the fake wrote them)."""
    return [re.sub(r"^\S+ ", "", p.strip()) for p in DEFAULT_DESCRIBE.split("\n\n")]


async def test_imagine_all_stops_at_the_members_limit(env: DescribeEnv) -> None:
    fake = env.fake
    where = await channel(env, "describe-limit")
    role = await fake.add_role("thrifty")
    member = fake.add_user("thrifty-member")
    fake.set_member_roles(member, [role])
    owner = int(fake.owner["id"])
    rec = await fake.send_slash_command(
        "server limits", {"role": role, "daily": 3.0}, channel_id=where, user_id=owner
    )
    assert (await rec.wait_response(20)).content.startswith("✅"), env.why()
    answer = await described(env, where, user_id=member)  # 1 credit of 3
    imagines = env.proxy.count("/submit/imagine")

    rec = await acked(await fake.click_button(answer.id, imagine_all_id(answer), user_id=member), 6)
    said = (await rec.wait_followup(20)).content
    assert "Started 2 of 4 imagine jobs" in said, f"{said}\n{env.why()}"  # each one credit
    await wait_count(env, "/submit/imagine", imagines + 2)
    assert env.proxy.count("/submit/imagine") == imagines + 2
    env.clean()


def imagine_all_id(message: FakeMessage) -> str:
    return str(next(b["custom_id"] for b in message.buttons() if b.get("label") == "Imagine all"))


async def test_shorten_buttons_open_the_form(env: DescribeEnv) -> None:
    where = await channel(env, "shorten-form")
    job_id = await command(
        env, "shorten", where, provider=PROXY, prompt="a red fox in the snow, watercolor"
    )
    answer = await text_result(env, job_id, where)
    assert rows(answer) == [["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"]]
    before = env.proxy.count("/submit/imagine")
    form = await acked(await press(env, answer, "3️⃣"), 9)
    assert form_prompt(form) == "watercolor fox" and form.modal is not None
    await env.fake.submit_modal(form.modal["custom_id"], {}, source=form)  # as it is
    await wait_count(env, "/submit/imagine", before + 1)
    body = env.proxy.bodies("/submit/imagine")[-1]
    assert body["prompt"] == "watercolor fox" and not body.get("base64Array")
    env.clean()


async def test_blend_dimensions_reach_the_provider(env: DescribeEnv) -> None:
    where = await channel(env, "blend-shape")
    before = env.proxy.count("/submit/blend")
    await command(
        env,
        "blend",
        where,
        provider=PROXY,
        dimensions="portrait",
        attachments={
            "image1": FakeFile("a.png", png_bytes((250, 10, 10))),
            "image2": FakeFile("b.png", png_bytes((10, 250, 10))),
        },
    )
    await wait_count(env, "/submit/blend", before + 1)
    assert env.proxy.bodies("/submit/blend")[-1]["dimensions"] == "PORTRAIT"
    env.clean()


# ------------------------------------------------------------------ the rules, without I/O


def _answer(action: Action, texts: int, *, inputs: bool = True) -> Job:
    return Job(
        id="0123456789",
        action=action,
        provider=PROXY,
        status=JobStatus.SUCCEEDED,
        texts=[f"prompt {n}" for n in range(1, texts + 1)],
        inputs=["0123456789/input_1.png"] if inputs else [],
    )


async def test_text_rows_per_kind_of_answer() -> None:
    def faces(job: Job) -> list[list[str]]:
        return [[b.label or b.emoji or "" for b in row] for row in layout.text_rows(job)]

    assert faces(_answer(Action.DESCRIBE, 4)) == [
        ["1️⃣", "2️⃣", "3️⃣", "4️⃣"],
        ["Imagine all", "🔄"],
    ]
    # Without the stored image there is nothing to describe again.
    assert faces(_answer(Action.DESCRIBE, 4, inputs=False))[1] == ["Imagine all"]
    assert faces(_answer(Action.SHORTEN, 5)) == [["1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣"]]
    again = layout.text_rows(_answer(Action.DESCRIBE, 4))[1][1]
    assert custom_ids.parse_button(again.custom_id) == Target("describe", "0123456789")


async def test_presses_a_describe_answer_did_not_offer_are_refused() -> None:
    described, shortened = _answer(Action.DESCRIBE, 4), _answer(Action.SHORTEN, 5)
    assert describe.problem(described, Target("imagine", described.id, 2)) is None
    assert describe.problem(described, Target("imagine", described.id, 0, "all")) is None
    assert describe.problem(described, Target("describe", described.id)) is None
    refused = [
        (described, Target("imagine", described.id, 5)),  # no fifth prompt
        (described, Target("imagine", described.id, 1, "all")),
        (shortened, Target("imagine", shortened.id, 0, "all")),  # describe only
        (shortened, Target("describe", shortened.id)),
        (_answer(Action.IMAGINE, 0), Target("imagine", "0123456789", 1)),
    ]
    for job, target in refused:
        assert describe.problem(job, target), target
    assert describe.opens_form(Target("imagine", described.id, 3))
    assert not describe.opens_form(Target("imagine", described.id, 0, "all"))


async def test_imagine_all_says_how_many_started() -> None:
    assert describe.imagine_all_summary(4, 4, "") == "✅ Started 4 imagine jobs, one per prompt."
    partly = describe.imagine_all_summary(2, 4, "You have used today's 2 credits.")
    assert "Started 2 of 4" in partly and "today's 2 credits" in partly
    assert describe.imagine_all_summary(0, 4, "over budget").startswith("❌ No imagine job")
