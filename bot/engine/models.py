"""The job model: one request that a provider works on, kept in the store.

Plain data only (no discord, no database): front ends and the store both speak it.
"""

from __future__ import annotations

import enum
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

# FollowUp, How, ImageInput and Support are re-exported: front ends speak the engine's
# words and import nothing from bot.providers.
from bot.providers.base import FollowUp, How, ImageInput, Support, TaskState
from bot.vocab import Action

log = logging.getLogger(__name__)

__all__ = [
    "Action",
    "EventKind",
    "FollowUp",
    "How",
    "ImageInput",
    "Job",
    "JobRequest",
    "JobStatus",
    "JobUpdate",
    "Origin",
    "Polygon",
    "Support",
]

# 10 characters of Crockford base32: ~50 bits, URL- and custom_id-safe, easy to read aloud.
_ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_job_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def is_job_id(value: str) -> bool:
    return len(value) == 10 and all(c in _ID_ALPHABET for c in value)


class JobStatus(enum.StrEnum):
    # Stored, waiting in Atelier's own queue, never sent: safe to send after a restart.
    # (A task in the *provider's* queue is TaskState.QUEUED, which is SUBMITTED here.)
    WAITING = "waiting"
    SUBMITTING = "submitting"  # being sent; no task id yet
    SUBMITTED = "submitted"  # the provider has it (task id recorded)
    RUNNING = "running"
    NEEDS_INPUT = "needs_input"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def polled(self) -> bool:
        """States in which the runner asks the provider for news."""
        return self in (JobStatus.SUBMITTED, JobStatus.RUNNING, JobStatus.NEEDS_INPUT)

    @classmethod
    def from_task(cls, state: TaskState) -> JobStatus:
        return {
            TaskState.QUEUED: cls.SUBMITTED,
            TaskState.SUBMITTED: cls.SUBMITTED,
            TaskState.RUNNING: cls.RUNNING,
            TaskState.NEEDS_INPUT: cls.NEEDS_INPUT,
            TaskState.SUCCEEDED: cls.SUCCEEDED,
            TaskState.FAILED: cls.FAILED,
            TaskState.CANCELLED: cls.CANCELLED,
        }[state]


class Origin(enum.StrEnum):
    """Which front end asked for a job (stored: the values are part of the schema)."""

    CLI = "cli"
    DISCORD = "discord"


class EventKind(enum.StrEnum):
    """What one announced change of a job (a `JobUpdate`) is about."""

    CREATED = "created"  # stored, and sent or waiting for room at its provider
    WAITING = "waiting"  # back in Atelier's own queue: the provider turned it away as busy
    SUBMITTED = "submitted"  # the provider has it
    RUNNING = "running"
    PROGRESS = "progress"  # same status; new progress, preview or place in the queue
    NEEDS_INPUT = "needs_input"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def reached(cls, status: JobStatus) -> EventKind:
        """The event that announces a job reaching `status` (not SUBMITTING: a job being
        sent is announced as CREATED, then SUBMITTED)."""
        return cls(status.value)


Region = tuple[float, float, float, float]
# A freehand lasso (Vary (Region)): its corners in drawing order, (x, y) as fractions of
# the image (0..1, from the top left); at least 3 points.
Polygon = tuple[tuple[float, float], ...]


@dataclass
class JobRequest:
    """What a front end asks for. Validated by the engine before anything is stored."""

    action: Action
    prompt: str = ""
    provider: str | None = None  # None: the default provider (or the parent's)
    parent_id: str | None = None
    index: int = 0
    variant: str = ""
    strength: str = ""  # V1-V4: "high" (strong) or "low" (subtle), from /settings
    images: Sequence[ImageInput] = ()
    regions: Sequence[Region] = ()
    polygons: Sequence[Polygon] = ()  # Vary (Region) lassos, with or without rectangles
    dimensions: str = "SQUARE"
    origin: Origin = Origin.CLI
    user_id: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    # A thread's channel: a thread is allowed where its channel is, and uses its
    # channel's default provider unless it has one of its own.
    parent_channel_id: str | None = None
    # What the front end knows of the person asking, for the server's rules: their
    # roles there (ids) and whether they may manage the server.
    role_ids: Sequence[str] = ()
    is_manager: bool = False


