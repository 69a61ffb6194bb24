"""Follow-ups: pressing a parent task's button (`/submit/action`, or the legacy
`/submit/change`), and answering the modal that Vary (Region), Custom Zoom and remix
open (`/submit/modal`)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from bot.providers.base import (
    NotOffered,
    PromptRejected,
    ProviderError,
    SubmitRequest,
    SubmitResult,
)
from bot.providers.mj_proxy._fetch import fetch_one
from bot.providers.mj_proxy._submit import Accepted, common_body, post_submit, request_mode
from bot.providers.mj_proxy._tables import (
    CHANGE_ACTIONS,
    ZOOM_PARAM,
    followup_for_custom_id,
    mapping,
    text_of,
)
from bot.providers.mj_proxy._wire import Wire
from bot.vocab import Action


@dataclass(frozen=True)
class ModalWait:
    """How long a press waits for its task to reach MODAL, and how often it looks."""

    seconds: float
    poll: float


@dataclass(frozen=True)
class Pressed:
    """A follow-up the server took, and the task ids whose modal we answered."""

    result: SubmitResult
    modal_answered: frozenset[str] = frozenset()


def make_mask(size: tuple[int, int], regions: Sequence[tuple[float, float, float, float]]) -> str:
    """A PNG data URL: black image of `size`, white rectangles where Midjourney redraws."""
    width, height = size
    mask = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(mask)
    for x0, y0, x1, y1 in regions:
        left, right = sorted((x0, x1))
        top, bottom = sorted((y0, y1))
        box = (
            max(0, round(left * width)),
            max(0, round(top * height)),
            min(width, round(right * width)) - 1,
            min(height, round(bottom * height)) - 1,
        )
        if box[2] >= box[0] and box[3] >= box[1]:
            draw.rectangle(box, fill=(255, 255, 255))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def custom_id_for(request: SubmitRequest) -> str:
    """The parent's own customId for the wanted button, or "" when it sent none."""
    if request.ref.startswith("MJ::"):
        return request.ref
    buttons = request.parent_extra.get("buttons") if request.parent_extra else None
    if not isinstance(buttons, list):
        return ""
    for button in buttons:
        custom_id = mapping(button).get("customId")
        if not isinstance(custom_id, str):
            continue
        followup = followup_for_custom_id(custom_id)
        if (
            followup is not None
            and followup.action == request.action
            and followup.index == (request.index if followup.index else 0)
            and followup.variant == (request.variant if followup.variant else "")
        ):
            return custom_id
    return ""


def image_size(request: SubmitRequest) -> tuple[int, int] | None:
    """The size of the image a Vary (Region) acts on: measured by the engine, else as
    the server reported it."""
    if request.parent_image_size:
        width, height = request.parent_image_size
        if width > 0 and height > 0:
            return int(width), int(height)
    extra = request.parent_extra or {}
    wide, high = extra.get("width"), extra.get("height")
    if isinstance(wide, int) and isinstance(high, int) and wide > 0 and high > 0:
        return wide, high
    return None


def _check_input(wire: Wire, request: SubmitRequest) -> None:
    if not request.parent_task_id:
        raise PromptRejected(
            f"{request.action.value} needs the job it acts on.", provider=wire.name
        )
    if request.action in (Action.UPSCALE, Action.VARIATION) and not 1 <= request.index <= 4:
        raise PromptRejected("Pick image 1, 2, 3 or 4.", provider=wire.name)
    if request.action == Action.INPAINT:
        if not request.regions:
            raise PromptRejected(
                "Vary (Region) needs at least one selected region.", provider=wire.name
            )
        if image_size(request) is None:
            raise PromptRejected(
                "Vary (Region) needs the size of the image to draw its mask.",
                provider=wire.name,
            )


def _needs_modal(request: SubmitRequest) -> bool:
    return request.action == Action.INPAINT or (
        request.action == Action.ZOOM and request.variant == "custom"
    )


async def press(wire: Wire, request: SubmitRequest, wait: ModalWait) -> Pressed:
    """Press the parent's button for `request`, answering its modal where one opens."""
    _check_input(wire, request)
    parent = str(request.parent_task_id)
    mode = request_mode(wire, request)
    custom_id = custom_id_for(request)
    what = f"the {request.action.value} request"
    if custom_id:
        body = common_body(wire, request)
        body.update(taskId=parent, customId=custom_id)
        try:
            accepted = await post_submit(wire, "/submit/action", body, what, mode)
        except NotOffered:
            # novicezk has no /submit/action; U/V/🔄 still work through /submit/change.
            if request.action not in CHANGE_ACTIONS:
                raise
            accepted = await _change(wire, request, parent, mode, what)
    elif request.action in CHANGE_ACTIONS:
        accepted = await _change(wire, request, parent, mode, what)
    else:
        raise NotOffered(
            f"{wire.name} did not offer a {request.action.value} button on that image.",
            provider=wire.name,
        )
    if await _opens_modal(wire, request, accepted, what, wait):
        return await _complete_modal(wire, request, accepted.task_id, what)
    return Pressed(accepted.result())


