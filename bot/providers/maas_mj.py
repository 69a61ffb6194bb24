"""Cloudsway MaaS-MJ: Midjourney through the 悠船 (Youchuan) ToB API.

Requests go to ``{base_url}/{endpoint}/tob/...`` with ``Authorization: Bearer <key>``.
Every answer, the submit included, is the job itself::

    {id, status 0 created | 1 running | 2 done | 3 failed, comment, seed, text, urls, audits}

``urls`` holds four separate images (``imageNo`` 0-3); an empty string is an image the
provider's review withheld. Status 2 can come before ``urls`` is filled, so an empty list
means "still running".

What Cloudsway documents: /tob/diffusion, /tob/upscale, /tob/inpaint, GET /tob/job/{id}.
Youchuan also has /tob/variation, /tob/pan and /tob/outpaint, which Cloudsway does not
document; they are tried and the answer remembered (404/405 = not offered). Their bodies
follow Youchuan's convention (the same one resellers of that API document):

    variation {jobId, imageNo, type: 0 subtle | 1 strong}
    pan       {jobId, imageNo, direction: 0 down | 1 right | 2 up | 3 left, scale 1.1-3.0}
    outpaint  {jobId, imageNo, scale 1.1-2.0}   (Zoom Out)

Choices made here, on purpose:
- V1-V4 are a *strong* variation of image n: Midjourney's V buttons on a grid vary as
  much as Vary (Strong) does; a *subtle* one when the member chose Low Variation.
- 🔄 is a new /tob/diffusion of the same prompt (Cloudsway documents no reroll call).
- U1-U4 need no call: the four images are already separate, so they are a selection.
- Vary (Region): rectangles and freehand lassos both become /tob/inpaint polygon areas,
  their corners in whole pixels of a mask of the image's shape (500-4096 a side),
  clockwise on screen like the vendor's example; a lasso too small to keep three
  corners is refused, never widened into a box.
- An upscaled image (a /tob/upscale job: one image, imageNo 0) offers Vary (Region)
  only. /tob/inpaint is documented as taking any job id with the number of one of its
  images, and Vary (Region) is the upscale's button on Midjourney. No upscale of an
  upscale (Midjourney has none), and not the undocumented variation / pan / outpaint:
  nothing says they take an upscale job as their parent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from bot import media
from bot.config import MaasMjConfig
from bot.providers.base import (
    BadResponse,
    Feature,
    FollowUp,
    How,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    ProviderError,
    RetryPolicy,
    SubmitRequest,
    SubmitResult,
    Support,
    TaskNotFound,
    TaskSnapshot,
    TaskState,
    safe_text,
    said,
)
from bot.providers.cloudsway import CloudswayProvider
from bot.vocab import MIDJOURNEY_PARAMS, Action

TEXT_MAX = 8192  # /tob/diffusion "text" and "remixPrompt": length 1-8192
MASK_MIN, MASK_MAX = 500, 4096  # inpaint area width/height bounds, in pixels
PAN_SCALE = 1.5  # how far a pan extends the image (Youchuan allows 1.1-3.0)
PAN_DIRECTIONS = {"down": 0, "right": 1, "up": 2, "left": 3}
ZOOM_SCALES = {"2": 2.0, "1.5": 1.5}  # Zoom Out 2x / 1.5x -> outpaint scale (1.1-2.0)

# The parameters of the vendor's list (seeds/000): not --repeat, --profile, {} or
# --public/--stealth, which it refuses, and not --steps or --zoom, which are not Midjourney
# prompt parameters there. Canonical names, as the prompt rules use them.
ACCEPTED_PARAMS = MIDJOURNEY_PARAMS

# `comment` of a failed job -> words for users. Checked in order: "TextReject" before
# "Reject", since the short key is part of the long one.
_FAILURES: tuple[tuple[str, str], ...] = (
    ("textreject", "The provider's content review refused the prompt."),
    ("badprompt", "The provider could not use the prompt (bad prompt)."),
    ("reject", "The images did not pass the provider's image review."),
    ("invalidparameter", "A parameter in the prompt is not valid for this provider."),
    ("timeout", "The provider took too long and gave up; try again."),
    (
        "creditnotenough",
        "The provider account is out of credit; ask the server owner to top it up.",
    ),
)

# Optional endpoints found out at run time, and the actions that use them.
_OPTIONAL: dict[Action, str] = {
    Action.VARIATION: "variation",
    Action.VARY_SUBTLE: "variation",
    Action.VARY_STRONG: "variation",
    Action.PAN: "pan",
    Action.ZOOM: "outpaint",
}
_ENDPOINT_WORDS = {
    "variation": "Vary",
    "pan": "Pan",
    "outpaint": "Zoom Out",
    "upscale": "Upscale",
    "inpaint": "Vary (Region)",
}

_STATIC_SUPPORT: dict[Action, Support] = {
    Action.IMAGINE: Support(How.NATIVE),
    Action.UPSCALE: Support(How.SELECT),
    Action.UPSCALE_SUBTLE: Support(How.NATIVE),
    Action.UPSCALE_CREATIVE: Support(How.NATIVE),
    Action.INPAINT: Support(How.NATIVE),
    Action.REROLL: Support(How.EMULATED, "new run of the same prompt"),
}

_MODE_FLAG = re.compile(r"(?:^|\s)(?:--|\u2014)(?:fast|relax|turbo)\b", re.IGNORECASE)


class MaasMjProvider(CloudswayProvider[MaasMjConfig]):
    kind: ClassVar[str] = "maas-mj"
    features = frozenset({Feature.MODES})  # --fast/--relax/--turbo travel in the prompt
    accepted_params = ACCEPTED_PARAMS
    max_images = 0  # no upload call: image prompts are URLs in the prompt text
    takes_polygons = True  # /tob/inpaint's areas are polygons
    takes_variation_strength = True  # V1-V4: subtle or strong
    default_poll_interval = 5.0
    task_path = "/tob/job/"
    id_key, urls_key = "jobId", "urls"

    def __init__(
        self,
        config: MaasMjConfig,
        client: httpx.AsyncClient,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(config, client, policy=policy)
        # Optional endpoint -> offered? (absent = not known yet: offered until a 404/405).
        self._offered: dict[str, bool] = {}

    # ------------------------------------------------------------------ capabilities

    def supports(self, action: Action) -> Support | None:
        if action in _STATIC_SUPPORT:
            return _STATIC_SUPPORT[action]
        endpoint = _OPTIONAL.get(action)
        if endpoint is not None and self._offered.get(endpoint, True):
            return Support(How.NATIVE)
        return None

    def validate(self, request: SubmitRequest) -> None:
        """A lasso too small to be a polygon here is refused before the job exists."""
        if request.action is Action.INPAINT:
            size = mask_size(request.parent_image_size)
            for polygon in request.polygons:
                lasso_points(polygon, size, self.name)

    def offered(self, endpoint: str) -> bool | None:
        """What is known of an optional endpoint ("variation", "pan", "outpaint"):
        True / False once tried, None before."""
        return self._offered.get(endpoint)

    # ------------------------------------------------------------------ submit

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        self._need_key()
        action = request.action
        if self.supports(action) is None:
            raise NotOffered(self._not_offered_words(action), provider=self.name)
        if request.images:
            raise NotOffered(
                f"{self.name} cannot take attached images; put image URLs at the start of "
                "the prompt instead.",
                provider=self.name,
            )
        if action in (Action.IMAGINE, Action.REROLL):
            return await self._post_job("diffusion", {"text": self._prompt_text(request)})
        if action is Action.UPSCALE:
            # A selection needs no call; answer it like select() so a direct submit works.
            snap = self.select(request.parent_task_id or "", request.parent_extra, request.index)
            return SubmitResult(snap.task_id, snap)
        job_id, image_no = self._parent(request)
        if action in (Action.UPSCALE_SUBTLE, Action.UPSCALE_CREATIVE):
            kind = 0 if action is Action.UPSCALE_SUBTLE else 1
            return await self._post_job(
                "upscale", {"jobId": job_id, "imageNo": image_no, "type": kind}
            )
        if action in (Action.VARIATION, Action.VARY_SUBTLE, Action.VARY_STRONG):
            # V1-V4: strong (see the module doc) unless the member's setting is low.
            subtle = action is Action.VARY_SUBTLE or request.strength == "low"
            kind = 0 if subtle and action is not Action.VARY_STRONG else 1
            return await self._post_job(
                "variation", {"jobId": job_id, "imageNo": image_no, "type": kind}
            )
        if action is Action.INPAINT:
            return await self._post_job("inpaint", self._inpaint_body(request, job_id, image_no))
        if action is Action.PAN:
            direction = PAN_DIRECTIONS.get(request.variant)
            if direction is None:
                raise PromptRejected(
                    f"Pan goes left, right, up or down, not {request.variant!r}.",
                    provider=self.name,
                )
            return await self._post_job(
                "pan",
                {"jobId": job_id, "imageNo": image_no, "direction": direction,
                 "scale": PAN_SCALE},
            )  # fmt: skip
        if action is Action.ZOOM:
            scale = self._zoom_scale(request)
            return await self._post_job(
                "outpaint", {"jobId": job_id, "imageNo": image_no, "scale": scale}
            )
        raise NotOffered(self._not_offered_words(action), provider=self.name)

    def _inpaint_body(self, request: SubmitRequest, job_id: str, image_no: int) -> dict[str, Any]:
        """Vary (Region): the areas as polygons, and the remix prompt when one is given."""
        areas = inpaint_areas(
            request.regions, request.parent_image_size, request.polygons, provider=self.name
        )
        body: dict[str, Any] = {"jobId": job_id, "imageNo": image_no, "mask": {"areas": areas}}
        remix = request.prompt.strip()
        if remix:
            body["remixPrompt"] = _checked_text(remix, self.name, "The Vary (Region) prompt")
        return body

    def _prompt_text(self, request: SubmitRequest) -> str:
        text = request.prompt.strip() or request.text.strip()
        # Image prompts must be in the text (there is no other field); the engine's prompt
        # already holds them, this only guards against a caller that passed them apart.
        missing = [url for url in request.image_urls if url not in text]
        if missing:
            text = " ".join([*missing, text])
        if request.mode and not _MODE_FLAG.search(text):
            text = f"{text} --{request.mode}"
        return _checked_text(text, self.name, "The prompt")

    def _zoom_scale(self, request: SubmitRequest) -> float:
        if request.variant in ZOOM_SCALES:
            return ZOOM_SCALES[request.variant]
        try:
            scale = float(request.params.get("zoom", ""))
        except ValueError:
            scale = 0.0
        if not 1.1 <= scale <= 2.0:
            raise PromptRejected(
                f"{self.name} zooms out by a factor from 1.1 to 2 (--zoom); "
                f"{request.params.get('zoom') or 'none'} was given.",
                provider=self.name,
            )
        return scale

    def _parent(self, request: SubmitRequest) -> tuple[str, int]:
        """(jobId, imageNo) of the image a follow-up acts on.

        The parent is either a selected image (its extra holds jobId and imageNo) or a
        finished job (extra holds jobId and urls; the button's index picks the image).
        """
        extra = request.parent_extra or {}
        job_id = str(extra.get("jobId") or request.parent_task_id or "")
        if not job_id:
            raise ProviderError(
                "This follow-up has lost its original job; run the prompt again.",
                provider=self.name,
            )
        if extra.get("imageNo") is not None:
            image_no = _int(extra.get("imageNo"), -1)
        elif 1 <= request.index <= 4:
            image_no = request.index - 1
        else:
            image_no = 0
        urls = extra.get("urls")
        picked = urls[image_no] if isinstance(urls, list) and 0 <= image_no < len(urls) else "?"
        if "imageNo" not in extra and not picked:
            raise PromptRejected(
                f"Image {image_no + 1} was withheld by {self.name}'s image review; "
                "pick another one.",
                provider=self.name,
            )
        if not 0 <= image_no <= 3:
            raise ProviderError(f"There is no image {image_no + 1} to work on.", provider=self.name)
        return job_id, image_no

    async def _post_job(self, endpoint: str, body: dict[str, Any]) -> SubmitResult:
        answer = await self._send("POST", f"/tob/{endpoint}", body, idempotent=False)
        if answer.status == 404 or answer.status == 405:
            raise self._missing(answer, endpoint)
        if answer.status >= 300:
            raise self._error(answer)
        job = self._job_body(answer)
        if endpoint in ("variation", "pan", "outpaint"):
            self._offered[endpoint] = True
        snapshot = self._snapshot(job, str(job.get("id") or ""))
        if not snapshot.task_id:
            raise BadResponse(
                f"{self.name} accepted the job but sent no job id.", provider=self.name
            )
        return SubmitResult(snapshot.task_id, snapshot)

    def _missing(self, answer: HttpAnswer, endpoint: str) -> ProviderError:
        """404/405 from an action endpoint: the parent job is gone, or the call is absent."""
        message, reason = answer.words(), answer.words(keys=("reason",), limit=80)
        words = f"{message} {reason}".lower()
        if answer.status == 404 and "job" in words:
            return TaskNotFound(
                f"{self.name} no longer knows the original job{said(message)}; run the "
                "prompt again.",
                provider=self.name,
            )
        what = _ENDPOINT_WORDS.get(endpoint, endpoint)
        if endpoint not in _OPTIONAL.values():
            # A documented call that is missing: a gateway problem more likely than a
            # product choice, so do not hide its buttons for good.
            return NotOffered(
                f"{self.name} did not offer {what} (its API answered HTTP {answer.status} "
                f"for /tob/{endpoint}){said(message)}.",
                provider=self.name,
            )
        # An undocumented call that is not there: remember, so buttons stop offering it.
        self._offered[endpoint] = False
        return NotOffered(
            f"{self.name} does not offer {what} (its API answered HTTP {answer.status} for "
            f"/tob/{endpoint}); the button will not be shown again.",
            provider=self.name,
        )

    def _not_offered_words(self, action: Action) -> str:
        endpoint = _OPTIONAL.get(action)
        if endpoint is not None and self._offered.get(endpoint) is False:
            return f"{self.name} does not offer {_ENDPOINT_WORDS[endpoint]} (found out earlier)."
        return f"{self.name} does not offer {action.value.replace('_', ' ')}."

    # ------------------------------------------------------------------ select

    def _gap(self, index: int) -> ProviderError:
        # An empty url is an image the vendor's review withheld, not a missing one.
        return PromptRejected(
            f"Image {index} was withheld by {self.name}'s image review.", provider=self.name
        )

    def _image_followups(self) -> list[FollowUp]:
        """What one selected image offers: upscales, vary, zoom, pan, vary (region)."""
        items = [FollowUp(Action.UPSCALE_SUBTLE), FollowUp(Action.UPSCALE_CREATIVE)]
        if self._offered.get("variation", True):
            items += [FollowUp(Action.VARY_SUBTLE), FollowUp(Action.VARY_STRONG)]
        if self._offered.get("outpaint", True):
            items += [FollowUp(Action.ZOOM, variant=v) for v in ZOOM_SCALES]
        if self._offered.get("pan", True):
            items += [FollowUp(Action.PAN, variant=v) for v in ("left", "right", "up", "down")]
        items.append(FollowUp(Action.INPAINT))
        return items

    # ------------------------------------------------------------------ fetch

    def _read_task(self, answer: HttpAnswer, task_id: str) -> TaskSnapshot:
        return self._snapshot(self._job_body(answer), task_id)

    def _snapshot(self, job: Mapping[str, Any], task_id: str) -> TaskSnapshot:
        job_id = str(job.get("id") or task_id)
        status = _int(job.get("status"), -1)
        # The vendor's words go to users, logs and `jobs`: scrubbed like any error text.
        comment = safe_text(str(job.get("comment") or ""), self._secrets())
        raw_urls = job.get("urls") or []
        if not isinstance(raw_urls, list):
            raise BadResponse(
                f"{self.name} sent a job whose urls are not a list.", provider=self.name
            )
        urls = [str(u or "").strip() for u in raw_urls]
        snap = TaskSnapshot(
            task_id=job_id,
            state=TaskState.RUNNING,
            provider_status=comment or f"status {status}",
            extra={"jobId": job_id},
        )
        seed = job.get("seed")
        if seed not in (None, "", 0, "0"):
            snap.seed = str(seed)
        if status == 0:
            snap.state = TaskState.QUEUED
        elif status == 1:
            snap.state = TaskState.RUNNING
        elif status == 2:
            if not urls:
                return snap  # done, but the images are not filled in yet: keep polling
            if not any(urls):
                snap.state = TaskState.FAILED
                snap.failure = (
                    f"{self.name}'s image review withheld all {len(urls)} images of this job."
                )
                return snap
            snap.state = TaskState.SUCCEEDED
            snap.image_urls = urls  # positions kept: "" = withheld, image n stays U<n>
            snap.withheld = [i for i, url in enumerate(urls) if not url]
            snap.extra["urls"] = urls
            snap.followups = self._job_followups(urls)
        elif status == 3:
            snap.state = TaskState.FAILED
            snap.failure = _failure_words(comment)
        else:
            raise BadResponse(
                f"{self.name} sent a job with an unknown status {job.get('status')!r}.",
                provider=self.name,
            )
        return snap

    def _job_followups(self, urls: list[str]) -> list[FollowUp]:
        if len(urls) < 2:
            # An upscaled image: Vary (Region) on its one image (see the module doc).
            return [FollowUp(Action.INPAINT)] if any(urls) else []
        shown = [(n, url) for n, url in enumerate(urls[:4], 1)]
        items = [FollowUp(Action.UPSCALE, index=n) for n, url in shown if url]
        if self._offered.get("variation", True):
            items += [FollowUp(Action.VARIATION, index=n) for n, url in shown if url]
        items.append(FollowUp(Action.REROLL))
        return items

    # ------------------------------------------------------------------ HTTP

    def _job_body(self, answer: HttpAnswer) -> dict[str, Any]:
        data = answer.json()
        if isinstance(data, dict) and "id" not in data and _int(data.get("code"), 0) >= 400:
            # Some gateways answer errors with HTTP 200 and the error body.
            raise self._error(answer, status=_int(data.get("code"), 0))
        if not isinstance(data, dict) or not isinstance(data.get("status"), int | str):
            raise BadResponse(
                f"{self.name} answered HTTP {answer.status} without a job in it.",
                provider=self.name,
            )
        return data


# ---------------------------------------------------------------------- helpers


def _failure_words(comment: str) -> str:
    folded = comment.replace(" ", "").lower()
    for key, words in _FAILURES:
        if key in folded:
            return words if folded == key else f"{words} ({comment})"
    if comment:
        return f"The provider reported a failure: {comment}"
    return "The job failed at the provider (no reason given)."


def _checked_text(text: str, name: str, what: str) -> str:
    if not text:
        raise PromptRejected(f"{what} is empty.", provider=name)
    if len(text) > TEXT_MAX:
        raise PromptRejected(
            f"{what} is {len(text)} characters long; {name} takes at most {TEXT_MAX}.",
            provider=name,
        )
    return text


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def mask_size(size: tuple[int, int] | None) -> tuple[int, int]:
    """The (width, height) declared for an inpaint mask: within 500-4096 each.

    The areas' points are relative to this size, so it only has to keep the image's
    shape: scale down so the long side fits 4096, up so the short side reaches 500; a
    shape more extreme than 4096:500 is clamped (the region then shifts a little).
    """
    width, height = size if size and size[0] > 0 and size[1] > 0 else (1024, 1024)
    scale = min(1.0, MASK_MAX / max(width, height))
    if min(width, height) * scale < MASK_MIN:
        scale = MASK_MIN / min(width, height)
    return (
        min(MASK_MAX, max(MASK_MIN, round(width * scale))),
        min(MASK_MAX, max(MASK_MIN, round(height * scale))),
    )


def inpaint_areas(
    regions: Sequence[tuple[float, float, float, float]],
    size: tuple[int, int] | None,
    polygons: Sequence[Sequence[tuple[float, float]]] = (),
    *,
    provider: str = "",
) -> list[dict[str, Any]]:
    """Rectangles (fractions x0, y0, x1, y1) and lassos ((x, y) fractions) -> the
    vendor's polygon areas: {width, height, points: [x1, y1, x2, y2, ...]} in pixels."""
    width, height = mask_size(size)
    areas: list[dict[str, Any]] = []
    for region in regions:
        # The one fraction -> pixels conversion (the mask mj-proxy sends uses it too):
        # clamped to the image, rounded outwards so a thin region keeps a pixel.
        box = media.pixel_box(region, (width, height))
        if box is None:
            continue  # a click, not an area
        px0, py0, px1, py1 = box
        points = [px0, py0, px1, py0, px1, py1, px0, py1]  # clockwise from top-left
        areas.append({"width": width, "height": height, "points": points})
    for polygon in polygons:
        corners = lasso_points(polygon, (width, height), provider)
        points = [v for corner in corners for v in corner]
        areas.append({"width": width, "height": height, "points": points})
    if not areas:
        raise PromptRejected("Mark at least one area of the image to redraw.", provider=provider)
    return areas


def lasso_points(
    polygon: Sequence[tuple[float, float]], size: tuple[int, int], provider: str
) -> list[tuple[int, int]]:
    """A lasso's corners in pixels (media.pixel_polygon, the mj-proxy mask's arithmetic),
    clockwise on screen like the vendor's example and the rectangles above: a lasso
    drawn the other way round is the same area, its points reversed."""
    corners = media.pixel_polygon(polygon, size)
    if len(corners) < 3 or media.signed_area(corners) == 0:
        # The vendor's polygon needs 3 corners around an area; a lasso of a pixel or two
        # has none once in whole pixels. Not widened into a box the member did not draw.
        raise PromptRejected(
            f"A drawn area is too small for {provider or 'the provider'} (under two "
            "pixels across on its mask); draw a larger one.",
            provider=provider,
        )
    return corners if media.signed_area(corners) > 0 else corners[::-1]
