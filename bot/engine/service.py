"""The engine: the one door front ends use. It validates requests, stores jobs,
submits them through the provider adapters, and hands them to the runner.

Front ends (the Discord cogs, the CLI) never talk to a provider themselves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx

from bot.backoff import Backoff
from bot.config import Config
from bot.engine import access, leasing, refusals
from bot.engine.audit import AuditLog
from bot.engine.dispatch import Dispatcher
from bot.engine.events import EventBus, Listener
from bot.engine.intake import (
    PROMPTED,
    RequestError,
    check_inputs,
    new_job,
    parse_request_prompt,
)
from bot.engine.models import EventKind, Job, JobRequest, JobStatus, Origin
from bot.engine.moderation import Moderator, record_refusal
from bot.engine.preferences import PreferenceStore
from bot.engine.results import ResultCollector
from bot.engine.retention import MediaRetention
from bot.engine.runner import Runner, apply_snapshot
from bot.engine.settings import SettingsStore
from bot.engine.spending import DuplicatePress, Spending, cancel_sent, refusal_refunds
from bot.engine.store import Usage, store_for
from bot.engine.submit_request import build as build_submit_request
from bot.i18n import N_
from bot.providers import build_provider
from bot.providers.base import (
    CheckResult,
    CheckStatus,
    Feature,
    How,
    ImageInput,
    PromptRejected,
    Provider,
    ProviderError,
    RateLimited,
    SubmitRequest,
    Support,
)
from bot.vocab import Action, action_name

__all__ = ["Engine", "ProviderCheck", "RequestError", "Usage"]

log = logging.getLogger(__name__)

# A busy provider's refused job is sent again after this wait (15 s, doubling to 5 min).
RESUBMIT_BACKOFF = Backoff(base=15.0, cap=300.0, jitter=0.2)

# A progress preview is worth this much to a front end, and no more.
PREVIEW_MAX_BYTES = 8 * 1024 * 1024
PREVIEW_TIMEOUT = 10.0
CHECK_TIMEOUT = 60.0  # seconds `check_providers` waits for each provider


class ProviderCheck(NamedTuple):
    """One line of `atelier check`: a configured provider and what reaching it gave."""

    name: str
    kind: str
    result: CheckResult


class Engine:
    def __init__(
        self,
        config: Config,
        *,
        providers: dict[str, Provider] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self.events = EventBus()
        self.store = store_for(config.storage.target)
        self.audit = AuditLog(self.store, clock)  # who spent what, refusals, settings
        self.settings = SettingsStore(self.store, clock)  # each server's own choices
        self.preferences = PreferenceStore(self)  # each member's own (/settings, /prefer)
        self.spending = Spending(config, self.store, self.audit, self.settings, clock)
        self.events.subscribe(self.spending.on_update)  # the provider failed: refunded
        self._cancel_asked: set[str] = set()  # cancels that came while a job was sent
        self.moderation = Moderator(config.moderation.banned_words)
        self.results = ResultCollector(
            config.storage.media_dir,
            int(config.engine.max_download_mib * 1024 * 1024),
            config.engine.download_timeout_seconds,
        )
        self.retention = MediaRetention(self.store, config, clock)  # sweep, disk floor
        self._http = httpx.AsyncClient(
            # Redirects are followed by ProviderHttp, which keeps keys on their origin
            # and refuses private addresses; a client that followed them would not.
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "Atelier (Discord image bot)"},
        )
        # `providers` lets tests and benchmarks plug in adapters built elsewhere. Front
        # ends never use this map: they ask the questions below (support, offers, ...).
        self.providers: dict[str, Provider] = providers or {
            p.name: build_provider(p, self._http) for p in config.providers
        }
        for provider_config in config.providers:
            if provider_config.poll_interval and provider_config.name in self.providers:
                self.providers[provider_config.name].poll_interval = provider_config.poll_interval
        self.runner = Runner(self.store, self.providers, self.events, self.results, clock=clock)
        self.dispatcher = Dispatcher(
            {p.name: p.max_concurrent for p in config.providers},
            self.runner.count_for,
            self._send,
            self._expire_waiting,
            clock=clock,
        )
        self.leasing = leasing.Leasing.of(self)  # several processes on one PostgreSQL store
        self.deadline = config.engine.job_deadline_minutes * 60
        self.preview_max_bytes = PREVIEW_MAX_BYTES
        self.preview_timeout = PREVIEW_TIMEOUT

    # ---- lifecycle ----

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The one client every provider call goes through (metrics observe it)."""
        return self._http

    async def start(self, *, run: bool = True) -> None:
        await self.store.open()
        if run:
            # Jobs that were waiting for room were never sent: they queue again, in order.
            for job in await self.leasing.start():  # shared: only the jobs nobody follows
                job.queue_position = self.dispatcher.enqueue(job)
            self.dispatcher.start()
            self.retention.start()

    async def stop_polling(self) -> None:
        """Stop following jobs, so that no new outcomes arrive (a front end shutting
        down shows the ones it already has, then calls `stop`)."""
        await self.runner.stop()

    async def stop(self) -> None:
        """Stop polling; active jobs stay in the store and resume at the next start."""
        await self.dispatcher.stop()
        await self.runner.stop()
        await self.retention.stop()
        await self.spending.drain()
        await self.leasing.stop()
        for provider in self.providers.values():
            await provider.aclose()
        await self._http.aclose()
        await self.store.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self.events.subscribe(listener)

    # ---- queries ----

    @property
    def default_provider(self) -> str:
        return self.config.default_provider or self.config.providers[0].name

    def provider(self, name: str | None) -> Provider:
        wanted = name or self.default_provider
        try:
            return self.providers[wanted]
        except KeyError:
            names = ", ".join(self.providers)
            raise refusals.no_provider(wanted, names) from None

    async def get(self, job_id: str) -> Job | None:
        """The newest state of a job, as a copy of its own: the caller may keep or change
        it without touching the job the engine is working on."""
        live = self._live(job_id)
        return live.copy() if live is not None else await self.store.get(job_id)

    def claim_store(self) -> None:
        """Run this store (alone, or shared: leasing.py), or raise StoreInUse early."""
        self.store.claim()

    def watch(self, job_id: str) -> AsyncIterator[Job]:
        """Follow a job that another process runs, read-only, through the store: its
        stored state each time it changes, until it finishes or that process goes away
        (then this engine holds the store and may resume the job itself)."""
        return self.store.watch(job_id)

    async def recent(self, limit: int = 20, **filters: Any) -> list[Job]:
        """Recent jobs, newest first, read from the store (copies, like `get`)."""
        return await self.store.recent(limit, **filters)

    def _live(self, job_id: str) -> Job | None:
        """The engine's own mutable job while it is followed, waiting or being sent."""
        return self.runner.get(job_id) or self.dispatcher.get(job_id)

    async def _find(self, job_id: str) -> Job | None:
        """The engine's own job: the live one, else the stored one (no copy)."""
        live = self._live(job_id)
        return live if live is not None else await self.store.get(job_id)

    async def usage(self, days: float = 1, guild_id: str | None = None) -> list[Usage]:
        """Jobs sent to providers per user and provider over the last `days`."""
        return await self.store.usage(self.clock() - days * 86400, guild_id)

    def media_path(self, relative: str) -> Path:
        return self.results.path(relative)

    # ---- what front ends ask (they never call a provider themselves) ----

    def has_provider(self, name: str) -> bool:
        """Whether a provider of this name is configured."""
        return name in self.providers

    def support(self, provider_name: str, action: Action) -> Support | None:
        """How the named provider serves `action`; None when it does not (or is gone)."""
        provider = self.providers.get(provider_name)
        return provider.supports(action) if provider is not None else None

    def providers_for(self, action: Action) -> list[str]:
        """The names of the configured providers that offer `action`, in config order."""
        return [name for name in self.providers if self.support(name, action) is not None]

    def offers(self, job: Job, action: Action, index: int = 0, variant: str = "") -> Support | None:
        """How a follow-up of `job` would be served: None unless the job's provider serves
        `action` AND the job itself offered it (a forged or stale press gets None)."""
        support = self.support(job.provider, action)
        if support is None or job.offers(action, index, variant) is None:
            return None
        return support

    async def preview(self, job: Job) -> bytes | None:
        """The bytes of the job's progress preview, fetched through its provider (some
        previews are the provider's own URLs, such as `sandbox://`). None when there is
        none, or it is over `preview_max_bytes`, or takes over `preview_timeout` seconds,
        or fails: a preview is never worth more than a log line."""
        provider = self.providers.get(job.provider)
        url, max_bytes = job.preview_url, self.preview_max_bytes
        if provider is None or not url:
            return None
        try:
            async with asyncio.timeout(self.preview_timeout):
                data = await provider.download(url, max_bytes)
        except (ProviderError, TimeoutError) as err:
            log.debug("no preview for job %s: %s", job.id, err or "timed out")
            return None
        except Exception:
            log.exception("fetching the preview of job %s failed unexpectedly", job.id)
            return None
        if len(data) > max_bytes:
            log.debug("no preview for job %s: %d bytes is over the bound", job.id, len(data))
            return None
        return data

    async def check_providers(self, timeout: float = CHECK_TIMEOUT) -> AsyncIterator[ProviderCheck]:
        """Reach every configured provider with its key, one after the other (each result
        is yielded as it comes, so a slow one does not hide the others' answers)."""
        for name, provider in self.providers.items():
            try:
                result = await asyncio.wait_for(provider.check(), timeout)
            except TimeoutError:
                result = CheckResult(CheckStatus.UNREACHABLE, f"no answer within {timeout:.0f} s")
            yield ProviderCheck(name, provider.kind, result)

    def poke(self, job_id: str) -> bool:
        """News may be waiting for this job (a provider callback): poll it soon. Returns
        whether the job is being followed."""
        return self.runner.poke(job_id)

    # ---- requests ----

    async def submit(self, request: JobRequest) -> Job:
        """Validate, store, and send one request (or queue it while its provider is
        full). Returns the job, possibly already failed with the provider's reason.
        Raises RequestError for bad input, before anything is stored or sent. The job
        returned is a copy, like `get`'s."""
        try:
            job, support, submit_request = await self._prepare(request)
        except DuplicatePress as press:  # a double click: the first press's job, once
            return await self._existing(press.job_id)
        except RequestError as err:  # every refusal is in the audit, whoever refused
            await record_refusal(self.audit, request, err)
            raise
        if await self.leasing.place(job, hand_over=support.how is not How.SELECT):
            return job.copy()  # another process shows its channel: that one sends it
        if support.how is How.SELECT:
            await self._select(job, submit_request)
        elif self.dispatcher.claim(job):  # counted as in flight before the first await
            try:
                await self._send(job, submit_request, announce=True)
            finally:
                self.dispatcher.release(job)
        else:
            job.queue_position = self.dispatcher.enqueue(job)
            job.provider_status = "waiting for a free slot"
            await self.store.save(job)
            self.events.publish(job, EventKind.CREATED)
        return job.copy()

    async def _send(
        self, job: Job, submit_request: SubmitRequest | None = None, *, announce: bool = False
    ) -> None:
        """Send a stored job to its provider (the dispatcher calls this for queued jobs)."""
        provider = self.providers[job.provider]
        job.status = JobStatus.SUBMITTING
        job.queue_position = None
        # Written before it is sent (a crash here is detectable), and only while the
        # store still has it waiting: another process may have cancelled it meanwhile.
        if not await self.store.replace_if(job, JobStatus.WAITING):
            await self._ended_elsewhere(job.id)
            return
        if announce:
            self.events.publish(job, EventKind.CREATED)
        try:
            if submit_request is None:
                submit_request = await self._request_for(job)
            result = await provider.submit(submit_request)
        except RateLimited as err:
            # Refused outright (429, queue full): nothing was accepted, so it is safe to
            # send again later. The job keeps its place at the head of the queue.
            job.submit_attempts += 1
            delay = RESUBMIT_BACKOFF.delay(job.submit_attempts - 1, err.retry_after)
            job.status = JobStatus.WAITING
            job.provider_status = f"{provider.name} is busy; trying again in {delay:.0f} s"
            job.queue_position = self.dispatcher.enqueue(
                job, not_before=self.clock() + delay, front=True
            )
            await self.store.save(job)
            self.events.publish(job, EventKind.WAITING)
            return
        except ProviderError as err:  # refused: refunded unless it may have been accepted
            await self._fail(job, str(err), refund=refusal_refunds(err))
            return
        except Exception as err:
            log.exception("submitting %s to %s failed unexpectedly", job.id, provider.name)
            await self._fail(job, f"Atelier could not submit this job ({type(err).__name__}).")
            return
        if job.id in self._cancel_asked:  # cancelled while it was being sent
            job.task_id = result.task_id
            note = await cancel_sent(provider, result.task_id)
            await self._mark_cancelled(job, N_("Cancelled while it was being sent.") + note)
            return
        job.task_id = result.task_id
        job.provider_data.update(result.data)  # kept from the start: read back on every poll
        job.status = JobStatus.SUBMITTED
        job.submitted_at = self.clock()
        job.provider_status = ""
        if result.snapshot is not None and not result.snapshot.state.finished:
            apply_snapshot(job, result.snapshot)
        # The provider has it now, so it is followed from this moment even if the store
        # refuses the write below (disk full): that write is retried until it lands. A
        # process that dies first leaves it SUBMITTING, which a restart fails, never resends.
        self.runner.track(
            job, delay=0 if result.snapshot and result.snapshot.state.finished else None
        )
        await self.runner.save_until_stored(lambda: self.store.save(job), [job.id])
        self.events.publish(job, EventKind.SUBMITTED)

    async def _fail(self, job: Job, reason: str, *, refund: bool = False) -> None:
        self._cancel_asked.discard(job.id)
        job.status = JobStatus.FAILED
        job.failure = reason
        job.finished_at = self.clock()
        await self.store.save(job)
        if refund:
            await self.spending.refund(job, reason)
        self.events.publish(job, EventKind.FAILED)

    async def _expire_waiting(self, job: Job) -> None:
        minutes = max(1, round((job.deadline_at - job.created_at) / 60))
        await self._fail(
            job,
            f"{job.provider} stayed busy for {minutes} minutes, so this job was never sent "
            "(nothing was charged). Try again later.",
            refund=True,
        )

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a waiting one costs nothing; a sent one is cancelled at its
        provider where it can be. Returns a copy of the cancelled job."""
        job = await self._find(job_id)
        if job is None:
            raise refusals.no_job(job_id)
        if job.finished:
            raise refusals.already_finished(job)
        if self.dispatcher.remove(job.id) is not None:
            await self._mark_cancelled(
                job, N_("Cancelled before it was sent (nothing was charged).")
            )
            return job.copy()
        if job.status is JobStatus.WAITING:  # in another process's queue (handed to it)
            if await self._cancel_waiting(job):
                return job.copy()
            raise refusals.being_sent(job)  # that process took it out to send it just now
        if job.status is JobStatus.SUBMITTING:
            # The provider call is in flight: honoured when it answers (see `_send`), never
            # shown cancelled while the provider may still run it and charge for it.
            self._cancel_asked.add(job.id)
            return job.copy()
        note = await cancel_sent(self.providers.get(job.provider), job.task_id)
        self.runner.forget(job.id)
        await self._mark_cancelled(job, N_("Cancelled by request.") + note, refund=False)
        return job.copy()

    async def _cancel_waiting(self, job: Job) -> bool:
        """Cancel a job another process holds waiting, in one conditional write that
        its send cannot cross (`_send` writes SUBMITTING only over WAITING); refunded,
        as nothing was sent. False when it is no longer waiting."""
        job.status = JobStatus.CANCELLED
        job.failure = N_("Cancelled before it was sent (nothing was charged).")
        job.finished_at = self.clock()
        if not await self.store.replace_if(job, JobStatus.WAITING):
            return False
        await self.spending.refund(job, job.failure)
        self.events.publish(job, EventKind.CANCELLED)
        return True

    async def _ended_elsewhere(self, job_id: str) -> None:
        """A job this process was about to send was ended by another one: not sent; its
        end is published here too, for the messages this process shows."""
        stored = await self.store.get(job_id)
        log.info("job %s was ended by another process before it was sent", job_id)
        if stored is not None and stored.finished:
            self.events.publish(stored, EventKind.reached(stored.status))

    async def _mark_cancelled(self, job: Job, failure: str, *, refund: bool = True) -> None:
        """End a job as cancelled; refunded when it surely cost nothing at the provider."""
        self._cancel_asked.discard(job.id)
        job.status = JobStatus.CANCELLED
        job.failure = failure
        job.finished_at = self.clock()
        await self.store.save(job)
        if refund:
            await self.spending.refund(job, failure)
        self.events.publish(job, EventKind.CANCELLED)

    async def _existing(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job is None:  # written in the same step as the press that found it
            raise refusals.no_job(job_id)
        return job

    async def attach_message(self, job_id: str, channel_id: str, message_id: str) -> None:
        """Record where a front end shows this job (so edits survive restarts)."""
        await self._patch(job_id, channel_id=channel_id, message_id=message_id)

    async def mark_delivered(self, job_id: str) -> None:
        """A front end has shown the outcome of this finished job to its requester."""
        await self.leasing.mark_delivered(job_id, self.clock())  # shared: by its holder only

    async def undelivered(self, origin: Origin, *, within_hours: float = 24) -> list[Job]:
        """Finished jobs whose outcome `origin` never confirmed showing (the process
        stopped in between): a front end shows them again at start."""
        return await self.store.undelivered(origin.value, self.clock() - within_hours * 3600)

    async def _patch(self, job_id: str, **values: str | float) -> None:
        """Set the few fields a front end owns, on the engine's own job and in the store,
        and nothing else: a whole save could put back older state."""
        live = self._live(job_id)
        if live is not None:
            for name, value in values.items():
                setattr(live, name, value)
        await self.store.patch(job_id, **values)

    # ---- internals ----

    async def _prepare(self, request: JobRequest) -> tuple[Job, Support, SubmitRequest]:
        """Check a request and make its job (with its inputs saved), ready to send."""
        self.retention.check_free_space()  # a full disk refuses before anything is spent
        request = await self.preferences.apply(request)  # options, suffix, /settings
        admission = await access.admit(self.config, self.settings, request)
        parent = await self._parent_of(request)
        provider = self.provider(parent.provider if parent else admission.provider)
        support = self._check_offered(request, parent, provider)
        access.check_use(self.config, admission, request, provider.name, parent)
        # Banned words before any limit is checked or spend recorded: a refusal costs nothing.
        self.moderation.check(request, parent, await self.settings.get(request.guild_id))
        parsed = parse_request_prompt(request, parent, provider)
        check_inputs(request, provider)
        now = self.clock()
        job = new_job(request, parent, provider.name, parsed, now=now, deadline=now + self.deadline)
        images: list[ImageInput] | None = list(request.images)
        if not images and parent is not None and parent.inputs:
            # Follow-ups of an image-prompted job reuse its images (e.g. 🔄).
            job.inputs = list(parent.inputs)
            images = None  # read from the stored inputs
        submit_request = await self._request_for(job, parent, images)
        try:
            provider.validate(submit_request)
        except PromptRejected as err:
            raise RequestError(str(err)) from None
        # Kept for follow-ups (and for sending a queued job later) once the request is valid.
        for n, image in enumerate(request.images, 1):
            job.inputs.append(await self.results.save_input(job, n, image.data))
        await self._check_limits(job, request, support)
        return job, support, submit_request

    async def _parent_of(self, request: JobRequest) -> Job | None:
        """The finished job a follow-up acts on (None for a job of its own)."""
        if not request.parent_id:
            return None
        parent = await self._find(request.parent_id)
        if parent is None:
            raise refusals.parent_gone(request.parent_id)
        if parent.status is not JobStatus.SUCCEEDED:
            raise refusals.parent_failed(parent.id)
        return parent

    def _check_offered(
        self, request: JobRequest, parent: Job | None, provider: Provider
    ) -> Support:
        """How the provider serves the request; a follow-up must also be one the parent
        offered (a prompt of its own, such as a remix, needs no offer)."""
        action, label = request.action, action_name(request.action)
        support = provider.supports(action)
        if support is None:
            raise refusals.not_offered(provider.name, label)
        if (
            parent is not None
            and action not in PROMPTED
            and self.offers(parent, action, request.index, request.variant) is None
        ):
            raise refusals.job_does_not_offer(parent.id, label, request.index, provider.name)
        return support

    async def _check_limits(self, job: Job, request: JobRequest, support: Support) -> None:
        """Budgets, active jobs and the double press: checked, and the job stored and
        charged, in one atomic step (see spending.py), last, once the request is valid."""
        cost = self.spending.cost(job.provider, job.action, support.how)
        await self.spending.admit(job, request, cost)

    async def _request_for(
        self, job: Job, parent: Job | None = None, images: list[ImageInput] | None = None
    ) -> SubmitRequest:
        """The provider request for a stored job (bot/engine/submit_request.py)."""
        if parent is None and job.parent_id:
            parent = await self._find(job.parent_id)
        callback = self._callback_url(self.providers[job.provider], job)
        return await build_submit_request(job, parent, images, self.results, callback)

    def _callback_url(self, provider: Provider, job: Job) -> str | None:
        base = self.config.http.public_url.rstrip("/")
        if not base or Feature.CALLBACKS not in provider.features:
            return None
        return f"{base}/atelier/callback/{job.id}"

    async def _select(self, job: Job, request: SubmitRequest) -> None:
        """U1-U4 on providers that return four separate images: no provider call."""
        provider = self.providers[job.provider]
        parent = await self._find(job.parent_id or "")
        source = ""
        if parent is not None and 0 < job.index <= len(parent.images):
            source = parent.images[job.index - 1]
        if parent is None or not request.parent_task_id:
            job.status = JobStatus.FAILED
            job.failure = N_("There is no image to select from.")
        elif not source:
            job.status = JobStatus.FAILED
            job.failure = f"Image {job.index} of job {parent.id} was withheld by review."
        else:
            snapshot = provider.select(request.parent_task_id, request.parent_extra, job.index)
            job.task_id = request.parent_task_id
            job.images = [await self.results.copy_image(source, job)]
            job.followups = list(snapshot.followups)
            job.provider_data.update(snapshot.extra)
            job.seed = parent.seed
            job.status = JobStatus.SUCCEEDED
            job.progress = 100.0
        job.submitted_at = job.finished_at = self.clock()
        await self.store.save(job)
        self.events.publish(job, EventKind.CREATED)
        self.events.publish(job, EventKind.reached(job.status))
