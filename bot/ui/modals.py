"""The forms behind Vary (Region) and Custom Zoom.

A modal must be the FIRST answer to the button press (no defer before it). Its
custom_id carries the same target as the button (`at1m:inpaint:<job>:<index>`), and
submissions are handled by one `on_interaction` listener that reads the raw values
(see `actions.on_modal_submit`) rather than by the Modal object, so that a form opened
just before a restart can still be submitted after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import discord

from bot.engine.models import Job
from bot.i18n import render, tr
from bot.ui import custom_ids
from bot.ui.custom_ids import Target
from bot.ui.regions import PRESETS

MODAL_TTL = 30 * 60.0  # how long this process keeps the Modal object around
AREA, BOX, PROMPT, FACTOR = "area", "box", "prompt", "factor"


class JobModal(discord.ui.Modal):
    def __init__(self, title: str, target: Target) -> None:
        super().__init__(title=title[:45], timeout=MODAL_TTL, custom_id=custom_ids.modal_id(target))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        # Handled by the on_interaction listener (restart-safe); nothing to do here.
        return None


def _text_field(
    text: str,
    description: str,
    custom_id: str,
    *,
    max_length: int,
    required: bool = False,
    default: str | None = None,
    placeholder: str | None = None,
    style: discord.TextStyle = discord.TextStyle.short,
) -> discord.ui.Label[Any]:
    """One labelled text input of a form."""
    return discord.ui.Label(
        text=text,
        description=description,
        component=discord.ui.TextInput(
            custom_id=custom_id,
            style=style,
            required=required,
            max_length=max_length,
            default=default,
            placeholder=placeholder,
        ),
    )


def _prompt_input(job: Job, label: str, locale: str | None) -> discord.ui.Label[Any]:
    return _text_field(
        label,
        tr(locale, "Leave as is to keep the job's prompt."),
        PROMPT,
        style=discord.TextStyle.paragraph,
        max_length=4000,
        default=job.prompt[:4000] or None,
    )


def region_modal(target: Target, job: Job, locale: str | None = None) -> JobModal:
    modal = JobModal(tr(locale, "Vary (Region) · job {job_id}", job_id=job.id), target)
    modal.add_item(
        discord.ui.Label(
            text=tr(locale, "Area to redraw"),
            description=tr(locale, "Pick one or more areas, or type your own box below."),
            component=discord.ui.Select(
                custom_id=AREA,
                placeholder=tr(locale, "Pick areas of the image"),
                min_values=0,
                max_values=len(PRESETS),
                required=False,
                options=[
                    discord.SelectOption(label=render(label, locale), value=value)
                    for value, (label, _) in PRESETS.items()
                ],
            ),
        )
    )
    modal.add_item(
        _text_field(
            tr(locale, "Or your own box, in per cent"),
            tr(locale, "left,top,right,bottom from the top-left corner; several: use ;"),
            BOX,
            max_length=200,
            placeholder=tr(locale, "e.g. 10,20,60,90"),
        )
    )
    modal.add_item(_prompt_input(job, tr(locale, "Prompt for the redrawn area"), locale))
    return modal


def zoom_modal(target: Target, job: Job, locale: str | None = None) -> JobModal:
    modal = JobModal(tr(locale, "Custom Zoom · job {job_id}", job_id=job.id), target)
    modal.add_item(
        _text_field(
            tr(locale, "Zoom out by (1 to 2)"),
            tr(locale, "1 keeps the frame; 2 shows twice as much around it."),
            FACTOR,
            required=True,
            max_length=6,
            default="1.5",
            placeholder="1.5",
        )
    )
    modal.add_item(_prompt_input(job, tr(locale, "Prompt"), locale))
    return modal


def read_values(components: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    """custom_id -> submitted values (a text input gives one value) from a raw payload."""
    values: dict[str, list[str]] = {}
    for component in components:
        kind = component.get("type")
        if kind == 1:
            values.update(read_values(component.get("components") or []))
        elif kind == 18 and isinstance(component.get("component"), Mapping):
            values.update(read_values([component["component"]]))
        elif isinstance(component.get("custom_id"), str):
            if "values" in component:
                values[component["custom_id"]] = [str(v) for v in component["values"] or []]
            else:
                values[component["custom_id"]] = [str(component.get("value") or "")]
    return values
