"""One midjourney-proxy Task (its JSON, from a fetch or a notifyHook) -> a TaskSnapshot.

The server's task does not always say what it is (trueai calls every button press
"ACTION"; a relay may drop the buttons), so the reader is also told what the job asked
for and whether its modal was already answered: both come from the store with the job.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.providers.base import FollowUp, TaskSnapshot, TaskState
from bot.providers.mj_proxy._tables import (
    BUTTON_ACTIONS,
    CANCEL_REASONS,
    CHANGE_ACTIONS,
    CHANGEABLE_SERVER_ACTIONS,
    GRID_SERVER_ACTIONS,
    KEYCAP,
    SINGLE_OUR_ACTIONS,
    STATES,
    TEXT_ACTIONS,
    TEXT_SERVER_ACTIONS,
    followup_for_custom_id,
    mapping,
    text_of,
)
from bot.providers.mj_proxy._video import (
    is_single_video,
    is_video,
    looks_like_video_link,
    video_urls,
)
from bot.vocab import Action


def parse_progress(value: Any) -> float | None:
    """'46%' -> 46.0; '', 'N/A', None and other words -> None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        match = re.search(r"\d+(?:\.\d+)?", str(value))
        if match is None:
            return None
        number = float(match.group(0))
    return max(0.0, min(100.0, number))


def split_numbered(text: str) -> list[str]:
    """The prompts of a describe/shorten answer: the items after 1️⃣, 2️⃣, ... (text before
    the first number, such as shorten's "Important tokens", is dropped)."""
    parts = KEYCAP.split(text)
    if len(parts) < 2:
        return []
    return [part.strip() for part in parts[1:] if part.strip()]


def split_lines(text: str) -> list[str]:
    """Describe prompts one a line, unnumbered (trueai's official/partner accounts join them
    with "\r\n": TaskInfo.SetDescribeButtions). Fewer than two lines: not such a list."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines if len(lines) >= 2 else []


def image_urls(task: Mapping[str, Any]) -> list[str]:
    """trueai may add the four separate images: a list of strings or of {"url": ...}."""
    raw = task.get("imageUrls")
    if not isinstance(raw, list):
        return []
    urls: list[str] = []
    for item in raw:
        url = item.get("url") if isinstance(item, dict) else item
        if isinstance(url, str) and url.strip():
            urls.append(url.strip())
    return urls


@dataclass(frozen=True)
class TaskReading:
    """What one task's JSON says, read once: the fields the snapshot is built from."""

    task: Mapping[str, Any]
    task_id: str
    status: str  # the server's word, upper case
    server_action: str  # upper case; "ACTION" on trueai for every button
    buttons: list[dict[str, Any]]
    image_url: str
    final_prompt: str

    @classmethod
    def of(cls, task: Mapping[str, Any]) -> TaskReading:
        raw_buttons = task.get("buttons")
        buttons = raw_buttons if isinstance(raw_buttons, list) else []
        return cls(
            task=task,
            task_id=str(task.get("id") or ""),
            status=str(task.get("status") or "").upper(),
            server_action=str(task.get("action") or "").upper(),
            buttons=[b for b in buttons if isinstance(b, dict)],
            image_url=text_of(task.get("imageUrl")),
            final_prompt=text_of(mapping(task.get("properties")).get("finalPrompt")),
        )

    def field(self, key: str) -> str:
        return text_of(self.task.get(key))

    def custom_ids(self) -> list[str]:
        return [cid for b in self.buttons if isinstance(cid := b.get("customId"), str)]

    def extra(self) -> dict[str, Any]:
        """What is kept with the job: read again for follow-ups and after a restart."""
        extra: dict[str, Any] = {"action": self.server_action, "status": self.status}
        if self.buttons:
            extra["buttons"] = [
                {k: b.get(k) for k in ("customId", "emoji", "label", "style", "type")}
                for b in self.buttons
            ]
        if self.final_prompt:
            extra["finalPrompt"] = self.final_prompt
        for key in ("prompt", "promptEn"):
            if self.field(key):
                extra[key] = self.field(key)
        for key in ("width", "height"):
            if isinstance(self.task.get(key), int):
                extra[key] = self.task[key]
        if self.image_url:
            extra["imageUrl"] = self.image_url
        urls = image_urls(self.task)
        if urls:
            extra["imageUrls"] = urls
        return extra


