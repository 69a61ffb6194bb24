"""The words and layout of a job's messages: progress, result, failure.

Pure functions from a `Job` to an `Outgoing`; the presenter decides when they are sent.
Content is kept under Discord's 2000 characters by trimming the prompt, never by
dropping the lines that say who asked, where and which job.

Everyone in the channel reads these messages, so they are written in the channel's
language (`locale`: the server's preferred locale), button labels included; the prompt,
job ids and provider names are shown as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from discord.utils import escape_markdown

from bot.engine.models import Job, JobStatus
from bot.i18n import N_, Text, render, stored, tr
from bot.ui import layout
from bot.ui.layout import SupportOf
from bot.ui.outgoing import ButtonSpec, Outgoing
from bot.vocab import Action, action_name, numbered

BAR_CELLS = 20
PROMPT_CHARS = 1200
FAILURE_CHARS = 600
TEXT_CHARS = 900  # one describe/shorten answer inside the embed
CONTENT_LIMIT = 2000
Locale = str | None
PAN_DIRECTIONS = {"left": N_("left"), "right": N_("right"), "up": N_("up"), "down": N_("down")}


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def what(job: Job, locale: Locale = None) -> str:
    """What kind of job this is, Midjourney's way: "Image #2", "Variations (Strong)"..."""
    action, index = job.action, job.index
    if action is Action.IMAGINE:
        return ""
    if action is Action.UPSCALE:
        return tr(locale, "Image #{index}", index=index)
    if action is Action.VARIATION:
        return tr(locale, "Variations (Image #{index})", index=index)
    if action is Action.ZOOM:
        if job.variant == "custom":
            return tr(locale, "Zoom Out (custom)")
        return tr(locale, "Zoom Out {variant}x", variant=job.variant)
    if action is Action.PAN:
        direction = PAN_DIRECTIONS.get(job.variant)
        shown = Text(direction) if direction else job.variant
        return tr(locale, "Pan {direction}", direction=shown)
    name = render(action_name(action), locale)
    return tr(locale, "{action} (Image #{index})", action=name, index=index) if index else name


def header(job: Job, locale: Locale = None) -> str:
    """Who asked, the prompt, the provider and mode, the job id: on every message."""
    if job.action in (Action.DESCRIBE, Action.BLEND) and not job.prompt:
        title = f"**{render(action_name(job.action), locale)}**"
    else:
        shown = job.prompt.strip() or tr(locale, "(no prompt)")
        title = f"**{escape_markdown(_short(shown, PROMPT_CHARS))}**"
    kind = what(job, locale)
    who = f"<@{job.user_id}>" if job.user_id else tr(locale, "someone")
    mode = tr(locale, "{mode} mode", mode=job.mode) if job.mode else tr(locale, "default mode")
    ident = tr(locale, "job `{job_id}`", job_id=job.id)
    if job.parent_id:
        ident += tr(locale, " · from `{job_id}`", job_id=job.parent_id)
    line1 = f"{title} — {kind + ' · ' if kind else ''}{who}"
    return f"{line1}\n-# {job.provider} · {mode} · {ident}"


def progress_bar(percent: float) -> str:
    percent = max(0.0, min(100.0, percent))
    filled = round(BAR_CELLS * percent / 100)
    return f"`{'█' * filled}{'░' * (BAR_CELLS - filled)}` {percent:.0f}%"


def status_line(job: Job, locale: Locale = None) -> str:
    started = int(job.submitted_at or job.created_at)
    if job.status is JobStatus.WAITING:
        # Waiting in Atelier's own queue for room at the provider (or for it to stop
        # being busy): say where it stands, and why when the provider said.
        place = tr(locale, " — #{n} in line", n=job.queue_position) if job.queue_position else ""
        why = f" ({job.provider_status})" if job.provider_status else ""
        return tr(locale, "⏳ Waiting for {provider}", provider=job.provider) + place + why
    if job.status is JobStatus.SUBMITTING:
        return tr(locale, "⏳ Sending to {provider}…", provider=job.provider)
    if job.status is JobStatus.NEEDS_INPUT:
        return tr(locale, "⌛ The provider is asking for input; continuing…")
    queue = tr(locale, " — #{n} in the queue", n=job.queue_position) if job.queue_position else ""
    if job.status is JobStatus.SUBMITTED and not job.progress:
        return tr(locale, "⏳ Waiting to start{queue} (sent <t:{at}:R>)", queue=queue, at=started)
    if job.progress is not None:
        return f"🎨 {progress_bar(job.progress)}{queue}"
    # No figure from this provider: Discord renders <t:..:R> as a live "2 minutes ago",
    # so the elapsed time stays current without spending edits on it.
    return tr(locale, "🎨 Working — started <t:{at}:R>{queue}", at=started, queue=queue)


