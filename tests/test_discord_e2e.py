"""End to end: the real bot (`python -m bot run`) against the fake Discord.

One bot process (sandbox provider, 2 s jobs) serves the whole module; the restart test
kills it (SIGKILL), starts it again, and later stops it with SIGTERM. Each test works in
a channel of its own, so the per-channel pacing of one test never slows another.
Every test ends by checking that no request body the bot sent broke Discord's schema
or limits (`fake.violations`).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from tests import stores
from tests.discord_helpers import (
    BotProcess,
    button_ids,
    is_result,
    job_id_in,
    rows,
    run_to_exit,
    write_config,
)
from tests.fakes.discord_fake import FakeDiscord, FakeFile, FakeMessage, InteractionRecord

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.both_stores]

GRID_ROWS = [["U1", "U2", "U3", "U4", "🔄"], ["V1", "V2", "V3", "V4"]]
# An upscale of a non-square grid (the sandbox offers Make Square only there).
UPSCALE_ROWS = [
    ["Upscale (Subtle)", "Upscale (Creative)", "Make Square"],
    ["Vary (Subtle)", "Vary (Strong)", "Vary (Region)"],
    ["Zoom Out 2x", "Zoom Out 1.5x", "Custom Zoom"],
    ["⬅️", "➡️", "⬆️", "⬇️"],
]
EDIT_INTERVAL = 0.5
RESULT_TIMEOUT = 40.0


@dataclass
class Env:
    fake: FakeDiscord
    bot: BotProcess
    tmp: Path
    config: Path
    grid_job: str | None = None
    grid_result: FakeMessage | None = None
    upscale_result: FakeMessage | None = None

    def why(self) -> str:
        return f"{self.fake.summary()}\n--- bot log ---\n{self.bot.log_text()}"

    def clean(self) -> None:
        assert not self.fake.violations, self.why()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, store_kind: str) -> AsyncIterator[Env]:
    tmp = tmp_path_factory.mktemp("discord-e2e")
    fake = FakeDiscord()
    await fake.start()
    config = write_config(tmp / "config.toml", fake, tmp / "data", edit_interval=EDIT_INTERVAL)
    bot = BotProcess(config, tmp / "bot.log")
    await bot.start()
    state = Env(fake, bot, tmp, config)
    try:
        await fake.wait_ready(60)
        await fake.wait_commands_synced(60)
        yield state
    finally:
        await bot.stop()
        await fake.stop()


# ------------------------------------------------------------------ helpers


async def channel(env: Env, name: str) -> int:
    return await env.fake.add_channel(name)


async def acked(rec: InteractionRecord, kind: int) -> InteractionRecord:
    await rec.wait_ack(5)
    assert rec.ack_latency is not None and rec.ack_latency < 3.0, rec
    assert rec.ack_type == kind and rec.acked, rec
    return rec


def channel_posts(env: Env, channel_id: int) -> list[FakeMessage]:
    """Normal messages the bot posted in a channel (not interaction responses)."""
    return [
        m for m in env.fake.channel_messages(channel_id) if m.webhook_id is None and not m.ephemeral
    ]


async def job_message(env: Env, job_id: str, channel_id: int) -> FakeMessage:
    def find() -> FakeMessage | None:
        return next((m for m in channel_posts(env, channel_id) if job_id_in(m) == job_id), None)

    return await env.fake.wait_for(find, 20, what=f"the message of job {job_id}")


async def result_of(env: Env, job_id: str, channel_id: int) -> FakeMessage:
    def find() -> FakeMessage | None:
        return next(
            (m for m in channel_posts(env, channel_id) if job_id_in(m) == job_id and is_result(m)),
            None,
        )

    try:
        return await env.fake.wait_for(find, RESULT_TIMEOUT, what=f"the result of job {job_id}")
    except TimeoutError:
        raise AssertionError(f"no result for {job_id}\n{env.why()}") from None


async def imagine(
    env: Env, channel_id: int, prompt: str, **options: object
) -> tuple[InteractionRecord, str, FakeMessage]:
    """/imagine; returns the interaction, the job id and the job's channel message."""
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": prompt, **options}, channel_id=channel_id
    )
    await acked(rec, 5)
    assert rec.original is not None and rec.original.ephemeral
    reply = await rec.wait_response(20)
    match = re.search(r"job `([0-9a-z]{10})`", reply.content)
    assert match, f"{reply.content}\n{env.why()}"
    job_id = match.group(1)
    return rec, job_id, await job_message(env, job_id, channel_id)


