"""Answering interactions safely: every handler ends with an answer, never a traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import discord

from bot.engine.service import RequestError
from bot.ui.regions import RegionError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class UserError(Exception):
    """A problem with what the user asked, worded for them."""


async def tell(interaction: discord.Interaction, text: str) -> None:
    """Answer privately, whatever state the interaction is in. Never raises."""
    text = text if len(text) <= 2000 else text[:1999] + "…"
    try:
        response = interaction.response
        if not response.is_done():
            await response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
        elif response.type is discord.InteractionResponseType.deferred_channel_message:
            # A deferred "thinking…" reply: replace it.
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
    except (TimeoutError, discord.HTTPException, aiohttp.ClientError, OSError) as err:
        log.info("could not answer interaction %s: %s", interaction.id, err)


@contextlib.asynccontextmanager
async def guarded(interaction: discord.Interaction) -> AsyncIterator[None]:
    """Turn every failure inside into a private answer (user errors in their words)."""
    try:
        yield
    except (UserError, RequestError, RegionError) as err:
        await tell(interaction, f"❌ {err}")
    except Exception:
        log.exception("handling interaction %s failed", interaction.id)
        await tell(
            interaction,
            "❌ Something went wrong on Atelier's side (it was logged). Please try again.",
        )
