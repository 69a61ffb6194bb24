"""The provider protocol: what every image provider adapter offers the engine.

Adapters are plain classes. They know nothing of Discord or of the database: the
engine hands them a `SubmitRequest`, they answer with task ids and normalised
`TaskSnapshot`s, and they raise the typed `ProviderError` family with messages fit
for users. The HTTP plumbing and the retry policy live here, in one place.
"""

from __future__ import annotations

import asyncio
import email.utils
import enum
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import httpx

from bot.backoff import Backoff
from bot.vocab import Action

# --------------------------------------------------------------------------- vocabulary


class Feature(enum.StrEnum):
    """Capabilities that are not actions."""

    CANCEL = "cancel"
    BATCH_FETCH = "batch_fetch"  # many tasks in one request
    CALLBACKS = "callbacks"
    MODES = "modes"  # fast / relax / turbo
    PROGRESS = "progress"  # a percentage (else: elapsed time)
    PREVIEW = "preview"  # blurry previews while running
    IMAGE_SEED = "image_seed"


class How(enum.StrEnum):
    NATIVE = "native"  # the provider has a call for it
    EMULATED = "emulated"  # done with another call; the label says so
    SELECT = "select"  # no provider call: pick one of the images already there


@dataclass(frozen=True)
class Support:
    how: How
    note: str = ""  # for EMULATED: how, in a few words shown to users


class TaskState(enum.StrEnum):
    QUEUED = "queued"  # accepted, waiting in the provider's queue
    SUBMITTED = "submitted"
    RUNNING = "running"
    NEEDS_INPUT = "needs_input"  # waits for a modal (mask, remix prompt)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED)


@dataclass(frozen=True)
class FollowUp:
    """A follow-up action that a finished task offers (one button)."""

    action: Action
    index: int = 0  # 1-4 for U/V; 0 otherwise
    variant: str = ""  # zoom factor, pan direction
    ref: str = ""  # provider data needed to run it (e.g. a midjourney customId)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "index": self.index,
            "variant": self.variant,
            "ref": self.ref,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FollowUp:
        return cls(
            Action(data["action"]),
            int(data.get("index", 0)),
            str(data.get("variant", "")),
            str(data.get("ref", "")),
        )


@dataclass
class TaskSnapshot:
    """One provider task, normalised. Adapters fill what their API gives."""

    task_id: str
    state: TaskState
    progress: float | None = None  # 0-100, None when the provider gives no figure
    preview_url: str | None = None  # while running
    image_urls: list[str] = field(default_factory=list)  # final images
    grid: bool = False  # image_urls[0] is one 2x2 grid (midjourney-proxy imagine)
    withheld: list[int] = field(default_factory=list)  # image indexes held back by review
    seed: str | None = None
    texts: list[str] = field(default_factory=list)  # describe prompts, shorten results
    followups: list[FollowUp] = field(default_factory=list)
    failure: str | None = None  # the provider's words, fit for users
    queue_position: int | None = None
    provider_status: str = ""  # the raw status word, for logs and `jobs`
    extra: dict[str, Any] = field(default_factory=dict)  # JSON-safe data kept with the job


@dataclass(frozen=True)
class TaskRef:
    """A task to read, with what the store already knows of it, so an adapter needs no
    memory of its own to read it right (and a restart loses nothing)."""

    task_id: str
    action: Action = Action.IMAGINE  # what the job asked for
    data: Mapping[str, Any] = field(default_factory=dict)  # the provider's own data, kept
    # with the job: every `TaskSnapshot.extra` and `SubmitResult.data` merged


def task_refs(task_ids: Sequence[str]) -> list[TaskRef]:
    """Refs that carry only ids (a reader that knows nothing else, such as `check`)."""
    return [TaskRef(task_id) for task_id in task_ids]


@dataclass(frozen=True)
class ImageInput:
    data: bytes
    mime: str = "image/png"

    def data_url(self) -> str:
        import base64

        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


@dataclass(frozen=True)
class SubmitRequest:
    """What the engine asks a provider to start. Plain data, no engine types."""

    action: Action
    prompt: str = ""  # the full prompt, parameters included, already validated
    text: str = ""  # the words only
    params: Mapping[str, str] = field(default_factory=dict)  # canonical name -> value
    image_urls: Sequence[str] = ()  # image-prompt URLs from the start of the prompt
    images: Sequence[ImageInput] = ()  # attachments: image prompts, blend, describe, faces
    mode: str | None = None  # "fast" | "relax" | "turbo"
    # Follow-ups: the parent task and which of its images / which button.
    parent_task_id: str | None = None
    parent_extra: Mapping[str, Any] = field(default_factory=dict)
    parent_image_size: tuple[int, int] | None = None  # (width, height) of the image acted on
    index: int = 0
    variant: str = ""
    ref: str = ""
    # Vary (Region): rectangles as fractions of the image, (x0, y0, x1, y1).
    regions: Sequence[tuple[float, float, float, float]] = ()
    dimensions: str = "SQUARE"  # blend
    callback_url: str | None = None


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    snapshot: TaskSnapshot | None = None  # when the submit answer already is a snapshot


