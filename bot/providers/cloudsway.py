"""What the two Cloudsway MaaS adapters (MaaS-MJ, MaaS-Flux) have in common.

Both APIs live under ``{base_url}/{endpoint}/...`` with ``Authorization: Bearer <key>``,
answer errors with ``{code, message, reason}``, have no batch read (one GET per task) and
serve their images from a CDN that needs no key. The endpoint is part of the URL and as
secret as the key, so both are scrubbed from every message.

Each adapter keeps only what is its own: endpoints, request bodies, reading a task, and
what it offers.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from bot.config import MaasFluxConfig, MaasMjConfig
from bot.providers.base import (
    BadKey,
    BadResponse,
    CheckResult,
    FollowUp,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    Provider,
    ProviderError,
    ProviderHttp,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    TaskNotFound,
    TaskRef,
    TaskSnapshot,
    TaskState,
)

FETCH_CONCURRENCY = 4  # no batch API: this many task reads at once
CHECK_TASK_ID = "atelier-check-0000"  # a task id that cannot exist, read by check()

ConfigT = TypeVar("ConfigT", MaasMjConfig, MaasFluxConfig)


@dataclass(frozen=True)
class ErrorWords:
    """The parts of an error message in which the two APIs differ; the mapping of HTTP
    statuses to typed errors is shared (see `http_error`). The defaults are MaaS-MJ's."""

    noun: str = "job"  # what the vendor calls one run, as a 404 names it
    bare_400: str = " (invalid prompt)"  # added to a 400 that carries no words of theirs
    bare_403: str = ": sensitive prompt"  # added to a 403 that carries no words of theirs
    offers_405: bool = True  # 405 = "that call is not offered" (else a plain error)


