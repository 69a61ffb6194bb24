"""Remix, as on Midjourney: with Remix on (/settings or /prefer remix), V1-V4, 🔄,
Vary (Subtle/Strong), Zoom Out and Pan open a form holding the job's prompt first; the
edited prompt becomes the new job's own prompt.

The engine takes a follow-up with a prompt of its own as a remix, and each adapter sends
it its own way (mj-proxy answers the server's MODAL with it where the server asks for
one). The form's custom_id is the button's target (`at1m:variation:<job>:1`), so its
submission is handled like every other form (`actions.on_modal_submit`), restart-safe.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.engine.models import Job
from bot.i18n import render, tr
from bot.ui.context import UiContext
from bot.ui.custom_ids import Target
from bot.ui.modals import PROMPT, JobModal
from bot.vocab import Action, action_name, button_label

log = logging.getLogger(__name__)

REMIXED = frozenset(
    {
        Action.VARIATION,
        Action.REROLL,
        Action.VARY_SUBTLE,
        Action.VARY_STRONG,
        Action.ZOOM,
        Action.PAN,
    }
)
# The preference is read before the form, which must come within Discord's 3 s.
PREFS_READ_TIMEOUT = 1.0
MAX_PROMPT = 4000  # a text input's limit


def handles(target: Target) -> bool:
    """Whether a press is one Remix puts a form before (Custom Zoom has its own)."""
    return target.action in REMIXED and not (
        target.action == Action.ZOOM.value and target.variant == "custom"
    )


async def wants_form(ctx: UiContext, interaction: discord.Interaction, target: Target) -> bool:
    """Whether this press should open the Remix form: the presser has Remix on here."""
    if not handles(target):
        return False
    guild_id = str(interaction.guild_id) if interaction.guild_id else None
    try:
        async with asyncio.timeout(PREFS_READ_TIMEOUT):
            prefs = await ctx.engine.preferences.get(guild_id, str(interaction.user.id))
    except TimeoutError:
        log.warning("preferences not read in time; %s starts without the Remix form", target)
        return False
    return prefs.remix


def form(target: Target, job: Job, locale: str | None = None) -> JobModal:
    """The Remix form: the job's prompt, to edit."""
    action = Action(target.action)
    label, emoji = button_label(action, target.index, target.variant)
    name = render(action_name(action), locale)
    what = render(label, locale) if label else f"{name} {emoji or ''}".strip()
    modal = JobModal(tr(locale, "Remix · {what} · job {job_id}", what=what, job_id=job.id), target)
    modal.add_item(
        discord.ui.Label(
            text=tr(locale, "Prompt"),
            description=tr(locale, "Edit the prompt; the new job uses it (Remix)."),
            component=discord.ui.TextInput(
                custom_id=PROMPT,
                style=discord.TextStyle.paragraph,
                required=True,
                max_length=MAX_PROMPT,
                default=job.prompt[:MAX_PROMPT] or None,
            ),
        )
    )
    return modal