@dataclass(frozen=True)
class CheckResult:
    status: str  # "healthy" | "bad_key" | "unreachable" | "error"
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "healthy"


# --------------------------------------------------------------------------- errors


class ProviderError(Exception):
    """Base of the typed error family. `str(err)` is fit for users; never holds secrets."""

    retryable: ClassVar[bool] = False
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retry_after = retry_after


class BadKey(ProviderError):
    kind = "bad_key"


class PromptRejected(ProviderError):
    """The provider refused this prompt or input (banned word, invalid parameter)."""

    kind = "rejected"


class RateLimited(ProviderError):
    """429, plan concurrency cap, queue full: try again later."""

    retryable = True
    kind = "rate_limited"


class ProviderUnavailable(ProviderError):
    """Unreachable host, timeouts, 5xx, no account available."""

    retryable = True
    kind = "unavailable"


class BadResponse(ProviderError):
    """The provider answered something we cannot read (HTML, malformed JSON)."""

    retryable = True
    kind = "bad_response"


class NotOffered(ProviderError):
    """This provider does not offer that action (declared, or found out at run time)."""

    kind = "not_offered"


class TaskNotFound(ProviderError):
    kind = "not_found"


class ImageGone(ProviderError):
    """A 4xx on an image URL: expired or removed; asking again will not help."""

    kind = "image_gone"


class ImageTooLarge(ProviderError):
    kind = "too_large"


# --------------------------------------------------------------------------- retry policy

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped, jittered exponential backoff that honours Retry-After.

    Reads (fetch, download, check) are retried on connection errors, 429 and 5xx.
    Submissions are retried only when the request certainly never reached the
    provider (connection refused) or was refused outright (429): a submission that
    may have been accepted is never sent twice.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    @property
    def backoff(self) -> Backoff:
        # A Retry-After longer than this is not waited out inside one call: the caller's
        # own loop (runner, dispatcher) waits longer between calls.
        return Backoff(self.base_delay, self.max_delay, retry_after_cap=self.max_delay * 3)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        return self.backoff.delay(attempt, retry_after)

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as err:
                attempt += 1
                if attempt >= self.attempts or not _may_retry(err, idempotent):
                    raise
                await sleep(self.delay(attempt - 1, err.retry_after))


class _NotSent(ProviderUnavailable):
    """The connection failed before the request was sent: safe to retry any call."""


def _may_retry(err: ProviderError, idempotent: bool) -> bool:
    if isinstance(err, _NotSent | RateLimited):
        return True
    return idempotent and err.retryable


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        """The body as JSON, or None when empty. Raises BadResponse on anything else."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            snippet = self.body[:80].decode("utf-8", "replace").strip().replace("\n", " ")
            raise BadResponse(
                f"The provider answered something that is not JSON (HTTP {self.status}: "
                f"{snippet!r}). It may be down or behind a misconfigured proxy; try again "
                "later or ask the server owner to run `atelier check`."
            ) from None

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (error answers)."""
        try:
            return self.json()
        except BadResponse:
            return None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))