async def _opens_modal(
    wire: Wire, request: SubmitRequest, accepted: Accepted, what: str, wait: ModalWait
) -> bool:
    """Whether the pressed task now waits for /submit/modal."""
    if _needs_modal(request):
        # Vary (Region) and Custom Zoom always lead to MODAL; 21 says it is there now.
        # Relays may rewrite 21 to 1: then the task status is the only reliable sign.
        # False: it finished without asking, take it as it is.
        return accepted.code == 21 or await _wait_for_modal(wire, accepted.task_id, what, wait)
    if accepted.code != 21:
        return False
    # 21 is "exists" on novicezk but "waits for a remix modal" on plus/trueai.
    if _says_modal(accepted.data):
        return True
    task = await fetch_one(wire, accepted.task_id)
    return task is not None and str(task.get("status") or "").upper() == "MODAL"


async def _change(
    wire: Wire, request: SubmitRequest, parent: str, mode: str | None, what: str
) -> Accepted:
    body = common_body(wire, request)
    # new-api relays reject /change without an index, even for REROLL: send 1 there.
    index = request.index if request.action != Action.REROLL else 1
    body.update(taskId=parent, action=CHANGE_ACTIONS[request.action], index=index)
    return await post_submit(wire, "/submit/change", body, what, mode)


def _says_modal(data: Any) -> bool:
    props = mapping(mapping(data).get("properties"))
    status = str(props.get("status") or "").upper()
    return status == "MODAL" or bool(props.get("remix"))


async def _wait_for_modal(wire: Wire, task_id: str, what: str, wait: ModalWait) -> bool:
    """True once the task waits for its modal; False if it finished without one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait.seconds
    status = "?"
    while True:
        task = await fetch_one(wire, task_id)
        if task is not None:
            status = str(task.get("status") or "").upper()
            if status == "MODAL":
                return True
            if status in ("FAILURE", "CANCEL"):
                reason = text_of(task.get("failReason")) or status.lower()
                raise ProviderError(
                    f"{wire.name} stopped {what}: {wire.errors.scrub(reason)}",
                    provider=wire.name,
                )
            if status == "SUCCESS":
                return False
        if loop.time() >= deadline:
            raise ProviderError(
                f"{wire.name} accepted {what} (task {task_id}) but never asked for the "
                f"region or zoom within {wait.seconds:g} s (last status {status or '?'});"
                " it may be stuck, try again.",
                provider=wire.name,
            )
        await asyncio.sleep(wait.poll)


async def _parent_prompt(wire: Wire, request: SubmitRequest) -> str:
    if request.prompt.strip():
        return request.prompt.strip()
    extra = request.parent_extra or {}
    for key in ("prompt", "finalPrompt"):
        if text_of(extra.get(key)):
            return text_of(extra.get(key))
    if request.parent_task_id:
        task = await fetch_one(wire, str(request.parent_task_id))
        if task is not None:
            props = mapping(task.get("properties"))
            for value in (task.get("prompt"), task.get("promptEn"), props.get("finalPrompt")):
                if text_of(value):
                    return text_of(value)
    return ""


async def _complete_modal(
    wire: Wire, request: SubmitRequest, modal_task_id: str, what: str
) -> Pressed:
    prompt = await _parent_prompt(wire, request)
    if request.action == Action.ZOOM and request.variant == "custom":
        zoom = str(request.params.get("zoom") or "2")
        prompt = ZOOM_PARAM.sub("", f" {prompt}").strip()
        prompt = f"{prompt} --zoom {zoom}".strip()
    if not prompt:
        # trueai refuses a modal without a prompt; an empty one would fail there anyway.
        raise PromptRejected(f"{what} needs a prompt.", provider=wire.name)
    body: dict[str, Any] = {"taskId": modal_task_id, "prompt": prompt}
    if request.action == Action.INPAINT:
        size = image_size(request)
        assert size is not None  # checked before anything was sent
        body["maskBase64"] = make_mask(size, request.regions)
    accepted = await post_submit(wire, "/submit/modal", body, what, request_mode(wire, request))
    task_id = accepted.task_id or modal_task_id
    result = Accepted(task_id, accepted.code, accepted.data).result()
    return Pressed(result, frozenset({modal_task_id, accepted.task_id}))
