"""Fake Cloudsway MaaS servers (MaaS-MJ and MaaS-Flux-1-schnell), real HTTP on 127.0.0.1.

They speak the APIs as seeds/000 and seeds/002 and REFERENCE.md sections 2-3 describe
them, and check what the adapter sends: every departure from the documented request
(missing or mistyped field, out-of-range value, unknown field, bad auth header) is
answered like the vendor would (HTTP 400 / 401) *and* recorded in ``fake.violations``,
which tests assert to be empty. Every request is recorded in ``fake.requests``.

    async with FakeMaasMj(key="k", endpoint="ep") as fake:
        config = MaasMjConfig(name="mj", kind="maas-mj", base_url=fake.base_url,
                              endpoint="ep", api_key="k")

Knobs (plain attributes, change them at any time):
- job progress: ``queued_polls``, ``running_polls``, ``empty_url_polls`` (MJ: status 2
  with ``urls`` still empty), ``running_polls`` (Flux: ``completed: false``);
- outcomes: ``withhold`` (MJ image indexes withheld by audit), ``fail_comment`` (MJ: the
  next jobs end with status 3 and this comment), ``fail_status`` (Flux);
- account: ``credit`` (False -> 402), ``max_running`` (plan concurrency cap -> 429),
  ``banned_words`` (-> 403 sensitive prompt);
- MJ optional endpoints: ``variation``, ``pan``, ``outpaint`` (present or not) and
  ``absent_status`` (404 plain text like a gateway's unknown route, or 405 JSON);
- faults: ``fake.fail(status=..., times=N, path=..., retry_after=..., html=...,
  malformed=..., reset=..., delay=...)`` for the next N matching API calls; ``delay``
  slows every API answer;
- images: real PNGs served at ``/cdn/...`` (signed-looking URLs, no auth, like an object
  store); ``expire_images()`` makes them answer 403 like an expired signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import json
import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict
from PIL import Image, ImageDraw

# ---------------------------------------------------------------------- shared machinery


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    body: bytes
    json: Any = None


@dataclass
class Fault:
    """A scripted misbehaviour for the next `times` API calls matching `path`/`method`."""

    status: int = 500
    times: int = 1
    path: str = ""  # substring of the request path; "" = every API call
    method: str | None = None
    body: Any = None  # JSON body; default: the vendor's {code, message, reason}
    message: str = "The server is busy, please try again later"
    reason: str = "Server_Busy"
    retry_after: str | None = None
    html: bool = False  # an HTML page (a proxy's error page) instead of JSON
    text: str | None = None  # a plain-text body instead of JSON (a gateway's own words)
    malformed: bool = False  # a JSON body cut short
    reset: bool = False  # drop the connection without answering
    delay: float = 0.0  # seconds to wait first


class _ViolationError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_body(status: int, message: str, reason: str) -> web.Response:
    """An error in the vendor's shape: {"code": 500, "message": "...", "reason": "..."}."""
    return web.json_response({"code": status, "message": message, "reason": reason}, status=status)


