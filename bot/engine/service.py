"""The engine: the one door front ends use. It validates requests, stores jobs,
submits them through the provider adapters, and hands them to the runner.

Front ends (the Discord cogs, the CLI) never talk to a provider themselves.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from bot import media
from bot.backoff import Backoff
from bot.config import Config
from bot.engine.dispatch import Dispatcher
from bot.engine.events import EventBus, Listener
from bot.engine.models import Job, JobRequest, JobStatus, new_job_id
from bot.engine.prompt import ParsedPrompt, PromptError, check_supported, parse_prompt
from bot.engine.results import ResultCollector
from bot.engine.runner import Runner, apply_snapshot
from bot.engine.store import Store, Usage
from bot.providers import build_provider
from bot.providers.base import (
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
from bot.vocab import BLEND_DIMENSIONS, Action, action_name

log = logging.getLogger(__name__)

# A busy provider's refused job is sent again after this wait (15 s, doubling to 5 min).
RESUBMIT_BACKOFF = Backoff(base=15.0, cap=300.0, jitter=0.2)

# Actions that take a prompt of their own (not a follow-up of a job).
_PROMPTED = {Action.IMAGINE, Action.SHORTEN}
_IMAGE_COUNTS = {
    Action.DESCRIBE: (1, 1),
    Action.BLEND: (2, 5),
    Action.SWAP_FACE: (2, 2),
}


class RequestError(ValueError):
    """A request the engine refuses before anything is stored or sent. User-facing."""


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
        self.store = Store(config.storage.path)
        self.results = ResultCollector(
            config.storage.media_dir, int(config.engine.max_download_mib * 1024 * 1024)
        )
        self._http = httpx.AsyncClient(
            follow_redirects=True,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            headers={"User-Agent": "Atelier (Discord image bot)"},
        )
        # `providers` lets tests and benchmarks plug in adapters built elsewhere.
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
        self.deadline = config.engine.job_deadline_minutes * 60

    # ---- lifecycle ----

    async def start(self, *, run: bool = True) -> None:
        await self.store.open()
        if run:
            # Jobs that were waiting for room were never sent: they queue again, in order.
            for job in await self.runner.start():
                job.queue_position = self.dispatcher.enqueue(job)
            self.dispatcher.start()

    async def stop(self) -> None:
        """Stop polling; active jobs stay in the store and resume at the next start."""
        await self.dispatcher.stop()
        await self.runner.stop()
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
            raise RequestError(
                f"There is no provider named {wanted!r}; pick one of: {names}."
            ) from None

    async def get(self, job_id: str) -> Job | None:
        live = self.runner.get(job_id) or self.dispatcher.get(job_id)
        return live if live is not None else await self.store.get(job_id)

    async def recent(self, limit: int = 20, **filters: str | None) -> list[Job]:
        return await self.store.recent(limit, **filters)

    async def usage(self, days: float = 1, guild_id: str | None = None) -> list[Usage]:
        """Jobs sent to providers per user and provider over the last `days`."""
        return await self.store.usage(self.clock() - days * 86400, guild_id)

    def media_path(self, relative: str) -> Path:
        return self.results.path(relative)

    # ---- requests ----

    async def submit(self, request: JobRequest) -> Job:
        """Validate, store, and send one request (or queue it while its provider is
        full). Returns the job, possibly already failed with the provider's reason.
        Raises RequestError for bad input, before anything is stored or sent."""
        job, support, submit_request = await self._prepare(request)
        if support.how is How.SELECT:
            await self._select(job, submit_request)
        elif self.dispatcher.has_room(job.provider):
            await self._send(job, submit_request, announce=True)
        else:
            job.queue_position = self.dispatcher.enqueue(job)
            job.provider_status = "waiting for a free slot"
            await self.store.save(job)
            self.events.publish(job, "created")
        return job

    async def _send(
        self, job: Job, submit_request: SubmitRequest | None = None, *, announce: bool = False
    ) -> None:
        """Send a stored job to its provider (the dispatcher calls this for queued jobs)."""
        provider = self.providers[job.provider]
        job.status = JobStatus.SUBMITTING
        job.queue_position = None
        await self.store.save(job)  # written before it is sent: a crash here is detectable
        if announce:
            self.events.publish(job, "created")
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
            self.events.publish(job, "queued")
            return
        except ProviderError as err:
            await self._fail(job, str(err))
            return
        except Exception as err:
            log.exception("submitting %s to %s failed unexpectedly", job.id, provider.name)
            await self._fail(job, f"Atelier could not submit this job ({type(err).__name__}).")
            return
        job.task_id = result.task_id
        job.status = JobStatus.SUBMITTED
        job.submitted_at = self.clock()
        job.provider_status = ""
        await self.store.save(job)
        self.events.publish(job, "submitted")
        if result.snapshot is not None and not result.snapshot.state.finished:
            apply_snapshot(job, result.snapshot)
        self.runner.track(
            job, delay=0 if result.snapshot and result.snapshot.state.finished else None
        )

    async def _fail(self, job: Job, reason: str) -> None:
        job.status = JobStatus.FAILED
        job.failure = reason
        job.finished_at = self.clock()
        await self.store.save(job)
        self.events.publish(job, "failed")

    async def _expire_waiting(self, job: Job) -> None:
        minutes = max(1, round((job.deadline_at - job.created_at) / 60))
        await self._fail(
            job,
            f"{job.provider} stayed busy for {minutes} minutes, so this job was never sent "
            "(nothing was charged). Try again later.",
        )

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job is None:
            raise RequestError(f"There is no job {job_id}.")
        if job.finished:
            raise RequestError(f"Job {job_id} has already {job.status.value}.")
        if self.dispatcher.remove(job.id) is not None:
            job.status = JobStatus.CANCELLED
            job.failure = "Cancelled before it was sent (nothing was charged)."
            job.finished_at = self.clock()
            await self.store.save(job)
            self.events.publish(job, "cancelled")
            return job
        provider = self.providers.get(job.provider)
        note = ""
        if provider is not None and job.task_id:
            try:
                await provider.cancel(job.task_id)
            except ProviderError as err:
                note = f" ({err} Atelier stopped following it; the provider may still finish.)"
        self.runner.forget(job.id)
        job.status = JobStatus.CANCELLED
        job.failure = "Cancelled by request." + note
        job.finished_at = self.clock()
        await self.store.save(job)
        self.events.publish(job, "cancelled")
        return job

    async def attach_message(self, job: Job, channel_id: str, message_id: str) -> None:
        """Record where a front end shows this job (so edits survive restarts).

        Only these two fields are written: the front end's copy of the job may be older
        than the runner's, and must not overwrite it."""
        for copy in (job, self.runner.get(job.id)):
            if copy is not None:
                copy.channel_id, copy.message_id = channel_id, message_id
        await self.store.patch(job.id, channel_id=channel_id, message_id=message_id)

    async def mark_delivered(self, job_id: str) -> None:
        """A front end has shown the outcome of this finished job to its requester."""
        await self.store.patch(job_id, delivered_at=self.clock())

    async def undelivered(self, origin: str, *, within_hours: float = 24) -> list[Job]:
        """Finished jobs whose outcome `origin` never confirmed showing (the process
        stopped in between): a front end shows them again at start."""
        return await self.store.undelivered(origin, self.clock() - within_hours * 3600)

    # ---- internals ----

    async def _prepare(self, request: JobRequest) -> tuple[Job, Support, SubmitRequest]:
        parent: Job | None = None
        if request.parent_id:
            parent = await self.get(request.parent_id)
            if parent is None:
                raise RequestError(
                    f"Job {request.parent_id} no longer exists, so its buttons cannot be used."
                )
            if parent.status is not JobStatus.SUCCEEDED:
                raise RequestError(
                    f"Job {parent.id} has not finished successfully, so it has no results "
                    "to act on."
                )
        provider = self.provider(parent.provider if parent else request.provider)
        action = request.action
        label = action_name(action)
        support = provider.supports(action)
        if support is None:
            raise RequestError(f"{provider.name} does not offer {label}.")
        offered = parent is None or parent.offers(action, request.index, request.variant)
        if parent is not None and action not in _PROMPTED and not offered:
            raise RequestError(
                f"Job {parent.id} does not offer {label}"
                f"{f' {request.index}' if request.index else ''} on {provider.name}."
            )
        if request.user_id:
            await self._check_limits(request.user_id)
        parsed = self._parse(request, parent, provider)
        lo, hi = _IMAGE_COUNTS.get(action, (0, provider.max_images))
        if not lo <= len(request.images) <= hi:
            want = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise RequestError(f"{label} takes {want} images; you gave {len(request.images)}.")
        if action is Action.BLEND and request.dimensions not in BLEND_DIMENSIONS:
            raise RequestError(f"Blend dimensions must be one of {', '.join(BLEND_DIMENSIONS)}.")
        if action is Action.INPAINT and not request.regions:
            raise RequestError("Vary (Region) needs at least one region to redraw.")

        now = self.clock()
        job = Job(
            id=new_job_id(),
            action=action,
            provider=provider.name,
            parent_id=parent.id if parent else None,
            index=request.index,
            variant=request.variant,
            prompt=parsed.raw if parsed else (parent.prompt if parent else ""),
            params=dict(parsed.params) if parsed else (dict(parent.params) if parent else {}),
            mode=(parsed.mode if parsed else None) or (parent.mode if parent else None),
            regions=list(request.regions),
            dimensions=request.dimensions,
            origin=request.origin,
            user_id=request.user_id,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            created_at=now,
            deadline_at=now + self.deadline,
        )
        images = list(request.images)
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
        return job, support, submit_request

    async def _check_limits(self, user_id: str) -> None:
        """The owner's spending limits per user (config [engine])."""
        at_once = self.config.engine.max_active_per_user
        if at_once:
            active = await self.store.count_active_for(user_id)
            if active >= at_once:
                raise RequestError(
                    f"You already have {active} jobs running (the limit here is {at_once}); "
                    "wait for one to finish."
                )
        daily = self.config.engine.max_jobs_per_user_per_day
        if daily:
            used = await self.store.count_sent_since(user_id, self.clock() - 86400)
            if used >= daily:
                raise RequestError(
                    f"You have used your {daily} jobs for the last 24 hours here; try again later."
                )

    async def _request_for(
        self, job: Job, parent: Job | None = None, images: list[ImageInput] | None = None
    ) -> SubmitRequest:
        """The provider request for a stored job. Everything comes from the store, so a
        job queued before a restart is sent exactly as it was asked for."""
        if parent is None and job.parent_id:
            parent = await self.get(job.parent_id)
        parsed: ParsedPrompt | None = None
        if job.prompt:
            with contextlib.suppress(PromptError):  # validated when the job was made
                parsed = parse_prompt(job.prompt)
        if images is None:
            images = []
            for path in job.inputs:
                data = await self.results.read(path)
                images.append(ImageInput(data, media.sniff_mime(data) or "image/png"))
        followup = parent.offers(job.action, job.index, job.variant) if parent else None
        size = None
        if parent is not None and parent.images:
            pick = (
                parent.images[job.index - 1]
                if 0 < job.index <= len(parent.images)
                else parent.images[0]
            )
            size = await self.results.image_size(pick) if pick else None
        return SubmitRequest(
            action=job.action,
            prompt=parsed.raw if parsed else job.prompt,
            text=parsed.text if parsed else "",
            params=job.params,
            image_urls=parsed.image_urls if parsed else (),
            images=images,
            mode=job.mode,
            parent_task_id=parent.task_id if parent else None,
            parent_extra=dict(parent.provider_data) if parent else {},
            parent_image_size=size,
            index=job.index,
            variant=job.variant,
            ref=followup.ref if followup else "",
            regions=list(job.regions),
            dimensions=job.dimensions,
            callback_url=self._callback_url(self.providers[job.provider], job),
        )

    def _callback_url(self, provider: Provider, job: Job) -> str | None:
        base = self.config.callbacks.public_url.rstrip("/")
        if not base or Feature.CALLBACKS not in provider.features:
            return None
        return f"{base}/atelier/callback/{job.id}"

    def _parse(
        self, request: JobRequest, parent: Job | None, provider: Provider
    ) -> ParsedPrompt | None:
        text = request.prompt.strip()
        if request.action in _PROMPTED or (text and parent is not None):
            pass  # a prompt of its own: a new one, or a remix / custom zoom of the parent
        elif parent is not None:
            text = parent.prompt
        else:
            return None
        if not text:
            if request.action in _PROMPTED:
                raise RequestError("The prompt is empty; describe what you want to see.")
            return None
        try:
            parsed = parse_prompt(text)
            check_supported(parsed, provider.accepted_params, provider.name)
        except PromptError as err:
            raise RequestError(str(err)) from None
        return parsed

    async def _select(self, job: Job, request: SubmitRequest) -> None:
        """U1-U4 on providers that return four separate images: no provider call."""
        provider = self.providers[job.provider]
        parent = await self.get(job.parent_id or "")
        source = ""
        if parent is not None and 0 < job.index <= len(parent.images):
            source = parent.images[job.index - 1]
        if parent is None or not request.parent_task_id:
            job.status = JobStatus.FAILED
            job.failure = "There is no image to select from."
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
        self.events.publish(job, "created")
        self.events.publish(job, job.status.value)