def custom_id_for(message: FakeMessage, label: str) -> str:
    for button in message.buttons():
        name = button.get("label") or (button.get("emoji") or {}).get("name")
        if name == label:
            return str(button["custom_id"])
    raise AssertionError(f"no button {label!r} on {message!r}")


async def press(env: Env, message: FakeMessage, label: str) -> InteractionRecord:
    rec = await env.fake.click_button(message.id, custom_id_for(message, label))
    return rec


async def child_of(env: Env, parent: FakeMessage, marker: str) -> tuple[str, FakeMessage]:
    """The job message that replies to `parent` and whose first line (what the job is)
    contains `marker`. Results of earlier children reply to `parent` too, and their notes
    ("Reroll is emulated...") must not match."""

    def find() -> FakeMessage | None:
        for m in channel_posts(env, parent.channel_id):
            ref = m.message_reference or {}
            if ref.get("message_id") == str(parent.id) and marker in m.content.split("\n")[0]:
                return m
        return None

    message = await env.fake.wait_for(find, 20, what=f"a reply to {parent.id} with {marker}")
    job_id = job_id_in(message)
    assert job_id
    return job_id, message


def delivered(env: Env, job_id: str) -> bool:
    """Whether the store says the job's outcome was shown (the presenter's last step)."""
    data = stores.job_data(env.tmp / "data" / "atelier.db", job_id)
    return bool(data and data.get("delivered_at"))


def png_bytes(colour: tuple[int, int, int], size: int = 96) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(out, "PNG")
    return out.getvalue()


def create_request_of(env: Env, message: FakeMessage) -> dict[str, object]:
    for request in env.fake.requests_to(env.fake.ROUTE_MESSAGE_CREATE):
        if isinstance(request.response, dict) and request.response.get("id") == str(message.id):
            assert isinstance(request.json, dict)
            return request.json
    raise AssertionError(f"no create request for {message.id}")


async def ensure_grid(env: Env) -> FakeMessage:
    """The grid result of the first test, or a new one when that test did not run."""
    if env.grid_result is None:
        where = await channel(env, "grid")
        _, job_id, _ = await imagine(env, where, "a grid to act on")
        env.grid_job, env.grid_result = job_id, await result_of(env, job_id, where)
    return env.grid_result


async def ensure_upscale(env: Env) -> FakeMessage:
    """An upscale result (made by an earlier test, or here)."""
    if env.upscale_result is None:
        grid = await ensure_grid(env)
        await acked(await press(env, grid, "U2"), 6)
        up_id, _ = await child_of(env, grid, "Image #2")
        env.upscale_result = await result_of(env, up_id, grid.channel_id)
    return env.upscale_result


# ------------------------------------------------------------------ tests


