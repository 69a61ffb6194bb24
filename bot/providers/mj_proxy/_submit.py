"""Starting tasks: the POST every submission shares, and the commands that need no
parent (imagine, blend, describe, shorten, face swap)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.providers.base import (
    BadResponse,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    ProviderError,
    SubmitRequest,
    SubmitResult,
    TaskSnapshot,
    TaskState,
)
from bot.providers.mj_proxy._tables import SPEED_IN_PROMPT, SUBMIT_CODES, mapping
from bot.providers.mj_proxy._wire import Wire, looks_html
from bot.vocab import BLEND_DIMENSIONS, MODES, Action


@dataclass(frozen=True)
class Accepted:
    """A submission the server took: its task id, its code (1 done, 21 waits for a modal
    or exists, 22 queued) and the whole answer."""

    task_id: str
    code: int
    data: Mapping[str, Any]

    def result(self, data: Mapping[str, Any] | None = None) -> SubmitResult:
        """As a SubmitResult, with `data` to keep with the job."""
        kept = dict(data or {})
        if self.code == 22:
            position = mapping(self.data.get("properties")).get("numberOfQueues")
            snapshot = TaskSnapshot(
                task_id=self.task_id,
                state=TaskState.QUEUED,
                queue_position=position if isinstance(position, int) else None,
                provider_status="NOT_START",
            )
            return SubmitResult(self.task_id, snapshot, kept)
        return SubmitResult(self.task_id, data=kept)


async def post_submit(
    wire: Wire, endpoint: str, body: Mapping[str, Any], what: str, mode: str | None = None
) -> Accepted:
    """POST one submission; the task the server accepted, or the typed error."""
    answer = await wire.http.send(
        "POST", wire.path(endpoint, mode), json_body=dict(body), idempotent=False
    )
    if answer.status >= 400:
        raise _refusal(wire, answer, endpoint, what, mode)
    if endpoint != "/submit/imagine" and (
        300 <= answer.status < 400 or (answer.body.strip() and looks_html(answer))
    ):
        # new-api serves its web page (200 HTML) for every route it lacks, or redirects
        # to its front end (router/web-router.go, router/main.go): the route is absent,
        # so /submit/action can fall back to /submit/change. Every server has imagine:
        # a page there is a wrong base_url, which the BadResponse below says.
        raise NotOffered(f"{wire.name} does not offer {what}.", provider=wire.name)
    data = answer.json()
    if not isinstance(data, dict):
        raise BadResponse(
            f"{wire.name} answered {what} with something unexpected: "
            f"{wire.errors.snippet(answer)!r}",
            provider=wire.name,
        )
    error = wire.errors.code_error(data, what)
    if error is not None:
        raise error
    task_id = data.get("result")
    if isinstance(task_id, list | dict) or task_id in (None, ""):
        raise BadResponse(f"{wire.name} accepted {what} but sent no task id.", provider=wire.name)
    return Accepted(str(task_id), int(data.get("code") or 1), data)


def _refusal(
    wire: Wire, answer: HttpAnswer, endpoint: str, what: str, mode: str | None
) -> ProviderError:
    """The error of a 4xx/5xx submit answer. Some servers put a proper submit answer
    into 4xx (trueai: 404 + code 3 for an unknown parent; relays: 400 + code 4): it is
    read before judging by status."""
    data = answer.json_or_none()
    coded = isinstance(data, dict) and data.get("code") in SUBMIT_CODES
    if answer.status == 404 and not coded and mode and wire.config.mode_style == "path":
        # novicezk serves only /mj (its servlet context path): /mj-relax/... is a
        # plain 404 outside it. Say how to fix it rather than "not offered".
        return NotOffered(
            f"{wire.name} has no {wire.path(endpoint, mode)} (HTTP 404): it may not "
            'take the speed in the path; set mode_style = "prompt" for it.',
            provider=wire.name,
        )
    if answer.status in (401, 403) or not coded:
        return wire.errors.status_error(answer, what)
    return wire.errors.code_error(data, what) or wire.errors.status_error(answer, what)


def request_mode(wire: Wire, request: SubmitRequest) -> str | None:
    mode = request.mode or wire.config.mode
    return mode if mode in MODES else None


def common_body(wire: Wire, request: SubmitRequest) -> dict[str, Any]:
    """The fields every submission carries."""
    body: dict[str, Any] = {"state": "atelier"}
    hook = request.callback_url or wire.config.notify_hook
    if hook:
        body["notifyHook"] = hook
    return body


async def _submit_command(
    wire: Wire, request: SubmitRequest, endpoint: str, fields: Mapping[str, Any], what: str
) -> SubmitResult:
    """A Midjourney command of its own: the common fields, which bot, which accounts."""
    body = common_body(wire, request)
    bot_type = "NIJI_JOURNEY" if "niji" in request.params else wire.config.bot_type
    body.update(fields, botType=bot_type)
    if wire.config.account_filter:
        body["accountFilter"] = dict(wire.config.account_filter)
    accepted = await post_submit(wire, endpoint, body, what, request_mode(wire, request))
    return accepted.result()


async def imagine(wire: Wire, request: SubmitRequest) -> SubmitResult:
    prompt = request.prompt.strip()
    if not prompt:
        raise PromptRejected("The prompt is empty.", provider=wire.name)
    mode = request_mode(wire, request)
    # Midjourney reads --fast/--relax/--turbo from the prompt; one is enough.
    if mode and wire.config.mode_style == "prompt" and not SPEED_IN_PROMPT.search(prompt):
        prompt = f"{prompt} --{mode}"
    fields: dict[str, Any] = {"prompt": prompt}
    if request.images:
        fields["base64Array"] = [image.data_url() for image in request.images]
    return await _submit_command(wire, request, "/submit/imagine", fields, "the prompt")


async def blend(wire: Wire, request: SubmitRequest) -> SubmitResult:
    if not 2 <= len(request.images) <= 5:
        raise PromptRejected(
            f"Blend takes 2 to 5 images; got {len(request.images)}.", provider=wire.name
        )
    dimensions = (request.dimensions or "SQUARE").upper()
    if dimensions not in BLEND_DIMENSIONS:
        raise PromptRejected(
            f"Blend dimensions must be one of {', '.join(BLEND_DIMENSIONS)}.",
            provider=wire.name,
        )
    fields = {
        "base64Array": [image.data_url() for image in request.images],
        "dimensions": dimensions,
    }
    return await _submit_command(wire, request, "/submit/blend", fields, "the blend")


async def describe(wire: Wire, request: SubmitRequest) -> SubmitResult:
    if not request.images:
        raise PromptRejected("Describe needs an image.", provider=wire.name)
    fields = {"base64": request.images[0].data_url()}
    return await _submit_command(wire, request, "/submit/describe", fields, "the describe request")


async def shorten(wire: Wire, request: SubmitRequest) -> SubmitResult:
    prompt = request.prompt.strip()
    if not prompt:
        raise PromptRejected("Shorten needs a prompt.", provider=wire.name)
    return await _submit_command(
        wire, request, "/submit/shorten", {"prompt": prompt}, "the shorten request"
    )


async def swap_face(wire: Wire, request: SubmitRequest) -> SubmitResult:
    if len(request.images) != 2:
        raise PromptRejected(
            "Face swap takes two images: the face, then the picture to put it on.",
            provider=wire.name,
        )
    body = common_body(wire, request)
    body.update(
        sourceBase64=request.images[0].data_url(),
        targetBase64=request.images[1].data_url(),
    )
    # InsightFace runs on the proxy itself: no Midjourney speed mode, plain /mj path.
    accepted = await post_submit(wire, "/insight-face/swap", body, "the face swap")
    return accepted.result()


# The submissions that need no parent task, by action.
FIRST_STEPS: Mapping[Action, Callable[[Wire, SubmitRequest], Awaitable[SubmitResult]]] = {
    Action.IMAGINE: imagine,
    Action.BLEND: blend,
    Action.DESCRIBE: describe,
    Action.SHORTEN: shorten,
    Action.SWAP_FACE: swap_face,
}