def localized(rows: list[list[ButtonSpec]], locale: Locale) -> list[list[ButtonSpec]]:
    """Button rows with their labels in `locale` (labels are `Text` where they are words)."""
    return [
        [replace(b, label=render(b.label, locale)) if b.label else b for b in row] for row in rows
    ]


def progress(
    job: Job, *, preview_url: str | None = None, can_cancel: bool = True, locale: Locale = None
) -> Outgoing:
    """The job's message while it runs. An http(s) preview is shown by URL in an embed
    (Discord fetches it); previews we fetch ourselves are attached by the presenter."""
    embeds = [{"image": {"url": preview_url}}] if preview_url else []
    return Outgoing(
        content=f"{header(job, locale)}\n{status_line(job, locale)}",
        embeds=embeds,
        rows=localized(layout.cancel_row(job), locale) if can_cancel else [],
    )


def hint(job: Job) -> Text:
    """What to try next after a failure, from the provider's words."""
    if job.status is JobStatus.CANCELLED:
        return Text("Start it again whenever you like.")
    failure = (job.failure or "").lower()
    if any(w in failure for w in ("banned", "forbidden", "sensitive", "moderat", "reject")):
        return Text("Reword the prompt (avoid the flagged words) and try again.")
    if any(w in failure for w in ("invalid", "parameter", "not supported", "unknown")):
        return Text("Check the prompt's parameters and try again.")
    if any(w in failure for w in ("balance", "credit", "quota", "key", "unauthor")):
        return Text("This is a problem with the provider account; tell a server admin.")
    if any(w in failure for w in ("busy", "queue", "timeout", "time out", "later", "gave up")):
        return Text("The provider is busy: try again later, or pick another provider.")
    if "does not offer" in failure:  # NotOffered: trying again cannot help
        return Text("This provider cannot do that; the job's other buttons still work.")
    return Text("Try again; if it keeps failing, pick another provider or tell a server admin.")


def failure(job: Job, locale: Locale = None) -> Outgoing:
    word = Text("Cancelled") if job.status is JobStatus.CANCELLED else Text("Failed")
    # The failure is the provider's own words (or Atelier's, stored with the job).
    said = stored(job.failure, locale) if job.failure else tr(locale, "no reason was given")
    reason = escape_markdown(_short(said, FAILURE_CHARS))
    return Outgoing(
        content=f"{header(job, locale)}\n❌ **{word.render(locale)}**: {reason}\n"
        f"-# {hint(job).render(locale)}",
        files=[],
        mention_user=job.user_id,
    )


def result(
    job: Job, support_of: SupportOf, notes: Sequence[str] = (), *, locale: Locale = None
) -> Outgoing:
    """The result message: images are attached by the presenter; buttons from followups."""
    lines = [header(job, locale)]
    for n in job.withheld:
        withheld = tr(
            locale, "Image {n} was withheld by {provider}'s review.", n=n + 1, provider=job.provider
        )
        lines.append(f"-# {withheld}")
    lines += [f"-# ℹ️ {render(n, locale)}" for n in layout.emulation_notes(job, support_of)]
    lines += [f"-# {render(note, locale)}" for note in notes]
    if job.seed and job.seed != "0":
        # Midjourney users ask for the seed (✉️) to reproduce a result with --seed.
        lines.append("-# " + tr(locale, "seed {seed}", seed=job.seed))
    content = "\n".join(lines)
    embeds = []
    rows = layout.followup_rows(job, support_of)
    if job.texts:
        body = "\n\n".join(numbered([escape_markdown(_short(t, TEXT_CHARS)) for t in job.texts]))
        # Midjourney's hint under the prompts: a number opens that prompt to edit.
        hint = tr(locale, "Press a number to edit that prompt, then imagine it.")
        embeds.append({"description": _short(body, 4000), "footer": {"text": hint}})
        rows = layout.text_rows(job) + rows
        rows = rows[: layout.MAX_ROWS]
    return Outgoing(
        content=_short(content, CONTENT_LIMIT),
        embeds=embeds,
        rows=localized(rows, locale),
        mention_user=job.user_id,
    )