async def test_imagine_shows_progress_then_result_with_buttons(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "imagine")
    rec, job_id, job_msg = await imagine(env, where, "a lighthouse at dusk --ar 3:2")
    # The job's message: a normal channel message owned by the bot, saying who, what, where.
    assert job_msg.author["id"] == fake.bot_user["id"] and job_msg.webhook_id is None
    for part in (f"<@{fake.user_id}>", "a lighthouse at dusk", "sandbox", "mode", job_id):
        assert part in job_msg.content, job_msg.content
    # The private reply points at it.
    assert str(job_msg.id) in (rec.original.content if rec.original else "")

    result = await result_of(env, job_id, where)
    assert not result.message_reference  # a new message, Midjourney's way (no parent here)
    assert rows(result) == GRID_ROWS
    assert len(result.attachments) == 1 and result.attachments[0].filename.endswith(".png")
    mentions = create_request_of(env, result).get("allowed_mentions")
    assert isinstance(mentions, dict) and mentions.get("parse") == []
    assert [int(u) for u in mentions["users"]] == [fake.user_id]  # only the requester
    assert f"<@{fake.user_id}>" in result.content

    # Progress was shown, no faster than edit_interval, and the message is now deleted:
    # the result is the one message left about the job.
    await fake.wait_for(lambda: fake.get_message(job_msg.id).deleted, 10)
    final = fake.get_message(job_msg.id)
    assert [m.id for m in channel_posts(env, where) if job_id_in(m) == job_id] == [result.id]
    progress = [e for e in final.edits if "🎨" in str(e.body.get("content", ""))]
    assert progress, env.why()
    assert all(e.via == "channel" for e in final.edits)
    gaps = [b.time - a.time for a, b in itertools.pairwise(progress)]
    assert all(gap >= EDIT_INTERVAL - 0.05 for gap in gaps), gaps
    env.grid_job, env.grid_result = job_id, result
    env.clean()


async def test_u2_v3_and_reroll_start_child_jobs(env: Env) -> None:
    grid = await ensure_grid(env)
    recs = [await press(env, grid, label) for label in ("U2", "V3", "🔄")]
    for rec in recs:
        await acked(rec, 6)  # a silent acknowledgement: the new message is the answer
    (up_id, up_msg), (var_id, _), (re_id, _) = await asyncio.gather(
        child_of(env, grid, "Image #2"),
        child_of(env, grid, "Variations (Image #3)"),
        child_of(env, grid, "Reroll"),
    )
    upscale, variation, reroll = await asyncio.gather(
        result_of(env, up_id, grid.channel_id),
        result_of(env, var_id, grid.channel_id),
        result_of(env, re_id, grid.channel_id),
    )
    assert rows(upscale) == UPSCALE_ROWS
    # The result replies to the grid (the parent's result), whether or not the child's
    # progress message was posted first (a busy channel posts just the outcome).
    replied_to = (upscale.message_reference or {}).get("message_id")
    assert replied_to == str(grid.id)
    if up_msg.id != upscale.id:  # the progress message went when the result came
        await env.fake.wait_for(lambda: env.fake.get_message(up_msg.id).deleted, 10)
    assert rows(variation) == GRID_ROWS and rows(reroll) == GRID_ROWS
    assert f"from `{env.grid_job}`" in upscale.content
    env.upscale_result = upscale
    env.clean()


async def test_upscale_creative_on_an_upscale(env: Env) -> None:
    upscale = await ensure_upscale(env)
    await acked(await press(env, upscale, "Upscale (Creative)"), 6)
    child_id, _ = await child_of(env, upscale, "Upscale (Creative)")
    result = await result_of(env, child_id, upscale.channel_id)
    assert result.attachments
    env.clean()


async def test_vary_region_and_custom_zoom_open_forms(env: Env) -> None:
    fake, upscale = env.fake, await ensure_upscale(env)

    region = await acked(await press(env, upscale, "Vary (Region)"), 9)  # the modal first
    assert region.modal is not None and region.modal["custom_id"].startswith("at1m:inpaint:")
    submitted = await fake.submit_modal(
        region.modal["custom_id"],
        {"area": ["left", "center"], "box": "60,60,90,90", "prompt": "a red door"},
        source=region,
    )
    await acked(submitted, 5)
    answer = await submitted.wait_response(20)
    assert "Started job" in answer.content, answer.content

    zoom = await acked(await press(env, upscale, "Custom Zoom"), 9)
    assert zoom.modal is not None
    bad = await fake.submit_modal(zoom.modal["custom_id"], {"factor": "7"}, source=zoom)
    await acked(bad, 5)
    refused = await bad.wait_response(20)
    assert "between 1 and 2" in refused.content and refused.ephemeral
    good = await fake.submit_modal(zoom.modal["custom_id"], {"factor": "1.4"}, source=zoom)
    await acked(good, 5)
    assert "Started job" in (await good.wait_response(20)).content

    region_id, region_msg = await child_of(env, upscale, "Vary (Region)")
    zoom_id, zoom_msg = await child_of(env, upscale, "Zoom Out (custom)")
    assert "a red door" in region_msg.content
    assert "--zoom 1.4" in zoom_msg.content  # the factor travels in the prompt
    await asyncio.gather(
        result_of(env, region_id, upscale.channel_id),
        result_of(env, zoom_id, upscale.channel_id),
    )
    env.clean()


