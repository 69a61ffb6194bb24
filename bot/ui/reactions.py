"""Reactions on job messages, as Midjourney members expect them.

- ✉️ on a job's message: the reactor gets a DM with the images (each fit to the DM
  upload limit, the server's image check applied as in its channel), the prompt, the
  job id and the seed where known. Anyone who can see the message may ask; a member
  whose DMs are closed gets nothing (a log line says so). One DM per message per
  member per minute, so a reaction storm cannot flood anyone (nor the store).
- ❌ by the job's requester: a finished job's message is deleted; a running job is
  cancelled (through `Engine.cancel`, which refunds what surely cost nothing). ❌ by
  anyone else does nothing.

Everything else is dropped before any store read: the bot's own reactions, other
emoji, and messages the bot did not write (the gateway event names the author).
"""

from __future__ import annotations

import io
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import discord
from discord.utils import escape_markdown

from bot.engine.intake import RequestError
from bot.engine.models import Job, JobStatus
from bot.engine.refusals import status_word
from bot.i18n import render, tr
from bot.ui import job_media
from bot.ui.image_check import ImageCheck
from bot.ui.job_media import MediaSource
from bot.ui.outgoing import FileSpec

log = logging.getLogger(__name__)

MAIL, CROSS = "✉", "❌"  # compared without the emoji variation selector (U+FE0F)
DM_COOLDOWN = 60.0  # seconds between two DMs of one job's message to one member
DMS_CLOSED = 50007  # Discord: "Cannot send messages to this user"
PROMPT_CHARS = 1200  # the DM stays under Discord's 2000 characters
NOTE_CHARS = 200
COOLDOWN_KEYS = 10_000  # a bound on the memory of who was sent what
POSTED_KEPT = 5_000  # messages of recent jobs remembered (older ones: the store)


class ReactionEngine(MediaSource, Protocol):
    """The part of the engine reactions use."""

    async def get(self, job_id: str) -> Job | None: ...

    async def cancel(self, job_id: str) -> Job: ...


@dataclass(frozen=True)
class Reaction:
    """A reaction added, as the gateway tells it (plain ids, no discord.py types)."""

    user_id: int
    channel_id: int
    message_id: int
    guild_id: int | None
    emoji: str
    message_author_id: int | None

    @classmethod
    def from_event(cls, event: discord.RawReactionActionEvent) -> Reaction:
        return cls(
            user_id=event.user_id,
            channel_id=event.channel_id,
            message_id=event.message_id,
            guild_id=event.guild_id,
            emoji=(event.emoji.name or "") if event.emoji.id is None else "",
            message_author_id=event.message_author_id,
        )

    @property
    def symbol(self) -> str:
        return self.emoji.replace("\ufe0f", "")


def dm_text(job: Job, link: str, notes: Sequence[str] = (), locale: str | None = None) -> str:
    """The DM's words: the prompt, the job id, the seed where known, and a link back
    (under Discord's 2000 characters: the prompt is cut, and the notes)."""
    prompt = escape_markdown(job.prompt or job.action.value)  # escaping lengthens it
    if len(prompt) > PROMPT_CHARS:
        prompt = prompt[: PROMPT_CHARS - 1].rstrip() + "…"
    shown = status_word(job.status).render(locale)
    status = "" if job.status is JobStatus.SUCCEEDED else f" · {shown}"
    ident = tr(locale, "Job `{job_id}` · {provider}", job_id=job.id, provider=job.provider)
    lines = [f"**{prompt}**", ident + status]
    if job.seed and job.seed != "0":
        lines.append(
            tr(locale, "Seed `{seed}` (add `--seed {seed}` to draw it again)", seed=job.seed)
        )
    lines.append(link)
    lines.extend(f"-# {render(note, locale)}"[:NOTE_CHARS] for note in notes[:3])
    return "\n".join(lines)


