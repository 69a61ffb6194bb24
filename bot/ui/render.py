"""The words and layout of a job's messages: progress, result, failure.

Pure functions from a `Job` to an `Outgoing`; the presenter decides when they are sent.
Content is kept under Discord's 2000 characters by trimming the prompt, never by
dropping the lines that say who asked, where and which job.
"""

from __future__ import annotations

from collections.abc import Sequence

from discord.utils import escape_markdown

from bot.engine.models import Job, JobStatus
from bot.ui import layout
from bot.ui.layout import SupportOf
from bot.ui.outgoing import Outgoing
from bot.vocab import Action, action_name, numbered

BAR_CELLS = 20
PROMPT_CHARS = 1200
FAILURE_CHARS = 600
TEXT_CHARS = 900  # one describe/shorten answer inside the embed
CONTENT_LIMIT = 2000


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def what(job: Job) -> str:
    """What kind of job this is, Midjourney's way: "Image #2", "Variations (Strong)"..."""
    action, index = job.action, job.index
    if action is Action.IMAGINE:
        return ""
    if action is Action.UPSCALE:
        return f"Image #{index}"
    if action is Action.VARIATION:
        return f"Variations (Image #{index})"
    if action is Action.ZOOM:
        return "Zoom Out (custom)" if job.variant == "custom" else f"Zoom Out {job.variant}x"
    if action is Action.PAN:
        return f"Pan {job.variant}"
    name = action_name(action)
    return f"{name} (Image #{index})" if index else name


def header(job: Job) -> str:
    """Who asked, the prompt, the provider and mode, the job id: on every message."""
    if job.action in (Action.DESCRIBE, Action.BLEND) and not job.prompt:
        title = f"**{action_name(job.action)}**"
    else:
        prompt = escape_markdown(_short(job.prompt.strip() or "(no prompt)", PROMPT_CHARS))
        title = f"**{prompt}**"
    kind = what(job)
    who = f"<@{job.user_id}>" if job.user_id else "someone"
    mode = f"{job.mode} mode" if job.mode else "default mode"
    parent = f" · from `{job.parent_id}`" if job.parent_id else ""
    line1 = f"{title} — {kind + ' · ' if kind else ''}{who}"
    return f"{line1}\n-# {job.provider} · {mode} · job `{job.id}`{parent}"


def progress_bar(percent: float) -> str:
    percent = max(0.0, min(100.0, percent))
    filled = round(BAR_CELLS * percent / 100)
    return f"`{'█' * filled}{'░' * (BAR_CELLS - filled)}` {percent:.0f}%"


def status_line(job: Job) -> str:
    started = int(job.submitted_at or job.created_at)
    if job.status is JobStatus.WAITING:
        # Waiting in Atelier's own queue for room at the provider (or for it to stop
        # being busy): say where it stands, and why when the provider said.
        place = f" — #{job.queue_position} in line" if job.queue_position else ""
        why = f" ({job.provider_status})" if job.provider_status else ""
        return f"⏳ Waiting for {job.provider}{place}{why}"
    if job.status is JobStatus.SUBMITTING:
        return f"⏳ Sending to {job.provider}…"
    if job.status is JobStatus.NEEDS_INPUT:
        return "⌛ The provider is asking for input; continuing…"
    queue = f" — #{job.queue_position} in the queue" if job.queue_position else ""
    if job.status is JobStatus.SUBMITTED and not job.progress:
        return f"⏳ Waiting to start{queue} (sent <t:{started}:R>)"
    if job.progress is not None:
        return f"🎨 {progress_bar(job.progress)}{queue}"
    # No figure from this provider: Discord renders <t:..:R> as a live "2 minutes ago",
    # so the elapsed time stays current without spending edits on it.
    return f"🎨 Working — started <t:{started}:R>{queue}"


def progress(job: Job, *, preview_url: str | None = None, can_cancel: bool = True) -> Outgoing:
    """The job's message while it runs. An http(s) preview is shown by URL in an embed
    (Discord fetches it); previews we fetch ourselves are attached by the presenter."""
    embeds = [{"image": {"url": preview_url}}] if preview_url else []
    return Outgoing(
        content=f"{header(job)}\n{status_line(job)}",
        embeds=embeds,
        rows=layout.cancel_row(job) if can_cancel else [],
    )


def hint(job: Job) -> str:
    """What to try next after a failure, from the provider's words."""
    if job.status is JobStatus.CANCELLED:
        return "Start it again whenever you like."
    failure = (job.failure or "").lower()
    if any(w in failure for w in ("banned", "forbidden", "sensitive", "moderat", "reject")):
        return "Reword the prompt (avoid the flagged words) and try again."
    if any(w in failure for w in ("invalid", "parameter", "not supported", "unknown")):
        return "Check the prompt's parameters and try again."
    if any(w in failure for w in ("balance", "credit", "quota", "key", "unauthor")):
        return "This is a problem with the provider account; tell a server admin."
    if any(w in failure for w in ("busy", "queue", "timeout", "time out", "later", "gave up")):
        return "The provider is busy: try again later, or pick another provider."
    if "does not offer" in failure:  # NotOffered: trying again cannot help
        return "This provider cannot do that; the job's other buttons still work."
    return "Try again; if it keeps failing, pick another provider or tell a server admin."


def failure(job: Job) -> Outgoing:
    word = "Cancelled" if job.status is JobStatus.CANCELLED else "Failed"
    reason = escape_markdown(_short(job.failure or "no reason was given", FAILURE_CHARS))
    return Outgoing(
        content=f"{header(job)}\n❌ **{word}**: {reason}\n-# {hint(job)}",
        files=[],
        mention_user=job.user_id,
    )


def result(job: Job, support_of: SupportOf, notes: Sequence[str] = ()) -> Outgoing:
    """The result message: images are attached by the presenter; buttons from followups."""
    lines = [header(job)]
    for n in job.withheld:
        lines.append(f"-# Image {n + 1} was withheld by {job.provider}'s review.")
    lines += [f"-# ℹ️ {note}" for note in layout.emulation_notes(job, support_of)]
    lines += [f"-# {note}" for note in notes]
    if job.seed and job.seed != "0":
        # Midjourney users ask for the seed (✉️) to reproduce a result with --seed.
        lines.append(f"-# seed {job.seed}")
    content = "\n".join(lines)
    embeds = []
    rows = layout.followup_rows(job, support_of)
    if job.texts:
        body = "\n\n".join(numbered([escape_markdown(_short(t, TEXT_CHARS)) for t in job.texts]))
        # Midjourney's hint under the prompts: a number opens that prompt to edit.
        hint = "Press a number to edit that prompt, then imagine it."
        embeds.append({"description": _short(body, 4000), "footer": {"text": hint}})
        rows = layout.text_rows(job) + rows
        rows = rows[: layout.MAX_ROWS]
    return Outgoing(
        content=_short(content, CONTENT_LIMIT), embeds=embeds, rows=rows, mention_user=job.user_id
    )