def read_task(
    task: Mapping[str, Any],
    *,
    asked: Action | None,
    modal_answered: bool,
    name: str,
    scrub: Callable[[str], str],
) -> TaskSnapshot:
    """Normalise one task. `asked` is what the job asked for (None when unknown);
    `modal_answered` says we already sent its /submit/modal; `scrub` keeps our key out
    of the server's words."""
    reading = TaskReading.of(task)
    state = STATES.get(reading.status, TaskState.RUNNING)  # unknown words: still going
    if state == TaskState.NEEDS_INPUT and modal_answered:
        state = TaskState.SUBMITTED  # answered already; the server has not moved on yet
    fail_reason = reading.field("failReason")
    if state == TaskState.FAILED and fail_reason in CANCEL_REASONS:
        state = TaskState.CANCELLED
    snap = TaskSnapshot(
        task_id=reading.task_id,
        state=state,
        progress=parse_progress(task.get("progress")),
        provider_status=reading.status or "?",
        extra=reading.extra(),
    )
    seed = task.get("seed")
    if isinstance(seed, int | str) and str(seed).strip():
        snap.seed = str(seed).strip()
    if state == TaskState.SUCCEEDED:
        _settle_success(snap, reading, asked, name)
    elif state == TaskState.FAILED:
        # Only failReason: `description` is the command ("/imagine ...", novicezk and
        # trueai) or the submit answer ("提交成功", new-api), never why it failed.
        snap.failure = scrub(fail_reason) or f"{name} reported a failure without a reason."
    elif state == TaskState.CANCELLED:
        snap.failure = scrub(fail_reason) or "Cancelled."
    elif (
        reading.image_url
        and state != TaskState.NEEDS_INPUT
        and not looks_like_video_link(reading.image_url)  # an embed shows pictures only
    ):
        snap.preview_url = reading.image_url
    return snap


def _wants_text(reading: TaskReading, asked: Action | None) -> bool:
    return reading.server_action in TEXT_SERVER_ACTIONS or asked in TEXT_ACTIONS


def _settle_success(
    snap: TaskSnapshot, reading: TaskReading, asked: Action | None, name: str
) -> None:
    """A SUCCESS task: its results, or why it is not done after all."""
    snap.progress = 100.0
    if _wants_text(reading, asked):
        fill_texts(snap, reading, asked)
        if not snap.texts:
            snap.state = TaskState.FAILED
            snap.failure = f"{name} finished without sending the prompts back."
        return
    fill_images(snap, reading, asked)
    if not snap.image_urls and not snap.video_urls:
        # SUCCESS can be stored a moment before imageUrl: keep polling (the job's
        # deadline ends it if the image never comes).
        snap.state = TaskState.RUNNING


def fill_texts(snap: TaskSnapshot, reading: TaskReading, asked: Action | None) -> None:
    """A finished describe/shorten: its prompts. The image (describe's upload) is no
    result of ours."""
    sources = (
        reading.final_prompt,
        reading.field("description"),
        reading.field("promptEn"),
        reading.field("prompt"),
    )
    for source in sources:
        texts = split_numbered(source)
        if texts:
            snap.texts = texts
            return
    if reading.server_action == "DESCRIBE" or asked == Action.DESCRIBE:
        # Unnumbered, one prompt a line (trueai's official/partner accounts).
        snap.texts = split_lines(reading.final_prompt) or split_lines(reading.field("promptEn"))
    if not snap.texts and reading.final_prompt:
        snap.texts = [reading.final_prompt]


def fill_images(snap: TaskSnapshot, reading: TaskReading, asked: Action | None) -> None:
    """A finished image task: its image, whether it is a grid, and its follow-ups."""
    custom_ids = reading.custom_ids()
    if is_video(reading.task, custom_ids, reading.server_action, asked):
        # Video: no pictures, the videos and the buttons they carry (U1-U4, Extend).
        single = is_single_video(custom_ids, reading.server_action, asked)
        snap.video_urls = video_urls(reading.task, single)
        snap.followups = _button_followups(custom_ids)
        return
    if reading.image_url:
        snap.image_urls = [reading.image_url]
    if custom_ids:
        snap.grid = any(cid.startswith("MJ::JOB::upsample::") for cid in custom_ids)
        snap.followups = _button_followups(custom_ids)
        return
    # No buttons to tell: the server's action name, else what the job asked for.
    if reading.server_action in GRID_SERVER_ACTIONS:
        snap.grid = True
    else:
        snap.grid = (
            asked is not None
            and asked not in SINGLE_OUR_ACTIONS
            and (asked in BUTTON_ACTIONS or asked in (Action.IMAGINE, Action.BLEND))
        )
    # Without buttons, a finished grid still has U1-4 / V1-4 / 🔄 through /submit/change.
    if snap.grid and (
        reading.server_action in CHANGEABLE_SERVER_ACTIONS
        or asked in CHANGE_ACTIONS
        or asked in (Action.IMAGINE, Action.BLEND)
    ):
        snap.followups = [FollowUp(Action.UPSCALE, index=i) for i in range(1, 5)]
        snap.followups += [FollowUp(Action.VARIATION, index=i) for i in range(1, 5)]
        snap.followups.append(FollowUp(Action.REROLL))


def _button_followups(custom_ids: list[str]) -> list[FollowUp]:
    """With buttons we offer exactly those we can serve, each once."""
    followups: list[FollowUp] = []
    seen: set[tuple[Action, int, str]] = set()
    for cid in custom_ids:
        followup = followup_for_custom_id(cid)
        if followup is None:
            continue
        key = (followup.action, followup.index, followup.variant)
        if key not in seen:
            seen.add(key)
            followups.append(followup)
    return followups
