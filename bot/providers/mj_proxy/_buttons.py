"""Follow-ups: pressing a parent task's button (`/submit/action`, or the legacy
`/submit/change`), and answering the modal that Vary (Region), Custom Zoom and remix
open (`/submit/modal`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bot import media
from bot.providers.base import (
    ImageInput,
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
    MODAL_ANSWERED,
    ZOOM_PARAM,
    followup_for_custom_id,
    mapping,
    text_of,
)
from bot.providers.mj_proxy._wire import Wire
from bot.vocab import VIDEO_ACTIONS, Action

Region = tuple[float, float, float, float]  # fractions of the image: x0, y0, x1, y1
Polygon = tuple[tuple[float, float], ...]  # a lasso: its (x, y) fractions, in order

# new-api relays pass Midjourney's video buttons through but their /submit/action knows
# none of them: `unknown_action:<customId>` (CoverPlusActionToNormalAction).
UNKNOWN_ACTION = "unknown_action"


class VideoRefused(NotOffered):
    """The server will not press video buttons: the provider stops offering them."""


@dataclass(frozen=True)
class ModalWait:
    """How long a press waits for its task to reach MODAL, and how often it looks."""

    seconds: float
    poll: float


# Midjourney's largest image is 4096 px a side (a 4x upscale of v5); Vary (Region) acts on a
# U1-U4 image, smaller still. The size comes from the store (the engine's measure of the
# image, or the server's own width/height), so a corrupt or hand-edited row could ask for
# any size: uncapped, 20000 x 20000 would be 1.2 GB of pixels drawn for one request.
# Capped, the mask keeps the image's shape, so the regions (fractions of the image) still
# fall where the user drew them.
MASK_MAX_SIDE = 4096


def mask_size(size: tuple[int, int]) -> tuple[int, int]:
    """The mask's (width, height): the image's, scaled down to fit MASK_MAX_SIDE."""
    width, height = size
    scale = min(1.0, MASK_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def drawn_regions(request: SubmitRequest, size: tuple[int, int]) -> list[Region]:
    """The regions that are areas of the image (media.pixel_box: clamped, rounded
    outwards, so a thin one keeps a pixel); a click with no width or height is not."""
    return [r for r in request.regions if media.pixel_box(r, size) is not None]


def drawn_polygons(request: SubmitRequest, size: tuple[int, int]) -> list[Polygon]:
    """The lassos with a pixel of the image in them (all, once the engine checked them:
    the mask draws a lasso's outline too, so a thin one keeps its pixels)."""
    return [p for p in request.polygons if media.pixel_polygon(p, size)]


async def mask_data_url(request: SubmitRequest, size: tuple[int, int]) -> str:
    """The `maskBase64` of a Vary (Region) on an image of `size`: media.region_mask's PNG
    (white where Midjourney redraws: the rectangles and the lassos), drawn off the event
    loop, at the image's own size."""
    bounded = mask_size(size)
    png = await media.a_region_mask(
        bounded, drawn_regions(request, bounded), drawn_polygons(request, bounded)
    )
    return ImageInput(png).data_url()


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
        if not request.regions and not request.polygons:
            raise PromptRejected(
                "Vary (Region) needs at least one selected region.", provider=wire.name
            )
        size = image_size(request)
        if size is None:
            raise PromptRejected(
                "Vary (Region) needs the size of the image to draw its mask.",
                provider=wire.name,
            )
        bounded = mask_size(size)
        if not drawn_regions(request, bounded) and not drawn_polygons(request, bounded):
            raise PromptRejected(
                "Vary (Region) needs at least one selected region with a width and a height.",
                provider=wire.name,
            )


def _needs_modal(request: SubmitRequest) -> bool:
    return request.action == Action.INPAINT or (
        request.action == Action.ZOOM and request.variant == "custom"
    )


async def press(wire: Wire, request: SubmitRequest, wait: ModalWait) -> SubmitResult:
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
        except ProviderError as err:
            if request.action in VIDEO_ACTIONS and UNKNOWN_ACTION in err.message:
                raise VideoRefused(
                    f"{wire.name} does not serve Midjourney's video buttons (it answered "
                    f"{UNKNOWN_ACTION}); Atelier stops offering them there.",
                    provider=wire.name,
                ) from None
            raise
    elif request.action in CHANGE_ACTIONS:
        accepted = await _change(wire, request, parent, mode, what)
    else:
        raise NotOffered(
            f"{wire.name} did not offer a {request.action.value} button on that image.",
            provider=wire.name,
        )
    if await _opens_modal(wire, request, accepted, what, wait):
        return await _complete_modal(wire, request, accepted.task_id, what)
    return accepted.result()


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
) -> SubmitResult:
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
        body["maskBase64"] = await mask_data_url(request, size)
    accepted = await post_submit(wire, "/submit/modal", body, what, request_mode(wire, request))
    # Both ids: servers answer with the modal task's own id or with a new one.
    answered = sorted({modal_task_id, accepted.task_id})
    return accepted.result({MODAL_ANSWERED: answered})