@dataclass
class Job:
    id: str
    action: Action
    provider: str
    status: JobStatus = JobStatus.WAITING
    parent_id: str | None = None
    index: int = 0
    variant: str = ""
    strength: str = ""  # V1-V4: "high" or "low" (the requester's variation setting)
    prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)
    mode: str | None = None
    task_id: str | None = None
    progress: float | None = None
    preview_url: str | None = None
    queue_position: int | None = None
    provider_status: str = ""
    provider_data: dict[str, Any] = field(default_factory=dict)
    # Results: paths relative to the media folder.
    grid: str | None = None
    images: list[str] = field(default_factory=list)
    withheld: list[int] = field(default_factory=list)
    seed: str | None = None
    texts: list[str] = field(default_factory=list)
    followups: list[FollowUp] = field(default_factory=list)
    failure: str | None = None
    # Video results (Animate, Extend): mp4 files, and the provider's links to them (shown
    # instead when a file is over the channel's upload limit).
    videos: list[str] = field(default_factory=list)
    video_links: list[str] = field(default_factory=list)
    # Inputs kept for follow-ups (reroll of an image prompt, region, blend shape).
    inputs: list[str] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    polygons: list[Polygon] = field(default_factory=list)
    dimensions: str = "SQUARE"
    # Who asked and where: plain ids, no Discord types.
    origin: Origin = Origin.CLI
    user_id: str | None = None
    guild_id: str | None = None
    channel_id: str | None = None
    message_id: str | None = None
    # When a front end confirmed showing the outcome (a restart re-shows it otherwise).
    delivered_at: float | None = None
    # Timestamps (epoch seconds).
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    submitted_at: float | None = None
    finished_at: float | None = None
    deadline_at: float = 0.0
    poll_errors: int = 0
    not_found: int = 0
    submit_attempts: int = 0  # sends the provider turned away as busy
    # Stored keys this version does not know (a newer Atelier wrote them), written back
    # as they came: see `from_json`.
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The store and old callers hand over the plain stored word.
        self.origin = Origin(self.origin)

    @property
    def finished(self) -> bool:
        return self.status.finished

    def offers(self, action: Action, index: int = 0, variant: str = "") -> FollowUp | None:
        for followup in self.followups:
            if (
                followup.action == action
                and followup.index == index
                and (followup.variant == variant)
            ):
                return followup
        return None

    def copy(self) -> Job:
        """An independent copy (events hand these out, so listeners may keep them)."""
        return Job.from_json(self.to_json())

    # ---- serialisation for the store (JSON-safe dict) ----

    def to_json(self) -> dict[str, Any]:
        # Unknown keys first, so that a known field always wins a clash.
        data: dict[str, Any] = dict(self.extras)
        for f in fields(self):
            if f.name == "extras":
                continue
            value = getattr(self, f.name)
            if f.name == "followups":
                value = [fu.to_json() for fu in value]
            elif f.name == "regions":
                value = [list(r) for r in value]
            elif f.name == "polygons":
                value = [[list(point) for point in polygon] for polygon in value]
            elif isinstance(value, enum.Enum):
                value = value.value
            data[f.name] = value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """A job from its stored document. Raises ValueError (or KeyError, TypeError) on a
        document this version cannot read, such as an unknown status or action.

        Keys this version does not know are kept in `extras`, not dropped: the runner
        re-saves a job at every change, so dropping them would silently destroy what a
        newer version wrote as soon as an older one (a rollback) touched the job. They
        are logged once per key name, not at every read."""
        known = {f.name for f in fields(cls)} - {"extras"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extras = {k: v for k, v in data.items() if k not in known}
        if extras:
            _note_unknown_keys(extras)
        kwargs["extras"] = extras
        kwargs["action"] = Action(kwargs["action"])
        kwargs["status"] = JobStatus(kwargs.get("status", JobStatus.WAITING.value))
        kwargs["followups"] = [FollowUp.from_json(f) for f in kwargs.get("followups", [])]
        kwargs["regions"] = [tuple(r) for r in kwargs.get("regions", [])]
        kwargs["polygons"] = [
            tuple((float(x), float(y)) for x, y in polygon)
            for polygon in kwargs.get("polygons", [])
        ]
        return cls(**kwargs)


_UNKNOWN_KEYS_SEEN: set[str] = set()


def _note_unknown_keys(extras: dict[str, Any]) -> None:
    new = sorted(set(extras) - _UNKNOWN_KEYS_SEEN)
    if new:
        _UNKNOWN_KEYS_SEEN.update(new)
        log.info(
            "stored jobs carry fields this version of Atelier does not know (a newer "
            "version wrote them?); they are kept as they are: %s",
            ", ".join(new),
        )


@dataclass(frozen=True)
class JobUpdate:
    """One announced change of a job. `job` is a copy: subscribers may keep it."""

    job: Job
    kind: EventKind
