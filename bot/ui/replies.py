"""Answering interactions safely: every handler ends with an answer, never a traceback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import discord

from bot.engine.service import RequestError
from bot.i18n import Text, render
from bot.ui.regions import RegionError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


class UserError(Exception):
    """A problem with what the user asked, worded for them (a `Text`: in their language)."""


def member_locale(interaction: discord.Interaction) -> str:
    """The language of private answers: the member's own Discord locale."""
    return interaction.locale.value


def channel_locale(interaction: discord.Interaction) -> str:
    """The language of messages everyone in the channel sees: the server's preferred
    locale (the member's own outside a server)."""
    return (interaction.guild_locale or interaction.locale).value


def said(err: Exception, locale: str) -> str:
    """An error's user-facing words in `locale`: its `text`, or the `Text` it was raised
    with; anything else as str() says it."""
    text = getattr(err, "text", None)
    if not isinstance(text, str):
        first = err.args[0] if err.args else None
        text = first if isinstance(first, Text) else str(err)
    return render(text, locale)


async def tell(interaction: discord.Interaction, text: str) -> None:
    """Answer privately, whatever state the interaction is in. Never raises. A `Text`
    is said in the member's language."""
    text = render(text, member_locale(interaction))
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
        await tell(interaction, "❌ " + said(err, member_locale(interaction)))
    except Exception:
        log.exception("handling interaction %s failed", interaction.id)
        await tell(
            interaction,
            Text("❌ Something went wrong on Atelier's side (it was logged). Please try again."),
        )
