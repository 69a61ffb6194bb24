"""What midjourney-proxy's words mean: status words, button customIds, answer codes and
the phrases servers send instead of codes. Data, and the small readers that use it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.providers.base import FollowUp, TaskState
from bot.vocab import MIDJOURNEY_PARAMS, VIDEO_ACTIONS, Action, Param

# Passed through in the prompt: Midjourney's own, and --zoom for Custom Zoom's modal.
# Not `steps`: that is a Flux setting Midjourney rejects.
MJ_PARAM_NAMES: frozenset[str] = MIDJOURNEY_PARAMS | {Param.ZOOM}

# Actions served by pressing one of the task's own buttons.
BUTTON_ACTIONS = frozenset(
    {
        Action.UPSCALE, Action.VARIATION, Action.REROLL, Action.UPSCALE_SUBTLE,
        Action.UPSCALE_CREATIVE, Action.VARY_SUBTLE, Action.VARY_STRONG, Action.ZOOM,
        Action.PAN, Action.INPAINT, Action.MAKE_SQUARE,
    }
) | VIDEO_ACTIONS  # fmt: skip
# Actions that start a task of their own (no parent), whatever the server.
FIRST_ACTIONS = frozenset({Action.IMAGINE, Action.DESCRIBE, Action.BLEND})
# Only midjourney-proxy-plus and trueai have these (`plus_extras`).
PLUS_ACTIONS = frozenset({Action.SHORTEN, Action.SWAP_FACE})
# The legacy /submit/change covers only these three (U1-4, V1-4, 🔄).
CHANGE_ACTIONS = {
    Action.UPSCALE: "UPSCALE",
    Action.VARIATION: "VARIATION",
    Action.REROLL: "REROLL",
}
# Our actions whose answer is text (prompts), not an image.
TEXT_ACTIONS = frozenset({Action.DESCRIBE, Action.SHORTEN})
TEXT_SERVER_ACTIONS = frozenset({"DESCRIBE", "SHORTEN"})

STATES = {
    "NOT_START": TaskState.QUEUED,
    "SUBMITTED": TaskState.SUBMITTED,
    "IN_PROGRESS": TaskState.RUNNING,
    "SUCCESS": TaskState.SUCCEEDED,
    "FAILURE": TaskState.FAILED,
    "MODAL": TaskState.NEEDS_INPUT,
    "CANCEL": TaskState.CANCELLED,
    "": TaskState.SUBMITTED,  # relays store "" until their first upstream poll
}

# Server action names whose successful result is one 2x2 grid. Used only when the task has
# no buttons to tell (a grid offers U1-U4; a single image does not).
GRID_SERVER_ACTIONS = frozenset(
    {
        "IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "OUTPAINT", "CUSTOM_ZOOM", "PAN",
        "INPAINT", "HIGH_VARIATION", "LOW_VARIATION", "MODAL",
    }
)  # fmt: skip
SINGLE_OUR_ACTIONS = frozenset(
    {Action.UPSCALE, Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE, Action.SWAP_FACE}
)
# Server actions after which a grid without buttons may still be served through /change.
CHANGEABLE_SERVER_ACTIONS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND"})


@dataclass(frozen=True)
class ButtonKind:
    """One kind of Midjourney button, told by its customId (<h> is Midjourney's job hash)."""

    pattern: str  # a regular expression matched at the customId's start (re caches it)
    action: Action
    variant: str = ""  # a fixed variant: Zoom Out 2x is "2"
    numbered: bool = False  # the match's group 1 is the image number (U1-U4, V1-V4)
    named: bool = False  # the match's group 1 is the variant (the pan direction)


# Midjourney customIds -> our follow-ups; buttons not listed are not offered.
BUTTON_KINDS: tuple[ButtonKind, ...] = (
    ButtonKind(r"MJ::JOB::upsample::([1-4])::", Action.UPSCALE, numbered=True),
    ButtonKind(r"MJ::JOB::variation::([1-4])::", Action.VARIATION, numbered=True),
    ButtonKind(r"MJ::JOB::reroll::", Action.REROLL),
    # v6: upsample_v6_2x_subtle, v6.1: upsample_v6r1_2x_subtle, v7: upsample_v7_2x_subtle.
    ButtonKind(r"MJ::JOB::(?:upsample_)?v\w+?_2x_subtle::", Action.UPSCALE_SUBTLE),
    ButtonKind(r"MJ::JOB::(?:upsample_)?v\w+?_2x_creative::", Action.UPSCALE_CREATIVE),
    ButtonKind(r"MJ::JOB::low_variation::", Action.VARY_SUBTLE),
    ButtonKind(r"MJ::JOB::high_variation::", Action.VARY_STRONG),
    ButtonKind(r"MJ::Inpaint::", Action.INPAINT),
    ButtonKind(r"MJ::Outpaint::50::", Action.ZOOM, variant="2"),
    ButtonKind(r"MJ::Outpaint::75::", Action.ZOOM, variant="1.5"),
    # Make Square is an outpaint to 100 % of the long side (offered on non-square upscales).
    ButtonKind(r"MJ::Outpaint::100::", Action.MAKE_SQUARE),
    ButtonKind(r"MJ::CustomZoom::", Action.ZOOM, variant="custom"),
    ButtonKind(r"MJ::JOB::pan_(left|right|up|down)::", Action.PAN, named=True),
    # Video (trueai: CustomComponentModel.CreateAnimateButtons on an upscale, then
    # TaskInfo.SetVideoUpscaleButtons / SetVideoExtendButtons; Discord accounts pass
    # Midjourney's own through). U1-U4 of a video grid pick one video, as U1-U4 do images.
    ButtonKind(r"MJ::JOB::animate_high::", Action.ANIMATE_HIGH),
    ButtonKind(r"MJ::JOB::animate_low::", Action.ANIMATE_LOW),
    ButtonKind(r"MJ::JOB::animate_high_extend::", Action.EXTEND_HIGH),
    ButtonKind(r"MJ::JOB::animate_low_extend::", Action.EXTEND_LOW),
    ButtonKind(r"MJ::JOB::video_virtual_upscale::([1-4])::", Action.UPSCALE, numbered=True),
)
# Server action words of a task that makes video (trueai: TaskAction.VIDEO for every
# animate_* button, extend included; VIDEO_EXTEND for its /submit/video extend).
VIDEO_SERVER_ACTIONS = frozenset({"VIDEO", "VIDEO_EXTEND"})
# A video grid's U1-U4, and a selected video's Extend buttons: the task is video.
VIDEO_GRID_BUTTON = "MJ::JOB::video_virtual_upscale::"
VIDEO_SINGLE_BUTTON = re.compile(r"MJ::JOB::animate_(?:high|low)_extend::")

# Codes of the submit answer (REFERENCE.md; 30: new-api's "group saturated", 5: new-api's
# MjErrorUnknown, its upstream failed (constant/midjourney.go); -1: trueai).
SUBMIT_CODES = frozenset({-1, 1, 3, 4, 5, 9, 21, 22, 23, 24, 30})

# Describe and shorten number their answers with keycap emojis: 1️⃣ ... 5️⃣.
KEYCAP = re.compile(r"[1-9]\ufe0f?\u20e3")
ZOOM_PARAM = re.compile(r"\s--zoom\s+\S+", re.IGNORECASE)
SPEED_IN_PROMPT = re.compile(r"(?:^|\s)--(?:fast|relax|turbo)\b")
# Words servers use for "no such task" (code 3 means that, or "no account available").
TASK_MISSING = re.compile(r"任务|task|不存在|not[ _]?found|no[ _]found", re.IGNORECASE)
# new-api's own "no such task" under code 4: task_not_found (submit), task_no_found (fetch,
# image-seed), midjourney_task_not_found (relay/mjproxy_handler.go).
RELAY_TASK_MISSING = re.compile(r"task_not?_found", re.IGNORECASE)
# "Full, come back later" in words, whatever the code: trueai never sends 23 but code 9
# "提交失败，队列已满，请稍后重试" (DiscordService.RedisEnqueue) and, for its per-user caps,
# code 4 or {"success": false} with "并发数已达上限" / "队列数已达上限" (SubmitController.NewTask).
BUSY = re.compile(
    r"队列已满|队列数已达上限|并发数已达上限|负载已饱和|queue (?:is )?full|too many requests",
    re.IGNORECASE,
)
# new-api's 403 for a key that may not use an action's model ("mj_imagine", "swap_face").
MODEL_FORBIDDEN = re.compile(r"模型|\bmodels?\b|\bmj_\w+|swap_face", re.IGNORECASE)
# trueai's cancel marks the task FAILURE with this reason (TaskController.Cancel).
CANCEL_REASONS = frozenset({"取消任务"})
# The key, in the job's provider data, of the task ids whose /submit/modal we sent: a MODAL
# status after that is stale, not a new question (trueai keeps MODAL until its queue starts
# the task; new-api answers /fetch from the task's first row, which stays MODAL until the
# job is done). Kept with the job, it holds across a restart.
MODAL_ANSWERED = "modalAnswered"
# Which of two rows for one task id is further along (new-api keeps a second row after
# /submit/modal and list-by-condition returns both).
STATUS_RANK = {"MODAL": 0, "": 1, "NOT_START": 2, "SUBMITTED": 3, "IN_PROGRESS": 4}


def followup_for_custom_id(custom_id: str) -> FollowUp | None:
    """Our follow-up for one Midjourney button, or None for buttons we do not model
    (❤️ bookmark, ...)."""
    for kind in BUTTON_KINDS:
        match = re.match(kind.pattern, custom_id)
        if match is None:
            continue
        if kind.numbered:
            return FollowUp(kind.action, index=int(match.group(1)), ref=custom_id)
        variant = match.group(1) if kind.named else kind.variant
        return FollowUp(kind.action, variant=variant, ref=custom_id)
    return None


def text_of(value: Any) -> str:
    """A server's string field, stripped; "" for anything that is not a string."""
    return value.strip() if isinstance(value, str) else ""


def mapping(value: Any) -> Mapping[str, Any]:
    """A server's object field (`properties`, a button), or {} when it is not an object."""
    return value if isinstance(value, dict) else {}
