"""A server's audit channel: one line per refusal and per settings change, posted where
the server's managers chose (`ServerSettings.audit_channel_id`).

The engine's audit trail calls `on_entry` synchronously while it records; this only
queues the entry (bounded: a flood of refusals drops the oldest lines, loudly, never
the engine's time), and one worker posts the lines through the shared pacer, so the
audit channel's writes count against Discord's limits like every other message.

The banned word IS shown, as a spoiler: the audit channel is the managers' tool (they
choose it, and should keep it private), and "refused: banned word" without the word
tells them nothing they can act on (a false hit, a list to fix). The spoiler keeps it
from being read at a glance over someone's shoulder. Mentions in a line render as
names but never ping (the sender allows no mentions on these messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import discord

from bot.engine.audit import AuditEntry, AuditKind
from bot.engine.moderation import BANNED_REASON
from bot.engine.settings import SettingsStore
from bot.i18n import tr
from bot.ui.outgoing import Outgoing, Sender, SendError, Throttled, Transient
from bot.ui.pacer import Pacer

log = logging.getLogger(__name__)

POSTED = frozenset({AuditKind.REFUSAL, AuditKind.SETTINGS})
QUEUE_LIMIT = 500  # lines waiting at most; beyond this the oldest are dropped
ATTEMPTS = 3  # a line that fails this many times (throttled, network) is dropped
LINE_LIMIT = 2000  # Discord's message length


def _text(value: str) -> str:
    """Words from the audit (a user's, a server's) made inert: no markdown, no @everyone."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(value))


def audit_line(entry: AuditEntry, locale: str | None = None) -> str:
    """The one line an entry becomes: who, where, what (the entry's own words, such as
    the refusal's, are shown as they were stored)."""
    who = f"<@{entry.user_id}>" if entry.user_id else tr(locale, "someone")
    where = (
        tr(locale, " in <#{channel_id}>", channel_id=entry.channel_id) if entry.channel_id else ""
    )
    if entry.kind is AuditKind.SETTINGS:
        what = f": {_text(entry.detail)}" if entry.detail else ""
        line = tr(
            locale,
            "⚙️ {who} changed the server settings{where}{what}",
            who=who,
            where=where,
            what=what,
        )
    else:
        on = entry.provider and tr(locale, "on {provider}", provider=entry.provider)
        asked = " ".join(x for x in (entry.action, on) if x)
        why = _text(entry.outcome or tr(locale, "refused"))
        if entry.detail:
            detail = entry.detail.replace("|", "")
            why += f" (||{detail}||)" if entry.outcome == BANNED_REASON else f" ({_text(detail)})"
        job = tr(locale, " (job `{job_id}`)", job_id=entry.job_id) if entry.job_id else ""
        line = tr(
            locale,
            "🚫 Refused {who}{where}: {asked}{job}: {why}",
            who=who,
            where=where,
            asked=_text(asked) or tr(locale, "a request"),
            job=job,
            why=why,
        )
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"


class AuditChannel:
    """Posts audit lines to each server's audit channel, off the engine's path."""

    def __init__(self, settings: SettingsStore, sender: Sender, pacer: Pacer) -> None:
        self.settings = settings
        self.sender = sender
        self.pacer = pacer
        self._queue: asyncio.Queue[AuditEntry] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None
        # The language of a guild's audit lines (bot/app.py: its preferred locale).
        self.locale_of: Callable[[str | None], str | None] = lambda _guild_id: None

    def on_entry(self, entry: AuditEntry) -> None:
        """An audit listener: queue the entry if it is posted, and return at once."""
        if entry.kind not in POSTED or not entry.guild_id:
            return
        if self._queue.full():
            dropped = self._queue.get_nowait()
            log.warning("audit channel backlog full: dropped a %s line", dropped.kind)
        self._queue.put_nowait(entry)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def close(self) -> None:
        """Stop posting (lines still queued are in the store: `atelier audit` has them)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def drained(self) -> None:
        """Wait until every queued line was posted or dropped (tests, shutdown)."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            entry = await self._queue.get()
            try:
                await self._post(entry)
            except Exception:  # one bad line must not stop the channel
                log.exception("posting a %s line to an audit channel failed", entry.kind)
            finally:
                self._queue.task_done()

    async def _post(self, entry: AuditEntry) -> None:
        settings = await self.settings.get(entry.guild_id)
        target = settings.audit_channel_id if settings is not None else None
        if not target or not target.isdigit():
            return
        line = audit_line(entry, self.locale_of(entry.guild_id))
        channel_id, message = int(target), Outgoing(line)
        for attempt in range(1, ATTEMPTS + 1):
            await self.pacer.acquire(channel_id)
            try:
                await self.sender.send(channel_id, message, reply_to=None)
                return
            except Throttled as err:
                self.pacer.block(channel_id, err.retry_after)
            except Transient as err:
                log.info("audit line to channel %s, attempt %d: %s", channel_id, attempt, err)
                await asyncio.sleep(attempt)
            except SendError as err:  # the channel is gone, or the bot may not write there
                log.warning("cannot post to audit channel %s: %s", channel_id, err)
                return
        log.warning("dropped an audit line for channel %s after %d attempts", channel_id, ATTEMPTS)