async def test_bad_prompt_is_refused_privately_before_any_provider_call(env: Env) -> None:
    where = await channel(env, "bad-prompt")
    tasks_dir = env.tmp / "data" / "sandbox"
    tasks_before = sorted(tasks_dir.rglob("*")) if tasks_dir.exists() else []
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a cat --chaos 500"}, channel_id=where
    )
    await acked(rec, 5)
    reply = await rec.wait_response(10)
    assert reply.ephemeral
    assert "--chaos takes a whole number from 0 to 100; you gave 500." in reply.content
    not_an_image = await env.fake.send_slash_command(
        "imagine",
        {"prompt": "a cat"},
        attachments={"image1": FakeFile("cat.png", b"<html><body>expired link</body></html>")},
        channel_id=where,
    )
    await acked(not_an_image, 5)
    refused = await not_an_image.wait_response(10)
    assert refused.ephemeral and "cat.png" in refused.content
    assert "not an image" in refused.content and "HTML" in refused.content
    await asyncio.sleep(1.0)
    assert channel_posts(env, where) == []
    after = sorted(tasks_dir.rglob("*")) if tasks_dir.exists() else []
    assert after == tasks_before  # the sandbox never saw it
    env.clean()


async def test_provider_failure_is_explained(env: Env) -> None:
    where = await channel(env, "failure")
    rec = await env.fake.send_slash_command(
        "imagine", {"prompt": "a forbidden castle"}, channel_id=where
    )
    await acked(rec, 5)
    await rec.wait_response(20)

    def failed() -> FakeMessage | None:
        return next((m for m in channel_posts(env, where) if "Failed" in m.content), None)

    message = await env.fake.wait_for(failed, 30, what="the failure message")
    assert "forbidden" in message.content.lower() and not message.components
    assert "try" in message.content.lower()
    env.clean()


async def test_deleted_job_message_does_not_stop_the_job(env: Env) -> None:
    where = await channel(env, "deleted")
    _, job_id, job_msg = await imagine(env, where, "a deleted message")
    await env.fake.delete_message(job_msg.id)
    result = await result_of(env, job_id, where)
    assert result.id != job_msg.id and rows(result) == GRID_ROWS
    env.clean()


async def test_deleted_channel_keeps_the_job_for_jobs(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "doomed")
    elsewhere = await channel(env, "elsewhere")
    _, job_id, _ = await imagine(env, where, "a channel that disappears")
    await fake.delete_channel(where)

    async def status() -> str:
        rec = await fake.send_slash_command("jobs", {}, channel_id=elsewhere)
        await acked(rec, 5)
        text = (await rec.wait_response(10)).content
        line = next((ln for ln in text.splitlines() if job_id in ln), "")
        return line

    for _ in range(30):
        line = await status()
        if "succeeded" in line:
            break
        await asyncio.sleep(1.0)
    assert "succeeded" in line, env.why()
    env.clean()


