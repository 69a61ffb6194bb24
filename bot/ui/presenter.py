"""The presenter: shows every Discord job in its channel, live, within Discord's limits.

It listens to the engine's events and keeps, per job, only the newest state. One worker
task per channel turns that state into message writes:

- a progress edit per message at most every `edit_interval` seconds, rendered from the
  newest state when the write happens (so intermediate states are coalesced away), and
  only when the channel's pacer has a free slot (progress is droppable);
- the result (or failure) of a finished job, which is never dropped: it waits for a
  slot, goes before progress edits, and is retried after errors.

The job's own message (posted by `announce`) shows progress. A success is posted as a
NEW message (so the mention notifies the requester), a reply to the parent's result for
follow-ups; the progress message is then deleted, Midjourney's way, so that a finished
job is shown by exactly one message. A failure edits the progress message to say why.

The order keeps that true across a kill -9: the job is marked delivered only after its
progress message is deleted, so a restart in between posts the result again rather
than leave a message at "78%" (and Discord's nonce makes that repost the same message).

Deleted things never stop a job: a deleted progress message just ends progress edits;
a deleted or forbidden channel ends the showing (the job runs on and `/jobs` lists it).
Jobs that resume after a restart are found again through the channel and message ids
the store keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.backoff import Backoff
from bot.engine.models import Job, JobStatus, JobUpdate, Origin, Support
from bot.ui import job_media, render
from bot.ui.image_check import ImageCheck
from bot.ui.job_media import MediaSource
from bot.ui.layout import SupportOf
from bot.ui.outgoing import (
    ChannelGone,
    EditCapped,
    FileSpec,
    MessageGone,
    Outgoing,
    Rejected,
    Sender,
    SendError,
    Throttled,
    TooLarge,
)
from bot.ui.pacer import Pacer
from bot.vocab import Action

log = logging.getLogger(__name__)

FINAL_ATTEMPTS = 8  # tries to post a result before giving up (the job stays in /jobs)
IDLE_EXIT = 60.0  # a channel worker with nothing to show ends after this many seconds
# A failed Discord write is tried again after 2 s, doubling to a minute. No jitter: the
# pacer already spreads a channel's writes, and Discord's Retry-After is a block of its own.
SHOW_BACKOFF = Backoff(base=2.0, cap=60.0, jitter=0.0)
PENDING_TTL = 600.0  # a finished job never announced is forgotten after this long


class EngineView(MediaSource, Protocol):
    """The part of the engine the presenter uses (it never reaches a provider)."""

    def support(self, provider_name: str, action: Action) -> Support | None: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def attach_message(self, job_id: str, channel_id: str, message_id: str) -> None: ...

    async def mark_delivered(self, job_id: str) -> None: ...


class Leases(Protocol):
    """Which jobs this process shows, when processes share the store (engine/leasing.py)."""

    def holds(self, job_id: str) -> bool: ...

    def adopted(self, job_id: str) -> bool: ...


class Stage(enum.Enum):
    RUNNING = "running"  # progress edits; the result when the job finishes
    CLOSING = "closing"  # outcome posted; the progress message still to be deleted


@dataclass
class Shown:
    job: Job  # the newest state (a copy from the events)
    channel_id: int
    message_id: int | None = None  # the job's (progress) message; None once it is gone
    announced: bool = False  # its message was posted (or tried): the presenter owns it
    reply_to: int | None = None  # the message the job's messages reply to (a parent's)
    parent_checked: bool = False  # reply_to was looked up in the store (after a restart)
    limit: int | None = None  # upload limit told by the interaction that started it
    version: int = 0
    sent_version: int = -1
    last_sent: float = -math.inf
    retry_at: float = 0.0
    attempts: int = 0
    progress_off: bool = False  # deleted, or Discord's edit cap: no more progress edits
    preview_attached: str | None = None
    busy: bool = False
    stage: Stage = Stage.RUNNING
    files: list[FileSpec] | None = None
    notes: list[str] = field(default_factory=list)
    outcome_id: int | None = None  # the message that shows the outcome, once posted
    seen_at: float = 0.0


class Presenter:
    def __init__(
        self,
        engine: EngineView,
        sender: Sender,
        *,
        edit_interval: float,
        channel_edits_per_5s: int,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        self.engine = engine
        self.sender = sender
        self.edit_interval = edit_interval
        self.clock = clock
        self.pacer = pacer or Pacer(channel_edits_per_5s, clock=clock)
        self.started_wall = time.time()
        self._shown: dict[str, Shown] = {}
        self._ignored: set[str] = set()  # jobs whose channel is gone
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._wakes: dict[int, asyncio.Event] = {}
        self._closing = False
        self.writes = 0  # messages sent, edited or deleted, for tests and benchmarks
        self.image_check: ImageCheck | None = None  # [moderation] image_check (bot/app.py)
        # Told of each message posted for a job (cogs/reactions.py finds jobs by it).
        self.posted: Callable[[str, int, int], None] | None = None
        # The language of a guild's channel messages (bot/app.py: its preferred locale).
        self.locale_of: Callable[[str | None], str | None] = lambda _guild_id: None
        self.leases: Leases | None = None  # shared store: only held jobs are shown here

    # ------------------------------------------------------------------ events

    def on_update(self, update: JobUpdate) -> None:
        """Engine listener: record the newest state and wake the channel's worker."""
        job = update.job
        if job.origin is not Origin.DISCORD or not job.channel_id or job.id in self._ignored:
            return
        if self.leases is not None and not self.leases.holds(job.id):
            return  # another process shows it (its channel's writes are paced there)
        shown = self._shown.get(job.id)
        if shown is None:
            try:
                channel_id = int(job.channel_id)
            except ValueError:
                return
            shown = Shown(job=job, channel_id=channel_id, seen_at=self.clock())
            if job.message_id:
                # Resumed after a restart: its message is known from the store.
                shown.message_id = int(job.message_id)
                shown.announced = True
            self._shown[job.id] = shown
        else:
            shown.job = job
        shown.version += 1
        self._wake(shown.channel_id)

    def _wake(self, channel_id: int) -> None:
        if self._closing:
            return
        event = self._wakes.setdefault(channel_id, asyncio.Event())
        event.set()
        worker = self._workers.get(channel_id)
        if worker is None or worker.done():
            self._workers[channel_id] = asyncio.get_running_loop().create_task(
                self._work(channel_id), name=f"atelier-presenter-{channel_id}"
            )

    # ------------------------------------------------------------------ announce

    async def announce(
        self,
        job: Job,
        channel_id: int,
        *,
        reply_to: int | None = None,
        limit: int | None = None,
    ) -> int | None:
        """Post a new job's message in its channel (a reply to `reply_to` when given) and
        take it over. Returns the message id, or None when it could not be posted now
        (the result will still be posted). Raises ChannelGone when the channel refuses."""
        if self.leases is not None and not self.leases.holds(job.id):
            return None  # handed to the process that shows this channel: it posts it
        shown = self._shown.get(job.id)
        if shown is None:
            shown = Shown(job=job.copy(), channel_id=channel_id, seen_at=self.clock())
            self._shown[job.id] = shown
        shown.reply_to, shown.limit = reply_to, limit
        shown.busy = shown.announced = True
        try:
            if shown.job.finished:
                return await self._show_outcome(shown)
            return await self._post_progress(shown)
        finally:
            shown.busy = False
            self._wake(channel_id)

    async def _post_progress(self, shown: Shown) -> int | None:
        await self.pacer.wait_turn(shown.channel_id)
        if shown.job.finished:
            # In a busy channel the job may be done before its message could be posted:
            # post just the outcome (one write instead of three).
            return await self._show_outcome(shown)
        await self.pacer.acquire(shown.channel_id)
        job, version = shown.job, shown.version
        message = render.progress(job, locale=self.locale_of(job.guild_id))
        message.nonce = _nonce("p", job)
        try:
            message_id = await self._send(shown, message, reply_to=shown.reply_to)
        except ChannelGone:
            self._drop(shown, dead=True)
            raise
        except SendError as err:
            log.warning("could not post the message of job %s: %s", job.id, err)
            shown.progress_off = True  # no message to edit; the result comes anew
            return None
        shown.message_id = message_id
        shown.sent_version, shown.last_sent = version, self.clock()
        await self._attach(shown.job, shown.channel_id, message_id)
        return message_id

    # ------------------------------------------------------------------ the worker

    async def _work(self, channel_id: int) -> None:
        wake = self._wakes.setdefault(channel_id, asyncio.Event())
        while not self._closing:
            wake.clear()
            step, delay = self._plan(channel_id)
            if step is not None:
                await step  # errors are handled per job by _guarded
                continue
            if delay is None and not self._jobs_in(channel_id):
                delay = IDLE_EXIT
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), delay)
                if not wake.is_set() and not self._jobs_in(channel_id):
                    break
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.01, delay or IDLE_EXIT))
        self._workers.pop(channel_id, None)
        self._wakes.pop(channel_id, None)

    def _jobs_in(self, channel_id: int) -> list[Shown]:
        return [s for s in self._shown.values() if s.channel_id == channel_id]

    def _plan(self, channel_id: int) -> tuple[Coroutine[Any, Any, None] | None, float | None]:
        """The next write for this channel, or how long to wait. Order: results and
        failures, then the deletion of finished jobs' progress messages, then progress."""
        now = self.clock()
        waits: list[float] = []
        progress: list[Shown] = []
        closing: list[Shown] = []
        for shown in self._jobs_in(channel_id):
            if shown.busy:
                continue
            if shown.retry_at > now:
                waits.append(shown.retry_at - now)
                continue
            job = shown.job
            if not shown.announced:
                if job.created_at < self.started_wall or (
                    self.leases is not None and self.leases.adopted(job.id)
                ):
                    # Created before this process started and never shown: announce it now.
                    return self._guarded(shown, self._self_announce(shown)), None
                if job.finished and now - shown.seen_at > PENDING_TTL:
                    self._drop(shown)
                continue
            if shown.stage is Stage.CLOSING:
                closing.append(shown)  # after every result waiting in this channel
                continue
            if job.finished:
                return self._guarded(shown, self._show_outcome(shown)), None
            if shown.progress_off or shown.message_id is None:
                continue
            if shown.version > shown.sent_version:
                due = shown.last_sent + self.edit_interval
                if due > now:
                    waits.append(due - now)
                else:
                    progress.append(shown)
        if closing:
            return self._guarded(closing[0], self._close(closing[0])), None
        if progress:
            if self.pacer.try_take(channel_id):
                oldest = min(progress, key=lambda s: s.last_sent)
                return self._guarded(oldest, self._edit_progress(oldest)), None
            waits.append(max(0.05, self.pacer.ready_in(channel_id)))
        return None, (min(waits) if waits else None)

    async def _guarded(self, shown: Shown, step: Coroutine[Any, Any, object]) -> None:
        """Run one step for a job; an unexpected error backs that job off (and, repeated,
        gives up on showing it) instead of spinning the channel's worker."""
        shown.busy = True
        try:
            await step
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("showing job %s failed", shown.job.id)
            shown.attempts += 1
            if shown.attempts >= FINAL_ATTEMPTS:
                self._drop(shown)
            else:
                shown.retry_at = self.clock() + SHOW_BACKOFF.delay(shown.attempts - 1)
        finally:
            shown.busy = False

    async def _self_announce(self, shown: Shown) -> None:
        shown.announced = True
        await self._find_parent(shown)
        if shown.job.finished:
            await self._show_outcome(shown)
        else:
            with contextlib.suppress(ChannelGone):
                await self._post_progress(shown)

    # ------------------------------------------------------------------ steps

    async def _edit_progress(self, shown: Shown) -> None:
        """One progress edit (the pacer slot is already taken)."""
        assert shown.message_id is not None
        preview_url, files, attached = await self._preview(shown)
        job, version = shown.job, shown.version  # the newest state, after the download
        locale = self.locale_of(job.guild_id)
        message = render.progress(job, preview_url=preview_url, locale=locale)
        message.files = files
        try:
            await self._edit(shown, shown.message_id, message)
        except MessageGone:
            log.info("the message of job %s was deleted; its result will be posted anew", job.id)
            shown.progress_off, shown.message_id = True, None
        except EditCapped:
            shown.progress_off = True
        except ChannelGone:
            self._drop(shown, dead=True)
        except Throttled as err:
            self.pacer.block(shown.channel_id, err.retry_after)
            shown.retry_at = self.clock() + err.retry_after
        except SendError as err:
            log.info("progress edit of job %s failed: %s", job.id, err)
            shown.retry_at = self.clock() + self.edit_interval
        else:
            shown.sent_version = version
            shown.preview_attached = attached
        shown.last_sent = self.clock()

    async def _show_outcome(self, shown: Shown) -> int | None:
        """Post the result (or show the failure). Returns the id of the message that
        now shows the outcome, or None when it has to be retried."""
        await self._find_parent(shown)
        if shown.job.status is not JobStatus.SUCCEEDED:
            return await self._show_failure(shown)
        return await self._post_result(shown)

    async def _show_failure(self, shown: Shown) -> int | None:
        """Edit the job's message to say why it failed. When it is gone, post the failure
        anew (and when only its edits are capped, delete it after that)."""
        job = shown.job
        message = render.failure(job, self.locale_of(job.guild_id))
        message.nonce = _nonce("f", job)
        await self.pacer.acquire(shown.channel_id)
        if shown.message_id is not None and not shown.progress_off:
            try:
                await self._edit(shown, shown.message_id, message)
            except (MessageGone, EditCapped) as err:
                shown.progress_off = True
                if isinstance(err, MessageGone):
                    shown.message_id = None
                return await self._show_outcome(shown)
            except SendError as err:
                self._retry_final(shown, err)
                return None
            shown.outcome_id = shown.message_id
            await self._finish(shown)
            return shown.outcome_id
        try:
            posted = await self._send(shown, message, reply_to=shown.reply_to)
        except SendError as err:
            self._retry_final(shown, err)
            return None
        return await self._posted(shown, posted)

    async def _post_result(self, shown: Shown) -> int | None:
        """Post the images and buttons as a message of their own (a reply to the parent's
        result for follow-ups); the progress message is deleted after it."""
        job = shown.job
        limit = shown.limit or self.sender.upload_limit(job.guild_id)
        if shown.files is None:
            shown.files, shown.notes = await self.result_files(job, limit)
        locale = self.locale_of(job.guild_id)
        message = render.result(job, self.support_of(job), shown.notes, locale=locale)
        message.files, message.nonce = shown.files, _nonce("r", job)
        await self.pacer.acquire(shown.channel_id)
        try:
            posted = await self._send(shown, message, reply_to=shown.reply_to)
        except TooLarge:
            # The limit we were told (or assumed) was too generous: shrink and retry.
            shown.limit = max(256 * 1024, int(limit * 0.6))
            shown.files = None
            self._retry_final(shown, TooLarge("over the upload limit"), delay=0.0)
            return None
        except SendError as err:
            self._retry_final(shown, err)
            return None
        return await self._posted(shown, posted)

    async def _posted(self, shown: Shown, posted: int) -> int:
        """The outcome is on Discord. A progress message left beside it is deleted next,
        as a write of its own (paced, before any progress edit); without one, done."""
        shown.outcome_id, shown.files = posted, None  # the bytes are on Discord now
        if shown.message_id is not None and shown.message_id != posted:
            shown.stage = Stage.CLOSING
            shown.attempts = 0
            self._wake(shown.channel_id)
        else:
            await self._finish(shown)
        return posted

    async def _close(self, shown: Shown) -> None:
        """Delete the progress message of a job whose outcome is posted."""
        assert shown.message_id is not None
        await self.pacer.acquire(shown.channel_id)
        try:
            await self._delete(shown, shown.message_id)
        except (MessageGone, ChannelGone):
            pass  # deleted already (by someone, or by us before a restart), or its channel
        except SendError as err:
            if not isinstance(err, Rejected) and shown.attempts + 1 < FINAL_ATTEMPTS:
                self._retry_final(shown, err)
                return
            log.warning("could not delete the progress message of job %s: %s", shown.job.id, err)
        await self._finish(shown)

    async def _finish(self, shown: Shown) -> None:
        """Point the store at the message that shows the outcome (for /jobs and a restart)
        and confirm the outcome is shown. Only after the progress message is deleted: a
        kill -9 before this shows the outcome again rather than leave progress behind."""
        assert shown.outcome_id is not None
        if shown.outcome_id != shown.message_id:
            await self._attach(shown.job, shown.channel_id, shown.outcome_id)
        await self._delivered(shown.job)
        self._drop(shown)

    def _retry_final(self, shown: Shown, err: SendError, delay: float | None = None) -> None:
        """Schedule another try of a write that shows an outcome, or give up on it (the
        channel is gone, or it failed too often: the job stays in /jobs)."""
        if isinstance(err, ChannelGone):
            log.info(
                "channel %s of job %s is gone; the job is kept", shown.channel_id, shown.job.id
            )
            self._drop(shown, dead=True)
            return
        shown.attempts += 1
        if shown.attempts >= FINAL_ATTEMPTS:
            log.error("giving up showing the outcome of job %s: %s", shown.job.id, err)
            self._drop(shown)
            return
        if isinstance(err, Throttled):
            self.pacer.block(shown.channel_id, err.retry_after)
            delay = err.retry_after
        if delay is None:
            delay = SHOW_BACKOFF.delay(shown.attempts - 1)
        shown.retry_at = self.clock() + delay
        log.info(
            "showing the outcome of job %s failed (%s); retrying in %.1f s",
            shown.job.id,
            err,
            delay,
        )

    def _drop(self, shown: Shown, *, dead: bool = False) -> None:
        self._shown.pop(shown.job.id, None)
        if dead:
            self._ignored.add(shown.job.id)

    # ------------------------------------------------------------------ helpers

    async def _send(self, shown: Shown, message: Outgoing, *, reply_to: int | None) -> int:
        self.writes += 1
        posted = await self.sender.send(shown.channel_id, message, reply_to=reply_to)
        if self.posted is not None:
            self.posted(shown.job.id, shown.channel_id, posted)
        return posted

    async def _edit(self, shown: Shown, message_id: int, message: Outgoing) -> None:
        self.writes += 1
        await self.sender.edit(shown.channel_id, message_id, message)

    async def _delete(self, shown: Shown, message_id: int) -> None:
        self.writes += 1
        await self.sender.delete(shown.channel_id, message_id)

    async def _attach(self, job: Job, channel_id: int, message_id: int) -> None:
        """Record where the job is shown, so that a restart finds it (and /jobs links it)."""
        try:
            await self.engine.attach_message(job.id, str(channel_id), str(message_id))
        except Exception:
            log.exception("could not record the message of job %s", job.id)

    async def _delivered(self, job: Job) -> None:
        """Confirm the outcome is shown, so that a restart does not show it again."""
        try:
            await self.engine.mark_delivered(job.id)
        except Exception:
            log.exception("could not record that job %s was delivered", job.id)

    async def _find_parent(self, shown: Shown) -> None:
        """A follow-up shown by a new process (its interaction is gone) replies to its
        parent's message, as it would have: the store keeps where the parent is shown."""
        parent_id = shown.job.parent_id
        if shown.reply_to is not None or shown.parent_checked or not parent_id:
            return
        shown.parent_checked = True
        try:
            parent = await self.engine.get(parent_id)
        except Exception:
            log.exception("could not read job %s, the parent of %s", parent_id, shown.job.id)
            return
        if parent and parent.message_id and parent.channel_id == shown.job.channel_id:
            shown.reply_to = int(parent.message_id)

    def support_of(self, job: Job) -> SupportOf:
        def support_of(action: Action) -> Support | None:
            return self.engine.support(job.provider, action)

        return support_of

    async def _preview(self, shown: Shown) -> tuple[str | None, list[FileSpec] | None, str | None]:
        # Where the server checks images, progress goes without previews: a preview is
        # the image in the making, and checking one at every edit (downloading those
        # Discord would fetch by URL) costs a model run each; none is shown unchecked.
        if self.image_check is not None and await self.image_check.mode_for(shown.job):
            return None, None, shown.preview_attached
        limit = shown.limit or self.sender.upload_limit(shown.job.guild_id)
        return await job_media.preview(self.engine, shown.job, shown.preview_attached, limit)

    async def result_files(self, job: Job, limit: int) -> tuple[list[FileSpec], list[str]]:
        return await job_media.result_files(self.engine, job, limit, self.image_check)

    # ------------------------------------------------------------------ lifecycle

    def pending_finals(self) -> int:
        return sum(
            1
            for s in self._shown.values()
            if s.announced and (s.job.finished or s.stage is Stage.CLOSING)
        )

    async def close(self, timeout: float = 10.0) -> None:
        """Deliver the outcomes already known (briefly), then stop the workers."""
        deadline = time.monotonic() + timeout
        while self.pending_finals() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        self._closing = True
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        self._workers.clear()


def _nonce(kind: str, job: Job) -> str:
    """Discord keeps one message per nonce for a few minutes: a post repeated after a
    lost answer or a restart returns the message already there instead of a second."""
    return f"atelier-{kind}-{job.id}"[:25]