class Reactions:
    """Acts on ✉️ and ❌ added to the bot's job messages."""

    def __init__(
        self,
        client: discord.Client,
        engine: ReactionEngine,
        stored: Callable[[str, str], Awaitable[Job | None]],
        upload_limit: Callable[[str | None], int],
        *,
        image_check: Callable[[], ImageCheck | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        locale_of: Callable[[str | None], str | None] = lambda _guild_id: None,
    ) -> None:
        self.client = client
        self.engine = engine
        self.stored = stored  # the store's job by (channel, message), for older messages
        # Messages posted for jobs by this process, newest last: a result is in the store
        # only once its progress message is deleted (see the presenter), a while later.
        self._posted: OrderedDict[tuple[int, int], str] = OrderedDict()
        self.upload_limit = upload_limit  # the sender's, for DMs (guild id None)
        self.image_check = image_check  # the presenter's, read when a DM is made
        self.clock = clock
        # A reaction carries no locale: the DM is in the server's language.
        self.locale_of = locale_of
        self._sent: dict[tuple[int, int], float] = {}  # (member, message) -> when asked

    def note_posted(self, job_id: str, channel_id: int, message_id: int) -> None:
        """The presenter posted a message for this job (its progress, or its result)."""
        self._posted[(channel_id, message_id)] = job_id
        while len(self._posted) > POSTED_KEPT:
            self._posted.popitem(last=False)

    async def _job_of(self, reaction: Reaction) -> Job | None:
        job_id = self._posted.get((reaction.channel_id, reaction.message_id))
        if job_id is not None:
            return await self.engine.get(job_id)
        return await self.stored(str(reaction.channel_id), str(reaction.message_id))

    def _bot_id(self) -> int | None:
        return self.client.user.id if self.client.user is not None else None

    async def on_reaction(self, reaction: Reaction) -> None:
        """One reaction added anywhere the bot can see: most are dropped at once."""
        bot_id = self._bot_id()
        if bot_id is None or reaction.user_id == bot_id:
            return
        if reaction.symbol not in (MAIL, CROSS) or reaction.message_author_id != bot_id:
            return  # not ours to act on: no store read
        if reaction.symbol == MAIL and self._cooling(reaction.user_id, reaction.message_id):
            return  # a storm of ✉️: one DM a minute, and no store read for the rest
        job = await self._job_of(reaction)
        if job is None:
            return
        if reaction.symbol == MAIL:
            await self._send_dm(reaction, job)
        elif str(reaction.user_id) == job.user_id:
            await self._withdraw(reaction, job)

    # ---- ✉️

    def _cooling(self, user_id: int, message_id: int) -> bool:
        """Whether this member asked for this message's job within the last minute (else
        note that they ask now)."""
        now = self.clock()
        if len(self._sent) >= COOLDOWN_KEYS:
            self._sent = {k: at for k, at in self._sent.items() if now - at < DM_COOLDOWN}
        last = self._sent.get((user_id, message_id))
        if last is not None and now - last < DM_COOLDOWN:
            return True
        self._sent[(user_id, message_id)] = now
        return False

    async def _send_dm(self, reaction: Reaction, job: Job) -> None:
        guild = str(reaction.guild_id) if reaction.guild_id is not None else "@me"
        link = f"https://discord.com/channels/{guild}/{reaction.channel_id}/{reaction.message_id}"
        files: list[FileSpec] = []
        notes: list[str] = []
        if job.status is JobStatus.SUCCEEDED:
            # As in its channel: fit to the (DM) limit, and the server's image check.
            files, notes = await job_media.result_files(
                self.engine, job, self.upload_limit(None), self.image_check()
            )
        try:
            channel = await self.client.create_dm(discord.Object(reaction.user_id))
            await channel.send(
                content=dm_text(job, link, notes, self.locale_of(job.guild_id)),
                files=[discord.File(io.BytesIO(f.data), filename=f.name) for f in files],
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.Forbidden as err:
            if err.code == DMS_CLOSED:
                log.info("member %s has DMs closed; job %s not sent", reaction.user_id, job.id)
            else:
                log.warning("DM of job %s to %s refused: %s", job.id, reaction.user_id, err)
        except discord.HTTPException as err:
            self._sent.pop((reaction.user_id, reaction.message_id), None)  # may ask again
            log.warning("DM of job %s to %s failed: %s", job.id, reaction.user_id, err)

    # ---- ❌

    async def _withdraw(self, reaction: Reaction, job: Job) -> None:
        """The requester's ❌: a finished job's message goes, a running job stops."""
        if not job.finished:
            try:
                await self.engine.cancel(job.id)
            except RequestError as err:  # it finished in between
                log.info("❌ on job %s did not cancel it: %s", job.id, err)
            return
        message = self.client.get_partial_messageable(reaction.channel_id).get_partial_message(
            reaction.message_id
        )
        try:
            await message.delete()
        except discord.NotFound:
            pass  # already gone
        except discord.HTTPException as err:
            log.warning("could not delete the message of job %s: %s", job.id, err)
