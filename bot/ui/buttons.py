"""Buttons that never die: one DynamicItem class routes every `at1:` button to `actions`.

discord.py matches each pressed custom_id against the template (fullmatch) and builds
a `JobButton` from it; that construction runs inside Discord's 3 s window, so it only
parses the id. The view sent with a message holds only DynamicItems, so discord.py
keeps no per-message state: memory does not grow with the number of messages.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.ui import actions, custom_ids
from bot.ui.custom_ids import Target
from bot.ui.outgoing import ButtonSpec

_STYLES = {
    "primary": discord.ButtonStyle.primary,
    "secondary": discord.ButtonStyle.secondary,
    "success": discord.ButtonStyle.success,
    "danger": discord.ButtonStyle.danger,
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=custom_ids.BUTTON_TEMPLATE
):
    def __init__(
        self,
        target: Target,
        *,
        label: str | None = None,
        emoji: str | discord.PartialEmoji | None = None,
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
        row: int | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Button(
                custom_id=custom_ids.button_id(target), label=label, emoji=emoji, style=style
            ),
            row=row,
        )
        self.target = target

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> JobButton:
        # The template matches only our button ids, so `item` is a button; a select or
        # anything else that matched would be a bug worth saying so.
        if not isinstance(item, discord.ui.Button):
            raise TypeError(f"an Atelier custom_id on a {type(item).__name__}")
        target = custom_ids.parse_button(item.custom_id or "")
        if target is None:
            raise ValueError(f"not an Atelier button: {item.custom_id!r}")
        return cls(target, label=item.label, emoji=item.emoji, style=item.style)

    async def callback(self, interaction: discord.Interaction) -> None:
        await actions.press(interaction, self.target)


def build_view(rows: list[list[ButtonSpec]]) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for row_number, row in enumerate(rows[:5]):
        for spec in row[:5]:
            target = custom_ids.parse_button(spec.custom_id)
            if target is None:
                raise ValueError(f"not an Atelier button: {spec.custom_id!r}")
            view.add_item(
                JobButton(
                    target,
                    label=spec.label,
                    emoji=spec.emoji,
                    style=_STYLES[spec.style],
                    row=row_number,
                )
            )
    return view