class CloudswayProvider(Provider, Generic[ConfigT]):
    """Auth, the HTTP plumbing and its error mapping, polling, check and download.

    Subclasses set `task_path` (GET ``{task_path}{id}`` reads one task) and implement
    `_read_task`, besides what every provider declares (supports, submit).
    """

    batch_size = 1  # no batch API; several ids are still fetched concurrently
    max_images = 0  # no upload call
    default_poll_interval: ClassVar[float] = 3.0  # when the config does not set one
    task_path: ClassVar[str]
    # Where a finished snapshot's extra keeps the vendor's task id and its list of images.
    id_key: ClassVar[str]
    urls_key: ClassVar[str]
    error_words: ClassVar[ErrorWords] = ErrorWords()

    def __init__(
        self,
        config: ConfigT,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or self.default_poll_interval
        self.policy = policy or RetryPolicy()
        self._key = config.api_key.get_secret_value() if config.api_key else ""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        root = f"{config.base_url.rstrip('/')}/{config.endpoint.strip('/')}"
        # One attempt per send: the retries are ours (`_send`), so that 429 and 5xx answers
        # keep the vendor's message instead of the generic one.
        self._http = ProviderHttp(
            client,
            root,
            headers,
            provider=self.name,
            policy=RetryPolicy(attempts=1),
            timeout=config.request_timeout,
        )
        # Image downloads go to the vendor's CDN without our headers: never send the key
        # to a host that does not need it.
        self._media = ProviderHttp(
            client, "", {}, provider=self.name, policy=self.policy, timeout=config.request_timeout
        )

    # ------------------------------------------------------------------ select

    def select(
        self, parent_task_id: str, parent_extra: Mapping[str, Any], index: int
    ) -> TaskSnapshot:
        """U1-U4: image `index` of a finished task, with what one image offers here. Both
        APIs return separate images, not a grid, so picking one needs no call."""
        task_id = str(parent_extra.get(self.id_key) or parent_task_id)
        urls = parent_extra.get(self.urls_key)
        if not isinstance(urls, list) or not urls:
            raise ProviderError(
                "The images of the original job are no longer known; run the prompt again.",
                provider=self.name,
            )
        if not 1 <= index <= len(urls):
            raise ProviderError(f"There is no image {index} in that job.", provider=self.name)
        url = str(urls[index - 1] or "")
        if not url:
            raise self._gap(index)
        return TaskSnapshot(
            task_id=f"{task_id}:{index}",
            state=TaskState.SUCCEEDED,
            image_urls=[url],
            followups=self._image_followups(),
            provider_status="selected",
            extra={self.id_key: task_id, "imageNo": index - 1},
        )

    def _gap(self, index: int) -> ProviderError:
        """The error for picking image `index` where the vendor's list has a gap ("")."""
        return ProviderError(f"There is no image {index} in that job.", provider=self.name)

    def _image_followups(self) -> list[FollowUp]:
        """What one selected image offers: nothing, unless the API has calls for it."""
        return []

    # ------------------------------------------------------------------ fetch

    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        self._need_key()
        gate = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(task_id: str) -> tuple[str, TaskSnapshot | None]:
            async with gate:
                return task_id, await self._fetch_one(task_id)

        ids = list(dict.fromkeys(t.task_id for t in tasks))
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
            # An id left out would read as "unknown to the provider"; rather fail the whole
            # poll (the runner backs off and asks again). A bad key says most, so it wins.
            raise next((e for e in errors if isinstance(e, BadKey)), errors[0])
        return found

    async def _fetch_one(self, task_id: str) -> TaskSnapshot | None:
        answer = await self._send("GET", self._task_url(task_id), None, idempotent=True)
        if answer.status == 404:
            return None
        if answer.status >= 300:
            raise self._error(answer)
        return self._read_task(answer, task_id)

    def _task_url(self, task_id: str) -> str:
        return f"{self.task_path}{urllib.parse.quote(task_id, safe='')}"

    @abstractmethod
    def _read_task(self, answer: HttpAnswer, task_id: str) -> TaskSnapshot:
        """The snapshot in a successful answer to GET `_task_url(task_id)`."""

    # ------------------------------------------------------------------ check, download

    async def check(self) -> CheckResult:
        if not self._key:
            return CheckResult("bad_key", "api_key is not set for this provider.")
        try:
            # A task id that cannot exist: any answer but 401/403 proves the key was
            # accepted, at no cost. Transport failures are retried by the policy; every
            # answer is read below.
            answer = await self.policy.run(
                lambda: self._http.send(
                    "GET", self._task_url(CHECK_TASK_ID), idempotent=True, retry_statuses=False
                ),
                idempotent=True,
            )
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
                # An HTML page or the like: a proxy or a wrong URL, not the vendor's API.
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
                    # Sent, but no answer (timeout, reset): the job may exist anyway.
                    raise ProviderUnavailable(
                        f"{err.message} The request may have reached {self.name}, so the "
                        "job may have started anyway.",
                        provider=self.name,
                    ) from None
                raise
            if answer.status == 429 or answer.status >= 500:
                raise self._error(answer)  # typed retryable errors: the policy decides
            return answer

        return await self.policy.run(attempt, idempotent=idempotent)

    def _json(self, answer: HttpAnswer) -> Any:
        """The answer's JSON; BadResponse (scrubbed: it quotes the body) when it is not."""
        try:
            return answer.json()
        except BadResponse as err:
            raise BadResponse(redact(err.message, self._secrets()), provider=self.name) from None

    def _error(self, answer: HttpAnswer, *, status: int | None = None) -> ProviderError:
        """The typed error for an HTTP error answer, with the vendor's words kept."""
        return http_error(answer, self.name, self._secrets(), status=status, words=self.error_words)


# ---------------------------------------------------------------------- helpers


def http_error(
    answer: HttpAnswer,
    name: str,
    secrets: Sequence[str],
    *,
    status: int | None = None,
    words: ErrorWords = ErrorWords(),
) -> ProviderError:
    """Map a MaaS error answer ({code, message, reason}) to the typed error family.

    `status` overrides the HTTP status, for the error bodies some gateways send with 200.
    """
    code = status or answer.status
    message, _ = vendor_words(answer, secrets)
    tail = said(message)
    if code == 400:
        return PromptRejected(f"{name} refused the request{tail or words.bare_400}.",
                              provider=name)  # fmt: skip
    if code == 401:
        return BadKey(
            f"{name} refused the API key (HTTP 401); ask the server owner to check api_key.",
            provider=name,
        )
    if code == 402:
        return ProviderError(
            f"The {name} account is out of credit (HTTP 402){tail}; ask the server owner to "
            "top it up.",
            provider=name,
        )
    if code == 403:
        return PromptRejected(
            f"{name} does not allow this request (HTTP 403){tail or words.bare_403}.",
            provider=name,
        )
    if code == 404:
        return TaskNotFound(f"{name} does not know that {words.noun}{tail}.", provider=name)
    if code == 405 and words.offers_405:
        return NotOffered(f"{name} does not offer that call (HTTP 405){tail}.", provider=name)
    if code == 429:
        return RateLimited(
            f"{name} is running as many jobs as its plan allows (HTTP 429){tail}; try again "
            "shortly.",
            provider=name,
            retry_after=answer.retry_after,
        )
    if code >= 500:
        return ProviderUnavailable(
            f"{name} is busy or having trouble (HTTP {code}){tail}; try again in a few minutes.",
            provider=name,
            retry_after=answer.retry_after,
        )
    return ProviderError(f"{name} answered HTTP {code}{tail}.", provider=name)


def vendor_message(data: Any, secrets: Sequence[str]) -> str:
    """The vendor's own words in a parsed answer ({message} / {msg} / {error}), scrubbed
    and cut to a length fit for a Discord message."""
    if not isinstance(data, dict):
        return ""
    message = data.get("message") or data.get("msg") or data.get("error") or ""
    if isinstance(message, dict):
        message = message.get("message") or ""
    return redact(str(message).strip(), secrets)[:300]


def vendor_words(answer: HttpAnswer, secrets: Sequence[str]) -> tuple[str, str]:
    """(message, reason) of an error answer, scrubbed; never raises (an error is being
    built already, and an unreadable body just has no words)."""
    try:
        data = answer.json()
    except BadResponse:
        return "", ""
    reason = str(data.get("reason") or "") if isinstance(data, dict) else ""
    return vendor_message(data, secrets), redact(reason, secrets)[:80]


def said(message: str) -> str:
    """': <message>' to end a sentence with, or nothing when the vendor said nothing."""
    return f": {message.rstrip('. ')}" if message else ""


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:  # a shorter one would scrub ordinary words
            text = text.replace(secret, "[redacted]")
    return text
