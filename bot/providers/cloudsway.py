"""What the two Cloudsway MaaS adapters (MaaS-MJ, MaaS-Flux) have in common.

Both APIs live under ``{base_url}/{endpoint}/...`` with ``Authorization: Bearer <key>``,
answer errors with ``{code, message, reason}``, have no batch read (one GET per task) and
serve their images from a CDN that needs no key. The endpoint is part of the URL and as
secret as the key, so both are handed to the shared HTTP layer, which scrubs them from
every message.

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
    CheckStatus,
    Failure,
    FollowUp,
    Hook,
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
    """The parts of an error message in which the two APIs differ; which statuses mean
    something of Cloudsway's own is shared (see `CloudswayProvider._overrides`), the rest
    is the shared mapping of `bot.providers.http`. The defaults are MaaS-MJ's."""

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
    config: ConfigT

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
        self._http = ProviderHttp(
            client,
            root,
            headers,
            provider=self.name,
            policy=self.policy,
            timeout=config.request_timeout,
            secrets=self._secrets(),
            overrides=self._overrides(),
            home=config.image_origins,
        )
        # Image downloads go to the vendor's CDN without our headers: never send the key
        # to a host that does not need it. Links off the vendor's own origins must be
        # public (see ProviderHttp).
        self._media = ProviderHttp(
            client,
            "",
            {},
            provider=self.name,
            policy=self.policy,
            timeout=config.request_timeout,
            secrets=self._secrets(),
            home=(config.base_url, *config.image_origins),
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
            return CheckResult(CheckStatus.BAD_KEY, "api_key is not set for this provider.")
        try:
            # A task id that cannot exist: any answer but 401/403 proves the key was
            # accepted, at no cost. Transport failures are retried by the policy; every
            # answer is read below.
            answer = await self._http.send(
                "GET", self._task_url(CHECK_TASK_ID), idempotent=True, retry_statuses=False
            )
        except ProviderUnavailable as err:
            return CheckResult(CheckStatus.UNREACHABLE, err.message)
        except ProviderError as err:
            return CheckResult(CheckStatus.ERROR, err.message)
        if answer.status in (401, 403):
            return CheckResult(CheckStatus.BAD_KEY, self._error(answer).message)
        if answer.status < 300 or answer.status == 404:
            try:
                answer.json()
            except BadResponse:
                # An HTML page or the like: a proxy or a wrong URL, not the vendor's API.
                return CheckResult(
                    CheckStatus.ERROR,
                    f"{self.name} answered HTTP {answer.status} with something that is not "
                    "JSON; check base_url and endpoint.",
                )
            return CheckResult(CheckStatus.HEALTHY, f"{self.name} accepted the API key.")
        return CheckResult(CheckStatus.ERROR, self._error(answer).message)

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
        """One API call, retried per the policy; 429 and 5xx raise their typed errors with
        the vendor's words kept, every other answer is returned."""
        return await self._http.send(method, path, json_body=body, idempotent=idempotent)

    def _error(self, answer: HttpAnswer, *, status: int | None = None) -> ProviderError:
        """The typed error for an HTTP error answer, with the vendor's words kept.

        `status` overrides the HTTP status, for the error bodies some gateways send with
        200."""
        return self._http.error(answer, status=status)

    # ------------------------------------------------------------------ error statuses

    def _overrides(self) -> dict[int, Hook]:
        """The statuses whose meaning is Cloudsway's own; the shared mapping reads the rest
        (401 bad key, 5xx busy, any other status a plain error)."""
        hooks: dict[int, Hook] = {
            400: self._refused,
            402: self._out_of_credit,
            403: self._forbidden,
            404: self._unknown,
            429: self._plan_cap,
        }
        if self.error_words.offers_405:
            hooks[405] = self._call_absent
        return hooks

    def _refused(self, failure: Failure) -> ProviderError:
        return PromptRejected(
            f"{self.name} refused the request{failure.said or self.error_words.bare_400}.",
            provider=self.name,
        )

    def _out_of_credit(self, failure: Failure) -> ProviderError:
        return ProviderError(
            f"The {self.name} account is out of credit (HTTP 402){failure.said}; ask the "
            "server owner to top it up.",
            provider=self.name,
        )

    def _forbidden(self, failure: Failure) -> ProviderError:
        # 403 here is the content review refusing the prompt, not a bad key (that is 401).
        return PromptRejected(
            f"{self.name} does not allow this request (HTTP 403)"
            f"{failure.said or self.error_words.bare_403}.",
            provider=self.name,
        )

    def _unknown(self, failure: Failure) -> ProviderError:
        return TaskNotFound(
            f"{self.name} does not know that {self.error_words.noun}{failure.said}.",
            provider=self.name,
        )

    def _call_absent(self, failure: Failure) -> ProviderError:
        return NotOffered(
            f"{self.name} does not offer that call (HTTP 405){failure.said}.", provider=self.name
        )

    def _plan_cap(self, failure: Failure) -> ProviderError:
        # Cloudsway's 429 is the plan's cap on jobs running at once, not a request rate.
        return RateLimited(
            f"{self.name} is running as many jobs as its plan allows (HTTP 429){failure.said}; "
            "try again shortly.",
            provider=self.name,
            retry_after=failure.retry_after,
        )
