"""SandboxProvider: the provider protocol over the spec store, the planner and the renderer."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from bot.config import SandboxConfig
from bot.providers.base import (
    BadResponse,
    CheckResult,
    CheckStatus,
    Feature,
    FollowUp,
    How,
    ImageTooLarge,
    PromptRejected,
    Provider,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskNotFound,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.providers.sandbox._plan import Ask, plan
from bot.providers.sandbox._render import Renderer
from bot.providers.sandbox._spec import TASK_ID, Spec, SpecStore, content_key
from bot.vocab import ALL_PARAMS, PAN_VARIANTS, VIDEO_ACTIONS, ZOOM_VARIANTS, Action

# Every parameter: the sandbox reads aspect, seed, no and zoom; the rest are accepted so
# that prompts written for Midjourney run.
ACCEPTED_PARAMS = ALL_PARAMS

URL_SCHEME = "sandbox://"
_URL = re.compile(r"sandbox://([0-9]{8,40})/(?:(preview)/([0-9]{1,3})|([0-9]{1,2}))")
_MAX_PNGS = 16  # encoded images kept for repeated downloads

_GRID_FOLLOWUPS = (
    *(FollowUp(Action.UPSCALE, n) for n in range(1, 5)),
    *(FollowUp(Action.VARIATION, n) for n in range(1, 5)),
    FollowUp(Action.REROLL),
)
_EDIT_FOLLOWUPS = (
    FollowUp(Action.VARY_SUBTLE),
    FollowUp(Action.VARY_STRONG),
    *(FollowUp(Action.ZOOM, variant=v) for v in ZOOM_VARIANTS),
    *(FollowUp(Action.PAN, variant=v) for v in PAN_VARIANTS),
    FollowUp(Action.INPAINT),
)
_UPSCALE_FOLLOWUPS = (
    FollowUp(Action.UPSCALE_SUBTLE),
    FollowUp(Action.UPSCALE_CREATIVE),
    *_EDIT_FOLLOWUPS,
)
# midjourney-proxy's words for each state, which the sandbox imitates.
_PROVIDER_STATUS = {
    TaskState.QUEUED: "NOT_START",
    TaskState.RUNNING: "IN_PROGRESS",
    TaskState.SUCCEEDED: "SUCCESS",
    TaskState.CANCELLED: "CANCEL",
}


class SandboxProvider(Provider):
    """An offline provider that draws real pictures; see the package docstring."""

    kind = "sandbox"
    features = frozenset(
        {Feature.CANCEL, Feature.PROGRESS, Feature.PREVIEW, Feature.BATCH_FETCH, Feature.IMAGE_SEED}
    )
    accepted_params = ACCEPTED_PARAMS
    batch_size = 100
    max_images = 5
    takes_polygons = True  # Vary (Region) redraws inside each lasso (see _render)
    takes_variation_strength = True  # V1-V4: subtle or strong

    def __init__(
        self,
        config: SandboxConfig,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # `client` is unused (nothing goes over the network) but keeps the constructor
        # the same as the other adapters'. `clock` is the wall clock: progress must
        # survive a restart, so time.monotonic() (per boot, per process) will not do.
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or max(0.1, min(1.0, config.duration / 10))
        self._clock = clock
        self._dir = Path(config.state_dir)
        self._store = SpecStore(self._dir)
        self._renderer = Renderer(self._store)
        self._pngs: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._ids = itertools.count()
        words = [w.strip() for w in config.banned_words if w.strip()]
        self._banned = [(w, re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", re.I)) for w in words]

    # -- the protocol: capabilities

    def supports(self, action: Action) -> Support | None:
        # Everything but video: the sandbox draws pictures, it cannot film them.
        return None if action in VIDEO_ACTIONS else Support(How.NATIVE)

    # -- the protocol: tasks

    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        wanted = [t for t in dict.fromkeys(r.task_id for r in tasks) if TASK_ID.fullmatch(t)]
        missing = [t for t in wanted if self._store.cached(t) is None]
        if missing:
            # One trip to a worker thread for all of them, and only for ids not yet seen:
            # after the first poll, fetching is memory and arithmetic.
            await asyncio.to_thread(lambda: [self._store.load(t) for t in missing])
        now = self._clock()
        found: dict[str, TaskSnapshot] = {}
        for task_id in wanted:
            spec = self._store.cached(task_id)
            if spec is not None:
                found[task_id] = _snapshot(spec, now)
        return found

    async def cancel(self, task_id: str) -> None:
        spec = await self._spec(task_id)
        if spec is None:
            raise TaskNotFound(f"The sandbox has no job {task_id}.", provider=self.name)
        now = self._clock()
        state, _ = spec.state(now)
        if state.finished:
            return  # nothing to stop; cancelling twice, or too late, is not an error
        spec = dataclasses.replace(spec, cancelled=True, cancelled_at=now)
        await asyncio.to_thread(self._store.save, spec)
        self._store.remember(spec)

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self._check_banned(request.prompt, request.text)
        now = self._clock()
        task_id = (
            f"{int(now * 1000):013d}{next(self._ids) % 1000:03d}{secrets.randbelow(10**6):06d}"
        )
        parent = None
        if request.parent_task_id:
            parent = await self._spec(request.parent_task_id)
            if parent is None:
                raise TaskNotFound(
                    f"The sandbox has no job {request.parent_task_id} (it may have been made "
                    "with another state_dir).",
                    provider=self.name,
                )
        ask = Ask(
            request=request,
            task_id=task_id,
            now=now,
            parent=parent,
            provider=self.name,
            size=self.config.size,
            duration=self.config.duration,
        )

        def plan_and_save() -> Spec:
            spec, inputs = plan(ask)
            self._store.save(spec, inputs)
            return spec

        # One trip to a worker thread: planning may decode images, saving writes files.
        spec = await asyncio.to_thread(plan_and_save)
        self._store.remember(spec)
        return SubmitResult(task_id, _snapshot(spec, now))

    def _check_banned(self, *texts: str) -> None:
        for word, pattern in self._banned:
            if any(pattern.search(text) for text in texts):
                raise PromptRejected(
                    f'Banned prompt detected: "{word}" is not allowed here (the sandbox '
                    "refuses the words in its banned_words setting).",
                    provider=self.name,
                )

    async def _spec(self, task_id: str) -> Spec | None:
        spec = self._store.cached(task_id)
        if spec is None:
            spec = await asyncio.to_thread(self._store.load, task_id)
        return spec

    # -- the protocol: images, health

    async def download(self, url: str, max_bytes: int) -> bytes:
        match = _URL.fullmatch(url)
        if match is None:
            raise BadResponse(f"{url!r} is not a sandbox image link.", provider=self.name)
        task_id = match[1]
        preview = min(100, int(match[3])) if match[2] else None
        if preview is None and match[4] != "1":
            raise BadResponse(f"Sandbox job {task_id} has no image {match[4]}.", provider=self.name)
        spec = await self._spec(task_id)
        if spec is None:
            raise TaskNotFound(f"The sandbox has no job {task_id}.", provider=self.name)
        if not spec.makes_images:
            raise BadResponse(f"Sandbox job {task_id} made texts, not images.", provider=self.name)
        data = await self._png(spec, preview)
        if len(data) > max_bytes:
            raise ImageTooLarge(
                f"The image is {len(data) / 1048576:.1f} MiB, more than the "
                f"{max_bytes / 1048576:.1f} MiB allowed.",
                provider=self.name,
            )
        return data

    async def _png(self, spec: Spec, preview: int | None) -> bytes:
        """The encoded image, drawn off the event loop; the last few are kept."""
        key = (*content_key(spec), spec.long, preview)
        data = self._pngs.get(key)
        if data is None:
            data = await asyncio.to_thread(self._renderer.png, spec, preview)
            self._pngs[key] = data
            while len(self._pngs) > _MAX_PNGS:
                self._pngs.popitem(last=False)
        return data

    async def check(self) -> CheckResult:
        where = self._dir.resolve()
        try:
            count = await asyncio.to_thread(self._store.count)
        except OSError as err:
            return CheckResult(
                CheckStatus.ERROR,
                f"The sandbox cannot write its state to {where}: {err.strerror or err}.",
            )
        return CheckResult(
            CheckStatus.HEALTHY,
            f"Offline sandbox: draws pictures locally in about {self.config.duration:g} s "
            f"per job; {count} job(s) kept in {where}.",
        )


def _snapshot(spec: Spec, now: float) -> TaskSnapshot:
    """What fetch answers for a task at `now`."""
    state, progress = spec.state(now)
    snap = TaskSnapshot(
        task_id=spec.id,
        state=state,
        progress=progress if state is not TaskState.CANCELLED else None,
        seed=str(spec.seed),
        provider_status=_PROVIDER_STATUS[state],
    )
    if state is TaskState.QUEUED:
        snap.queue_position = 1
    if state is TaskState.RUNNING and spec.makes_images:
        step = min(90, int(progress) // 10 * 10)
        snap.preview_url = f"{URL_SCHEME}{spec.id}/preview/{step}"
    if state is TaskState.SUCCEEDED and spec.makes_images:
        width, height = spec.image_size()
        snap.image_urls = [f"{URL_SCHEME}{spec.id}/1"]
        snap.grid = spec.grid
        snap.extra = {"width": width, "height": height}
        snap.followups = list(_followups(spec))
    elif state is TaskState.SUCCEEDED:
        snap.texts = list(spec.texts)
    return snap


def _followups(spec: Spec) -> Sequence[FollowUp]:
    if spec.grid:
        return _GRID_FOLLOWUPS
    # Make Square, as on Midjourney, only where the image is not square already.
    square = () if abs(spec.ratio - 1.0) < 0.01 else (FollowUp(Action.MAKE_SQUARE),)
    if spec.draw == Action.UPSCALE:
        return (*_UPSCALE_FOLLOWUPS, *square)
    if spec.draw in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE):
        # Already 2x: Midjourney offers no further upscale of an upscale.
        return (*_EDIT_FOLLOWUPS, *square)
    return ()
