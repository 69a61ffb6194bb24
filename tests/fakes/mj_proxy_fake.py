"""A fake midjourney-proxy server: real HTTP on 127.0.0.1, in the test's event loop.

It speaks the protocol of REFERENCE.md section 1 in three flavours, each with the quirks of
the real servers (read from their public source):

- ``novicezk``: ``mj-api-secret`` only (401 with an empty body otherwise); no buttons, no
  ``/submit/action`` or modal (Spring's JSON 404), ``/submit/change`` for U/V/🔄, an unknown
  task id answers an empty 200, no mode path prefixes, no cancel or image-seed.
- ``trueai``: ``Authorization`` verbatim (``mj-api-secret`` only when there is no
  ``Authorization``; 403 "未登录" otherwise); buttons with customIds, no ``/submit/change``
  (an empty 404, as in v10), code 21 for tasks that wait for a modal, ``seed``/``imageUrls``/
  ``width``/``height`` on results, 204 for an unknown task, mode prefixes. Its action words
  for buttons are UPSCALE_HD (2x), ZOOM (Outpaint, Custom Zoom), VARIATION (Vary Subtle/Strong
  /Region), PAN (SubmitController.Action); a cancelled task ends FAILURE "取消任务"
  (TaskController.Cancel); after ``/submit/modal`` the task stays MODAL until its queue
  starts it (SubmitController.Modal saves it unchanged).
  Video as trueai serves it (Setting.EnableVideo, on by default; ``video``): an upscale
  carries Animate (High / Low motion) ``MJ::JOB::animate_{high,low}::1::<h>::SOLO``; a
  press starts a VIDEO task whose result is four mp4s (``imageUrl`` the first,
  ``videoUrl``, ``videoUrls``/``imageUrls`` as ``[{url, thumbnail}]``) with U1-U4
  ``MJ::JOB::video_virtual_upscale::<n>::<h>`` and 🔄; U<n> gives that video (action
  UPSCALE, ``contentType`` video/mp4) with Extend ``MJ::JOB::animate_{high,low}_extend::1::
  <h>``, itself a VIDEO task of four. Make Square (``MJ::Outpaint::100``) only on a
  non-square upscale, as Midjourney sends it (grids take their shape from ``--ar``).
- ``relay`` (new-api, 佩奇/aigc369): ``Authorization: Bearer`` / verbatim / ``mj-api-secret``;
  rewrites 21 and 22 to 1, rejects ``/change`` without an index, answers an unknown task
  with 400 ``{"code": 4}``, serves its web page (200 HTML) for routes it lacks, forwards
  images through ``/mj/image/{id}`` on its own host, task ids as JSON numbers. After
  ``/submit/modal`` a fetch keeps showing MODAL for a while (new-api stores a second row for
  the id and answers /fetch from the first). Two simplifications, kept on purpose: real
  new-api passes 21 through for INPAINT/CUSTOM_ZOOM (relay/mjproxy_handler.go) while this
  fake rewrites it too (an upstream that answers 1 there: the adapter must then wait for
  MODAL), and real new-api's ``result`` is always a string (dto.MidjourneyResponse.Result)
  while this fake sends numbers, as the aggregators' documents show. Its ``/submit/action``
  refuses the video buttons (``unknown_action:<customId>``, CoverPlusActionToNormalAction
  in service/midjourney.go knows none of them).

Tasks advance one scripted step each time they are fetched (or every ``step_seconds``).
Finished images are real PNGs served by a second listener (the "CDN", another origin) at
URLs carrying Discord's ``ex=`` expiry. Everything the client sends is recorded in
``requests``; whatever breaks the protocol is recorded in ``violations``.

    async with FakeMjProxy(flavour="trueai", key="k") as fake:
        config = MjProxyConfig(**fake.provider_config())

``auth_style=None`` applies the flavour's own (lenient) auth rules; naming a style makes the
fake accept only that header form. With only ``auth_style`` given, the flavour follows it
(mj-api-secret: novicezk, authorization: trueai, bearer: relay). Scripting knobs are plain
attributes (``script``, ``fail_with``, ``list_by_condition``, ``remix``, ``modal_never``,
``describe_in``, ``image_ttl_fetches``, ...) and methods (``queue_code``, ``queue_answer``,
``fail_http``, ``send_html``, ``send_malformed``, ``reset_connection``, ``slow``,
``expire_images``, ``add_task``). ``count(endpoint)`` and ``bodies(endpoint)`` read the log.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web
from PIL import Image

FLAVOURS = ("novicezk", "trueai", "relay")
_NATIVE_AUTH = {"novicezk": "mj-api-secret", "trueai": "authorization", "relay": "bearer"}
_PATH = re.compile(r"^/(?:mj-(fast|relax|turbo)/)?mj(/.*)$")
_DATA_URL = re.compile(r"^data:(image/[A-Za-z0-9.+-]+);base64,(.+)$", re.DOTALL)
_BOT_TYPES = ("MID_JOURNEY", "NIJI_JOURNEY")

DEFAULT_SCRIPT: tuple[tuple[str, Any], ...] = (
    ("SUBMITTED", "0%"),
    ("IN_PROGRESS", "46%"),
    ("SUCCESS", "100%"),
)
DEFAULT_DESCRIBE = (
    "1️⃣ a red fox sitting in fresh snow, soft watercolor, muted palette --ar 1:1\n\n"
    "2️⃣ fox portrait in winter forest, children's book illustration --ar 1:1\n\n"
    "3️⃣ minimalist painting of an orange fox on white, japanese ink style --ar 1:1\n\n"
    "4️⃣ a curious fox in a snowy field, gouache, gentle light --ar 1:1"
)
DEFAULT_SHORTEN = (
    "## Important tokens\nred fox, snow, watercolor\n\n## Shortened prompts\n\n"
    "1️⃣ red fox, snow, watercolor\n\n2️⃣ red fox in snow\n\n3️⃣ watercolor fox\n\n"
    "4️⃣ fox, snow\n\n5️⃣ fox"
)
_QUAD_COLOURS = ((220, 60, 60), (60, 180, 75), (60, 100, 220), (240, 200, 40))


@dataclass
class Recorded:
    method: str
    path: str
    endpoint: str  # after the /mj prefix ("/submit/imagine"), or "cdn:<path>"
    mode: str | None
    headers: dict[str, str]
    body: Any
    query: dict[str, str]


@dataclass
class Fault:
    kind: str  # "status" | "html" | "reset" | "delay" | "malformed" | "redirect" | "trickle"
    times: int
    match: str | None = None  # substring of the endpoint (None: every request)
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0
    body: str | None = None
    location: str = ""  # where a "redirect" points


@dataclass
class FakeTask:
    id: str
    action: str  # the server's action word
    result: str  # "grid" | "single" | "describe" | "shorten"
    prompt: str = ""
    status: str = "NOT_START"
    progress: Any = "0%"
    image_url: str = ""
    buttons: list[dict[str, Any]] = field(default_factory=list)
    fail_reason: str = ""
    parent_id: str | None = None
    bot_type: str = "MID_JOURNEY"
    mode: str | None = None
    state: str = ""
    notify_hook: str = ""
    script: list[tuple[str, Any]] = field(default_factory=list)
    step: int = -1
    created: float = field(default_factory=time.monotonic)
    submit_time: int = field(default_factory=lambda: int(time.time() * 1000))
    start_time: int | None = None
    finish_time: int | None = None
    modal: str | None = None  # "inpaint" | "zoom" | "remix" while it needs /submit/modal
    modal_polls: int = 0  # polls left before a pending modal task shows MODAL
    modal_linger: int = 0  # polls it still shows MODAL after /submit/modal
    hash: str = field(default_factory=lambda: str(uuid.uuid4()))
    seed: str = ""
    image_urls: list[str] = field(default_factory=list)
    size: tuple[int, int] = (128, 128)
    final_prompt: str = ""
    description: str = ""
    mask: Image.Image | None = None  # the decoded mask of a Vary (Region)
    video_urls: list[str] = field(default_factory=list)  # a video task's mp4s
    thumbnails: list[str] = field(default_factory=list)  # their first frames
    video_index: int = 0  # U<n> of a video grid: which of the parent's videos


class FakeMjProxy:
    """See the module docstring. Scripting knobs are plain attributes and methods."""

    def __init__(
        self,
        auth_style: str | None = None,
        key: str = "k",
        flavour: str | None = None,
        *,
        host: str = "127.0.0.1",
    ) -> None:
        if flavour is None:
            flavour = {v: k for k, v in _NATIVE_AUTH.items()}.get(auth_style or "", "relay")
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}")
        self.flavour = flavour
        # None: the flavour's own (lenient) rules; a style: only that header form passes.
        self.auth_style = auth_style
        self.key = key
        self.host = host
        self.requests: list[Recorded] = []
        self.violations: list[str] = []
        self.tasks: dict[str, FakeTask] = {}
        # --- scripting ---
        self.script: list[tuple[str, Any]] = list(DEFAULT_SCRIPT)
        self.step_seconds: float | None = None  # advance by time instead of by polls
        self.fail_with: str | None = None  # new tasks end in FAILURE with this reason
        self.banned_words: set[str] = {"forbidden"}
        self.list_by_condition = True
        self.change_supported = flavour != "trueai"  # trueai v10 removed /submit/change
        self.remix = False  # follow-ups wait for a remix modal (plus/trueai)
        self.modal_delay_polls = 1  # polls before a Vary (Region)/Custom Zoom shows MODAL
        self.modal_never = False  # ... or never
        # Polls a task still shows MODAL after /submit/modal (see the module docstring).
        self.modal_linger_polls = 0 if flavour == "novicezk" else 1
        self.upscale_version = "v6"  # "v6" | "v6r1" | "v7": Upscale (Subtle) customIds
        self.describe_answer = DEFAULT_DESCRIBE
        self.describe_in = "finalPrompt"  # "finalPrompt" | "description" | "prompt"
        self.shorten_answer = DEFAULT_SHORTEN
        self.shorten_in = "finalPrompt"  # "finalPrompt" | "description"
        self.grid_size = (128, 128)
        self.image_ttl_fetches: int | None = None  # image URLs die after this many GETs
        self.image_ttl_seconds = 86_400.0  # the ex= expiry given to new image URLs
        self.relay_image_auth = True  # /mj/image/{id} wants the key (newer new-api)
        self.seed_value = "636646138"
        # trueai's Setting.EnableVideo (on by default): upscales carry the Animate buttons.
        self.video = True
        self.video_bytes = 64 * 1024  # the size of each served mp4 (an ftyp + mdat shell)
        self.video_data: bytes | None = None  # ... or these bytes (a real film) instead
        self.video_batch = 4  # videos per Animate / Extend (Midjourney's --bs, 4 unless set)
        self._answers: list[tuple[int, dict[str, Any]]] = []
        self._faults: list[Fault] = []
        self._images: dict[str, dict[str, Any]] = {}
        self._expired = False
        self._ids = itertools.count(1)
        self._runners: list[web.AppRunner] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._session: ClientSession | None = None
        self.base_url = ""
        self.cdn_url = ""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeMjProxy:
        api = web.Application(client_max_size=64 * 1024 * 1024)
        api.router.add_route("*", "/{tail:.*}", self._handle_api)
        cdn = web.Application()
        cdn.router.add_route("GET", "/{tail:.*}", self._handle_cdn)
        for app, attr in ((api, "base_url"), (cdn, "cdn_url")):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
            self._runners.append(runner)
            port = runner.addresses[0][1]
            setattr(self, attr, f"http://{self.host}:{port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._background):
            task.cancel()
        if self._session is not None:
            await self._session.close()
        for runner in self._runners:
            await runner.cleanup()

    def provider_config(self, name: str = "mj", **overrides: Any) -> dict[str, Any]:
        """Settings for MjProxyConfig (or a TOML [[providers]] entry) that reach this fake."""
        config: dict[str, Any] = {
            "name": name,
            "kind": "mj-proxy",
            "base_url": self.base_url,
            "api_key": self.key,
            "auth_style": self.auth_style or _NATIVE_AUTH[self.flavour],
            "poll_interval": 0.05,
            "request_timeout": 5,
            # The fake's CDN is another loopback origin: trusted like a self-hosted one.
            "image_origins": [self.cdn_url],
        }
        config.update(overrides)
        return config

    # ------------------------------------------------------------------ scripting API

    def queue_answer(self, answer: dict[str, Any], *, status: int = 200) -> None:
        """The next submission gets this answer verbatim (no task is created)."""
        self._answers.append((status, answer))

    def queue_code(self, code: int, description: str = "", **properties: Any) -> None:
        """The next submission answers this code. 21 and 22 still create the task."""
        self._answers.append(
            (-1, {"code": code, "description": description, "properties": properties})
        )

    def fail_http(
        self,
        status: int,
        *,
        times: int = 1,
        match: str | None = None,
        retry_after: float | None = None,
        body: str | None = None,
    ) -> None:
        self._faults.append(Fault("status", times, match, status, retry_after, body=body))

    def send_html(self, *, times: int = 1, match: str | None = None, status: int = 200) -> None:
        self._faults.append(Fault("html", times, match, status))

    def send_malformed(self, *, times: int = 1, match: str | None = None) -> None:
        self._faults.append(Fault("malformed", times, match))

    def reset_connection(self, *, times: int = 1, match: str | None = None) -> None:
        self._faults.append(Fault("reset", times, match))

    def slow(self, delay: float, *, times: int = 1, match: str | None = None) -> None:
        self._faults.append(Fault("delay", times, match, delay=delay))

    def redirect(
        self, location: str, *, status: int = 302, times: int = 1, match: str | None = None
    ) -> None:
        """Answer a redirect to `location` (another origin, another path) instead."""
        self._faults.append(Fault("redirect", times, match, status, location=location))

    def trickle(self, every: float, *, times: int = 1, match: str | None = None) -> None:
        """Answer 200 and send one byte every `every` seconds, for a minute."""
        self._faults.append(Fault("trickle", times, match, delay=every))

    def expire_images(self) -> None:
        """Every image URL handed out so far answers 403 from now on."""
        self._expired = True

    def count(self, endpoint: str, method: str | None = None) -> int:
        return sum(
            1
            for r in self.requests
            if endpoint in r.endpoint and (method is None or r.method == method)
        )

    def bodies(self, endpoint: str) -> list[Any]:
        return [r.body for r in self.requests if r.endpoint.endswith(endpoint)]

    def add_task(self, **fields_: Any) -> FakeTask:
        """Put a task straight into the store (for fetch tests)."""
        task = FakeTask(
            id=self._new_id(),
            action=fields_.pop("action", "IMAGINE"),
            result=fields_.pop("result", "grid"),
            **fields_,
        )
        if not task.script:
            task.script = list(self.script)
        self.tasks[task.id] = task
        return task

    # ------------------------------------------------------------------ HTTP: API

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        body: Any = None
        raw = await request.read()
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
                self._violate(f"{request.path}: body is not JSON")
        match = _PATH.match(request.path)
        endpoint = match.group(2) if match else request.path
        mode = match.group(1) if match else None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                endpoint,
                mode,
                {k.lower(): v for k, v in request.headers.items()},
                body,
                dict(request.query),
            )
        )
        if raw and request.method == "POST" and request.content_type != "application/json":
            self._violate(f"{endpoint}: Content-Type {request.content_type!r}, not JSON")
        fault = await self._fault(request, endpoint)
        if fault is not None:
            return fault
        if match is None or (mode and self.flavour == "novicezk"):
            return self._no_route(request.path)
        if self.flavour == "relay" and request.method == "GET" and endpoint.startswith("/image/"):
            if self.relay_image_auth and not self._authorised(request):
                return self._unauthorised()
            return await self._relay_image(endpoint.removeprefix("/image/"))
        if not self._authorised(request):
            return self._unauthorised()
        handler = self._route(request.method, endpoint)
        if handler is None:
            return self._no_route(request.path)
        try:
            return await handler(endpoint, body, mode)
        except _Answer as answer:
            return answer.response

    def _route(self, method: str, endpoint: str) -> Callable[..., Any] | None:
        fl = self.flavour
        table: dict[tuple[str, str], Callable[..., Any]] = {
            ("POST", "/submit/imagine"): self._imagine,
            ("POST", "/submit/describe"): self._describe,
            ("POST", "/submit/blend"): self._blend,
        }
        if self.change_supported:
            table[("POST", "/submit/change")] = self._change
        if fl != "novicezk":
            table[("POST", "/submit/action")] = self._action
            table[("POST", "/submit/modal")] = self._modal
            table[("POST", "/submit/shorten")] = self._shorten
            table[("POST", "/insight-face/swap")] = self._swap
        if self.list_by_condition:
            table[("POST", "/task/list-by-condition")] = self._list_by_condition
        if fl != "relay":
            table[("GET", "/task/list")] = self._list
        found = table.get((method, endpoint))
        if found is not None:
            return found
        task_route = re.match(r"^/task/([^/]+)/(fetch|cancel|image-seed)$", endpoint)
        if task_route:
            task_id, verb = task_route.groups()
            if verb == "fetch" and method == "GET":
                return lambda *_: self._fetch(task_id)
            if verb == "cancel" and method == "POST" and fl == "trueai":
                return lambda *_: self._cancel(task_id)
            if verb == "image-seed" and method == "GET" and fl != "novicezk":
                return lambda *_: self._image_seed(task_id)
        return None

    def _authorised(self, request: web.Request) -> bool:
        authorization = request.headers.get("Authorization")
        secret = request.headers.get("mj-api-secret")
        style = self.auth_style
        if style == "bearer":
            return authorization == f"Bearer {self.key}"
        if style == "authorization":
            return authorization == self.key
        if style == "mj-api-secret":
            return secret == self.key
        if self.flavour == "novicezk":
            return secret == self.key
        if self.flavour == "trueai":  # the Authorization header wins when present
            return authorization == self.key if authorization is not None else secret == self.key
        if secret:  # new-api: mj-api-secret becomes "Bearer <secret>"
            return secret == self.key
        token = (authorization or "").removeprefix("Bearer ")
        return bool(token) and token == self.key

    def _unauthorised(self) -> web.Response:
        if self.flavour == "novicezk":
            return web.Response(status=401)
        if self.flavour == "trueai":
            return web.Response(status=403, text="未登录")
        return web.json_response(
            {"error": {"message": "无效的令牌", "type": "new_api_error"}}, status=401
        )

    def _no_route(self, path: str) -> web.Response:
        if self.flavour == "novicezk" and not path.startswith("/mj/"):
            # Outside the servlet context path /mj: Tomcat itself answers, with its page.
            return web.Response(
                status=404,
                text='<!doctype html><html lang="en"><head><title>HTTP Status 404 – Not '
                "Found</title></head><body><h1>HTTP Status 404 – Not Found</h1></body></html>",
                content_type="text/html",
            )
        if self.flavour == "novicezk":  # Spring Boot's error body
            return web.json_response(
                {
                    "timestamp": "2024-01-01T00:00:00.000+00:00",
                    "status": 404,
                    "error": "Not Found",
                    "path": path,
                },
                status=404,
            )
        if self.flavour == "trueai":  # ASP.NET: an empty 404
            return web.Response(status=404)
        return web.Response(  # new-api serves its web UI for unknown routes
            text="<!doctype html><html><head><title>New API</title></head><body>"
            '<div id="root"></div></body></html>',
            content_type="text/html",
        )

    async def _fault(self, request: web.Request, endpoint: str) -> web.StreamResponse | None:
        for fault in self._faults:
            if fault.times <= 0 or (fault.match and fault.match not in endpoint):
                continue
            fault.times -= 1
            if fault.kind == "delay":
                await asyncio.sleep(fault.delay)
                return None
            if fault.kind == "reset":
                assert request.transport is not None
                request.transport.close()
                raise asyncio.CancelledError  # aiohttp drops the handler quietly
            if fault.kind == "html":
                return web.Response(
                    status=fault.status,
                    text="<html><body><h1>502 Bad Gateway</h1>nginx</body></html>",
                    content_type="text/html",
                )
            if fault.kind == "redirect":
                return web.Response(status=fault.status, headers={"Location": fault.location})
            if fault.kind == "trickle":
                return await _trickle(request, fault.delay)
            if fault.kind == "malformed":
                return web.Response(text='{"code": 1, "resu', content_type="application/json")
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = f"{fault.retry_after:g}"
            return web.Response(
                status=fault.status,
                text=fault.body if fault.body is not None else "",
                headers=headers,
                content_type="application/json" if fault.body else None,
            )
        return None

    # ------------------------------------------------------------------ validation

    def _violate(self, text: str) -> None:
        self.violations.append(text)

    def _fields(self, endpoint: str, body: Any, allowed: Iterable[str]) -> dict[str, Any]:
        if not isinstance(body, dict):
            self._violate(f"{endpoint}: body is not a JSON object")
            raise _Answer(web.json_response({"code": 4, "description": "参数错误"}))
        unknown = set(body) - set(allowed) - {"state", "notifyHook", "accountFilter", "botType"}
        if unknown:
            self._violate(f"{endpoint}: unknown fields {sorted(unknown)}")
        for name in ("state", "notifyHook"):
            if name in body and not isinstance(body[name], str):
                self._violate(f"{endpoint}: {name} must be a string")
        if "botType" in body and body["botType"] not in _BOT_TYPES:
            self._violate(f"{endpoint}: botType {body['botType']!r}")
        if "accountFilter" in body and not isinstance(body["accountFilter"], dict):
            self._violate(f"{endpoint}: accountFilter must be an object")
        return body

    def _image(self, endpoint: str, name: str, value: Any) -> tuple[int, int]:
        """Decode a data URL that must hold a real image; its size."""
        if not isinstance(value, str) or not (match := _DATA_URL.match(value)):
            self._violate(f"{endpoint}: {name} is not a base64 image data URL")
            raise _Answer(web.json_response({"code": 4, "description": "base64格式错误"}))
        try:
            data = base64.b64decode(match.group(2), validate=True)
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                return image.size
        except (binascii.Error, ValueError, OSError):
            self._violate(f"{endpoint}: {name} does not decode to an image")
            raise _Answer(web.json_response({"code": 4, "description": "base64格式错误"})) from None

    def _task_id_field(self, endpoint: str, body: dict[str, Any]) -> str:
        value = body.get("taskId")
        if not isinstance(value, str) or not value:
            self._violate(f"{endpoint}: taskId must be a non-empty string, got {value!r}")
            raise _Answer(web.json_response({"code": 4, "description": "taskId不能为空"}))
        return value

    def _parent(self, endpoint: str, task_id: str) -> FakeTask:
        parent = self.tasks.get(task_id)
        if parent is None:
            self._fail_answer(
                3 if self.flavour != "relay" else 4,
                "关联任务不存在或已失效" if self.flavour != "relay" else "task_not_found",
                status=404 if self.flavour == "trueai" else 400 if self.flavour == "relay" else 200,
            )
        assert parent is not None
        if parent.status != "SUCCESS":
            self._fail_answer(4, "关联任务状态错误")
        return parent

    def _fail_answer(self, code: int, description: str, status: int = 200) -> None:
        payload: dict[str, Any] = {"code": code, "description": description, "properties": {}}
        if self.flavour == "relay" and status != 200:
            payload = {"code": code, "description": f"{description} ", "type": "upstream_error"}
        raise _Answer(web.json_response(payload, status=status))

    # ------------------------------------------------------------------ submissions

    def _scripted(self) -> tuple[int, dict[str, Any]] | None:
        """The next scripted answer that still creates a task (codes 21, 22), or None.
        Any other scripted answer is sent at once, without a task."""
        if not self._answers:
            return None
        status, answer = self._answers.pop(0)
        if status != -1:
            raise _Answer(web.json_response(answer, status=status))
        if answer["code"] not in (21, 22):
            raise _Answer(web.json_response({**answer, "result": None}))
        return status, answer

    def _submit_answer(
        self, task: FakeTask | None, scripted: tuple[int, dict[str, Any]] | None, code: int = 1
    ) -> web.Response:
        properties: dict[str, Any] = {"discordInstanceId": "1146852997121441885"}
        description = "提交成功"
        if scripted is not None:
            code = scripted[1]["code"]
            description = scripted[1]["description"] or description
            properties.update(scripted[1]["properties"])
        if code == 22:
            properties.setdefault("numberOfQueues", 2)
            description = f"排队中，前面还有{properties['numberOfQueues']}个任务"
        if code == 21 and task is not None and task.modal:
            description = "Waiting for window confirm"
            properties.update(status="MODAL", remix=True)
        if self.flavour == "relay" and code in (21, 22):
            code = 1  # new-api rewrites both to "submitted"
        result: Any = task.id if task is not None else None
        if self.flavour == "relay" and result is not None:
            result = int(result)  # the aggregator docs show a number
        answer = {
            "code": code,
            "description": description,
            "result": result,
            "properties": properties,
        }
        if task is not None:
            self._notify(task)
            if task.notify_hook and self.step_seconds:
                self._keep_time(task)
        return web.json_response(answer)

    def _new_id(self) -> str:
        return f"{int(time.time() * 1000)}{next(self._ids) % 1000:03d}"

    def _create(
        self, action: str, result: str, body: dict[str, Any], mode: str | None, **fields_: Any
    ) -> FakeTask:
        task = FakeTask(
            id=self._new_id(),
            action=action,
            result=result,
            bot_type=body.get("botType", "MID_JOURNEY"),
            mode=mode,
            state=body.get("state", ""),
            notify_hook=body.get("notifyHook", ""),
            script=list(self.script),
            size=self._grid_for(str(fields_.get("prompt") or "")),
            **fields_,
        )
        if result != "grid":
            task.size = (task.size[0] // 2, task.size[1] // 2)
        if self.flavour == "relay":
            task.status = ""  # new-api stores "" until its first upstream poll
        if self.fail_with is not None:
            last = task.script[-1] if task.script else ("SUCCESS", "100%")
            task.script = [*task.script[:-1], ("FAILURE", last[1])]
            task.fail_reason = self.fail_with
        self.tasks[task.id] = task
        return task

    def _grid_for(self, prompt: str) -> tuple[int, int]:
        """A grid's size: `grid_size` for 1:1; the prompt's --ar shapes it, as on
        Midjourney (the long side stays, both sides even so that halves are whole)."""
        match = re.search(r"--(?:ar|aspect)\s+(\d+):(\d+)", prompt)
        side = max(self.grid_size)
        if match is None or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
            return self.grid_size
        wide, high = int(match.group(1)), int(match.group(2))
        if wide >= high:
            return side, max(2, round(side * high / wide / 2) * 2)
        return max(2, round(side * wide / high / 2) * 2), side

    def _banned(self, prompt: str) -> None:
        for word in self.banned_words:
            if word in prompt.lower():
                raise _Answer(
                    web.json_response(
                        {
                            "code": 24,
                            "description": "可能包含敏感词",
                            "properties": {"promptEn": prompt, "bannedWord": word},
                        }
                    )
                )

    async def _imagine(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("prompt", "base64Array", "base64"))
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            self._violate(f"{endpoint}: prompt is required")
            return web.json_response({"code": 4, "description": "prompt不能为空"})
        images = body.get("base64Array", [])
        if not isinstance(images, list):
            self._violate(f"{endpoint}: base64Array must be a list")
            images = []
        for i, item in enumerate(images):
            self._image(endpoint, f"base64Array[{i}]", item)
        scripted = self._scripted()
        self._banned(prompt)
        task = self._create("IMAGINE", "grid", body, mode, prompt=prompt)
        task.final_prompt = prompt
        return self._submit_answer(task, scripted)

    async def _blend(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("base64Array", "dimensions"))
        images = body.get("base64Array")
        if not isinstance(images, list) or not 2 <= len(images) <= 5:
            self._violate(f"{endpoint}: base64Array must hold 2-5 images")
            return web.json_response({"code": 4, "description": "base64List参数错误"})
        for i, item in enumerate(images):
            self._image(endpoint, f"base64Array[{i}]", item)
        if body.get("dimensions") not in ("PORTRAIT", "SQUARE", "LANDSCAPE"):
            self._violate(f"{endpoint}: dimensions {body.get('dimensions')!r}")
            return web.json_response({"code": 4, "description": "dimensions参数错误"})
        scripted = self._scripted()
        task = self._create("BLEND", "grid", body, mode, prompt="")
        return self._submit_answer(task, scripted)

    async def _describe(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("base64",))
        self._image(endpoint, "base64", body.get("base64"))
        scripted = self._scripted()
        task = self._create("DESCRIBE", "describe", body, mode)
        return self._submit_answer(task, scripted)

    async def _shorten(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("prompt",))
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            self._violate(f"{endpoint}: prompt is required")
            return web.json_response({"code": 4, "description": "prompt不能为空"})
        scripted = self._scripted()
        self._banned(prompt)
        task = self._create("SHORTEN", "shorten", body, mode, prompt=prompt)
        return self._submit_answer(task, scripted)

    async def _swap(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("sourceBase64", "targetBase64"))
        self._image(endpoint, "sourceBase64", body.get("sourceBase64"))
        self._image(endpoint, "targetBase64", body.get("targetBase64"))
        scripted = self._scripted()
        task = self._create("SWAP_FACE", "single", body, mode, prompt="InsightFace")
        return self._submit_answer(task, scripted)

    async def _change(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("taskId", "action", "index"))
        task_id = self._task_id_field(endpoint, body)
        action = body.get("action")
        index = body.get("index")
        if action not in ("UPSCALE", "VARIATION", "REROLL"):
            self._violate(f"{endpoint}: action {action!r}")
            return web.json_response({"code": 4, "description": "action参数错误"})
        if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
            self._violate(f"{endpoint}: index must be an integer, got {index!r}")
        elif action != "REROLL" and not (isinstance(index, int) and 1 <= index <= 4):
            self._violate(f"{endpoint}: index must be 1-4 for {action}, got {index!r}")
        if self.flavour == "relay" and not index:
            self._fail_answer(4, "index_is_required", status=400)
        parent = self._parent(endpoint, task_id)
        if parent.action not in ("IMAGINE", "VARIATION", "REROLL", "BLEND"):
            return web.json_response({"code": 4, "description": "关联任务不允许执行变化"})
        scripted = self._scripted()
        result = "single" if action == "UPSCALE" else "grid"
        task = self._create(action, result, body, mode, prompt=parent.prompt, parent_id=parent.id)
        task.final_prompt = parent.final_prompt
        return self._submit_answer(task, scripted)

    async def _action(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("taskId", "customId", "chooseSameChannel"))
        task_id = self._task_id_field(endpoint, body)
        custom_id = body.get("customId")
        if not isinstance(custom_id, str) or not custom_id:
            self._violate(f"{endpoint}: customId must be a non-empty string")
            return web.json_response({"code": 4, "description": "参数错误"})
        parent = self._parent(endpoint, task_id)
        if custom_id not in {b["customId"] for b in parent.buttons}:
            self._violate(f"{endpoint}: customId {custom_id!r} is not a button of {task_id}")
            return web.json_response({"code": 4, "description": "customId不存在"})
        action, result, modal = _classify(custom_id, self.flavour)
        if action == "REROLL" and parent.result == "video":  # 🔄 films again (trueai: VIDEO)
            action, result = "VIDEO", "video"
        if self.flavour == "relay" and result.startswith("video"):
            # new-api's CoverPlusActionToNormalAction knows no animate_* or
            # video_virtual_upscale (it sends video through /submit/video instead).
            self._fail_answer(4, f"unknown_action:{custom_id}", status=400)
        # trueai with Remix on: VIDEO presses too wait for their "MJ::AnimateModal::prompt".
        if self.remix and modal is None and action != "UPSCALE" and result in ("grid", "video"):
            modal = "remix"
        scripted = self._scripted()
        task = self._create(
            action, result, body, mode, prompt=parent.prompt, parent_id=parent.id, modal=modal
        )
        task.final_prompt = parent.final_prompt
        if result == "single":  # U1-4 cut one image out of the grid; 2x keeps it small
            half = (parent.size[0] // 2, parent.size[1] // 2)
            task.size = half if parent.result == "grid" else parent.size
        elif custom_id.startswith("MJ::Outpaint::100::"):  # Make Square: a square grid
            task.size = (max(parent.size) * 2,) * 2
        elif result == "video_single":  # U<n> of a video grid: that video
            task.video_index = int(custom_id.split("::")[3])
            task.size = parent.size
        elif result == "video":
            task.size = parent.size
        if modal is not None:
            task.modal_polls = self.modal_delay_polls
            if self.flavour == "trueai":  # answers 21 at once, the task already MODAL
                task.status, task.modal_polls = "MODAL", 0
                return self._submit_answer(task, scripted, code=21)
            if self.flavour == "relay" and modal in ("inpaint", "zoom"):
                task.status = "SUBMITTED"
        return self._submit_answer(task, scripted)

    async def _modal(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        body = self._fields(endpoint, body, ("taskId", "prompt", "maskBase64"))
        task_id = self._task_id_field(endpoint, body)
        task = self.tasks.get(task_id)
        if task is None:
            return web.json_response(
                {"code": 3, "description": "关联任务不存在或已失效"}, status=404
            )
        if task.status != "MODAL" or task.modal is None:
            self._violate(f"{endpoint}: task {task_id} is {task.status}, not MODAL")
            return web.json_response({"code": 4, "description": "任务状态错误"})
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            self._violate(f"{endpoint}: prompt is required")
            return web.json_response({"code": 4, "description": "参数错误"})
        if task.modal == "inpaint":
            parent = self.tasks.get(task.parent_id or "")
            size = self._image(endpoint, "maskBase64", body.get("maskBase64"))
            if parent is not None and size != parent.size:
                self._violate(f"{endpoint}: mask is {size}, the image is {parent.size}")
            match = _DATA_URL.match(body["maskBase64"])
            assert match is not None
            mask = Image.open(io.BytesIO(base64.b64decode(match.group(2)))).convert("L")
            if mask.getextrema()[1] < 255:
                self._violate(f"{endpoint}: the mask has no white region")
            if any(mask.histogram()[1:255]):
                # Midjourney redraws where the mask is white: grey (antialiased or blurred
                # edges) is neither, and servers threshold it their own way.
                self._violate(f"{endpoint}: the mask is not only black and white")
            task.mask = mask
        elif body.get("maskBase64"):
            self._violate(f"{endpoint}: maskBase64 sent for a {task.modal} modal")
        if task.modal == "zoom" and not re.search(r"--zoom\s+[0-9.]+", prompt):
            self._violate(f"{endpoint}: custom zoom prompt lacks --zoom: {prompt!r}")
        self._banned(prompt)
        task.prompt = prompt
        task.modal = None
        task.step, task.modal_linger = -1, self.modal_linger_polls
        if not task.modal_linger:
            task.status = "SUBMITTED"
        return self._submit_answer(task, None)

    # ------------------------------------------------------------------ tasks

    async def _fetch(self, task_id: str) -> web.Response:
        task = self.tasks.get(task_id)
        if task is None:
            if self.flavour == "novicezk":
                return web.Response(status=200, content_type="application/json")
            if self.flavour == "trueai":
                return web.Response(status=204)
            return web.json_response(
                {"code": 4, "description": "task_no_found ", "type": "upstream_error"},
                status=400,
            )
        self._advance(task)
        return web.json_response(self._task_json(task))

    async def _list_by_condition(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("ids"), list):
            self._violate(f"{endpoint}: body must be {{'ids': [...]}}")
            return web.json_response([])
        out = []
        for task_id in body["ids"]:
            if not isinstance(task_id, str):
                self._violate(f"{endpoint}: ids must be strings, got {task_id!r}")
                continue
            task = self.tasks.get(task_id)
            if task is not None:
                self._advance(task)
                out.append(self._task_json(task))
        return web.json_response(out)

    async def _list(self, endpoint: str, body: Any, mode: str | None) -> web.Response:
        return web.json_response([self._task_json(t) for t in list(self.tasks.values())[-100:]])

    async def _cancel(self, task_id: str) -> web.Response:
        task = self.tasks.get(task_id)
        if task is not None and task.status not in ("SUCCESS", "FAILURE", "CANCEL"):
            # trueai: targetTask.Fail("取消任务"): FAILURE, not CANCEL.
            task.status, task.fail_reason = "FAILURE", "取消任务"
            task.progress, task.finish_time = "", int(time.time() * 1000)
            task.script = []
        return web.Response(status=200)

    async def _image_seed(self, task_id: str) -> web.Response:
        task = self.tasks.get(task_id)
        if task is None:
            if self.flavour == "relay":
                return web.json_response({"code": 4, "description": "task_no_found "}, status=400)
            return web.json_response(
                {"code": 3, "description": "关联任务不存在或已失效"}, status=404
            )
        if task.status != "SUCCESS":
            return web.json_response({"code": 4, "description": "关联任务状态错误"}, status=400)
        return web.json_response({"code": 1, "description": "成功", "result": self.seed_value})

    def _advance(self, task: FakeTask) -> None:
        before = (task.status, task.progress)
        if task.modal is None and task.status == "MODAL" and task.modal_linger > 0:
            task.modal_linger -= 1  # answered, but not started yet
            return
        if task.modal is not None:
            if task.status == "MODAL":
                pass
            elif self.modal_never or task.modal_polls > 0:
                task.modal_polls -= 1
                task.status = "SUBMITTED"
            else:
                task.status, task.progress = "MODAL", "0%"
        elif task.status not in ("SUCCESS", "FAILURE", "CANCEL") and task.script:
            if self.step_seconds:
                step = int((time.monotonic() - task.created) / self.step_seconds)
            else:
                step = task.step + 1
            task.step = min(step, len(task.script) - 1)
            task.status, task.progress = task.script[task.step]
            if task.start_time is None and task.status not in ("NOT_START", ""):
                task.start_time = int(time.time() * 1000)
            if task.status == "IN_PROGRESS":
                task.image_url = self._image_url("preview", task, (32, 32))
            elif task.status == "SUCCESS":
                self._succeed(task)
            elif task.status == "FAILURE":
                task.finish_time = int(time.time() * 1000)
                task.fail_reason = task.fail_reason or "[Invalid parameter] Job failed"
        if (task.status, task.progress) != before:
            self._notify(task)

    def _succeed(self, task: FakeTask) -> None:
        task.finish_time = int(time.time() * 1000)
        task.progress = "100%"
        h = task.hash
        if task.result == "describe":
            task.image_url = self._image_url("upload", task, (64, 64))
            task.buttons = [_button(f"MJ::Job::PicReader::{n}", f"{n}") for n in range(1, 5)]
            task.buttons.append(_button("MJ::Picread::Retry", "", "🔄"))
            if self.describe_in == "finalPrompt":
                task.final_prompt = self.describe_answer
                task.prompt = self.describe_answer
            elif self.describe_in == "prompt":
                task.prompt = self.describe_answer
            else:
                task.description = self.describe_answer
            return
        if task.result == "shorten":
            if self.shorten_in == "finalPrompt":
                task.final_prompt = self.shorten_answer
            else:
                task.description = self.shorten_answer
            return
        task.seed = self.seed_value
        if task.result in ("video", "video_single"):
            self._succeed_video(task)
            return
        if task.result == "grid":
            task.image_url = self._image_url("grid", task, task.size)
            half = (task.size[0] // 2, task.size[1] // 2)
            task.image_urls = [self._image_url(f"part{i}", task, half) for i in range(4)]
            task.buttons = [_button(f"MJ::JOB::upsample::{n}::{h}", f"U{n}") for n in range(1, 5)]
            task.buttons.append(_button(f"MJ::JOB::reroll::0::{h}::SOLO", "", "🔄"))
            task.buttons += [_button(f"MJ::JOB::variation::{n}::{h}", f"V{n}") for n in range(1, 5)]
        else:
            task.image_url = self._image_url("single", task, task.size)
            if task.action == "SWAP_FACE":
                return
            task.buttons = self._upscale_buttons(task)

    def _upscale_buttons(self, task: FakeTask) -> list[dict[str, Any]]:
        """What an upscale offers: Midjourney's buttons, as the Discord-account servers
        pass them through. Make Square only where the image is not square (Midjourney's
        own rule; trueai's self-made sets for official/partner accounts have none),
        Animate only with video on (CustomComponentModel.CreateAnimateButtons)."""
        h, v = task.hash, self.upscale_version
        width, height = task.size
        buttons = [
            _button(f"MJ::JOB::upsample_{v}_2x_subtle::1::{h}::SOLO", "Upscale (Subtle)"),
            _button(f"MJ::JOB::upsample_{v}_2x_creative::1::{h}::SOLO", "Upscale (Creative)"),
            _button(f"MJ::JOB::low_variation::1::{h}::SOLO", "Vary (Subtle)"),
            _button(f"MJ::JOB::high_variation::1::{h}::SOLO", "Vary (Strong)"),
            _button(f"MJ::Inpaint::1::{h}::SOLO", "Vary (Region)"),
            _button(f"MJ::Outpaint::50::1::{h}::SOLO", "Zoom Out 2x"),
            _button(f"MJ::Outpaint::75::1::{h}::SOLO", "Zoom Out 1.5x"),
            _button(f"MJ::CustomZoom::{h}", "Custom Zoom"),
            _button(f"MJ::JOB::pan_left::1::{h}::SOLO", "", "⬅️"),
            _button(f"MJ::JOB::pan_right::1::{h}::SOLO", "", "➡️"),
            _button(f"MJ::JOB::pan_up::1::{h}::SOLO", "", "⬆️"),
            _button(f"MJ::JOB::pan_down::1::{h}::SOLO", "", "⬇️"),
        ]
        if width != height:
            buttons.append(_button(f"MJ::Outpaint::100::1::{h}::SOLO", "Make Square"))
        buttons.append(_button(f"MJ::BOOKMARK::{h}", "", "❤️"))
        if self.video:
            buttons += [
                _button(f"MJ::JOB::animate_high::1::{h}::SOLO", "Animate (High motion)", "🎞️"),
                _button(f"MJ::JOB::animate_low::1::{h}::SOLO", "Animate (Low motion)", "🎞️"),
            ]
        return buttons

    def _succeed_video(self, task: FakeTask) -> None:
        """trueai's video results: four videos with U1-U4 (SetVideoUpscaleButtons), or
        the one picked with Extend (SetVideoExtendButtons), `imageUrl` the video itself."""
        h = task.hash
        if task.result == "video":
            count = self.video_batch
            task.video_urls = [self._video_url(task, n) for n in range(count)]
            task.thumbnails = [self._image_url(f"frame{n}", task, task.size) for n in range(count)]
            task.buttons = [
                _button(f"MJ::JOB::video_virtual_upscale::{n}::{h}", f"U{n}")
                for n in range(1, count + 1)
            ]
            task.buttons.append(_button(f"MJ::JOB::reroll::0::{h}::SOLO", "", "🔄"))
            task.image_url = task.video_urls[0]
            return
        parent = self.tasks[task.parent_id or ""]
        task.video_urls, task.thumbnails = list(parent.video_urls), list(parent.thumbnails)
        task.image_url = parent.video_urls[task.video_index - 1]
        task.buttons = [
            _button(f"MJ::JOB::animate_high_extend::1::{h}", "Extend (High motion)", "🎞️"),
            _button(f"MJ::JOB::animate_low_extend::1::{h}", "Extend (Low motion)", "🎞️"),
        ]

    def _task_json(self, task: FakeTask) -> dict[str, Any]:
        image_url = task.image_url
        if self.flavour == "relay" and image_url and task.result not in ("describe", "shorten"):
            image_url = f"{self.base_url}/mj/image/{task.id}"  # new-api's forwarded link
            if task.status != "SUCCESS":
                image_url += f"?rand={time.time_ns()}"
        data: dict[str, Any] = {
            "id": task.id,
            "action": task.action,
            "status": task.status,
            "progress": task.progress,
            "imageUrl": image_url or None,
            "prompt": task.prompt,
            "promptEn": task.prompt,
            "description": task.description or f"/{task.action.lower()} {task.prompt}".strip(),
            "failReason": task.fail_reason or None,
            "state": task.state,
            "submitTime": task.submit_time,
            "startTime": task.start_time,
            "finishTime": task.finish_time,
            "properties": {
                "finalPrompt": task.final_prompt or task.prompt,
                "discordInstanceId": "1146852997121441885",
            },
        }
        if self.flavour != "novicezk":
            data["buttons"] = task.buttons if task.status == "SUCCESS" else []
        if self.flavour == "trueai":
            data["botType"] = task.bot_type
            data["mode"] = (task.mode or "fast").upper()
            if task.status == "SUCCESS" and task.result in ("grid", "single"):
                data["seed"] = task.seed or None
                data["width"], data["height"] = task.size
                if task.image_urls:
                    data["imageUrls"] = [{"url": u} for u in task.image_urls]
            if task.status == "SUCCESS" and task.result.startswith("video"):
                # TaskInfo: imageUrl is the video link; videoUrls and imageUrls both list
                # the videos with their thumbnails; a picked video says its contentType.
                pairs = [
                    {"url": u, "thumbnail": t}
                    for u, t in zip(task.video_urls, task.thumbnails, strict=True)
                ]
                data["videoUrl"] = task.video_urls[0] if task.result == "video" else None
                data["videoUrls"], data["imageUrls"] = pairs, pairs
                data["width"], data["height"] = task.size
                if task.result == "video_single":
                    data["contentType"] = "video/mp4"
        return data

    # ------------------------------------------------------------------ images

    def _image_url(self, kind: str, task: FakeTask, size: tuple[int, int]) -> str:
        name = f"{task.hash}_{kind}.png"
        self._images[name] = {"kind": kind, "size": size, "fetches": 0}
        ex = int(time.time() + self.image_ttl_seconds)
        return (
            f"{self.cdn_url}/attachments/1146852997121441885/{task.id}/{name}"
            f"?ex={ex:x}&is={int(time.time()):x}&hm={uuid.uuid4().hex}&"
        )

    def _video_url(self, task: FakeTask, n: int) -> str:
        name = f"{task.hash}_{n}.mp4"
        self._images[name] = {"kind": "video", "size": task.size, "fetches": 0}
        ex = int(time.time() + self.image_ttl_seconds)
        return (
            f"{self.cdn_url}/attachments/1146852997121441885/{task.id}/{name}"
            f"?ex={ex:x}&is={int(time.time()):x}&hm={uuid.uuid4().hex}&"
        )

    async def _relay_image(self, task_id: str) -> web.StreamResponse:
        task = self.tasks.get(task_id.split("?")[0])
        if task is None or not task.image_url:
            return web.json_response({"error": "midjourney_task_not_found"}, status=400)
        name = task.image_url.split("?")[0].rsplit("/", 1)[-1]
        return self._serve_image(name, None)

    async def _handle_cdn(self, request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append(
            Recorded(
                "GET", request.path, f"cdn:{request.path}", None, headers, None, dict(request.query)
            )
        )
        if "authorization" in headers or "mj-api-secret" in headers:
            self._violate(f"cdn:{request.path}: the API key was sent to the image CDN")
        fault = await self._fault(request, f"cdn:{request.path}")
        if fault is not None:
            return fault
        return self._serve_image(request.path.rsplit("/", 1)[-1], request.query.get("ex"))

    def _serve_image(self, name: str, ex: str | None) -> web.StreamResponse:
        spec = self._images.get(name)
        gone = web.Response(status=404, text="This content is no longer available.")
        if spec is None:
            return gone
        if self._expired:
            return web.Response(status=403, text="This content is no longer available.")
        if ex is not None and int(ex, 16) < time.time():
            return gone
        spec["fetches"] += 1
        if self.image_ttl_fetches is not None and spec["fetches"] > self.image_ttl_fetches:
            return gone
        if spec["kind"] == "video":
            body = self.video_data or _mp4(self.video_bytes)
            return web.Response(body=body, content_type="video/mp4")
        return web.Response(body=_png(spec["kind"], spec["size"]), content_type="image/png")

    # ------------------------------------------------------------------ callbacks

    def _keep_time(self, task: FakeTask) -> None:
        """With callbacks and timed steps, a real server moves (and calls back) on its
        own, whether or not anyone polls."""

        async def tick() -> None:
            assert self.step_seconds
            while task.status not in ("SUCCESS", "FAILURE", "CANCEL", "MODAL"):
                await asyncio.sleep(self.step_seconds / 2)
                self._advance(task)

        ticker = asyncio.get_running_loop().create_task(tick())
        self._background.add(ticker)
        ticker.add_done_callback(self._background.discard)

    def _notify(self, task: FakeTask) -> None:
        # Like the real servers: POST the whole Task, no signature, no retries.
        if not task.notify_hook:
            return

        async def post() -> None:
            if self._session is None:
                self._session = ClientSession(timeout=ClientTimeout(total=5))
            try:
                async with self._session.post(task.notify_hook, json=self._task_json(task)):
                    pass
            except Exception:  # a dead hook must not break the fake
                pass

        background = asyncio.get_running_loop().create_task(post())
        self._background.add(background)
        background.add_done_callback(self._background.discard)


class _Answer(Exception):  # a control-flow signal that carries a response
    def __init__(self, response: web.Response) -> None:
        super().__init__("answer")
        self.response = response


async def _trickle(request: web.Request, every: float) -> web.StreamResponse:
    """A host that keeps a download alive with a byte now and then."""
    response = web.StreamResponse(headers={"Content-Type": "image/png"})
    await response.prepare(request)
    try:
        for _ in range(int(60 / every)):
            await response.write(b"\x89")
            await asyncio.sleep(every)
    except (ConnectionError, RuntimeError):
        return response  # the client gave up: what this fault is for
    return response


def _button(custom_id: str, label: str, emoji: str = "") -> dict[str, Any]:
    return {"customId": custom_id, "emoji": emoji, "label": label, "style": 2, "type": 2}


def _classify(custom_id: str, flavour: str) -> tuple[str, str, str | None]:
    """(server action, "grid"|"single", modal kind) of pressing a button. trueai's words
    are those of its SubmitController.Action; new-api's those of CoverPlusActionToNormalAction
    (service/midjourney.go)."""
    trueai = flavour == "trueai"
    if custom_id.startswith("MJ::JOB::upsample::"):
        return "UPSCALE", "single", None
    if re.match(r"MJ::JOB::upsample_v\w+_2x_", custom_id):
        return ("UPSCALE_HD" if trueai else "UPSCALE"), "single", None
    if custom_id.startswith("MJ::JOB::variation::"):
        return "VARIATION", "grid", None
    if custom_id.startswith("MJ::JOB::low_variation::"):
        return ("VARIATION" if trueai else "LOW_VARIATION"), "grid", None
    if custom_id.startswith("MJ::JOB::high_variation::"):
        return ("VARIATION" if trueai else "HIGH_VARIATION"), "grid", None
    if custom_id.startswith("MJ::JOB::reroll::"):
        return "REROLL", "grid", None
    if custom_id.startswith("MJ::JOB::pan_"):
        return "PAN", "grid", None
    if custom_id.startswith("MJ::Outpaint::"):
        return "ZOOM", "grid", None
    if custom_id.startswith("MJ::CustomZoom::"):
        return ("ZOOM" if trueai else "CUSTOM_ZOOM"), "grid", "zoom"
    if custom_id.startswith("MJ::Inpaint::"):
        return ("VARIATION" if trueai else "INPAINT"), "grid", "inpaint"
    if custom_id.startswith("MJ::JOB::animate_"):  # Animate and Extend alike: VIDEO
        return "VIDEO", "video", None
    if custom_id.startswith("MJ::JOB::video_virtual_upscale::"):
        return "UPSCALE", "video_single", None
    return "ACTION", "single", None


def _mp4(size: int) -> bytes:
    """`size` bytes laid out as an MP4 file: an ftyp box (brand isom), then one mdat box
    holding the rest. Not a playable film; its type shows in its bytes, as a real one's."""
    ftyp = b"ftyp" + b"isom" + (512).to_bytes(4, "big") + b"isomiso2avc1mp41"
    head = (len(ftyp) + 4).to_bytes(4, "big") + ftyp
    rest = max(8, size - len(head))
    return head + rest.to_bytes(4, "big") + b"mdat" + b"\0" * (rest - 8)


def _png(kind: str, size: tuple[int, int]) -> bytes:
    width, height = size
    if kind == "grid":  # a real 2x2 grid: four coloured quadrants
        image = Image.new("RGB", size)
        for i, colour in enumerate(_QUAD_COLOURS):
            x, y = (i % 2) * width // 2, (i // 2) * height // 2
            image.paste(colour, (x, y, x + width // 2, y + height // 2))
    else:
        image = Image.new("RGB", size, (128, 128, 160) if kind != "preview" else (90, 90, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
