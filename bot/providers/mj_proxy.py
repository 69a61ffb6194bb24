"""The midjourney-proxy family: novicezk, trueai-org, midjourney-proxy-plus, new-api relays
and the aggregators built on them (佩奇/aigc369, ...). One protocol under `/mj`.

The servers disagree on details, so this adapter codes for all of them (see REFERENCE.md
section 1): three auth header styles, mode by path or by prompt, buttons by `customId`
(`/submit/action`) with the legacy `/submit/change` as fallback, MODAL tasks that wait for
`/submit/modal`, two error shapes, and three ways of saying "unknown task".
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageDraw

from bot.config import MjProxyConfig
from bot.providers.base import (
    BadKey,
    BadResponse,
    CheckResult,
    Feature,
    FollowUp,
    How,
    HttpAnswer,
    ImageTooLarge,
    NotOffered,
    PromptRejected,
    Provider,
    ProviderError,
    ProviderHttp,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskNotFound,
    TaskRef,
    TaskSnapshot,
    TaskState,
)
from bot.vocab import BLEND_DIMENSIONS, MIDJOURNEY_PARAMS, MODES, Action, Param

log = logging.getLogger(__name__)

# Passed through in the prompt: Midjourney's own, and --zoom for Custom Zoom's modal.
# Not `steps`: that is a Flux setting Midjourney rejects.
MJ_PARAM_NAMES: frozenset[str] = MIDJOURNEY_PARAMS | {Param.ZOOM}


# Actions served by pressing one of the task's own buttons.
_BUTTON_ACTIONS = frozenset(
    {
        Action.UPSCALE, Action.VARIATION, Action.REROLL, Action.UPSCALE_SUBTLE,
        Action.UPSCALE_CREATIVE, Action.VARY_SUBTLE, Action.VARY_STRONG, Action.ZOOM,
        Action.PAN, Action.INPAINT,
    }
)  # fmt: skip
# The legacy /submit/change covers only these three (U1-4, V1-4, 🔄).
_CHANGE_ACTIONS = {
    Action.UPSCALE: "UPSCALE",
    Action.VARIATION: "VARIATION",
    Action.REROLL: "REROLL",
}

_STATES = {
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
_GRID_SERVER_ACTIONS = frozenset(
    {
        "IMAGINE", "VARIATION", "REROLL", "BLEND", "ZOOM", "OUTPAINT", "CUSTOM_ZOOM", "PAN",
        "INPAINT", "HIGH_VARIATION", "LOW_VARIATION", "MODAL",
    }
)  # fmt: skip
_SINGLE_OUR_ACTIONS = frozenset(
    {Action.UPSCALE, Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE, Action.SWAP_FACE}
)
# Server actions after which a grid without buttons may still be served through /change.
_CHANGEABLE_SERVER_ACTIONS = frozenset({"IMAGINE", "VARIATION", "REROLL", "BLEND"})

# Midjourney customIds -> our follow-ups. <h> is Midjourney's job hash.
_CUSTOM_IDS: tuple[tuple[re.Pattern[str], Action, str], ...] = (
    (re.compile(r"MJ::JOB::upsample::([1-4])::"), Action.UPSCALE, "index"),
    (re.compile(r"MJ::JOB::variation::([1-4])::"), Action.VARIATION, "index"),
    (re.compile(r"MJ::JOB::reroll::"), Action.REROLL, ""),
    # v6: upsample_v6_2x_subtle, v6.1: upsample_v6r1_2x_subtle, v7: upsample_v7_2x_subtle.
    (re.compile(r"MJ::JOB::(?:upsample_)?v\w+?_2x_subtle::"), Action.UPSCALE_SUBTLE, ""),
    (re.compile(r"MJ::JOB::(?:upsample_)?v\w+?_2x_creative::"), Action.UPSCALE_CREATIVE, ""),
    (re.compile(r"MJ::JOB::low_variation::"), Action.VARY_SUBTLE, ""),
    (re.compile(r"MJ::JOB::high_variation::"), Action.VARY_STRONG, ""),
    (re.compile(r"MJ::Inpaint::"), Action.INPAINT, ""),
    (re.compile(r"MJ::Outpaint::50::"), Action.ZOOM, "2"),
    (re.compile(r"MJ::Outpaint::75::"), Action.ZOOM, "1.5"),
    (re.compile(r"MJ::CustomZoom::"), Action.ZOOM, "custom"),
    (re.compile(r"MJ::JOB::pan_(left|right|up|down)::"), Action.PAN, "variant"),
)

# Codes of the submit answer (REFERENCE.md; 30: new-api's "group saturated", 5: new-api's
# MjErrorUnknown, its upstream failed (constant/midjourney.go); -1: trueai).
_SUBMIT_CODES = frozenset({-1, 1, 3, 4, 5, 9, 21, 22, 23, 24, 30})

# Describe and shorten number their answers with keycap emojis: 1️⃣ ... 5️⃣.
_KEYCAP = re.compile(r"[1-9]\ufe0f?\u20e3")
_ZOOM_PARAM = re.compile(r"\s--zoom\s+\S+", re.IGNORECASE)
# Words servers use for "no such task" (code 3 means that, or "no account available").
_TASK_MISSING = re.compile(r"任务|task|不存在|not[ _]?found|no[ _]found", re.IGNORECASE)
# new-api's own "no such task" under code 4: task_not_found (submit), task_no_found (fetch,
# image-seed), midjourney_task_not_found (relay/mjproxy_handler.go).
_RELAY_TASK_MISSING = re.compile(r"task_not?_found", re.IGNORECASE)
# "Full, come back later" in words, whatever the code: trueai never sends 23 but code 9
# "提交失败，队列已满，请稍后重试" (DiscordService.RedisEnqueue) and, for its per-user caps,
# code 4 or {"success": false} with "并发数已达上限" / "队列数已达上限" (SubmitController.NewTask).
_BUSY = re.compile(
    r"队列已满|队列数已达上限|并发数已达上限|负载已饱和|queue (?:is )?full|too many requests",
    re.IGNORECASE,
)
# new-api's 403 for a key that may not use an action's model ("mj_imagine", "swap_face").
_MODEL_FORBIDDEN = re.compile(r"模型|\bmodels?\b|\bmj_\w+|swap_face", re.IGNORECASE)
# trueai's cancel marks the task FAILURE with this reason (TaskController.Cancel).
_CANCEL_REASONS = frozenset({"取消任务"})
# Which of two rows for one task id is further along (new-api keeps a second row after
# /submit/modal and list-by-condition returns both).
_STATUS_RANK = {"MODAL": 0, "": 1, "NOT_START": 2, "SUBMITTED": 3, "IN_PROGRESS": 4}


def followup_for_custom_id(custom_id: str) -> FollowUp | None:
    """Our follow-up for one Midjourney button, or None for buttons we do not model
    (❤️ bookmark, Make Square, animate, ...)."""
    for pattern, action, how in _CUSTOM_IDS:
        match = pattern.match(custom_id)
        if match is None:
            continue
        if how == "index":
            return FollowUp(action, index=int(match.group(1)), ref=custom_id)
        if how == "variant":
            return FollowUp(action, variant=match.group(1), ref=custom_id)
        return FollowUp(action, variant=how, ref=custom_id)
    return None


def split_numbered(text: str) -> list[str]:
    """The prompts of a describe/shorten answer: the items after 1️⃣, 2️⃣, ... (text before
    the first number, such as shorten's "Important tokens", is dropped)."""
    parts = _KEYCAP.split(text)
    if len(parts) < 2:
        return []
    return [part.strip() for part in parts[1:] if part.strip()]


def split_lines(text: str) -> list[str]:
    """Describe prompts one a line, unnumbered (trueai's official/partner accounts join them
    with "\r\n": TaskInfo.SetDescribeButtions). Fewer than two lines: not such a list."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines if len(lines) >= 2 else []


def _rank(task: Mapping[str, Any]) -> tuple[int, float]:
    status = str(task.get("status") or "").upper()
    progress = parse_progress(task.get("progress")) or 0.0
    return _STATUS_RANK.get(status, 5), progress


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


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class MjProxyProvider(Provider):
    kind = "mj-proxy"
    batch_size = 20  # ids per list-by-condition request
    max_images = 5
    fetch_concurrency = 6  # parallel one-by-one fetches when list-by-condition is absent
    # How long `submit` waits for a Vary (Region) / Custom Zoom task to reach MODAL.
    modal_wait = 30.0
    modal_poll = 0.5
    seed_timeout = 65.0  # image-seed lookups wait on Discord (see image_seed)

    def __init__(
        self,
        config: MjProxyConfig,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.poll_interval = config.poll_interval or 3.0
        self.accepted_params = MJ_PARAM_NAMES
        features = {
            Feature.CANCEL,
            Feature.CALLBACKS,
            Feature.MODES,
            Feature.PROGRESS,
            Feature.PREVIEW,
            Feature.IMAGE_SEED,
        }
        if config.batch_fetch:
            features.add(Feature.BATCH_FETCH)
        self.features = frozenset(features)
        self._base_url = config.base_url.rstrip("/")
        self._client = client
        self._http = ProviderHttp(
            client,
            self._base_url,
            self._auth_headers(),
            provider=self.name,
            policy=policy,
            timeout=config.request_timeout,
        )
        # Set when the server turns out to lack POST /mj/task/list-by-condition.
        self._batch_ok = config.batch_fetch
        # What we asked for per task id: tells grid from single image when the server's
        # `action` is the generic "ACTION" (trueai) and there are no buttons.
        self._asked: dict[str, Action] = {}
        # Tasks whose modal we have sent: a MODAL status after that is stale, not a new
        # question (trueai keeps MODAL until its queue starts the task; new-api answers
        # /fetch from the task's first row, which stays MODAL until the job is done).
        self._modal_sent: dict[str, None] = {}

    def __repr__(self) -> str:
        return f"MjProxyProvider(name={self.name!r}, base_url={self._base_url!r})"

    # ------------------------------------------------------------------ capabilities

    def supports(self, action: Action) -> Support | None:
        if action in _BUTTON_ACTIONS or action in (Action.IMAGINE, Action.DESCRIBE, Action.BLEND):
            return Support(How.NATIVE)
        if action in (Action.SHORTEN, Action.SWAP_FACE) and self.config.plus_extras:
            return Support(How.NATIVE)
        return None

    # ------------------------------------------------------------------ plumbing

    def _key(self) -> str:
        return self.config.api_key.get_secret_value() if self.config.api_key else ""

    def _auth_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        key = self._key()
        if not key:
            return headers
        style = self.config.auth_style
        if style == "bearer":
            headers["Authorization"] = f"Bearer {key}"
            # novicezk reads only mj-api-secret, and new-api relays fall back to it: with
            # both, the default style works on either (trueai needs "authorization").
            headers["mj-api-secret"] = key
        elif style == "mj-api-secret":
            headers["mj-api-secret"] = key
        else:  # "authorization": trueai takes the header verbatim as its token
            headers["Authorization"] = key
        return headers

    def _scrub(self, text: str) -> str:
        """Server words go to users; make sure they never echo our key back."""
        key = self._key()
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def _mode(self, request: SubmitRequest) -> str | None:
        mode = request.mode or self.config.mode
        return mode if mode in MODES else None

    def _path(self, endpoint: str, mode: str | None = None) -> str:
        # trueai and the aggregators pick the speed by path prefix; plain /mj is the default.
        if mode and self.config.mode_style == "path":
            return f"/mj-{mode}/mj{endpoint}"
        return f"/mj{endpoint}"

    def _bot_type(self, request: SubmitRequest) -> str:
        if "niji" in request.params:
            return "NIJI_JOURNEY"
        return self.config.bot_type

    def _common(self, request: SubmitRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"state": "atelier"}
        hook = request.callback_url or self.config.notify_hook
        if hook:
            body["notifyHook"] = hook
        return body

    def _error_text(self, data: Any) -> str:
        if isinstance(data, dict):
            for key in ("description", "message", "error", "msg"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("message")
                if isinstance(value, str) and value.strip():
                    return self._scrub(value.strip())
        return ""

    def _snippet(self, answer: HttpAnswer) -> str:
        text = answer.body[:160].decode("utf-8", "replace").strip().replace("\n", " ")
        return self._scrub(text)

    def _answer_error(self, answer: HttpAnswer, doing: str, what: str) -> ProviderError:
        """The error of a 4xx/5xx answer: the server's own code and words where it sent
        a coded body (not for 401/403: those are about the key), else by status."""
        data = answer.json_or_none()
        if isinstance(data, dict) and "code" in data and answer.status not in (401, 403):
            return self._code_error(data, doing) or self._status_error(answer, what)
        return self._status_error(answer, what)

    def _status_error(self, answer: HttpAnswer, what: str) -> ProviderError:
        """The typed error for an HTTP answer that is not a usable 2xx."""
        status = answer.status
        data = answer.json_or_none()
        words = self._error_text(data) or (self._snippet(answer) if data is None else "")
        said = f": {words}" if words else ""
        if status == 403 and words and _MODEL_FORBIDDEN.search(words):
            # new-api: the key works but may not use this action's model (mj_shorten,
            # swap_face, ...): "该令牌无权访问模型 mj_shorten" (middleware/distributor.go).
            return NotOffered(
                f"{self.name} does not let this key use {what}{said}.", provider=self.name
            )
        if status in (401, 403):
            return BadKey(
                f"{self.name} rejected the API key (HTTP {status}{said}). Check api_key and "
                f"auth_style (now {self.config.auth_style!r}) in the provider settings.",
                provider=self.name,
            )
        if status == 429:
            return RateLimited(
                f"{self.name} is rate limiting us (HTTP 429{said}); try again shortly.",
                provider=self.name,
                retry_after=answer.retry_after,
            )
        if status >= 500:
            return ProviderUnavailable(
                f"{self.name} is having trouble (HTTP {status}{said}); try again later.",
                provider=self.name,
            )
        if status in (404, 405):
            return NotOffered(
                f"{self.name} does not offer {what} (HTTP {status}).", provider=self.name
            )
        return ProviderError(
            f"{self.name} refused {what} (HTTP {status}{said}).", provider=self.name
        )

    def _code_error(self, data: Mapping[str, Any], what: str) -> ProviderError | None:
        """The error a submit-style answer stands for, or None when it is a success."""
        if data.get("success") is False:  # trueai: {"success": false, "code": -1, "message"}
            words = self._error_text(data) or "no reason given"
            if _BUSY.search(words):
                return RateLimited(
                    f"{self.name} is full right now ({words}); try again in a few minutes.",
                    provider=self.name,
                )
            return ProviderError(f"{self.name} refused {what}: {words}", provider=self.name)
        raw = data.get("code")
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = None
        if code in (1, 21, 22) or (code is None and data.get("result")):
            return None
        words = self._error_text(data)
        props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        if code == 23 or (words and _BUSY.search(words)):
            return RateLimited(
                f"{self.name} is full right now ({words or 'queue full'}); try again in a few "
                "minutes.",
                provider=self.name,
            )
        if code == 24:
            banned = _text(props.get("bannedWord"))
            which = f" (banned word: {banned!r})" if banned else ""
            return PromptRejected(
                f"{self.name} refused the prompt{which}: {words or 'banned prompt'}",
                provider=self.name,
            )
        if code == 3:
            if words and _TASK_MISSING.search(words):
                return TaskNotFound(
                    f"{self.name} no longer knows that task: {words}", provider=self.name
                )
            return ProviderUnavailable(
                f"{self.name} has no Midjourney account available right now"
                f"{': ' + words if words else ''}; try again later.",
                provider=self.name,
            )
        if code == 4 and words and _RELAY_TASK_MISSING.search(words):
            return TaskNotFound(
                f"{self.name} does not know that task ({words}).", provider=self.name
            )
        if code == 4:
            return PromptRejected(
                f"{self.name} refused {what}: {words or 'invalid request'}", provider=self.name
            )
        if code == 5:  # new-api: do_request_failed, empty_response_body, ... (HTTP 400)
            return ProviderUnavailable(
                f"{self.name} could not get an answer from its upstream"
                f"{': ' + words if words else ''}; try again later.",
                provider=self.name,
            )
        if code == 9:
            return ProviderUnavailable(
                f"{self.name} had a system error{': ' + words if words else ''}; try again later.",
                provider=self.name,
            )
        if code == 30:  # new-api: the group's load is saturated
            return RateLimited(f"{self.name} is busy: {words or 'saturated'}", provider=self.name)
        return ProviderError(
            f"{self.name} refused {what} (code {raw}): {words or 'no reason given'}",
            provider=self.name,
        )

    async def _post_submit(
        self, endpoint: str, body: Mapping[str, Any], what: str, mode: str | None = None
    ) -> tuple[str, int, dict[str, Any]]:
        """POST one submission; returns (task id, code, answer) or raises the typed error."""
        answer = await self._http.send(
            "POST", self._path(endpoint, mode), json_body=dict(body), idempotent=False
        )
        data: Any = None
        if answer.status >= 400:
            # Some servers put a proper submit answer into 4xx (trueai: 404 + code 3 for an
            # unknown parent; relays: 400 + code 4); read it before judging by status.
            data = answer.json_or_none()
            coded = isinstance(data, dict) and data.get("code") in _SUBMIT_CODES
            if answer.status == 404 and not coded and mode and self.config.mode_style == "path":
                # novicezk serves only /mj (its servlet context path): /mj-relax/... is a
                # plain 404 outside it. Say how to fix it rather than "not offered".
                raise NotOffered(
                    f"{self.name} has no {self._path(endpoint, mode)} (HTTP 404): it may not "
                    'take the speed in the path; set mode_style = "prompt" for it.',
                    provider=self.name,
                )
            if answer.status in (401, 403) or not coded:
                raise self._status_error(answer, what)
            error = self._code_error(data, what)
            raise error or self._status_error(answer, what)
        if endpoint != "/submit/imagine" and (
            300 <= answer.status < 400 or (answer.body.strip() and self._looks_html(answer))
        ):
            # new-api serves its web page (200 HTML) for every route it lacks, or redirects
            # to its front end (router/web-router.go, router/main.go): the route is absent,
            # so /submit/action can fall back to /submit/change. Every server has imagine:
            # a page there is a wrong base_url, which the BadResponse below says.
            raise NotOffered(f"{self.name} does not offer {what}.", provider=self.name)
        data = answer.json()
        if not isinstance(data, dict):
            raise BadResponse(
                f"{self.name} answered {what} with something unexpected: {self._snippet(answer)!r}",
                provider=self.name,
            )
        error = self._code_error(data, what)
        if error is not None:
            raise error
        task_id = data.get("result")
        if isinstance(task_id, list | dict) or task_id in (None, ""):
            raise BadResponse(
                f"{self.name} accepted {what} but sent no task id.", provider=self.name
            )
        code = int(data.get("code") or 1)
        return str(task_id), code, data

    # ------------------------------------------------------------------ submit

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        action = request.action
        if action == Action.IMAGINE:
            result = await self._imagine(request)
        elif action in _BUTTON_ACTIONS:
            result = await self._button(request)
        elif action == Action.BLEND:
            result = await self._blend(request)
        elif action == Action.DESCRIBE:
            result = await self._describe(request)
        elif action == Action.SHORTEN and self.config.plus_extras:
            result = await self._shorten(request)
        elif action == Action.SWAP_FACE and self.config.plus_extras:
            result = await self._swap_face(request)
        else:
            raise NotOffered(f"{self.name} does not offer {action.value}.", provider=self.name)
        self._asked[result.task_id] = action
        if len(self._asked) > 10_000:  # a hint only; keep it from growing without end
            self._asked.pop(next(iter(self._asked)))
        return result

    def _result(self, task_id: str, code: int, data: Mapping[str, Any]) -> SubmitResult:
        if code == 22:
            props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
            position = props.get("numberOfQueues")
            snapshot = TaskSnapshot(
                task_id=task_id,
                state=TaskState.QUEUED,
                queue_position=position if isinstance(position, int) else None,
                provider_status="NOT_START",
            )
            return SubmitResult(task_id, snapshot)
        return SubmitResult(task_id)

    async def _imagine(self, request: SubmitRequest) -> SubmitResult:
        prompt = request.prompt.strip()
        if not prompt:
            raise PromptRejected("The prompt is empty.", provider=self.name)
        mode = self._mode(request)
        # Midjourney reads --fast/--relax/--turbo from the prompt; one is enough.
        if (
            mode
            and self.config.mode_style == "prompt"
            and not re.search(r"(?:^|\s)--(?:fast|relax|turbo)\b", prompt)
        ):
            prompt = f"{prompt} --{mode}"
        body = self._common(request)
        body.update(prompt=prompt, botType=self._bot_type(request))
        if request.images:
            body["base64Array"] = [image.data_url() for image in request.images]
        if self.config.account_filter:
            body["accountFilter"] = dict(self.config.account_filter)
        task_id, code, data = await self._post_submit("/submit/imagine", body, "the prompt", mode)
        return self._result(task_id, code, data)

    async def _blend(self, request: SubmitRequest) -> SubmitResult:
        if not 2 <= len(request.images) <= 5:
            raise PromptRejected(
                f"Blend takes 2 to 5 images; got {len(request.images)}.", provider=self.name
            )
        dimensions = (request.dimensions or "SQUARE").upper()
        if dimensions not in BLEND_DIMENSIONS:
            raise PromptRejected(
                f"Blend dimensions must be one of {', '.join(BLEND_DIMENSIONS)}.",
                provider=self.name,
            )
        body = self._common(request)
        body.update(
            base64Array=[image.data_url() for image in request.images],
            dimensions=dimensions,
            botType=self._bot_type(request),
        )
        if self.config.account_filter:
            body["accountFilter"] = dict(self.config.account_filter)
        mode = self._mode(request)
        task_id, code, data = await self._post_submit("/submit/blend", body, "the blend", mode)
        return self._result(task_id, code, data)

    async def _describe(self, request: SubmitRequest) -> SubmitResult:
        if not request.images:
            raise PromptRejected("Describe needs an image.", provider=self.name)
        body = self._common(request)
        body.update(base64=request.images[0].data_url(), botType=self._bot_type(request))
        if self.config.account_filter:
            body["accountFilter"] = dict(self.config.account_filter)
        mode = self._mode(request)
        task_id, code, data = await self._post_submit(
            "/submit/describe", body, "the describe request", mode
        )
        return self._result(task_id, code, data)

    async def _shorten(self, request: SubmitRequest) -> SubmitResult:
        prompt = request.prompt.strip()
        if not prompt:
            raise PromptRejected("Shorten needs a prompt.", provider=self.name)
        body = self._common(request)
        body.update(prompt=prompt, botType=self._bot_type(request))
        if self.config.account_filter:
            body["accountFilter"] = dict(self.config.account_filter)
        task_id, code, data = await self._post_submit(
            "/submit/shorten", body, "the shorten request", self._mode(request)
        )
        return self._result(task_id, code, data)

    async def _swap_face(self, request: SubmitRequest) -> SubmitResult:
        if len(request.images) != 2:
            raise PromptRejected(
                "Face swap takes two images: the face, then the picture to put it on.",
                provider=self.name,
            )
        body = self._common(request)
        body.update(
            sourceBase64=request.images[0].data_url(),
            targetBase64=request.images[1].data_url(),
        )
        # InsightFace runs on the proxy itself: no Midjourney speed mode, plain /mj path.
        task_id, code, data = await self._post_submit("/insight-face/swap", body, "the face swap")
        return self._result(task_id, code, data)

    # ------------------------------------------------------------------ buttons

    def _custom_id(self, request: SubmitRequest) -> str:
        """The parent's own customId for the wanted button, or "" when it sent none."""
        if request.ref.startswith("MJ::"):
            return request.ref
        buttons = request.parent_extra.get("buttons") if request.parent_extra else None
        if not isinstance(buttons, list):
            return ""
        for button in buttons:
            custom_id = button.get("customId") if isinstance(button, dict) else None
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

    def _check_button_input(self, request: SubmitRequest) -> None:
        if not request.parent_task_id:
            raise PromptRejected(
                f"{request.action.value} needs the job it acts on.", provider=self.name
            )
        if request.action in (Action.UPSCALE, Action.VARIATION) and not 1 <= request.index <= 4:
            raise PromptRejected("Pick image 1, 2, 3 or 4.", provider=self.name)
        if request.action == Action.INPAINT:
            if not request.regions:
                raise PromptRejected(
                    "Vary (Region) needs at least one selected region.", provider=self.name
                )
            if self._image_size(request) is None:
                raise PromptRejected(
                    "Vary (Region) needs the size of the image to draw its mask.",
                    provider=self.name,
                )

    def _image_size(self, request: SubmitRequest) -> tuple[int, int] | None:
        if request.parent_image_size:
            width, height = request.parent_image_size
            if width > 0 and height > 0:
                return int(width), int(height)
        extra = request.parent_extra or {}
        width, height = extra.get("width"), extra.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            return width, height
        return None

    def _needs_modal(self, request: SubmitRequest) -> bool:
        return request.action == Action.INPAINT or (
            request.action == Action.ZOOM and request.variant == "custom"
        )

    async def _button(self, request: SubmitRequest) -> SubmitResult:
        self._check_button_input(request)
        parent = str(request.parent_task_id)
        mode = self._mode(request)
        custom_id = self._custom_id(request)
        what = f"the {request.action.value} request"
        if custom_id:
            body = self._common(request)
            body.update(taskId=parent, customId=custom_id)
            try:
                task_id, code, data = await self._post_submit("/submit/action", body, what, mode)
            except NotOffered:
                # novicezk has no /submit/action; U/V/🔄 still work through /submit/change.
                if request.action not in _CHANGE_ACTIONS:
                    raise
                task_id, code, data = await self._change(request, parent, mode, what)
        elif request.action in _CHANGE_ACTIONS:
            task_id, code, data = await self._change(request, parent, mode, what)
        else:
            raise NotOffered(
                f"{self.name} did not offer a {request.action.value} button on that image.",
                provider=self.name,
            )

        if self._needs_modal(request):
            # Vary (Region) and Custom Zoom always lead to MODAL; 21 says it is there now.
            # Relays may rewrite 21 to 1: then the task status is the only reliable sign.
            if code == 21 or await self._wait_for_modal(task_id, what):
                return await self._complete_modal(request, task_id, what)
            return self._result(task_id, code, data)  # finished without asking: take it
        if code == 21:
            # 21 is "exists" on novicezk but "waits for a remix modal" on plus/trueai.
            if self._says_modal(data):
                return await self._complete_modal(request, task_id, what)
            task = await self._fetch_one(task_id)
            if task is not None and str(task.get("status") or "").upper() == "MODAL":
                return await self._complete_modal(request, task_id, what)
        return self._result(task_id, code, data)

    async def _change(
        self, request: SubmitRequest, parent: str, mode: str | None, what: str
    ) -> tuple[str, int, dict[str, Any]]:
        body = self._common(request)
        # new-api relays reject /change without an index, even for REROLL: send 1 there.
        index = request.index if request.action != Action.REROLL else 1
        body.update(taskId=parent, action=_CHANGE_ACTIONS[request.action], index=index)
        return await self._post_submit("/submit/change", body, what, mode)

    @staticmethod
    def _says_modal(data: Mapping[str, Any]) -> bool:
        props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        status = str(props.get("status") or "").upper()
        return status == "MODAL" or bool(props.get("remix"))

    async def _wait_for_modal(self, task_id: str, what: str) -> bool:
        """True once the task waits for its modal; False if it finished without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.modal_wait
        status = "?"
        while True:
            task = await self._fetch_one(task_id)
            if task is not None:
                status = str(task.get("status") or "").upper()
                if status == "MODAL":
                    return True
                if status in ("FAILURE", "CANCEL"):
                    reason = _text(task.get("failReason")) or status.lower()
                    raise ProviderError(
                        f"{self.name} stopped {what}: {self._scrub(reason)}", provider=self.name
                    )
                if status == "SUCCESS":
                    return False
            if loop.time() >= deadline:
                raise ProviderError(
                    f"{self.name} accepted {what} (task {task_id}) but never asked for the "
                    f"region or zoom within {self.modal_wait:g} s (last status {status or '?'});"
                    " it may be stuck, try again.",
                    provider=self.name,
                )
            await asyncio.sleep(self.modal_poll)

    async def _parent_prompt(self, request: SubmitRequest) -> str:
        if request.prompt.strip():
            return request.prompt.strip()
        extra = request.parent_extra or {}
        for key in ("prompt", "finalPrompt"):
            if _text(extra.get(key)):
                return _text(extra.get(key))
        if request.parent_task_id:
            task = await self._fetch_one(str(request.parent_task_id))
            if task is not None:
                props = task.get("properties") if isinstance(task.get("properties"), dict) else {}
                for value in (task.get("prompt"), task.get("promptEn"), props.get("finalPrompt")):
                    if _text(value):
                        return _text(value)
        return ""

    async def _complete_modal(
        self, request: SubmitRequest, modal_task_id: str, what: str
    ) -> SubmitResult:
        prompt = await self._parent_prompt(request)
        if request.action == Action.ZOOM and request.variant == "custom":
            zoom = str(request.params.get("zoom") or "2")
            prompt = _ZOOM_PARAM.sub("", f" {prompt}").strip()
            prompt = f"{prompt} --zoom {zoom}".strip()
        if not prompt:
            # trueai refuses a modal without a prompt; an empty one would fail there anyway.
            raise PromptRejected(f"{what} needs a prompt.", provider=self.name)
        body: dict[str, Any] = {"taskId": modal_task_id, "prompt": prompt}
        if request.action == Action.INPAINT:
            size = self._image_size(request)
            assert size is not None  # checked before anything was sent
            body["maskBase64"] = make_mask(size, request.regions)
        task_id, code, data = await self._post_submit(
            "/submit/modal", body, what, self._mode(request)
        )
        for done in {modal_task_id, task_id}:
            self._modal_sent[done] = None
        while len(self._modal_sent) > 10_000:
            self._modal_sent.pop(next(iter(self._modal_sent)))
        return self._result(task_id or modal_task_id, code, data)

    # ------------------------------------------------------------------ fetch

    async def fetch(self, refs: Sequence[TaskRef]) -> dict[str, TaskSnapshot]:
        ids = list(dict.fromkeys(ref.task_id for ref in refs if ref.task_id))
        tasks: dict[str, dict[str, Any]] = {}
        rest = ids
        if self._batch_ok and ids:
            rest = []
            for start in range(0, len(ids), self.batch_size):
                chunk = ids[start : start + self.batch_size]
                found = await self._fetch_batch(chunk) if self._batch_ok else None
                if found is None:
                    rest.extend(chunk)
                else:
                    tasks.update(found)
        if rest:
            tasks.update(await self._fetch_each(rest))
        return {task_id: self.snapshot(task) for task_id, task in tasks.items()}

    async def _fetch_batch(self, ids: list[str]) -> dict[str, dict[str, Any]] | None:
        """Tasks by id through list-by-condition, or None when the server lacks it."""
        answer = await self._http.send(
            "POST", "/mj/task/list-by-condition", json_body={"ids": ids}, idempotent=True
        )
        if answer.status in (401, 403):
            raise self._status_error(answer, "task lookups")
        if answer.status in (404, 405) or self._looks_html(answer):
            # Absent on this server (HTML: a relay's web UI answering an unknown route).
            log.info("%s: no list-by-condition; polling tasks one by one", self.name)
            self._batch_ok = False
            return None
        if answer.status >= 400:
            raise self._status_error(answer, "task lookups")
        data = answer.json()
        if isinstance(data, dict):
            for key in ("data", "list", "content", "records", "result"):
                if isinstance(data.get(key), list):
                    data = data[key]
                    break
        if not isinstance(data, list):
            if isinstance(data, dict) and _TASK_MISSING.search(self._error_text(data) or ""):
                self._batch_ok = False
            return None  # unreadable this time: one by one, which reports real errors
        wanted = set(ids)
        found: dict[str, dict[str, Any]] = {}
        for task in data:
            if not isinstance(task, dict) or str(task.get("id")) not in wanted:
                continue
            task_id = str(task["id"])
            # new-api may list one id twice (a second row after /submit/modal, the first
            # stuck at MODAL): keep the row that is further along.
            if task_id not in found or _rank(task) >= _rank(found[task_id]):
                found[task_id] = task
        return found

    async def _fetch_each(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        gate = asyncio.Semaphore(self.fetch_concurrency)

        async def one(task_id: str) -> tuple[str, dict[str, Any] | None]:
            async with gate:
                return task_id, await self._fetch_one(task_id)

        results = await asyncio.gather(*(one(task_id) for task_id in ids), return_exceptions=True)
        found: dict[str, dict[str, Any]] = {}
        for result in results:
            # An error for one id would otherwise read as "task unknown": report it instead.
            if isinstance(result, BaseException):
                raise result
            task_id, task = result
            if task is not None:
                found[task_id] = task
        return found

    @staticmethod
    def _looks_html(answer: HttpAnswer) -> bool:
        head = answer.body[:200].lstrip().lower()
        return head.startswith((b"<!doctype", b"<html", b"<"))

    async def _fetch_one(self, task_id: str) -> dict[str, Any] | None:
        """One task as the server sent it, or None when the server does not know it."""
        answer = await self._http.send("GET", f"/mj/task/{task_id}/fetch", idempotent=True)
        if answer.status in (401, 403):
            raise self._status_error(answer, "task lookups")
        if answer.status in (204, 404):
            return None
        data: Any = None
        if answer.status >= 400:
            data = answer.json_or_none()
            if isinstance(data, dict) and data.get("code") in (3, 4):
                return None  # relays: 400 {"code": 4, "description": "task_no_found"}
            raise self._status_error(answer, "task lookups")
        data = answer.json()
        if data is None:
            return None  # novicezk: empty 200 for an unknown id
        if not isinstance(data, dict):
            raise BadResponse(
                f"{self.name} answered a task lookup with something unexpected: "
                f"{self._snippet(answer)!r}",
                provider=self.name,
            )
        if "status" not in data and "id" not in data:
            if data.get("code") in (3, 4) or data.get("success") is False:
                return None
            raise BadResponse(
                f"{self.name} answered a task lookup without a task: {self._snippet(answer)!r}",
                provider=self.name,
            )
        return data

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, task: Mapping[str, Any]) -> TaskSnapshot:
        """Normalise one midjourney-proxy Task (from a fetch, or a notifyHook callback)."""
        task_id = str(task.get("id") or "")
        status = str(task.get("status") or "").upper()
        state = _STATES.get(status, TaskState.RUNNING)  # unknown words: still going
        if state == TaskState.NEEDS_INPUT and task_id in self._modal_sent:
            state = TaskState.SUBMITTED  # answered already; the server has not moved on yet
        fail_reason = _text(task.get("failReason"))
        if state == TaskState.FAILED and fail_reason in _CANCEL_REASONS:
            state = TaskState.CANCELLED
        server_action = str(task.get("action") or "").upper()
        props = task.get("properties") if isinstance(task.get("properties"), dict) else {}
        raw_buttons = task.get("buttons") if isinstance(task.get("buttons"), list) else []
        buttons = [b for b in raw_buttons if isinstance(b, dict)]
        image_url = _text(task.get("imageUrl"))
        final_prompt = _text(props.get("finalPrompt"))

        extra: dict[str, Any] = {"action": server_action, "status": status}
        if buttons:
            extra["buttons"] = [
                {k: b.get(k) for k in ("customId", "emoji", "label", "style", "type")}
                for b in buttons
            ]
        if final_prompt:
            extra["finalPrompt"] = final_prompt
        for key in ("prompt", "promptEn"):
            if _text(task.get(key)):
                extra[key] = _text(task.get(key))
        for key in ("width", "height"):
            if isinstance(task.get(key), int):
                extra[key] = task[key]
        if image_url:
            extra["imageUrl"] = image_url
        image_urls = self._image_urls(task)
        if image_urls:
            extra["imageUrls"] = image_urls

        snap = TaskSnapshot(
            task_id=task_id,
            state=state,
            progress=parse_progress(task.get("progress")),
            provider_status=status or "?",
            extra=extra,
        )
        seed = task.get("seed")
        if isinstance(seed, int | str) and str(seed).strip():
            snap.seed = str(seed).strip()
        if state == TaskState.SUCCEEDED:
            snap.progress = 100.0
            self._finish(snap, task, server_action, buttons, image_url, final_prompt)
            asked = self._asked.get(task_id)
            wants_text = server_action in ("DESCRIBE", "SHORTEN") or asked in (
                Action.DESCRIBE,
                Action.SHORTEN,
            )
            if wants_text and not snap.texts:
                snap.state = TaskState.FAILED
                snap.failure = f"{self.name} finished without sending the prompts back."
            elif not wants_text and not snap.image_urls:
                # SUCCESS can be stored a moment before imageUrl: keep polling (the job's
                # deadline ends it if the image never comes).
                snap.state = TaskState.RUNNING
        elif state == TaskState.FAILED:
            # Only failReason: `description` is the command ("/imagine ...", novicezk and
            # trueai) or the submit answer ("提交成功", new-api), never why it failed.
            snap.failure = (
                self._scrub(fail_reason) or f"{self.name} reported a failure without a reason."
            )
        elif state == TaskState.CANCELLED:
            snap.failure = self._scrub(fail_reason) or "Cancelled."
        elif image_url and state != TaskState.NEEDS_INPUT:
            snap.preview_url = image_url
        return snap

    @staticmethod
    def _image_urls(task: Mapping[str, Any]) -> list[str]:
        # trueai may add the four separate images: a list of strings or of {"url": ...}.
        raw = task.get("imageUrls")
        if not isinstance(raw, list):
            return []
        urls: list[str] = []
        for item in raw:
            url = item.get("url") if isinstance(item, dict) else item
            if isinstance(url, str) and url.strip():
                urls.append(url.strip())
        return urls

    def _finish(
        self,
        snap: TaskSnapshot,
        task: Mapping[str, Any],
        server_action: str,
        buttons: list[dict[str, Any]],
        image_url: str,
        final_prompt: str,
    ) -> None:
        asked = self._asked.get(snap.task_id)
        if server_action in ("DESCRIBE", "SHORTEN") or asked in (Action.DESCRIBE, Action.SHORTEN):
            # The answer is text; the image (describe's upload) is no result of ours.
            sources = (
                final_prompt,
                _text(task.get("description")),
                _text(task.get("promptEn")),
                _text(task.get("prompt")),
            )
            for source in sources:
                texts = split_numbered(source)
                if texts:
                    snap.texts = texts
                    break
            describe = server_action == "DESCRIBE" or asked == Action.DESCRIBE
            if not snap.texts and describe:
                # Unnumbered, one prompt a line (trueai's official/partner accounts).
                snap.texts = split_lines(final_prompt) or split_lines(_text(task.get("promptEn")))
            if not snap.texts and final_prompt:
                snap.texts = [final_prompt]
            return
        if image_url:
            snap.image_urls = [image_url]
        custom_ids = [b.get("customId") for b in buttons if isinstance(b.get("customId"), str)]
        if custom_ids:
            snap.grid = any(cid.startswith("MJ::JOB::upsample::") for cid in custom_ids)
        elif server_action in _GRID_SERVER_ACTIONS:
            snap.grid = True
        else:
            snap.grid = (
                asked is not None
                and asked not in _SINGLE_OUR_ACTIONS
                and (asked in _BUTTON_ACTIONS or asked in (Action.IMAGINE, Action.BLEND))
            )
        # With buttons we offer exactly those we can serve; without, a finished grid still
        # has U1-4 / V1-4 / 🔄 through the legacy /submit/change.
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
        if (
            not custom_ids
            and snap.grid
            and (
                server_action in _CHANGEABLE_SERVER_ACTIONS
                or asked in _CHANGE_ACTIONS
                or asked in (Action.IMAGINE, Action.BLEND)
            )
        ):
            followups = [FollowUp(Action.UPSCALE, index=i) for i in range(1, 5)]
            followups += [FollowUp(Action.VARIATION, index=i) for i in range(1, 5)]
            followups.append(FollowUp(Action.REROLL))
        snap.followups = followups

    # ------------------------------------------------------------------ extras

    async def cancel(self, task_id: str) -> None:
        answer = await self._http.send(
            "POST", f"/mj/task/{task_id}/cancel", json_body={}, idempotent=False
        )
        if answer.status >= 400:
            raise self._answer_error(answer, "cancelling", "cancelling a job")
        if 300 <= answer.status < 400 or (answer.body.strip() and self._looks_html(answer)):
            # A relay's web page, or (new-api behind FRONTEND_BASE_URL) a 301 to its front end
            # with an empty body: the route does not exist there. Not a success.
            raise NotOffered(f"{self.name} cannot cancel a running job.", provider=self.name)
        if answer.status == 204 or not answer.body.strip():
            return
        data = answer.json()
        if isinstance(data, dict) and ("code" in data or "success" in data):
            error = self._code_error(data, "cancelling")
            if error is not None:
                raise error

    async def image_seed(self, task_id: str) -> str:
        """Midjourney's seed of a finished task (GET /mj/task/{id}/image-seed)."""
        # trueai may hold this request for up to 60 s while a worker asks Discord
        # (TaskService.SubmitSeed); a shorter read timeout would always give up first.
        http = ProviderHttp(
            self._client,
            self._base_url,
            self._auth_headers(),
            provider=self.name,
            policy=self._http.policy,
            timeout=max(self.config.request_timeout, self.seed_timeout),
        )
        answer = await http.send("GET", f"/mj/task/{task_id}/image-seed", idempotent=True)
        if answer.status >= 400:
            raise self._answer_error(answer, "the seed lookup", "seed lookups")
        if self._looks_html(answer):
            raise NotOffered(f"{self.name} does not offer seed lookups.", provider=self.name)
        data = answer.json()
        if not isinstance(data, dict):
            raise BadResponse(f"{self.name} sent no seed.", provider=self.name)
        words = self._error_text(data)
        if data.get("code") == 3 and "seed" in words.lower():
            # trueai: {"code": 3, "description": "未找到 seed"} (TaskService.SubmitSeed) is
            # "no seed for this job", not "no account available".
            raise ProviderError(
                f"{self.name} has no seed for that job ({words}).", provider=self.name
            )
        error = self._code_error(data, "the seed lookup")
        if error is not None:
            raise error
        seed = data.get("result")
        if not isinstance(seed, int | str) or not str(seed).strip():
            raise BadResponse(f"{self.name} sent no seed.", provider=self.name)
        return str(seed).strip()

    async def download(self, url: str, max_bytes: int) -> bytes:
        if _origin(url) != _origin(self._base_url):
            # Discord CDN and other hosts: never send our key there.
            return await self._http.download(url, max_bytes)
        # A relay's own image link (/mj/image/{id}) may need the key, which only send()
        # attaches. Its size is checked after the read: these come from the configured host.
        answer = await self._http.send("GET", url, idempotent=True)
        if answer.status >= 400:
            raise BadResponse(
                f"The image could not be downloaded (HTTP {answer.status}); its link may have "
                "expired.",
                provider=self.name,
            )
        if self._looks_html(answer):
            raise BadResponse(
                f"{self.name} answered an image link with a web page, not an image.",
                provider=self.name,
            )
        if len(answer.body) > max_bytes:
            raise ImageTooLarge(
                f"The image is larger than the {max_bytes // (1024 * 1024)} MiB Atelier accepts.",
                provider=self.name,
            )
        return answer.body

    async def check(self) -> CheckResult:
        http = ProviderHttp(
            self._client,
            self._base_url,
            self._auth_headers(),
            provider=self.name,
            policy=RetryPolicy(attempts=1),
            timeout=min(self.config.request_timeout, 15.0),
        )
        probes: tuple[tuple[str, str, Any], ...] = (
            ("POST", "/mj/task/list-by-condition", {"ids": []}),
            ("GET", "/mj/task/list", None),
            # Every server has fetch; an unknown id answers "not found" once the key passes.
            ("GET", "/mj/task/0/fetch", None),
        )
        answer: HttpAnswer | None = None
        try:
            for method, path, body in probes:
                answer = await http.send(
                    method, path, json_body=body, idempotent=True, retry_statuses=False
                )
                if answer.status not in (404, 405) and not (
                    answer.status < 300 and self._looks_html(answer)
                ):
                    break
        except ProviderUnavailable as err:
            return CheckResult("unreachable", err.message)
        except ProviderError as err:
            return CheckResult("error", err.message)
        assert answer is not None
        where = self._base_url
        if answer.status in (401, 403):
            return CheckResult(
                "bad_key",
                f"{where} rejected the key (HTTP {answer.status}); check api_key and "
                f"auth_style ({self.config.auth_style!r}).",
            )
        if answer.status >= 500 or answer.status == 429:
            return CheckResult("error", f"{where} answered HTTP {answer.status}.")
        if self._looks_html(answer):
            return CheckResult(
                "error",
                f"{where} answered a web page instead of JSON (HTTP {answer.status}); is "
                "base_url the server root, without /mj?",
            )
        if answer.status in (404, 405):
            return CheckResult(
                "error", f"{where} has no midjourney-proxy API under /mj (HTTP {answer.status})."
            )
        try:
            data = answer.json()
        except BadResponse:
            return CheckResult("error", f"{where} answered malformed JSON.")
        if isinstance(data, list):
            return CheckResult("healthy", f"{where} answered; the key works.")
        if answer.status < 300 or (isinstance(data, dict) and data.get("code") in (3, 4)):
            return CheckResult("healthy", f"{where} answered; the key works.")
        return CheckResult(
            "error", f"{where} answered HTTP {answer.status}: {self._snippet(answer)}"
        )