async def test_button_of_a_job_gone_from_the_store_says_so(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "forgotten")
    _, job_id, job_msg = await imagine(env, where, "a job that will be forgotten")
    result = await result_of(env, job_id, where)
    # The progress message goes first, then the store records the result as delivered.
    await fake.wait_for(lambda: fake.get_message(job_msg.id).deleted, 10)
    await fake.wait_for(lambda: delivered(env, job_id), 10, what="the store to settle")
    stores.execute(env.tmp / "data" / "atelier.db", "DELETE FROM jobs WHERE id = ?", job_id)
    rec = await press(env, result, "U1")
    await acked(rec, 6)
    said = await rec.wait_followup(10)
    assert said.ephemeral and "no longer exists" in said.content
    env.clean()


async def test_provider_autocomplete(env: Env) -> None:
    rec = await env.fake.send_autocomplete("imagine", "provider", "sa", {"prompt": "x"})
    await acked(rec, 8)
    assert rec.choices == [{"name": "sandbox", "value": "sandbox"}]
    env.clean()


async def test_missing_or_rejected_token_exits_2(env: Env) -> None:
    missing = write_config(env.tmp / "no-token.toml", env.fake, env.tmp / "x", token="")
    code, output = await run_to_exit(missing)
    assert code == 2 and "discord.token is not set" in output, output
    wrong = write_config(env.tmp / "bad-token.toml", env.fake, env.tmp / "y", token="nope.x.y")
    seen = len(env.fake.violations)
    code, output = await run_to_exit(wrong)
    assert code == 2 and "rejected" in output and "nope.x.y" not in output, output
    # The fake notes the wrong token as an [auth] violation: expected here, and only that.
    expected = env.fake.violations[seen:]
    assert expected and all(v.startswith("[auth]") for v in expected), expected
    del env.fake.violations[seen:]
    env.clean()


async def test_job_outlives_the_interaction_token(env: Env) -> None:
    where = await channel(env, "token")
    rec, job_id, job_msg = await imagine(env, where, "a slow river")
    rec.expire()  # from now on, the interaction token is dead
    await result_of(env, job_id, where)
    assert env.fake.get_message(job_msg.id).edit_count >= 1
    assert not env.fake.violations_of("expired-token")
    env.clean()


async def test_429_storm_on_edits_does_not_cascade(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "storm")
    before = fake.count_429
    fake.storm_429(fake.ROUTE_MESSAGE_EDIT, 8, retry_after=0.3)
    first = await imagine(env, where, "a stormy sea")
    second = await imagine(env, where, "a calm sea")
    for _, job_id, _ in (first, second):
        await result_of(env, job_id, where)
    # Only the storm's own 429s: the bot did not provoke more by hammering the channel.
    assert fake.count_429 - before <= 8, env.why()
    env.clean()


async def test_result_too_large_for_the_limit_is_reencoded(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "small-uploads")
    limit = 40_000
    fake.set_upload_limit(limit)
    try:
        _, job_id, _ = await imagine(env, where, "a very detailed forest, intricate, noisy")
        result = await result_of(env, job_id, where)
    finally:
        fake.set_upload_limit(10 * 1024 * 1024)
    assert all(a.size <= limit for a in result.attachments)
    assert "Re-encoded" in result.content
    assert not fake.violations_of("upload-too-large")
    env.clean()


