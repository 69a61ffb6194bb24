"""The engine: the one door front ends use. It validates requests, stores jobs,
submits them through the provider adapters, and hands them to the runner.

Front ends (the Discord cogs, the CLI) never talk to a provider themselves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bot.config import Config
from bot.engine.events import EventBus, Listener
from bot.engine.models import Job, JobRequest, JobStatus, new_job_id
from bot.engine.prompt import ParsedPrompt, PromptError, check_supported, parse_prompt
from bot.engine.results import ResultCollector
from bot.engine.runner import Runner
from bot.engine.store import Store, Usage
from bot.providers import build_provider
from bot.providers.base import (
    BLEND_DIMENSIONS,
    Action,
    Feature,
    How,
    ImageInput,
    PromptRejected,
    Provider,
    ProviderError,
    SubmitRequest,
    SubmitResult,
    Support,
)

log = logging.getLogger(__name__)

ACTION_NAMES: dict[Action, str] = {
    Action.IMAGINE: "Imagine",
    Action.UPSCALE: "Upscale",
    Action.VARIATION: "Variation",
    Action.REROLL: "Reroll",
    Action.UPSCALE_SUBTLE: "Upscale (Subtle)",
    Action.UPSCALE_CREATIVE: "Upscale (Creative)",
    Action.VARY_SUBTLE: "Vary (Subtle)",
    Action.VARY_STRONG: "Vary (Strong)",
    Action.ZOOM: "Zoom Out",
    Action.PAN: "Pan",
    Action.INPAINT: "Vary (Region)",
    Action.DESCRIBE: "Describe",
    Action.BLEND: "Blend",
    Action.SHORTEN: "Shorten",
    Action.SWAP_FACE: "Face swap",
}

# Actions that take a prompt of their own (not a follow-up of a job).
_PROMPTED = {Action.IMAGINE, Action.SHORTEN}
_IMAGE_COUNTS = {
    Action.DESCRIBE: (1, 1),
    Action.BLEND: (2, 5),
    Action.SWAP_FACE: (2, 2),
}


class RequestError(ValueError):
    """A request the engine refuses before anything is stored or sent. User-facing."""


@dataclass(frozen=True)
class Started:
    job: Job
    support: Support


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
        self.deadline = config.engine.job_deadline_minutes * 60

    # ---- lifecycle ----

    async def start(self, *, run: bool = True) -> None:
        await self.store.open()
        if run:
            await self.runner.start()

    async def stop(self) -> None:
        """Stop polling; active jobs stay in the store and resume at the next start."""
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
        live = self.runner.get(job_id)
        return live if live is not None else await self.store.get(job_id)

    async def recent(self, limit: int = 20, **filters: str | None) -> list[Job]:
        return await self.store.recent(limit, **filters)

    async def usage(self, days: float = 1, guild_id: str | None = None) -> list[Usage]:
        """Jobs sent to providers per user and provider over the last `days`."""
        return await self.store.usage(self.clock() - days * 86400, guild_id)

    def media_path(self, relative: str):
        return self.results.path(relative)

    # ---- requests ----

    async def submit(self, request: JobRequest) -> Job:
        """Validate, store, and send one request. Returns the job (possibly already
        failed, with the provider's reason). Raises RequestError for bad input."""
        job, provider, support, submit_request = await self._prepare(request)
        job.status = JobStatus.SUBMITTING
        await self.store.save(job)  # written before it is sent: a crash here is detectable
        self.events.publish(job, "created")
        try:
            result = await self._send(provider, support, job, submit_request)
        except ProviderError as err:
            job.status = JobStatus.FAILED
            job.failure = str(err)
            job.finished_at = self.clock()
            await self.store.save(job)
            self.events.publish(job, "failed")
            return job
        except Exception as err:
            log.exception("submitting %s to %s failed unexpectedly", job.id, provider.name)
            job.status = JobStatus.FAILED
            job.failure = f"Atelier could not submit this job ({type(err).__name__})."
            job.finished_at = self.clock()
            await self.store.save(job)
            self.events.publish(job, "failed")
            return job
        job.task_id = result.task_id
        job.status = JobStatus.SUBMITTED
        job.submitted_at = self.clock()
        if support.how is How.SELECT and result.snapshot is not None:
            await self._finish_selection(job, request, result)
            return job
        await self.store.save(job)
        self.events.publish(job, "submitted")
        if result.snapshot is not None and not result.snapshot.state.finished:
            from bot.engine.runner import apply_snapshot

            apply_snapshot(job, result.snapshot)
        self.runner.track(
            job, delay=0 if result.snapshot and result.snapshot.state.finished else None
        )
        return job

    async def cancel(self, job_id: str) -> Job:
        job = await self.get(job_id)
        if job is None:
            raise RequestError(f"There is no job {job_id}.")
        if job.finished:
            raise RequestError(f"Job {job_id} has already {job.status.value}.")
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

    async def _prepare(self, request: JobRequest) -> tuple[Job, Provider, Support, SubmitRequest]:
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
        label = ACTION_NAMES[action]
        support = provider.supports(action)
        if support is None:
            raise RequestError(f"{provider.name} does not offer {label}.")
        offered = parent is None or parent.offers(action, request.index, request.variant)
        if parent is not None and action not in _PROMPTED and not offered:
            raise RequestError(
                f"Job {parent.id} does not offer {label}"
                f"{f' {request.index}' if request.index else ''} on {provider.name}."
            )
        if self.config.engine.max_active_per_user and request.user_id:
            active = await self.store.count_active_for(request.user_id)
            if active >= self.config.engine.max_active_per_user:
                raise RequestError(
                    f"You already have {active} jobs running (the limit here is "
                    f"{self.config.engine.max_active_per_user}); wait for one to finish."
                )
        daily = self.config.engine.max_jobs_per_user_per_day
        if daily and request.user_id:
            used = await self.store.count_sent_since(request.user_id, self.clock() - 86400)
            if used >= daily:
                raise RequestError(
                    f"You have used your {daily} jobs for the last 24 hours here; try again later."
                )
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
            images = [ImageInput(await self.results.read(p)) for p in parent.inputs]
        followup = parent.offers(action, request.index, request.variant) if parent else None
        size = None
        if parent is not None and parent.images:
            pick = (
                parent.images[request.index - 1]
                if 0 < request.index <= len(parent.images)
                else parent.images[0]
            )
            size = await self.results.image_size(pick) if pick else None
        submit_request = SubmitRequest(
            action=action,
            prompt=parsed.raw if parsed else job.prompt,
            text=parsed.text if parsed else "",
            params=job.params,
            image_urls=parsed.image_urls if parsed else (),
            images=images,
            mode=job.mode,
            parent_task_id=parent.task_id if parent else None,
            parent_extra=dict(parent.provider_data) if parent else {},
            parent_image_size=size,
            index=request.index,
            variant=request.variant,
            ref=followup.ref if followup else "",
            regions=list(request.regions),
            dimensions=request.dimensions,
            callback_url=self._callback_url(provider, job),
        )
        try:
            provider.validate(submit_request)
        except PromptRejected as err:
            raise RequestError(str(err)) from None
        # Kept for follow-ups (🔄 of an image-prompted job) only once the request is valid.
        for n, image in enumerate(request.images, 1):
            job.inputs.append(await self.results.save_input(job, n, image.data))
        return job, provider, support, submit_request

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

    async def _send(
        self, provider: Provider, support: Support, job: Job, request: SubmitRequest
    ) -> SubmitResult:
        if support.how is How.SELECT:
            if not request.parent_task_id:
                raise RequestError("There is no image to select from.")
            snapshot = provider.select(request.parent_task_id, request.parent_extra, job.index)
            return SubmitResult(request.parent_task_id, snapshot)
        return await provider.submit(request)

    async def _finish_selection(self, job: Job, request: JobRequest, result: SubmitResult) -> None:
        """U1-U4 on providers that return four separate images: no provider call."""
        assert result.snapshot is not None and request.parent_id is not None
        parent = await self.get(request.parent_id)
        assert parent is not None
        source = parent.images[job.index - 1] if 0 < job.index <= len(parent.images) else ""
        if not source:
            job.status = JobStatus.FAILED
            job.failure = f"Image {job.index} of job {parent.id} was withheld by review."
        else:
            job.images = [await self.results.copy_image(source, job)]
            snapshot = result.snapshot
            job.followups = list(snapshot.followups)
            job.provider_data.update(snapshot.extra)
            job.seed = parent.seed
            job.status = JobStatus.SUCCEEDED
            job.progress = 100.0
        job.finished_at = self.clock()
        await self.store.save(job)
        self.events.publish(job, job.status.value)