def png_bytes(width: int, height: int, seed: str) -> bytes:
    """A real PNG, different for every seed (so tests can tell images apart)."""
    digest = hashlib.sha256(seed.encode()).digest()
    background = tuple(digest[0:3])
    accent = tuple(255 - c for c in background)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    x0, y0 = digest[3] % max(1, width // 2), digest[4] % max(1, height // 2)
    draw.rectangle((x0, y0, x0 + width // 3, y0 + height // 3), fill=accent)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _MaasFake(ABC):
    """aiohttp server with recording, auth, faults and an image store."""

    prefix = "/v1/ai"

    def __init__(self, key: str = "k", endpoint: str = "ep") -> None:
        self.key = key
        self.endpoint = endpoint
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.faults: list[Fault] = []
        self.delay = 0.0
        self.credit = True
        self.max_running: int | None = None
        self.banned_words: tuple[str, ...] = ("forbidden",)
        self.images_expired = False
        self.inflight = 0
        self.peak_inflight = 0
        self._images: dict[str, tuple[int, int]] = {}
        self._png_cache: dict[str, bytes] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle

    async def __aenter__(self) -> _MaasFake:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        app.router.add_get("/cdn/{name}", self._image)
        self._routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @abstractmethod
    def _routes(self, router: web.UrlDispatcher) -> None:
        """Each API's own endpoints."""

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What goes in the config's base_url (the part before /{endpoint})."""
        return self.origin + self.prefix

    @property
    def root(self) -> str:
        return f"{self.prefix}/{self.endpoint}"

    # -- knobs

    def fail(self, status: int = 500, times: int = 1, **kwargs: Any) -> Fault:
        fault = Fault(status=status, times=times, **kwargs)
        self.faults.append(fault)
        return fault

    def expire_images(self) -> None:
        self.images_expired = True

    def api_requests(self, suffix: str = "", method: str | None = None) -> list[Recorded]:
        """Recorded API calls whose path ends with `suffix` (after the endpoint)."""
        return [
            r
            for r in self.requests
            if r.path.startswith(self.root)
            and r.path[len(self.root) :].startswith(suffix)
            and (method is None or r.method == method)
        ]

    # -- images

    def add_image(self, name: str, width: int, height: int) -> str:
        self._images[name] = (width, height)
        expires = int(time.time()) + 3600
        signature = hashlib.sha1(f"{name}{expires}".encode()).hexdigest()[:16]
        return f"{self.origin}/cdn/{name}.png?Expires={expires}&Signature={signature}"

    async def _image(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"].removesuffix(".png")
        if self.images_expired:
            return web.Response(
                status=403,
                text="<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"
                "</Error>",
                content_type="application/xml",
            )
        if name not in self._images:
            return web.Response(status=404, text="NoSuchKey")
        if name not in self._png_cache:
            width, height = self._images[name]
            self._png_cache[name] = await asyncio.to_thread(png_bytes, width, height, name)
        return web.Response(body=self._png_cache[name], content_type="image/png")

    # -- the middleware: record, fault, slow down, authenticate

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        self.requests.append(
            Recorded(request.method, request.path, dict(request.query),
                     CIMultiDict(request.headers), raw, parsed)
        )  # fmt: skip
        if request.path.startswith("/cdn/"):
            return await handler(request)
        self.inflight += 1
        self.peak_inflight = max(self.peak_inflight, self.inflight)
        try:
            fault = self._take_fault(request)
            if fault is not None:
                return await self._play(fault, request)
            if self.delay:
                await asyncio.sleep(self.delay)
            auth = request.headers.get("Authorization")
            if auth is None or not auth.startswith("Bearer "):
                self.violations.append(
                    f"{request.method} {request.path}: Authorization must be 'Bearer <key>', "
                    f"got {'nothing' if auth is None else 'another form'}"
                )
                return error_body(401, "Missing or malformed Authorization", "Unauthorized")
            if auth != f"Bearer {self.key}":
                return error_body(401, "Invalid App identity", "Unauthorized")
            if not request.path.startswith(self.root + "/"):
                # A wrong endpointPath: the gateway knows no such deployment.
                return web.Response(status=404, text="404 page not found")
            if request.method == "POST":
                ctype = request.headers.get("Content-Type", "")
                if not ctype.startswith("application/json"):
                    self.violations.append(f"POST {request.path}: Content-Type is {ctype!r}")
                if not isinstance(parsed, dict):
                    self.violations.append(f"POST {request.path}: the body is not a JSON object")
                    return error_body(400, "Invalid request body", "InvalidParameter")
            try:
                return await handler(request)
            except _ViolationError as err:
                self.violations.append(f"{request.method} {request.path}: {err.message}")
                return error_body(400, err.message, "InvalidParameter")
        finally:
            self.inflight -= 1

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.times <= 0:
                continue
            if fault.path and fault.path not in request.path:
                continue
            if fault.method and fault.method != request.method:
                continue
            fault.times -= 1
            return fault
        return None

    async def _play(self, fault: Fault, request: web.Request) -> web.StreamResponse:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
        if fault.html:
            page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
            return web.Response(status=fault.status, text=page, content_type="text/html",
                                headers=headers)  # fmt: skip
        if fault.text is not None:
            return web.Response(status=fault.status, text=fault.text, headers=headers)
        if fault.malformed:
            return web.Response(status=fault.status, text='{"code": 200, "id": "abc',
                                content_type="application/json", headers=headers)  # fmt: skip
        body = fault.body
        if body is None:
            body = {"code": fault.status, "message": fault.message, "reason": fault.reason}
        return web.json_response(body, status=fault.status, headers=headers)


# ---------------------------------------------------------------------- field checks


def _need_keys(body: dict[str, Any], required: set[str], optional: set[str]) -> None:
    missing = required - body.keys()
    if missing:
        raise _ViolationError(f"missing field(s) {sorted(missing)}")
    unknown = body.keys() - required - optional
    if unknown:
        raise _ViolationError(f"unknown field(s) {sorted(unknown)}")


def _int_field(body: dict[str, Any], name: str, low: int, high: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _ViolationError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise _ViolationError(f"{name} must be {low}-{high}, got {value}")
    return value


def _number_field(body: dict[str, Any], name: str, low: float, high: float) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _ViolationError(f"{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise _ViolationError(f"{name} must be {low}-{high}, got {value}")
    return float(value)


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not 1 <= len(value) <= 8192:
        raise _ViolationError(f"{name} must be a string of 1-8192 characters")
    return value


# ---------------------------------------------------------------------- MaaS-MJ

# The prompt parameters the vendor accepts (seeds/000), in every spelling.
MJ_PARAMS = frozenset(
    {
        "aspect", "ar", "chaos", "c", "no", "quality", "q", "seed", "stop", "stylize", "s",
        "sref", "sw", "sv", "cref", "cw", "oref", "ow", "tile", "version", "v", "niji", "raw",
        "style", "weird", "w", "iw", "draft", "exp", "fast", "relax", "turbo",
    }
)  # fmt: skip
_PARAM = re.compile(r"(?:^|\s)--([A-Za-z]+)")
_ASPECT = re.compile(r"--(?:ar|aspect)\s+(\d+):(\d+)")


@dataclass
class MjJob:
    id: str
    text: str
    kind: str  # diffusion | upscale | variation | inpaint | pan | outpaint
    size: tuple[int, int]
    images: int  # 4, or 1 for an upscale
    stages: list[tuple[int, str, bool]]  # (status, comment, urls filled)
    withheld: set[int] = field(default_factory=set)
    seed: int = 0
    polls: int = 0
    urls: list[str] = field(default_factory=list)
    parent: tuple[str, int] | None = None

    @property
    def stage(self) -> tuple[int, str, bool]:
        return self.stages[min(self.polls, len(self.stages) - 1)]

    @property
    def finished(self) -> bool:
        return self.stage[0] in (2, 3) and (self.stage[0] == 3 or self.stage[2])


class FakeMaasMj(_MaasFake):
    prefix = "/v1/ai"

    def __init__(
        self,
        key: str = "k",
        endpoint: str = "ep",
        *,
        variation: bool = False,
        pan: bool = False,
        outpaint: bool = False,
        absent_status: int = 404,
        image_size: int = 512,
    ) -> None:
        super().__init__(key, endpoint)
        # Cloudsway documents none of these three: absent unless a test says otherwise.
        self.variation = variation
        self.pan = pan
        self.outpaint = outpaint
        self.absent_status = absent_status
        self.image_size = image_size
        self.queued_polls = 1
        self.running_polls = 1
        self.empty_url_polls = 1
        self.withhold: set[int] = set()
        self.fail_comment: str | None = None
        self.jobs: dict[str, MjJob] = {}

    def _routes(self, router: web.UrlDispatcher) -> None:
        root = f"{self.prefix}/{{endpoint}}/tob"
        router.add_post(f"{root}/diffusion", self._diffusion)
        router.add_post(f"{root}/upscale", self._upscale)
        router.add_post(f"{root}/inpaint", self._inpaint)
        router.add_route("*", f"{root}/variation", self._variation)
        router.add_route("*", f"{root}/pan", self._pan)
        router.add_route("*", f"{root}/outpaint", self._outpaint)
        router.add_get(f"{root}/job/{{job_id}}", self._job)

    # -- jobs

    def _new_job(
        self,
        text: str,
        kind: str,
        size: tuple[int, int],
        images: int = 4,
        parent: tuple[str, int] | None = None,
    ) -> MjJob:
        stages: list[tuple[int, str, bool]] = [(0, "Queued", False)] * self.queued_polls
        stages += [(1, "Running", False)] * self.running_polls
        if self.fail_comment:
            stages.append((3, self.fail_comment, False))
        else:
            stages += [(2, "Success", False)] * self.empty_url_polls
            stages.append((2, "Success", True))
        job = MjJob(
            id=uuid.uuid4().hex[:24],
            text=text,
            kind=kind,
            size=size,
            images=images,
            stages=stages,
            withheld={i for i in self.withhold if i < images},
            seed=random.randint(1, 2**31),
            parent=parent,
        )
        job.urls = [
            "" if i in job.withheld else self.add_image(f"{job.id}-{i}", *size)
            for i in range(images)
        ]
        self.jobs[job.id] = job
        return job

    def _view(self, job: MjJob) -> dict[str, Any]:
        status, comment, filled = job.stage
        done = status == 2 and filled
        audits: list[str] = []
        if done:
            audits = (
                ["Reject" if i in job.withheld else "" for i in range(job.images)]
                if job.withheld
                else ["approved"]
            )
        return {
            "audits": audits,
            "comment": comment,
            "id": job.id,
            "seed": job.seed if done else 0,
            "status": status,
            "text": job.text,
            "urls": list(job.urls) if done else [],
        }

    def _gate(self, text: str | None = None) -> web.Response | None:
        """Account and content checks every submit goes through, in the vendor's order."""
        if not self.credit:
            return error_body(402, "Insufficient account balance", "CreditNotEnough")
        if text is not None:
            lowered = text.lower()
            if any(word in lowered for word in self.banned_words):
                return error_body(403, "Prompt contains sensitive words", "Sensitive_Prompt")
        running = sum(1 for j in self.jobs.values() if not j.finished)
        if self.max_running is not None and running >= self.max_running:
            return error_body(
                429, "Maximum concurrency of the current plan reached", "Too_Many_Requests"
            )
        return None

    def _parent_image(self, body: dict[str, Any]) -> tuple[MjJob | None, web.Response | None]:
        job_id = body.get("jobId")
        if not isinstance(job_id, str) or not job_id:
            raise _ViolationError(f"jobId must be a non-empty string, got {job_id!r}")
        image_no = _int_field(body, "imageNo", 0, 3)
        parent = self.jobs.get(job_id)
        if parent is None:
            return None, error_body(404, "job not found", "Job_Not_Found")
        status, _, filled = parent.stage
        if status != 2 or not filled:
            return None, error_body(400, "The job has not finished", "InvalidParameter")
        if image_no >= parent.images or not parent.urls[image_no]:
            return None, error_body(400, "That image is not available", "InvalidParameter")
        return parent, None

    @staticmethod
    def _size_for(text: str, long_side: int) -> tuple[int, int]:
        match = _ASPECT.search(text)
        if not match:
            return (long_side, long_side)
        w, h = int(match.group(1)), int(match.group(2))
        if w >= h:
            return (long_side, max(8, round(long_side * h / w)))
        return (max(8, round(long_side * w / h)), long_side)

    # -- handlers

    async def _diffusion(self, request: web.Request) -> web.Response:
        body = await request.json()
        _need_keys(body, {"text"}, {"callback"})
        text = _text_field(body, "text")
        for name in _PARAM.findall(text):
            if name.lower() not in MJ_PARAMS:
                return error_body(400, f"Invalid parameter --{name}", "InvalidParameter")
        if "{" in text:
            return error_body(400, "Permutation prompts are not supported", "InvalidParameter")
        refused = self._gate(text)
        if refused is not None:
            return refused
        job = self._new_job(text, "diffusion", self._size_for(text, self.image_size))
        return web.json_response(self._view(job))

    async def _upscale(self, request: web.Request) -> web.Response:
        body = await request.json()
        _need_keys(body, {"jobId", "imageNo", "type"}, {"callback"})
        _int_field(body, "type", 0, 1)
        parent, refused = self._parent_image(body)
        if refused is not None:
            return refused
        assert parent is not None
        if parent.images == 1:
            return error_body(400, "An upscaled image cannot be upscaled", "InvalidParameter")
        refused = self._gate()
        if refused is not None:
            return refused
        size = (min(4096, parent.size[0] * 2), min(4096, parent.size[1] * 2))
        job = self._new_job(parent.text, "upscale", size, images=1,
                            parent=(parent.id, body["imageNo"]))  # fmt: skip
        return web.json_response(self._view(job))

    async def _inpaint(self, request: web.Request) -> web.Response:
        body = await request.json()
        _need_keys(body, {"jobId", "imageNo", "mask"}, {"remixPrompt", "callback"})
        mask = body["mask"]
        if not isinstance(mask, dict) or set(mask) != {"areas"}:
            raise _ViolationError("mask must be {areas: [...]}")
        areas = mask["areas"]
        if not isinstance(areas, list) or not areas:
            raise _ViolationError("mask.areas must be a non-empty list")
        for n, area in enumerate(areas):
            if not isinstance(area, dict):
                raise _ViolationError(f"mask.areas[{n}] must be an object")
            _need_keys(area, {"width", "height", "points"}, set())
            width = _int_field(area, "width", 500, 4096)
            height = _int_field(area, "height", 500, 4096)
            points = area["points"]
            if (
                not isinstance(points, list)
                or len(points) < 6
                or len(points) % 2
                or not all(isinstance(p, int) and not isinstance(p, bool) for p in points)
            ):
                raise _ViolationError(
                    f"mask.areas[{n}].points must be an even list of >= 6 integers"
                )
            xs, ys = points[0::2], points[1::2]
            if not all(0 <= x <= width for x in xs) or not all(0 <= y <= height for y in ys):
                raise _ViolationError(f"mask.areas[{n}].points lie outside {width}x{height}")
            corners = list(zip(xs, ys, strict=True))
            twice_area = sum(
                x0 * y1 - x1 * y0
                for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True)
            )
            if twice_area == 0:
                raise _ViolationError(f"mask.areas[{n}].points enclose no area")
        if "remixPrompt" in body:
            _text_field(body, "remixPrompt")
        parent, refused = self._parent_image(body)
        if refused is not None:
            return refused
        assert parent is not None
        refused = self._gate(body.get("remixPrompt"))
        if refused is not None:
            return refused
        job = self._new_job(body.get("remixPrompt") or parent.text, "inpaint", parent.size,
                            parent=(parent.id, body["imageNo"]))  # fmt: skip
        return web.json_response(self._view(job))

    def _absent(self) -> web.Response:
        if self.absent_status == 405:
            return error_body(405, "Method not supported", "Not_Supported")
        return web.Response(status=404, text="404 page not found")

    async def _optional(
        self, request: web.Request, enabled: bool, kind: str, fields: dict[str, Any]
    ) -> web.Response:
        if not enabled:
            return self._absent()
        if request.method != "POST":
            return error_body(405, "Method not allowed", "Method_Not_Allowed")
        body = await request.json()
        _need_keys(body, {"jobId", "imageNo", *fields}, {"remixPrompt", "callback"})
        for name, check in fields.items():
            check(body, name)
        if "remixPrompt" in body:
            _text_field(body, "remixPrompt")
        parent, refused = self._parent_image(body)
        if refused is not None:
            return refused
        assert parent is not None
        refused = self._gate()
        if refused is not None:
            return refused
        job = self._new_job(parent.text, kind, parent.size,
                            parent=(parent.id, body["imageNo"]))  # fmt: skip
        return web.json_response(self._view(job))

    async def _variation(self, request: web.Request) -> web.Response:
        fields = {"type": lambda b, n: _int_field(b, n, 0, 1)}
        return await self._optional(request, self.variation, "variation", fields)

    async def _pan(self, request: web.Request) -> web.Response:
        fields = {
            "direction": lambda b, n: _int_field(b, n, 0, 3),
            "scale": lambda b, n: _number_field(b, n, 1.1, 3.0),
        }
        return await self._optional(request, self.pan, "pan", fields)

    async def _outpaint(self, request: web.Request) -> web.Response:
        fields = {"scale": lambda b, n: _number_field(b, n, 1.1, 2.0)}
        return await self._optional(request, self.outpaint, "outpaint", fields)

    async def _job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            return error_body(404, "job not found", "Job_Not_Found")
        job.polls += 1
        return web.json_response(self._view(job))


# ---------------------------------------------------------------------- MaaS-Flux


FLUX_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "2:3": (512, 768),
    "3:2": (768, 512),
    "3:4": (768, 1024),
    "4:3": (1024, 768),
    "16:9": (1280, 720),
    "9:16": (720, 1280),
}


@dataclass
class FluxTask:
    id: str
    prompt: str
    batch: int
    size: tuple[int, int]
    step: int
    seed: int
    polls: int = 0
    running_polls: int = 1
    fail_status: str | None = None
    urls: list[str] = field(default_factory=list)


class FakeMaasFlux(_MaasFake):
    prefix = "/v2/ai"

    def __init__(self, key: str = "k", endpoint: str = "ep", *, image_scale: int = 4) -> None:
        super().__init__(key, endpoint)
        # Images are the documented sizes divided by this (1 = full size), to keep tests fast.
        self.image_scale = image_scale
        self.running_polls = 1
        self.fail_status: str | None = None
        self.refuse_with: dict[str, Any] | None = None  # HTTP 200 body instead of success
        self.tasks: dict[str, FluxTask] = {}
        self._ids = itertools.count(1)

    def _routes(self, router: web.UrlDispatcher) -> None:
        root = f"{self.prefix}/{{endpoint}}/images"
        router.add_post(f"{root}/generations", self._generations)
        router.add_get(f"{root}/tasks/{{task_id}}", self._task)

    async def _generations(self, request: web.Request) -> web.Response:
        body = await request.json()
        _need_keys(body, {"prompts"}, {"batchsize", "aspect_ratio", "step", "seed"})
        prompts = body["prompts"]
        if not isinstance(prompts, str) or not prompts.strip():
            raise _ViolationError("prompts must be a non-empty string")
        batch = body.get("batchsize", 1)
        # The vendor's own example sends "2": a digit string is accepted like an integer.
        if isinstance(batch, str) and batch.strip().isdigit():
            batch = int(batch)
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 8:
            raise _ViolationError(f"batchsize must be 1-8, got {body.get('batchsize')!r}")
        ratio = body.get("aspect_ratio", "1:1")
        if ratio not in FLUX_SIZES:
            raise _ViolationError(f"aspect_ratio must be one of {list(FLUX_SIZES)}, got {ratio!r}")
        step = _int_field(body, "step", 4, 10) if "step" in body else 4
        seed = _int_field(body, "seed", 0, 2**32 - 1) if "seed" in body else 0
        if not self.credit:
            return error_body(402, "Insufficient account balance", "CreditNotEnough")
        if any(word in prompts.lower() for word in self.banned_words):
            return error_body(403, "Prompt contains sensitive words", "Sensitive_Prompt")
        running = sum(1 for t in self.tasks.values() if t.polls <= t.running_polls)
        if self.max_running is not None and running >= self.max_running:
            return error_body(429, "Maximum concurrency reached", "Too_Many_Requests")
        if self.refuse_with is not None:
            return web.json_response(self.refuse_with)
        width, height = FLUX_SIZES[ratio]
        size = (max(8, width // self.image_scale), max(8, height // self.image_scale))
        task = FluxTask(
            id=f"{uuid.uuid4()}",
            prompt=prompts,
            batch=batch,
            size=size,
            step=step,
            seed=seed or random.randint(1, 2**31),
            running_polls=self.running_polls,
            fail_status=self.fail_status,
        )
        task.urls = [self.add_image(f"{task.id}-{i}", *size) for i in range(batch)]
        self.tasks[task.id] = task
        return web.json_response({"status": "success", "taskId": task.id})

    async def _task(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return error_body(404, "task not found", "Task_Not_Found")
        task.polls += 1
        if task.polls <= task.running_polls:
            return web.json_response({"status": "running", "completed": False, "imageUrls": []})
        if task.fail_status:
            return web.json_response(
                {"status": task.fail_status, "completed": True, "imageUrls": [],
                 "message": "Image generation failed"}
            )  # fmt: skip
        return web.json_response({"status": "completed", "completed": True,
                                  "imageUrls": list(task.urls)})  # fmt: skip