async def test_describe_blend_shorten(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "tools")
    describe = await fake.send_slash_command(
        "describe",
        attachments={"image": FakeFile("photo.png", png_bytes((20, 120, 220)))},
        channel_id=where,
    )
    blend = await fake.send_slash_command(
        "blend",
        {"dimensions": "landscape"},
        attachments={
            "image1": FakeFile("a.png", png_bytes((250, 10, 10))),
            "image2": FakeFile("b.jpg", png_bytes((10, 250, 10))),  # the name lies; bytes decide
        },
        channel_id=where,
    )
    shorten = await fake.send_slash_command(
        "shorten",
        {"prompt": "a very very beautiful and extremely detailed painting of a red fox"},
        channel_id=where,
    )
    ids = []
    for rec in (describe, blend, shorten):
        await acked(rec, 5)
        reply = await rec.wait_response(20)
        match = re.search(r"`([0-9a-z]{10})`", reply.content)
        assert match, reply.content
        ids.append(match.group(1))

    def text_result(job_id: str) -> FakeMessage | None:
        return next(
            (
                m
                for m in channel_posts(env, where)
                if job_id_in(m) == job_id and any("imagine" in i for i in button_ids(m))
            ),
            None,
        )

    described = await fake.wait_for(lambda: text_result(ids[0]), RESULT_TIMEOUT)
    assert rows(described) == [["1️⃣", "2️⃣", "3️⃣", "4️⃣"], ["Imagine all", "🔄"]]
    assert "1️⃣" in described.text()
    blended = await result_of(env, ids[1], where)
    assert rows(blended) == GRID_ROWS
    shortened = await fake.wait_for(lambda: text_result(ids[2]), RESULT_TIMEOUT)
    assert rows(shortened)[0][0] == "1️⃣"

    form = await acked(await press(env, described, "2️⃣"), 9)  # the prompt's form first
    assert form.modal is not None
    await fake.submit_modal(form.modal["custom_id"], {}, source=form)  # the prompt as is
    child_id, _ = await child_of(env, described, "<@")  # its only child: who asked
    await result_of(env, child_id, where)
    env.clean()


async def test_faceswap(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "faces")
    rec = await fake.send_slash_command(
        "faceswap",
        attachments={
            "face": FakeFile("face.png", png_bytes((230, 180, 150))),
            "target": FakeFile("target.png", png_bytes((40, 60, 90))),
        },
        channel_id=where,
    )
    await acked(rec, 5)
    reply = await rec.wait_response(20)
    match = re.search(r"`([0-9a-z]{10})`", reply.content)
    assert match, reply.content
    job_id = match.group(1)

    def swapped() -> FakeMessage | None:  # a face swap result has no follow-up buttons
        posts = channel_posts(env, where)
        return next(
            (
                m
                for m in posts
                if job_id_in(m) == job_id
                and any(a.filename.startswith("swap_face") for a in m.attachments)
            ),
            None,
        )

    result = await fake.wait_for(swapped, RESULT_TIMEOUT)
    assert len(result.attachments) == 1 and not button_ids(result)
    env.clean()


async def test_cancel_button_jobs_and_cancel_command(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "admin")
    _, job_id, job_msg = await imagine(env, where, "a job to cancel")
    rec = await fake.click_button(job_msg.id, f"at1:cancel:{job_id}:0")
    await acked(rec, 6)
    await rec.wait_followup(10, lambda m: "cancelled" in m.content)
    await fake.wait_for(lambda: "Cancelled" in fake.get_message(job_msg.id).content, 10)

    again = await fake.send_slash_command("cancel", {"job_id": job_id}, channel_id=where)
    await acked(again, 5)
    assert "already" in (await again.wait_response(10)).content

    listing = await fake.send_slash_command("jobs", {}, channel_id=where)
    await acked(listing, 5)
    text = (await listing.wait_response(10)).content
    assert job_id in text and "cancelled" in text and len(text) <= 2000

    other = fake.add_user("someone-else")
    theirs = await fake.send_slash_command("jobs", {}, channel_id=where, user_id=other)
    await acked(theirs, 5)
    assert "No jobs yet" in (await theirs.wait_response(10)).content
    not_allowed = await fake.send_slash_command(
        "jobs", {"everyone": True}, channel_id=where, user_id=other
    )
    await acked(not_allowed, 5)
    assert "Manage Server" in (await not_allowed.wait_response(10)).content
    env.clean()


