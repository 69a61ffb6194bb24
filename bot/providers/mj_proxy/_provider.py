"""MjProxyProvider: the adapter's face to the engine, wiring the steps of the modules
beside it to one configured server."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from bot.config import MjProxyConfig
from bot.providers.base import (
    BadResponse,
    CheckResult,
    CheckStatus,
    Feature,
    How,
    HttpAnswer,
    NotOffered,
    Provider,
    ProviderError,
    ProviderUnavailable,
    RetryPolicy,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskRef,
    TaskSnapshot,
)
from bot.providers.mj_proxy._buttons import ModalWait, VideoRefused, press
from bot.providers.mj_proxy._fetch import BATCH_IDS, TaskReader
from bot.providers.mj_proxy._snapshot import read_task
from bot.providers.mj_proxy._submit import FIRST_STEPS
from bot.providers.mj_proxy._tables import (
    BUTTON_ACTIONS,
    FIRST_ACTIONS,
    MJ_PARAM_NAMES,
    MODAL_ANSWERED,
    PLUS_ACTIONS,
)
from bot.providers.mj_proxy._wire import Wire, looks_html
from bot.vocab import VIDEO_ACTIONS, Action

_FEATURES = frozenset(
    {
        Feature.CANCEL,
        Feature.CALLBACKS,
        Feature.MODES,
        Feature.PROGRESS,
        Feature.PREVIEW,
        Feature.IMAGE_SEED,
    }
)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class MjProxyProvider(Provider):
    kind = "mj-proxy"
    batch_size = BATCH_IDS  # ids per list-by-condition request
    max_images = 5
    takes_polygons = True  # Vary (Region)'s mask is a PNG: lassos are drawn into it
    fetch_concurrency = 6  # parallel one-by-one fetches when list-by-condition is absent
    # How long `submit` waits for a Vary (Region) / Custom Zoom task to reach MODAL.
    modal_wait = 30.0
    modal_poll = 0.5
    seed_timeout = 65.0  # image-seed lookups wait on Discord (see image_seed)

    def __init__(
        self,
        config: MjProxyConfig,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or 3.0
        self.accepted_params = MJ_PARAM_NAMES
        batch = {Feature.BATCH_FETCH} if config.batch_fetch else set()
        self.features = _FEATURES | batch
        self._wire = Wire.open(config, client, policy)
        self._http = self._wire.http
        self._errors = self._wire.errors
        self._reader = TaskReader(self._wire, batch=config.batch_fetch)
        # Set when the server refuses a video button (a new-api relay): not offered again
        # until a restart, which asks the server once more.
        self._video_refused = False

    def __repr__(self) -> str:
        return f"MjProxyProvider(name={self.name!r}, base_url={self._wire.base_url!r})"

    def supports(self, action: Action) -> Support | None:
        if action in VIDEO_ACTIONS and self._video_refused:
            return None  # the server refused a video button: found out, hidden
        if action in BUTTON_ACTIONS or action in FIRST_ACTIONS:
            return Support(How.NATIVE)
        if action in PLUS_ACTIONS and self.config.plus_extras:
            return Support(How.NATIVE)
        return None

    # ------------------------------------------------------------------ submit and fetch

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        action = request.action
        if self.supports(action) is None:
            raise NotOffered(f"{self.name} does not offer {action.value}.", provider=self.name)
        if action in BUTTON_ACTIONS:
            try:
                wait = ModalWait(self.modal_wait, self.modal_poll)
                return await press(self._wire, request, wait)
            except VideoRefused:
                self._video_refused = True
                raise
        return await FIRST_STEPS[action](self._wire, request)

    async def fetch(self, refs: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        by_id: dict[str, TaskRef] = {}
        for ref in refs:
            by_id.setdefault(ref.task_id, ref)
        tasks = await self._reader.read(
            list(by_id), batch_size=self.batch_size, concurrency=self.fetch_concurrency
        )
        return {task_id: self.snapshot(task, by_id.get(task_id)) for task_id, task in tasks.items()}

    def snapshot(self, task: Mapping[str, Any], ref: TaskRef | None = None) -> TaskSnapshot:
        """Normalise one midjourney-proxy Task (from a fetch, or a notifyHook callback).

        `ref` is what the store holds of the job: what it asked for (the task may not say:
        trueai can call a button press just "ACTION", and a relay may drop the buttons)
        and whether we answered its modal. Without it, the task's own words are all there
        is to go by."""
        task_id = str(task.get("id") or "")
        answered = ref.data.get(MODAL_ANSWERED) if ref is not None else None
        return read_task(
            task,
            asked=ref.action if ref is not None else None,
            modal_answered=isinstance(answered, list) and task_id in answered,
            name=self.name,
            scrub=self._errors.scrub,
        )

    # ------------------------------------------------------------------ extras

    async def cancel(self, task_id: str) -> None:
        answer = await self._http.send(
            "POST", f"/mj/task/{task_id}/cancel", json_body={}, idempotent=False
        )
        if answer.status >= 400:
            raise self._errors.answer_error(answer, "cancelling", "cancelling a job")
        if 300 <= answer.status < 400 or (answer.body.strip() and looks_html(answer)):
            # A relay's web page, or (new-api behind FRONTEND_BASE_URL) a 301 to its front end
            # with an empty body: the route does not exist there. Not a success.
            raise NotOffered(f"{self.name} cannot cancel a running job.", provider=self.name)
        if answer.status == 204 or not answer.body.strip():
            return
        data = answer.json()
        if isinstance(data, dict) and ("code" in data or "success" in data):
            error = self._errors.code_error(data, "cancelling")
            if error is not None:
                raise error

    async def image_seed(self, task_id: str) -> str:
        """Midjourney's seed of a finished task (GET /mj/task/{id}/image-seed)."""
        # trueai may hold this request for up to 60 s while a worker asks Discord
        # (TaskService.SubmitSeed); a shorter read timeout would always give up first.
        http = self._wire.http_with(
            self._http.policy, max(self.config.request_timeout, self.seed_timeout)
        )
        answer = await http.send("GET", f"/mj/task/{task_id}/image-seed", idempotent=True)
        if answer.status >= 400:
            raise self._errors.answer_error(answer, "the seed lookup", "seed lookups")
        if looks_html(answer):
            raise NotOffered(f"{self.name} does not offer seed lookups.", provider=self.name)
        data = answer.json()
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name} sent no seed.", provider=self.name)
        words = self._errors.error_text(data)
        if data.get("code") == 3 and "seed" in words.lower():
            # trueai: {"code": 3, "description": "未找到 seed"} (TaskService.SubmitSeed) is
            # "no seed for this job", not "no account available".
            raise ProviderError(
                f"{self.name} has no seed for that job ({words}).", provider=self.name
            )
        error = self._errors.code_error(data, "the seed lookup")
        if error is not None:
            raise error
        seed = data.get("result")
        if not isinstance(seed, int | str) or not str(seed).strip():
            raise BadResponse(f"{self.name} sent no seed.", provider=self.name)
        return str(seed).strip()

    async def download(self, url: str, max_bytes: int) -> bytes:
        # A relay's own image link (/mj/image/{id}) may need the key: it goes along only
        # while the link, and each redirect, stays on the relay's origin. Discord's CDN
        # and other hosts get no key, and are fetched only when public.
        data = await self._http.download(url, max_bytes, keyed=True)
        if _origin(url) == _origin(self._wire.base_url) and data[:200].lstrip().startswith(b"<"):
            raise BadResponse(
                f"{self.name} answered an image link with a web page, not an image.",
                provider=self.name,
            )
        return data

    # ------------------------------------------------------------------ check

    async def check(self) -> CheckResult:
        try:
            answer = await self._probe()
        except ProviderUnavailable as err:
            return CheckResult(CheckStatus.UNREACHABLE, err.message)
        except ProviderError as err:
            return CheckResult(CheckStatus.ERROR, err.message)
        return self._judge_probe(answer)

    async def _probe(self) -> HttpAnswer:
        """The first probe answer that shows an API (not a 404/405 or a web page)."""
        http = self._wire.http_with(RetryPolicy(attempts=1), min(self.config.request_timeout, 15.0))
        probes: tuple[tuple[str, str, Any], ...] = (
            ("POST", "/mj/task/list-by-condition", {"ids": []}),
            ("GET", "/mj/task/list", None),
            # Every server has fetch; an unknown id answers "not found" once the key passes.
            ("GET", "/mj/task/0/fetch", None),
        )
        for method, path, body in probes:
            answer = await http.send(
                method, path, json_body=body, idempotent=True, retry_statuses=False
            )
            if answer.status not in (404, 405) and not (answer.status < 300 and looks_html(answer)):
                break
        return answer

    def _judge_probe(self, answer: HttpAnswer) -> CheckResult:
        where = self._wire.base_url
        if answer.status in (401, 403):
            return CheckResult(
                CheckStatus.BAD_KEY,
                f"{where} rejected the key (HTTP {answer.status}); check api_key and "
                f"auth_style ({self.config.auth_style!r}).",
            )
        if answer.status >= 500 or answer.status == 429:
            return CheckResult(CheckStatus.ERROR, f"{where} answered HTTP {answer.status}.")
        if looks_html(answer):
            return CheckResult(
                CheckStatus.ERROR,
                f"{where} answered a web page instead of JSON (HTTP {answer.status}); is "
                "base_url the server root, without /mj?",
            )
        if answer.status in (404, 405):
            return CheckResult(
                CheckStatus.ERROR,
                f"{where} has no midjourney-proxy API under /mj (HTTP {answer.status}).",
            )
        try:
            data = answer.json()
        except BadResponse:
            return CheckResult(CheckStatus.ERROR, f"{where} answered malformed JSON.")
        if isinstance(data, list):
            return CheckResult(CheckStatus.HEALTHY, f"{where} answered; the key works.")
        if answer.status < 300 or (isinstance(data, dict) and data.get("code") in (3, 4)):
            return CheckResult(CheckStatus.HEALTHY, f"{where} answered; the key works.")
        return CheckResult(
            CheckStatus.ERROR,
            f"{where} answered HTTP {answer.status}: {self._errors.snippet(answer)}",
        )
