"""The presenter's writes, done with discord.py and the BOT token.

Every job message is a normal channel message owned by the bot, created with
`POST /channels/{c}/messages`, edited with `PATCH /channels/{c}/messages/{m}` and deleted
with `DELETE /channels/{c}/messages/{m}`, so it can be changed long after the interaction
token (15 min) has expired. Discord's errors
are mapped onto the plain `SendError` family the presenter understands.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import discord

from bot.ui.outgoing import (
    ButtonSpec,
    ChannelGone,
    EditCapped,
    MessageGone,
    Outgoing,
    Rejected,
    SendError,
    Throttled,
    TooLarge,
    Transient,
)

log = logging.getLogger(__name__)

UNKNOWN_CHANNEL, UNKNOWN_MESSAGE = 10003, 10008
MISSING_ACCESS, MISSING_PERMISSIONS = 50001, 50013
ENTITY_TOO_LARGE, EDIT_CAP = 40005, 30046
# Discord's documented default; only used when neither an interaction nor the guild
# cache told us better (and a 40005 answer makes the presenter shrink further).
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

ViewFactory = Callable[[list[list[ButtonSpec]]], discord.ui.View]


class DiscordSender:
    def __init__(self, client: discord.Client, view_factory: ViewFactory) -> None:
        self.client = client
        self.view_factory = view_factory
        self._limits: dict[str, int] = {}

    # ---- upload limits ----

    def note_limit(self, guild_id: str | None, limit: int) -> None:
        """Remember what an interaction said about uploads here (authoritative)."""
        if limit > 0:
            self._limits[guild_id or "dm"] = limit

    def upload_limit(self, guild_id: str | None) -> int:
        known = self._limits.get(guild_id or "dm")
        if known:
            return known
        if guild_id:
            guild = self.client.get_guild(int(guild_id))
            if guild is not None:
                return guild.filesize_limit
        return DEFAULT_UPLOAD_LIMIT

    def guild_locale(self, guild_id: str | None) -> str | None:
        """The server's preferred locale (Community setting; en-US by default)."""
        guild = self.client.get_guild(int(guild_id)) if guild_id else None
        return guild.preferred_locale.value if guild is not None else None

    def jump_url(self, guild_id: str | None, channel_id: int, message_id: int) -> str:
        return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"

    # ---- writes ----

    def _common(self, message: Outgoing) -> dict[str, Any]:
        users: list[discord.Object] | bool = (
            [discord.Object(int(message.mention_user))] if message.mention_user else False
        )
        return {
            "content": message.content,
            "embeds": [discord.Embed.from_dict(e) for e in message.embeds],
            "allowed_mentions": discord.AllowedMentions(
                everyone=False, roles=False, users=users, replied_user=False
            ),
        }

    @staticmethod
    def _files(message: Outgoing) -> list[discord.File]:
        return [discord.File(io.BytesIO(f.data), filename=f.name) for f in message.files or []]

    async def send(self, channel_id: int, message: Outgoing, *, reply_to: int | None) -> int:
        channel = self.client.get_partial_messageable(channel_id)
        kwargs = self._common(message)
        if message.files:
            kwargs["files"] = self._files(message)
        if message.rows:
            kwargs["view"] = self.view_factory(message.rows)
        if message.nonce:
            kwargs["nonce"] = message.nonce  # discord.py sends enforce_nonce with it
        if reply_to is not None:
            # fail_if_not_exists=False: a deleted parent turns the reply into a plain post.
            kwargs["reference"] = discord.MessageReference(
                message_id=reply_to, channel_id=channel_id, fail_if_not_exists=False
            )
        try:
            sent = await channel.send(**kwargs)
        except discord.Forbidden as err:
            if reply_to is None:
                raise _mapped(err, editing=False) from None
            # Replies need Read Message History; without it, post plainly.
            kwargs.pop("reference")
            if message.files:
                kwargs["files"] = self._files(message)
            try:
                sent = await channel.send(**kwargs)
            except Exception as again:
                raise _mapped(again, editing=False) from None
        except Exception as err:
            raise _mapped(err, editing=False) from None
        return sent.id

    async def edit(self, channel_id: int, message_id: int, message: Outgoing) -> None:
        target = self.client.get_partial_messageable(channel_id).get_partial_message(message_id)
        kwargs = self._common(message)
        kwargs["view"] = self.view_factory(message.rows) if message.rows else None
        if message.files is not None:
            kwargs["attachments"] = self._files(message)
        try:
            await target.edit(**kwargs)
        except Exception as err:
            raise _mapped(err, editing=True) from None

    async def delete(self, channel_id: int, message_id: int) -> None:
        target = self.client.get_partial_messageable(channel_id).get_partial_message(message_id)
        try:
            await target.delete()
        except Exception as err:
            raise _mapped(err, editing=True) from None


def _retry_after(err: discord.HTTPException) -> float:
    try:
        value = float(err.response.headers.get("Retry-After", "") or 2.0)
    except (AttributeError, ValueError):
        value = 2.0
    return min(60.0, max(1.0, value))


def _mapped(err: BaseException, *, editing: bool) -> SendError:
    if isinstance(err, SendError):
        return err
    if isinstance(err, discord.RateLimited):
        return Throttled(err.retry_after)
    if isinstance(err, discord.NotFound):
        if err.code == UNKNOWN_MESSAGE or (editing and err.code != UNKNOWN_CHANNEL):
            return MessageGone(str(err))
        return ChannelGone(str(err))
    if isinstance(err, discord.Forbidden):
        return ChannelGone(str(err))
    if isinstance(err, discord.DiscordServerError):
        return Transient(str(err))
    if isinstance(err, discord.HTTPException):
        if err.code == ENTITY_TOO_LARGE or err.status == 413:
            return TooLarge(str(err))
        if err.code == EDIT_CAP:
            return EditCapped(str(err))
        if err.status == 429:
            # discord.py retried five times and still got 429s (or a Cloudflare 429).
            return Throttled(_retry_after(err))
        if err.status >= 500:
            return Transient(str(err))
        log.warning("Discord refused a message write: %s", err)
        return Rejected(str(err))
    if isinstance(err, aiohttp.ClientError | OSError | asyncio.TimeoutError):
        return Transient(f"{type(err).__name__}: {err}")
    log.exception("unexpected error writing a message", exc_info=err)
    return Rejected(f"{type(err).__name__}: {err}")
