"""Cloudsway MaaS-Flux-1-schnell: text to image, nothing more.

    POST {base_url}/{endpoint}/images/generations
         {prompts, batchsize 1-8, aspect_ratio, step 4-10, seed (0 = random)}
         -> {"status": "success", "taskId": "..."}
    GET  {base_url}/{endpoint}/images/tasks/{taskId}
         -> {"status": "...", "completed": true|false, "imageUrls": [...]}

There is no progress figure, no upscale, no variation, no inpaint. What Atelier offers on
top: U1-U4 pick one of the images already there (no call), and 🔄 is a new generation of
the same prompt with a new seed.

The prompt's words go to ``prompts``; of the Midjourney-style parameters only those with
a field here are taken (--ar, --seed, --steps), and the prompt rules refuse the rest
before anything is sent.
"""

from __future__ import annotations

import asyncio
import math
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from bot.config import MaasFluxConfig
from bot.providers.base import (
    Action,
    BadKey,
    BadResponse,
    CheckResult,
    FollowUp,
    How,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    Provider,
    ProviderError,
    ProviderHttp,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskNotFound,
    TaskSnapshot,
    TaskState,
)

# Aspect ratio -> output size, as the vendor documents them.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (512, 768),
    "3:2": (768, 512),
    "3:4": (768, 1024),
    "4:3": (1024, 768),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
}
STEPS_MIN, STEPS_MAX = 4, 10
SEED_MAX = 4294967295
FETCH_CONCURRENCY = 4
ACCEPTED_PARAMS = frozenset({"aspect", "seed", "steps"})  # the only ones with a field here

_SUPPORT: dict[Action, Support] = {
    Action.IMAGINE: Support(How.NATIVE),
    Action.REROLL: Support(How.EMULATED, "new generation of the same prompt, new seed"),
    Action.UPSCALE: Support(How.SELECT),
}
_FAILED_WORDS = ("fail", "error", "cancel", "reject", "timeout", "expired")
_QUEUED_WORDS = ("queue", "pending", "wait", "submit", "created")


