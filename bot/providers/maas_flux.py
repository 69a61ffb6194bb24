"""Cloudsway MaaS-Flux-1-schnell: text to image, nothing more.

    POST {base_url}/{endpoint}/images/generations
         {prompts, batchsize 1-8, aspect_ratio, step 4-10, seed (0 = random)}
         -> {"status": "success", "taskId": "..."}
    GET  {base_url}/{endpoint}/images/tasks/{taskId}
         -> {"status": "...", "completed": true|false, "imageUrls": [...]}

There is no progress figure, no upscale, no variation, no inpaint. What Atelier offers on
top: U1-U4 pick one of the images already there (no call), and 🔄 is a new generation of
the same prompt with a new seed.

The prompt's words go to ``prompts``; of the Midjourney-style parameters only those with
a field here are taken (--ar, --seed, --steps), and the prompt rules refuse the rest
before anything is sent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from bot.config import MaasFluxConfig
from bot.providers.base import (
    BadResponse,
    FollowUp,
    How,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    ProviderError,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskSnapshot,
    TaskState,
    json_words,
    safe_text,
)
from bot.providers.cloudsway import CloudswayProvider, ErrorWords
from bot.vocab import Action, Param

# Aspect ratio -> output size, as the vendor documents them.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (512, 768),
    "3:2": (768, 512),
    "3:4": (768, 1024),
    "4:3": (1024, 768),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
}
STEPS_MIN, STEPS_MAX = 4, 10
SEED_MAX = 4294967295
ACCEPTED_PARAMS = frozenset(
    {Param.ASPECT, Param.SEED, Param.STEPS}
)  # the only ones with a field here

_SUPPORT: dict[Action, Support] = {
    Action.IMAGINE: Support(How.NATIVE),
    Action.REROLL: Support(How.EMULATED, "new generation of the same prompt, new seed"),
    Action.UPSCALE: Support(How.SELECT),
}
_FAILED_WORDS = ("fail", "error", "cancel", "reject", "timeout", "expired")
_QUEUED_WORDS = ("queue", "pending", "wait", "submit", "created")


class MaasFluxProvider(CloudswayProvider[MaasFluxConfig]):
    kind: ClassVar[str] = "maas-flux"
    features = frozenset()  # no progress, no cancel, no batch fetch
    accepted_params = ACCEPTED_PARAMS
    max_images = 0  # text only
    default_poll_interval = 2.0  # schnell takes seconds
    task_path = "/images/tasks/"
    id_key, urls_key = "taskId", "imageUrls"  # selected images offer nothing further
    # Flux's vendor says "task"; its bare 400s and 403s carry no guessed cause, and with no
    # optional calls to find out about, a 405 is a plain error here.
    error_words = ErrorWords(noun="task", bare_400="", bare_403="", offers_405=False)

    def supports(self, action: Action) -> Support | None:
        return _SUPPORT.get(action)

    # ------------------------------------------------------------------ submit

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self._need_key()
        if request.action is Action.UPSCALE:
            snap = self.select(request.parent_task_id or "", request.parent_extra, request.index)
            return SubmitResult(snap.task_id, snap)
        if request.action not in (Action.IMAGINE, Action.REROLL):
            raise NotOffered(
                f"{self.name} (Flux) does not offer {request.action.value.replace('_', ' ')}.",
                provider=self.name,
            )
        body = self.request_body(request)
        answer = await self._send("POST", "/images/generations", body, idempotent=False)
        if answer.status >= 300:
            raise self._error(answer)
        data = answer.json()
        status = str(data.get("status") or "") if isinstance(data, dict) else ""
        task_id = str(data.get("taskId") or "") if isinstance(data, dict) else ""
        if status.lower() != "success" or not task_id:
            words = _words(data, self._secrets()) or safe_text(status, self._secrets())
            words = words or "no task id"
            raise ProviderError(f"{self.name} did not accept the job: {words}.", provider=self.name)
        return SubmitResult(
            task_id,
            TaskSnapshot(task_id, TaskState.SUBMITTED, provider_status=status,
                         extra={"taskId": task_id}),
        )  # fmt: skip

    def validate(self, request: SubmitRequest) -> None:
        if request.action in (Action.IMAGINE, Action.REROLL):
            self.request_body(request)  # raises PromptRejected naming what cannot be sent

    def request_body(self, request: SubmitRequest) -> dict[str, Any]:
        """The generation body for a request; PromptRejected names what cannot be sent."""
        if request.images or request.image_urls:
            raise PromptRejected(
                f"{self.name} (Flux) cannot use image prompts; remove the image URLs.",
                provider=self.name,
            )
        words = request.text.strip()
        if not words:
            raise PromptRejected("The prompt has no words to draw.", provider=self.name)
        params = request.params
        body: dict[str, Any] = {
            "prompts": words,
            "batchsize": self.config.batchsize,  # int (the vendor's example sends a string)
            "aspect_ratio": self._aspect(params.get("aspect"), request.prompt),
            "step": self._ranged(params.get("steps"), "--steps", STEPS_MIN, STEPS_MAX,
                                 self.config.steps),
            "seed": self._ranged(params.get("seed"), "--seed", 0, SEED_MAX, 0),
        }  # fmt: skip
        if request.action is Action.REROLL:
            body["seed"] = 0  # a reroll wants new images: 0 asks for a random seed
        return body

    def _aspect(self, value: str | None, prompt: str = "") -> str:
        if not value:
            return "1:1"
        ratio = _reduced(value)
        if ratio in ASPECT_RATIOS:
            return ratio
        typed = _typed(prompt, ("ar", "aspect")) or value
        raise PromptRejected(
            f"{self.name} (Flux) draws only these aspect ratios: "
            f"{', '.join(ASPECT_RATIOS)}; --ar {typed} is not one of them.",
            provider=self.name,
        )

    def _ranged(self, value: str | None, flag: str, low: int, high: int, default: int) -> int:
        if value is None or value == "":
            return default
        try:
            number = int(str(value).strip())
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise PromptRejected(
                f"{self.name} (Flux) takes {flag} from {low} to {high}, not {value}.",
                provider=self.name,
            )
        return number

    # ------------------------------------------------------------------ fetch

    def _read_task(self, answer: HttpAnswer, task_id: str) -> TaskSnapshot:
        data = answer.json()
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name} sent a task that is not an object.",
                              provider=self.name)  # fmt: skip
        return self.snapshot(task_id, data)

    def snapshot(self, task_id: str, data: Mapping[str, Any]) -> TaskSnapshot:
        # The vendor's word reaches users (failure), logs and `jobs`: scrubbed.
        status = safe_text(str(data.get("status") or ""), self._secrets(), 80)
        completed = data.get("completed")
        if isinstance(completed, str):
            completed = completed.strip().lower() == "true"
        raw_urls = data.get("imageUrls") or []
        if not isinstance(raw_urls, list):
            raise BadResponse(f"{self.name} sent imageUrls that are not a list.",
                              provider=self.name)  # fmt: skip
        urls = [str(u).strip() for u in raw_urls if u and str(u).strip()]
        snap = TaskSnapshot(task_id, TaskState.RUNNING, provider_status=status,
                            extra={"taskId": task_id})  # fmt: skip
        folded = status.lower()
        if any(word in folded for word in _FAILED_WORDS):
            snap.state = TaskState.FAILED
            detail = _words(data, self._secrets())
            snap.failure = f"Flux reported the job as {status}" + (f": {detail}" if detail else ".")
        elif completed is True:
            if urls:
                snap.state = TaskState.SUCCEEDED
                snap.image_urls = urls
                snap.extra["imageUrls"] = urls
                # U1-U4 only when there is a choice; with batchsize > 4 the images after
                # the fourth are still saved and shown, but have no button.
                if len(urls) > 1:
                    shown = range(1, min(len(urls), 4) + 1)
                    snap.followups = [FollowUp(Action.UPSCALE, index=n) for n in shown]
                snap.followups.append(FollowUp(Action.REROLL))
            else:
                snap.state = TaskState.FAILED
                snap.failure = "Flux finished the job without any image."
        elif any(word in folded for word in _QUEUED_WORDS):
            snap.state = TaskState.QUEUED
        return snap


def _typed(prompt: str, names: tuple[str, ...]) -> str:
    """A parameter's value as the user typed it (the engine hands us normalised values)."""
    match = re.search(rf"(?:--|\u2014)(?:{'|'.join(names)})\s+(\S+)", prompt)
    return match.group(1) if match else ""


def _reduced(value: str) -> str:
    """'32:18' -> '16:9'; anything unreadable is returned as given."""
    try:
        left, right = (int(part) for part in value.strip().split(":"))
    except ValueError:
        return value.strip()
    if left <= 0 or right <= 0:
        return value.strip()
    common = math.gcd(left, right)
    return f"{left // common}:{right // common}"


def _words(data: Any, secrets: Sequence[str]) -> str:
    """The vendor's own words in an answer, scrubbed, without a closing full stop (the
    sentences they go into add their own)."""
    return json_words(data, secrets).rstrip(".")
