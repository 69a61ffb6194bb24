"""The buttons under a /describe or /shorten answer: where its prompts lead.

- 1️⃣-5️⃣ (`at1:imagine:<job>:<n>`) open a form holding prompt n to edit; submitting it
  imagines the edited prompt. Messages posted before the form existed carry the same
  custom_id, so their buttons open the form too.
- "Imagine all" (`at1:imagine:<job>:0:all`, describe only) starts one imagine job per
  prompt, each charged as an imagine: the engine refuses those over the member's limits.
- 🔄 (`at1:describe:<job>:0`, describe only) describes the same image again.

A describe job keeps the image it described as its stored input, so a prompt imagined
from it carries that image as an image prompt wherever the provider takes images.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace

import discord

from bot import media
from bot.engine.intake import RequestError
from bot.engine.models import ImageInput, Job, JobRequest
from bot.i18n import Text, tr
from bot.ui import modals
from bot.ui.context import UiContext
from bot.ui.custom_ids import Target
from bot.ui.layout import IMAGINE_ALL
from bot.ui.replies import UserError, member_locale, said, tell
from bot.vocab import KEYCAPS, Action

log = logging.getLogger(__name__)

# Submits a request and posts its job's message; RequestError propagates.
StartJob = Callable[[JobRequest], Awaitable[Job]]

ACTIONS = frozenset({Action.IMAGINE.value, Action.DESCRIBE.value})
NOT_AVAILABLE = Text("This button is not available here.")


def handles(target: Target) -> bool:
    """Whether a press is one of the buttons under a describe or shorten answer."""
    return target.action in ACTIONS


def opens_form(target: Target) -> bool:
    """1️⃣-5️⃣: the form with that prompt comes first (the rest start at once)."""
    return target.action == Action.IMAGINE.value and not target.variant


def problem(job: Job, target: Target) -> str | None:
    """Why this press on a describe/shorten answer cannot go ahead, or None."""
    if job.action not in (Action.DESCRIBE, Action.SHORTEN) or not job.texts:
        reason = Text("Job `{job_id}` has no prompts to imagine.", job_id=job.id)
        return Text("{refusal} {reason}", refusal=NOT_AVAILABLE, reason=reason)
    if target.action == Action.DESCRIBE.value:
        if job.action is not Action.DESCRIBE or target.index or target.variant:
            return NOT_AVAILABLE
        return None
    if target.variant == IMAGINE_ALL:
        return None if job.action is Action.DESCRIBE and not target.index else NOT_AVAILABLE
    if target.variant or not 0 < target.index <= len(job.texts):
        reason = Text("Job `{job_id}` has no prompt number {n}.", job_id=job.id, n=target.index)
        return Text("{refusal} {reason}", refusal=NOT_AVAILABLE, reason=reason)
    return None


def prompt_form(target: Target, job: Job, locale: str | None = None) -> modals.JobModal:
    """The form behind 1️⃣-5️⃣: that prompt, to edit before it is imagined."""
    number = KEYCAPS[target.index - 1] if target.index <= len(KEYCAPS) else str(target.index)
    form = modals.JobModal(tr(locale, "Imagine prompt {n}", n=number), target)
    form.add_item(
        discord.ui.Label(
            text=tr(locale, "Prompt"),
            description=tr(locale, "Edit it as you like; submitting imagines it."),
            component=discord.ui.TextInput(
                custom_id=modals.PROMPT,
                style=discord.TextStyle.paragraph,
                required=True,
                max_length=4000,
                default=job.texts[target.index - 1][:4000],
            ),
        )
    )
    return form


async def _described_image(ctx: UiContext, job: Job) -> list[ImageInput]:
    """The image the job described (its stored input); empty when retention removed it."""
    if job.action is not Action.DESCRIBE or not job.inputs:
        return []
    try:
        data = await asyncio.to_thread(ctx.engine.media_path(job.inputs[0]).read_bytes)
    except OSError as err:
        log.info("the described image of job %s cannot be read: %s", job.id, err)
        return []
    return [ImageInput(data, media.sniff_mime(data) or "image/png")]


async def imagine_request(ctx: UiContext, asker: JobRequest, job: Job, prompt: str) -> JobRequest:
    """An imagine of `prompt` from a describe/shorten answer, on the same provider; the
    described image goes along as image prompt where that provider takes images."""
    takes_images = ctx.engine.provider(job.provider).max_images > 0
    images = await _described_image(ctx, job) if takes_images else []
    return replace(
        asker, action=Action.IMAGINE, prompt=prompt, provider=job.provider, images=images
    )


async def _describe_again(ctx: UiContext, asker: JobRequest, job: Job) -> JobRequest:
    images = await _described_image(ctx, job)
    if not images:
        raise UserError(
            Text(
                "The image of job `{job_id}` is no longer kept (media retention), so it "
                "cannot be described again. Use /describe with the image.",
                job_id=job.id,
            )
        )
    return replace(asker, action=Action.DESCRIBE, provider=job.provider, images=images)


async def on_press(
    ctx: UiContext,
    interaction: discord.Interaction,
    asker: JobRequest,
    job: Job,
    target: Target,
    start: StartJob,
) -> None:
    """🔄 or "Imagine all" (already acknowledged; 1️⃣-5️⃣ go through the form)."""
    if target.action == Action.DESCRIBE.value:
        await start(await _describe_again(ctx, asker, job))
        return
    started: list[Job] = []
    refusal = ""
    prompts = job.texts[: len(KEYCAPS)]
    for text in prompts:
        try:
            started.append(await start(await imagine_request(ctx, asker, job, text)))
        except RequestError as err:  # over a limit: the rest would be refused too
            refusal = said(err, member_locale(interaction))
            break
    await tell(interaction, imagine_all_summary(len(started), len(prompts), refusal))


def imagine_all_summary(started: int, wanted: int, refusal: str) -> str:
    """What "Imagine all" tells the presser: how many jobs started, and why not more."""
    if not refusal:
        return Text("✅ Started {n} imagine jobs, one per prompt.", n=started)
    if not started:
        return Text("❌ No imagine job started: {refusal}", refusal=refusal)
    return Text(
        "⚠️ Started {n} of {wanted} imagine jobs; the rest were refused: {refusal}",
        n=started,
        wanted=wanted,
        refusal=refusal,
    )