class ProviderHttp:
    """A small JSON-over-HTTP helper shared by the HTTP adapters.

    It turns transport failures into typed errors and applies the retry policy;
    status codes are left to the adapter, whose API gives them meaning.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        headers: Mapping[str, str],
        *,
        provider: str,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.provider = provider
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.requests_sent = 0  # for benchmarks and `check`

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        idempotent: bool,
        retry_statuses: bool = True,
    ) -> HttpAnswer:
        """Send one request, with retries per the policy.

        When `retry_statuses` is set, 429 and 5xx answers raise RateLimited /
        ProviderUnavailable (so the policy can retry them); otherwise every HTTP
        answer is returned for the adapter to read.
        """

        async def attempt() -> HttpAnswer:
            answer = await self._send_once(method, path, json_body)
            if retry_statuses:
                if answer.status == 429:
                    raise RateLimited(
                        f"{self.provider} is rate limiting us (HTTP 429); try again shortly.",
                        provider=self.provider,
                        retry_after=answer.retry_after,
                    )
                if answer.status >= 500:
                    raise ProviderUnavailable(
                        f"{self.provider} is having trouble (HTTP {answer.status}); "
                        "try again in a few minutes.",
                        provider=self.provider,
                        retry_after=answer.retry_after,
                    )
            return answer

        return await self.policy.run(attempt, idempotent=idempotent)

    async def _send_once(self, method: str, path: str, json_body: Any) -> HttpAnswer:
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        self.requests_sent += 1
        try:
            response = await self.client.request(
                method, url, json=json_body, headers=self.headers, timeout=self.timeout
            )
        except httpx.ConnectError as err:
            # Connection refused / DNS failure: the request never left. Safe to retry.
            raise _NotSent(
                f"Cannot reach {self.provider} ({_describe_transport(err)}); "
                "check its base_url and that the server is up.",
                provider=self.provider,
            ) from None
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{self.provider} did not answer in time; try again in a few minutes.",
                provider=self.provider,
            ) from None
        except httpx.HTTPError as err:
            raise ProviderUnavailable(
                f"The connection to {self.provider} failed ({_describe_transport(err)}); "
                "try again in a few minutes.",
                provider=self.provider,
            ) from None
        return HttpAnswer(response.status_code, response.headers, response.content)

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch image bytes with a byte cap (reads are retried)."""

        async def attempt() -> bytes:
            self.requests_sent += 1
            try:
                async with self.client.stream("GET", url, timeout=self.timeout) as response:
                    if response.status_code == 429:
                        raise RateLimited(
                            f"{self.provider}'s image host is rate limiting us.",
                            provider=self.provider,
                            retry_after=parse_retry_after(response.headers.get("retry-after")),
                        )
                    if response.status_code >= 500:
                        raise ProviderUnavailable(
                            f"{self.provider}'s image host failed (HTTP {response.status_code}).",
                            provider=self.provider,
                        )
                    if response.status_code >= 400:
                        raise ImageGone(
                            f"The image could not be downloaded (HTTP {response.status_code}); "
                            "its link may have expired.",
                            provider=self.provider,
                        )
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise ImageTooLarge(
                                f"The image is larger than the {max_bytes // (1024 * 1024)} MiB "
                                "Atelier accepts.",
                                provider=self.provider,
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.ConnectError as err:
                raise _NotSent(
                    f"Cannot reach the image host ({_describe_transport(err)}).",
                    provider=self.provider,
                ) from None
            except httpx.HTTPError as err:
                raise ProviderUnavailable(
                    f"Downloading the image failed ({_describe_transport(err)}).",
                    provider=self.provider,
                ) from None

        return await self.policy.run(attempt, idempotent=True)


def _describe_transport(err: httpx.HTTPError) -> str:
    # The exception text may contain the URL, which never holds secrets here (keys travel
    # in headers), but keep it short for users.
    return type(err).__name__


# --------------------------------------------------------------------------- the protocol


class Provider(ABC):
    """One configured provider. Subclasses declare what they can serve."""

    kind: ClassVar[str]
    name: str
    features: frozenset[Feature] = frozenset()
    accepted_params: frozenset[str] = frozenset()
    batch_size: int = 1  # most task ids one fetch() call should be given
    poll_interval: float = 3.0  # seconds between polls of a running task
    max_images: int = 5  # attachments accepted per request

    @abstractmethod
    def supports(self, action: Action) -> Support | None:
        """How this provider serves `action`, or None when it does not."""

    def validate(self, request: SubmitRequest) -> None:  # noqa: B027 - optional hook
        """Raise PromptRejected for a request this provider can never take (a value it
        does not accept), so the user hears it before a job exists. No I/O."""

    @abstractmethod
    async def submit(self, request: SubmitRequest) -> SubmitResult:
        """Start a task. Never retried blindly: raising means it was not accepted,
        or that we cannot know (then the error says so)."""

    @abstractmethod
    async def fetch(self, tasks: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        """Current state of these tasks by id; tasks the provider does not know are absent."""

    async def cancel(self, task_id: str) -> None:
        raise NotOffered(f"{self.name} cannot cancel a running job.", provider=self.name)

    def select(
        self, parent_task_id: str, parent_extra: Mapping[str, Any], index: int
    ) -> TaskSnapshot:
        """For `How.SELECT` actions: the snapshot of image `index` (1-4) of a finished
        parent, with the follow-ups it offers. Only providers that declare SELECT."""
        raise NotOffered(f"{self.name} cannot select images.", provider=self.name)

    @abstractmethod
    async def download(self, url: str, max_bytes: int) -> bytes:
        """The bytes of an image URL from one of this provider's snapshots."""

    @abstractmethod
    async def check(self) -> CheckResult:
        """Reach the provider with the configured key: healthy, bad key, unreachable."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources (the shared HTTP client is closed by its owner)."""
