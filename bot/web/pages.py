"""The pages' routes, under /atelier/ on the bot's HTTP server.

    GET  /atelier/edit/{token}                  the Vary (Region) editor
    GET  /atelier/edit/{token}/image            the image it redraws
    POST /atelier/edit/{token}                  submit (JSON: prompt, shapes)
    GET  /atelier/gallery/{token}               the gallery (?q=words&provider=name)
    GET  /atelier/gallery/{token}/image/{job}/{n}  one image of a listed job
    GET  /atelier/static/{name}                 the script and the style sheet

Every route reads its token first: nothing is shown or done for a link that is not
ours, has expired, or is about another job.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import jinja2
from aiohttp import web

from bot.engine.intake import RequestError
from bot.engine.models import is_job_id
from bot.i18n import Text, render, tr
from bot.ui.context import UiContext
from bot.ui.replies import said
from bot.web import binding, editor, gallery, used_links
from bot.web.security import csrf_problem, new_csrf, secure_headers
from bot.web.shapes import ShapeError, read_prompt, read_shapes
from bot.web.signing import EDIT, GALLERY, Claims, LinkError, LinkSigner
from bot.web.words import browser_locale, page_locale, template_helpers

log = logging.getLogger(__name__)

PREFIX = "/atelier"
STATIC = {"editor.js": "text/javascript", "atelier.css": "text/css"}
UNREADABLE = Text("The form could not be read; reload the page and submit again.")


def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=True,  # every value is escaped; nothing is marked safe
        undefined=jinja2.StrictUndefined,
    )


class WebPages:
    def __init__(self, ctx: UiContext, signer: LinkSigner) -> None:
        self.ctx = ctx
        self.signer = signer
        self.public_url = ctx.config.http.public_url.rstrip("/")
        # Where the browser sees PREFIX: below the public URL's own path, if it has one
        # (a reverse proxy that serves the bot at https://example.com/atelier-bot/).
        self.browser_prefix = urlsplit(self.public_url).path.rstrip("/") + PREFIX
        self._templates = _templates()
        folder = resources.files("bot.web") / "static"
        self._static = {name: (folder / name).read_bytes() for name in STATIC}

    # ---- links, for the Discord side ----

    def editor_link(self, claims: Claims) -> str:
        return f"{self.public_url}{PREFIX}/edit/{self.signer.sign(claims)}"

    def gallery_link(self, claims: Claims) -> str:
        return f"{self.public_url}{PREFIX}/gallery/{self.signer.sign(claims)}"

    # ---- the application ----

    def app(self) -> web.Application:
        """A sub-application for PREFIX: its middleware covers every answer under it."""
        app = web.Application(middlewares=[secure_headers])
        app.add_routes(
            [
                web.get("/edit/{token}", self.editor_page),
                web.get("/edit/{token}/image", self.editor_image),
                web.post("/edit/{token}", self.editor_submit),
                web.get("/gallery/{token}", self.gallery_page),
                web.get("/gallery/{token}/image/{job_id}/{number}", self.gallery_image),
                web.get("/static/{name}", self.static),
            ]
        )
        return app

    def locale(self, request: web.Request, claims: Claims | None = None) -> str:
        """The page's language: the link's member's, else (a link we cannot read) the
        browser's. An expired link is still ours: its member's language is kept."""
        token = request.match_info.get("token", "")
        locale = claims.locale if claims else self.signer.locale_of(token)
        if locale is None:
            return browser_locale(request.headers.get("Accept-Language", ""))
        return page_locale(locale)

    def _render(self, template: str, locale: str, **values: Any) -> str:
        page = self._templates.get_template(template)
        return page.render(prefix=self.browser_prefix, **template_helpers(locale), **values)

    def _page(self, template: str, locale: str, status: int = 200, **values: Any) -> web.Response:
        html = self._render(template, locale, **values)
        return web.Response(text=html, status=status, content_type="text/html")

    def _problem(self, request: web.Request, err: LinkError) -> web.Response:
        locale = self.locale(request)
        return self._page("problem.html", locale, err.status, message=said(err, locale))

    # ---- one browser per link (bot/web/binding.py) ----

    async def _admit(self, request: web.Request, claims: Claims) -> binding.Admission:
        return await binding.admit(self.ctx.engine.store, self.signer, request, claims.nonce)

    def _hop(self, request: web.Request, claims: Claims) -> web.Response:
        """A page that opens the same address again, from this origin (see binding).
        The address is relative (the token, and the query): right behind a proxy too."""
        query = request.query_string
        again = request.match_info["token"] + (f"?{query}" if query else "")
        return self._page("hop.html", self.locale(request, claims), again=again)

    def _bind(
        self, response: web.StreamResponse, claims: Claims, admission: binding.Admission
    ) -> None:
        if admission is binding.Admission.FIRST:
            path, secure = f"{self.browser_prefix}/", self.public_url.startswith("https:")
            binding.give(response, self.signer, claims.nonce, path=path, secure=secure)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound()
        return web.Response(body=self._static[name], content_type=STATIC[name])

    # ---- the editor ----

    async def editor_page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        try:
            claims = self.signer.verify(token, EDIT)
            job = await editor.open_job(self.ctx, claims)
            if await used_links.was_used(self.ctx.engine.store, claims.nonce):
                raise LinkError(editor.USED, 409)
            admission = await self._admit(request, claims)
        except LinkError as err:
            return self._problem(request, err)
        if admission is binding.Admission.HOP:
            return self._hop(request, claims)
        response = web.Response(content_type="text/html")
        self._bind(response, claims, admission)
        secure = self.public_url.startswith("https:")
        csrf = new_csrf(response, path=f"{self.browser_prefix}/", secure=secure)
        locale = self.locale(request, claims)
        response.text = self._render("editor.html", locale, job=job, token=token, csrf=csrf)
        return response

    async def editor_image(self, request: web.Request) -> web.StreamResponse:
        try:
            claims = self.signer.verify(request.match_info["token"], EDIT)
            binding.require(request, self.signer, claims.nonce)
            job = await editor.open_job(self.ctx, claims)
        except LinkError as err:
            return self._problem(request, err)
        return self._image_file(request, editor.picked_image(job, claims.index))

    async def editor_submit(self, request: web.Request) -> web.Response:
        locale = self.locale(request)
        problem = csrf_problem(request, self.public_url)
        if problem:
            return _json({"error": render(problem, locale)}, 403)
        try:
            claims = self.signer.verify(request.match_info["token"], EDIT)
            binding.require(request, self.signer, claims.nonce)
            body = await _json_body(request)
            prompt = read_prompt(body.get("prompt", ""))
            shapes = read_shapes(body.get("shapes"))
            started = await editor.submit(self.ctx, claims, prompt, shapes)
        except LinkError as err:
            return _json({"error": said(err, locale)}, err.status)
        except (ShapeError, RequestError) as err:
            return _json({"error": said(err, locale)}, 400)
        log.info("job %s started from the web editor (parent %s)", started.job_id, claims.job_id)
        message = tr(
            locale,
            "Started job {job_id}. Its result will appear in Discord:",
            job_id=started.job_id,
        )
        return _json({"job_id": started.job_id, "link": started.link, "message": message}, 200)

    # ---- the gallery ----

    async def gallery_page(self, request: web.Request) -> web.Response:
        try:
            claims = self.signer.verify(request.match_info["token"], GALLERY)
            admission = await self._admit(request, claims)
        except LinkError as err:
            return self._problem(request, err)
        if admission is binding.Admission.HOP:
            return self._hop(request, claims)
        filters = gallery.Filters.read(
            request.query.get("q", ""), request.query.get("provider", "")
        )
        entries, providers = await gallery.entries(self.ctx, claims, filters)
        response = self._page(
            "gallery.html",
            self.locale(request, claims),
            token=request.match_info["token"],
            entries=entries,
            providers=providers,
            filters=filters,
            query=" ".join(filters.words),
            server_wide=claims.server_wide and claims.is_manager,
        )
        self._bind(response, claims, admission)
        return response

    async def gallery_image(self, request: web.Request) -> web.StreamResponse:
        job_id = request.match_info["job_id"]
        try:
            claims = self.signer.verify(request.match_info["token"], GALLERY)
            binding.require(request, self.signer, claims.nonce)
            number = int(request.match_info["number"])
        except LinkError as err:
            return self._problem(request, err)
        except ValueError:
            raise web.HTTPNotFound() from None
        job = await self.ctx.engine.get(job_id) if is_job_id(job_id) else None
        if job is None or not gallery.visible(claims, job):
            # The same answer for a job that does not exist: nothing is told of others'.
            missing = LinkError(Text("There is no such image in your gallery."), 404)
            return self._problem(request, missing)
        return self._image_file(request, gallery.image_of(job, number))

    def _image_file(self, request: web.Request, relative: str | None) -> web.StreamResponse:
        path = self.ctx.engine.media_path(relative) if relative else None
        if path is None or not path.is_file():
            return self._problem(request, LinkError(Text("This image is no longer kept."), 404))
        # Streamed from disk; the type from the name the media store gave it (.png ...).
        return web.FileResponse(path)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ShapeError(Text("Send the form as JSON (reload the page if this persists)."))
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise ShapeError(UNREADABLE) from None
    if not isinstance(body, dict):
        raise ShapeError(UNREADABLE)
    return body


def _json(value: dict[str, Any], status: int) -> web.Response:
    return web.json_response(value, status=status)