async def test_restart_keeps_buttons_and_running_jobs(env: Env) -> None:
    grid = await ensure_grid(env)
    fake = env.fake
    where = await channel(env, "restart")
    _, job_id, job_msg = await imagine(env, where, "a job across a restart")
    await asyncio.sleep(0.3)  # let the store record where it is shown
    await env.bot.kill()  # SIGKILL: no goodbye, nothing flushed by us

    identified = fake.identify_count
    await env.bot.start()
    await fake.wait_for(lambda: fake.identify_count > identified, 60, what="the bot to return")
    await asyncio.sleep(0.5)

    # A button from before the crash still works (its state is in the store).
    rec = await press(env, grid, "U1")
    await acked(rec, 6)
    child_id, _ = await child_of(env, grid, "Image #1")
    await result_of(env, child_id, grid.channel_id)

    # The job that was running when the bot died is finished and shown where it began.
    result = await result_of(env, job_id, where)
    assert not result.message_reference  # an imagine: a new message, replying to nothing
    await fake.wait_for(lambda: fake.get_message(job_msg.id).deleted, 10)
    assert [m.id for m in channel_posts(env, where) if job_id_in(m) == job_id] == [result.id]

    # SIGTERM stops cleanly (exit 0), and the bot comes back for what follows.
    assert await env.bot.stop(signal.SIGTERM) == 0, env.bot.log_text()
    identified = fake.identify_count
    await env.bot.start()
    await fake.wait_for(lambda: fake.identify_count > identified, 60, what="the bot to return")
    env.clean()


async def test_no_body_violations_at_all(env: Env) -> None:
    assert env.fake.violations == [], env.why()
    assert "Traceback" not in env.bot.log_text(200_000), env.bot.log_text()


async def test_usage_is_for_managers(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "usage")
    await imagine(env, where, "a counted lighthouse")
    owner = int(fake.owner["id"])  # the guild owner may manage the server
    rec = await fake.send_slash_command("usage", {"days": 7}, channel_id=where, user_id=owner)
    await acked(rec, 5)
    text = (await rec.wait_response(10)).content
    assert "Jobs sent to providers" in text and "sandbox" in text, text
    assert f"<@{fake.user_id}>" in text
    # The default test user is a plain member.
    rec = await fake.send_slash_command("usage", {}, channel_id=where)
    await acked(rec, 5)
    text = (await rec.wait_response(10)).content
    assert "Manage Server" in text, text
    env.clean()


async def test_guild_sync_leaves_no_global_duplicates(env: Env) -> None:
    fake = env.fake
    in_guild = {c["name"] for c in fake.registered_commands.get(fake.guild_id, [])}
    assert {"imagine", "describe", "blend", "jobs", "cancel", "usage"} <= in_guild
    # With guild_ids set, global copies (from an earlier global sync) are cleared, or the
    # guild would list every command twice.
    global_puts = fake.requests_to("PUT /applications/{application_id}/commands")
    assert global_puts and all(r.json == [] for r in global_puts)
    assert fake.registered_commands.get(None, []) == []
    env.clean()


# ---- spending: /info and /usage csv (tests/test_spending.py covers the engine side)


async def test_info_shows_spend_left_and_resets(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "info")
    await imagine(env, where, "a budgeted lighthouse")
    rec = await fake.send_slash_command("info", {}, channel_id=where)
    await acked(rec, 5)
    msg = await rec.wait_response(10)
    assert msg.flags & 64, msg  # ephemeral: only the member sees it
    assert "Today" in msg.content and "This month" in msg.content, msg.content
    assert "spent" in msg.content, msg.content
    env.clean()


async def test_usage_csv_attaches_the_ledger(env: Env) -> None:
    fake = env.fake
    where = await channel(env, "usage-csv")
    await imagine(env, where, "a ledgered lighthouse")
    owner = int(fake.owner["id"])
    rec = await fake.send_slash_command("usage", {"csv": True}, channel_id=where, user_id=owner)
    await acked(rec, 5)

    def with_file(message: FakeMessage) -> bool:
        return any(a.filename.endswith(".csv") for a in message.attachments)

    found = await fake.wait_for(
        lambda: next((m for m in rec.messages if with_file(m)), None), 10, what="the .csv"
    )
    [attachment] = [a for a in found.attachments if a.filename.endswith(".csv")]
    text = attachment.data.decode()
    assert text.startswith("user_id,provider,credits_charged"), text
    assert f"{fake.user_id},sandbox," in text, text
    env.clean()
