"""The provider protocol: what every image provider adapter offers the engine.

Adapters are plain classes. They know nothing of Discord or of the database: the
engine hands them a `SubmitRequest`, they answer with task ids and normalised
`TaskSnapshot`s, and they raise the typed `ProviderError` family with messages fit
for users. The error family lives in `bot.providers.errors`; the HTTP plumbing, the
retry policy, the one HTTP-answer -> error mapping and the secret scrubber live in
`bot.providers.http`. Both are re-exported here, so adapters import one module.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bot.providers.errors import (
    BadKey,
    BadResponse,
    ImageGone,
    ImageTooLarge,
    NotOffered,
    PromptRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TaskNotFound,
)
from bot.providers.http import (
    Failure,
    Hook,
    HttpAnswer,
    ProviderHttp,
    RetryPolicy,
    answer_error,
    parse_retry_after,
)
from bot.providers.scrubbing import clip, json_words, safe_text, said, scrub
from bot.vocab import Action

__all__ = [
    "BadKey",
    "BadResponse",
    "CheckResult",
    "CheckStatus",
    "Failure",
    "Feature",
    "FollowUp",
    "Hook",
    "How",
    "HttpAnswer",
    "ImageGone",
    "ImageInput",
    "ImageTooLarge",
    "NotOffered",
    "PromptRejected",
    "Provider",
    "ProviderError",
    "ProviderHttp",
    "ProviderUnavailable",
    "RateLimited",
    "RetryPolicy",
    "SubmitRequest",
    "SubmitResult",
    "Support",
    "TaskNotFound",
    "TaskRef",
    "TaskSnapshot",
    "TaskState",
    "answer_error",
    "clip",
    "json_words",
    "parse_retry_after",
    "safe_text",
    "said",
    "scrub",
    "task_refs",
]

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
    video_urls: list[str] = field(default_factory=list)  # final videos (mp4), in order
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
    strength: str = ""  # V1-V4: "low" asks for a subtle variation, "high" a strong one
    ref: str = ""
    # Vary (Region): rectangles as fractions of the image, (x0, y0, x1, y1).
    regions: Sequence[tuple[float, float, float, float]] = ()
    # Vary (Region): freehand lassos, each its (x, y) points as fractions of the image, in
    # drawing order (3 or more). Only for providers whose `takes_polygons` is True.
    polygons: Sequence[tuple[tuple[float, float], ...]] = ()
    dimensions: str = "SQUARE"  # blend
    callback_url: str | None = None


@dataclass(frozen=True)
class SubmitResult:
    task_id: str
    snapshot: TaskSnapshot | None = None  # when the submit answer already is a snapshot
    # JSON-safe data the provider wants kept with the job from the start (merged into its
    # provider_data, so every TaskRef of the job carries it, across restarts too).
    data: Mapping[str, Any] = field(default_factory=dict)


class CheckStatus(enum.StrEnum):
    """What `check()` found. The values are printed by `atelier check` and documented in
    the README: keep them."""

    HEALTHY = "healthy"
    BAD_KEY = "bad_key"  # the provider refused the key, or none is configured
    UNREACHABLE = "unreachable"  # no answer: wrong host, down, timed out
    ERROR = "error"  # an answer, but not the API we expect (wrong URL, proxy page, 5xx)


@dataclass(frozen=True)
class CheckResult:
    status: CheckStatus
    detail: str  # fit for the person who runs `atelier check`: scrubbed of secrets

    def __post_init__(self) -> None:
        # A bare word from an adapter not yet on the enum still becomes (and is checked
        # to be) one of the four.
        object.__setattr__(self, "status", CheckStatus(self.status))

    @property
    def ok(self) -> bool:
        return self.status is CheckStatus.HEALTHY


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
    # Whether Vary (Region) here takes freehand lassos (`SubmitRequest.polygons`) as well
    # as rectangles; the engine refuses a lasso for a provider that does not.
    takes_polygons: bool = False
    # Whether V1-V4 honour SubmitRequest.strength ("low": subtle, "high": strong); the
    # member's High/Low Variation Mode is only offered where it does something.
    takes_variation_strength: bool = False

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