class MaasFluxProvider(Provider):
    kind: ClassVar[str] = "maas-flux"
    features = frozenset()  # no progress, no cancel, no batch fetch
    accepted_params = ACCEPTED_PARAMS
    batch_size = 1  # no batch API; several ids are still fetched concurrently
    max_images = 0  # text only

    def __init__(
        self,
        config: MaasFluxConfig,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or 2.0  # schnell takes seconds
        self.policy = policy or RetryPolicy()
        self._key = config.api_key.get_secret_value() if config.api_key else ""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        root = f"{config.base_url.rstrip('/')}/{config.endpoint.strip('/')}"
        # One attempt per send; the retries are ours so that errors keep the vendor's words.
        self._http = ProviderHttp(
            client,
            root,
            headers,
            provider=self.name,
            policy=RetryPolicy(attempts=1),
            timeout=config.request_timeout,
        )
        # Downloads carry no headers: the key stays with the API host.
        self._media = ProviderHttp(
            client, "", {}, provider=self.name, policy=self.policy, timeout=config.request_timeout
        )

    def supports(self, action: Action) -> Support | None:
        return _SUPPORT.get(action)

    # ------------------------------------------------------------------ submit

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self._need_key()
        if request.action is Action.UPSCALE:
            snap = self.select(request.parent_task_id or "", request.parent_extra, request.index)
            return SubmitResult(snap.task_id, snap)
        if request.action not in (Action.IMAGINE, Action.REROLL):
            raise NotOffered(
                f"{self.name} (Flux) does not offer {request.action.value.replace('_', ' ')}.",
                provider=self.name,
            )
        body = self.request_body(request)
        answer = await self._send("POST", "/images/generations", body, idempotent=False)
        if answer.status >= 300:
            raise self._error(answer)
        data = self._json(answer)
        status = str(data.get("status") or "") if isinstance(data, dict) else ""
        task_id = str(data.get("taskId") or "") if isinstance(data, dict) else ""
        if status.lower() != "success" or not task_id:
            words = _words(data, self._secrets()) or status or "no task id"
            raise ProviderError(f"{self.name} did not accept the job: {words}.", provider=self.name)
        return SubmitResult(
            task_id,
            TaskSnapshot(task_id, TaskState.SUBMITTED, provider_status=status,
                         extra={"taskId": task_id}),
        )  # fmt: skip

    def validate(self, request: SubmitRequest) -> None:
        if request.action in (Action.IMAGINE, Action.REROLL):
            self.request_body(request)  # raises PromptRejected naming what cannot be sent

    def request_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The generation body for a request; PromptRejected names what cannot be sent."""
        if request.images or request.image_urls:
            raise PromptRejected(
                f"{self.name} (Flux) cannot use image prompts; remove the image URLs.",
                provider=self.name,
            )
        words = request.text.strip()
        if not words:
            raise PromptRejected("The prompt has no words to draw.", provider=self.name)
        params = request.params
        body: dict[str, Any] = {
            "prompts": words,
            "batchsize": self.config.batchsize,  # int (the vendor's example sends a string)
            "aspect_ratio": self._aspect(params.get("aspect"), request.prompt),
            "step": self._ranged(params.get("steps"), "--steps", STEPS_MIN, STEPS_MAX,
                                 self.config.steps),
            "seed": self._ranged(params.get("seed"), "--seed", 0, SEED_MAX, 0),
        }  # fmt: skip
        if request.action is Action.REROLL:
            body["seed"] = 0  # a reroll wants new images: 0 asks for a random seed
        return body

    def _aspect(self, value: str | None, prompt: str = "") -> str:
        if not value:
            return "1:1"
        ratio = _reduced(value)
        if ratio in ASPECT_RATIOS:
            return ratio
        typed = _typed(prompt, ("ar", "aspect")) or value
        raise PromptRejected(
            f"{self.name} (Flux) draws only these aspect ratios: "
            f"{', '.join(ASPECT_RATIOS)}; --ar {typed} is not one of them.",
            provider=self.name,
        )

    def _ranged(self, value: str | None, flag: str, low: int, high: int, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise PromptRejected(
                f"{self.name} (Flux) takes {flag} from {low} to {high}, not {value}.",
                provider=self.name,
            )
        return number

    # ------------------------------------------------------------------ select

    def select(
        self, parent_task_id: str, parent_extra: Mapping[str, Any], index: int
    ) -> TaskSnapshot:
        """U1-U4: one of the images already there. It offers nothing further."""
        task_id = str(parent_extra.get("taskId") or parent_task_id)
        urls = parent_extra.get("imageUrls")
        if not isinstance(urls, list) or not urls:
            raise ProviderError(
                "The images of the original job are no longer known; run the prompt again.",
                provider=self.name,
            )
        if not 1 <= index <= len(urls) or not urls[index - 1]:
            raise ProviderError(f"There is no image {index} in that job.", provider=self.name)
        return TaskSnapshot(
            task_id=f"{task_id}:{index}",
            state=TaskState.SUCCEEDED,
            image_urls=[str(urls[index - 1])],
            provider_status="selected",
            extra={"taskId": task_id, "imageNo": index - 1},
        )

    # ------------------------------------------------------------------ fetch

    async def fetch(self, task_ids: Sequence[str]) -> dict[str, TaskSnapshot]:
        self._need_key()
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(task_id: str) -> tuple[str, TaskSnapshot | None]:
            async with gate:
                return task_id, await self._fetch_one(task_id)

        ids = list(dict.fromkeys(task_ids))
        results = await asyncio.gather(*(one(t) for t in ids), return_exceptions=True)
        found: dict[str, TaskSnapshot] = {}
        errors: list[ProviderError] = []
        for result in results:
            if isinstance(result, ProviderError):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
            elif result[1] is not None:
                found[result[0]] = result[1]
        if errors:
            # Leaving an id out would read as "unknown to the provider": fail the poll.
            raise next((e for e in errors if isinstance(e, BadKey)), errors[0])
        return found

    async def _fetch_one(self, task_id: str) -> TaskSnapshot | None:
        path = f"/images/tasks/{urllib.parse.quote(task_id, safe='')}"
        answer = await self._send("GET", path, None, idempotent=True)
        if answer.status == 404:
            return None
        if answer.status >= 300:
            raise self._error(answer)
        data = self._json(answer)
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name} sent a task that is not an object.",
                              provider=self.name)  # fmt: skip
        return self.snapshot(task_id, data)

    def snapshot(self, task_id: str, data: Mapping[str, Any]) -> TaskSnapshot:
        status = str(data.get("status") or "").strip()
        completed = data.get("completed")
        if isinstance(completed, str):
            completed = completed.strip().lower() == "true"
        raw_urls = data.get("imageUrls") or []
        if not isinstance(raw_urls, list):
            raise BadResponse(f"{self.name} sent imageUrls that are not a list.",
                              provider=self.name)  # fmt: skip
        urls = [str(u).strip() for u in raw_urls if u and str(u).strip()]
        snap = TaskSnapshot(task_id, TaskState.RUNNING, provider_status=status,
                            extra={"taskId": task_id})  # fmt: skip
        folded = status.lower()
        if any(word in folded for word in _FAILED_WORDS):
            snap.state = TaskState.FAILED
            detail = _words(data, self._secrets())
            snap.failure = f"Flux reported the job as {status}" + (f": {detail}" if detail else ".")
        elif completed is True:
            if urls:
                snap.state = TaskState.SUCCEEDED
                snap.image_urls = urls
                snap.extra["imageUrls"] = urls
                # U1-U4 only when there is a choice; with batchsize > 4 the images after
                # the fourth are still saved and shown, but have no button.
                if len(urls) > 1:
                    shown = range(1, min(len(urls), 4) + 1)
                    snap.followups = [FollowUp(Action.UPSCALE, index=n) for n in shown]
                snap.followups.append(FollowUp(Action.REROLL))
            else:
                snap.state = TaskState.FAILED
                snap.failure = "Flux finished the job without any image."
        elif any(word in folded for word in _QUEUED_WORDS):
            snap.state = TaskState.QUEUED
        return snap

    # ------------------------------------------------------------------ check, download

    async def check(self) -> CheckResult:
        if not self._key:
            return CheckResult("bad_key", "api_key is not set for this provider.")
        try:
            # A task id that cannot exist: any answer but 401/403 proves the key works.
            answer = await self.policy.run(
                lambda: self._http.send(
                    "GET", "/images/tasks/atelier-check-0000", idempotent=True,
                    retry_statuses=False,
                ),
                idempotent=True,
            )  # fmt: skip
        except ProviderUnavailable as err:
            return CheckResult("unreachable", err.message)
        except ProviderError as err:
            return CheckResult("error", err.message)
        if answer.status in (401, 403):
            return CheckResult("bad_key", self._error(answer).message)
        if answer.status < 300 or answer.status == 404:
            try:
                answer.json()
            except BadResponse:
                return CheckResult(
                    "error",
                    f"{self.name} answered HTTP {answer.status} with something that is not "
                    "JSON; check base_url and endpoint.",
                )
            return CheckResult("healthy", f"{self.name} accepted the API key.")
        return CheckResult("error", self._error(answer).message)

    async def download(self, url: str, max_bytes: int) -> bytes:
        return await self._media.download(url, max_bytes)

    # ------------------------------------------------------------------ HTTP and errors

    def _need_key(self) -> None:
        if not self._key:
            raise BadKey(
                f"{self.name} has no api_key configured; ask the server owner to set it.",
                provider=self.name,
            )

    def _secrets(self) -> tuple[str, ...]:
        return (self._key, self.config.endpoint)

    async def _send(self, method: str, path: str, body: Any, *, idempotent: bool) -> HttpAnswer:
        async def attempt() -> HttpAnswer:
            try:
                answer = await self._http.send(
                    method, path, json_body=body, idempotent=idempotent, retry_statuses=False
                )
            except ProviderUnavailable as err:
                if type(err) is ProviderUnavailable and not idempotent:
                    raise ProviderUnavailable(
                        f"{err.message} The request may have reached {self.name}, so the "
                        "job may have started anyway.",
                        provider=self.name,
                    ) from None
                raise
            if answer.status == 429 or answer.status >= 500:
                raise self._error(answer)
            return answer

        return await self.policy.run(attempt, idempotent=idempotent)

    def _json(self, answer: HttpAnswer) -> Any:
        try:
            return answer.json()
        except BadResponse as err:
            raise BadResponse(_redact(err.message, self._secrets()), provider=self.name) from None

    def _error(self, answer: HttpAnswer) -> ProviderError:
        name = self.name
        try:
            said = _words(answer.json(), self._secrets())
        except BadResponse:
            said = ""
        said = f": {said}" if said else ""
        code = answer.status
        if code == 400:
            return PromptRejected(f"{name} refused the request{said}.", provider=name)
        if code == 401:
            return BadKey(
                f"{name} refused the API key (HTTP 401); ask the server owner to check api_key.",
                provider=name,
            )
        if code == 402:
            return ProviderError(
                f"The {name} account is out of credit (HTTP 402){said}; ask the server owner "
                "to top it up.",
                provider=name,
            )
        if code == 403:
            return PromptRejected(f"{name} does not allow this request (HTTP 403){said}.",
                                  provider=name)  # fmt: skip
        if code == 404:
            return TaskNotFound(f"{name} does not know that task{said}.", provider=name)
        if code == 429:
            return RateLimited(
                f"{name} is running as many jobs as its plan allows (HTTP 429){said}; try "
                "again shortly.",
                provider=name,
                retry_after=answer.retry_after,
            )
        if code >= 500:
            return ProviderUnavailable(
                f"{name} is busy or having trouble (HTTP {code}){said}; try again in a few "
                "minutes.",
                provider=name,
                retry_after=answer.retry_after,
            )
        return ProviderError(f"{name} answered HTTP {code}{said}.", provider=name)


def _typed(prompt: str, names: tuple[str, ...]) -> str:
    """A parameter's value as the user typed it (the engine hands us normalised values)."""
    match = re.search(rf"(?:--|\u2014)(?:{'|'.join(names)})\s+(\S+)", prompt)
    return match.group(1) if match else ""


def _reduced(value: str) -> str:
    """'32:18' -> '16:9'; anything unreadable is returned as given."""
    try:
        left, right = (int(part) for part in value.strip().split(":"))
    except ValueError:
        return value.strip()
    if left <= 0 or right <= 0:
        return value.strip()
    common = math.gcd(left, right)
    return f"{left // common}:{right // common}"


def _words(data: Any, secrets: Sequence[str]) -> str:
    """The vendor's own words in an answer ({message} / {msg} / {error}), redacted."""
    if not isinstance(data, dict):
        return ""
    words = data.get("message") or data.get("msg") or data.get("error") or ""
    if isinstance(words, dict):
        words = words.get("message") or ""
    text = str(words).strip().rstrip(".")
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text[:300]


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
