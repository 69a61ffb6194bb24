"""What every web answer carries, and the CSRF check of the editor's submit.

Headers: a strict Content-Security-Policy (nothing but this origin; no inline script
or style; no framing), nosniff, no referrer (the tokens travel in the path), no cache.

CSRF: opening the editor sets a random value in a SameSite=Strict, HttpOnly cookie and
in the page; a submit must bring both, equal, from this origin. A page on another site
can neither read the value nor send the cookie.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.i18n import Text

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
CSRF_COOKIE = "atelier_csrf"
CSRF_HEADER = "X-Atelier-CSRF"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def secure_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer under the pages' prefix gets HEADERS, errors of the router included."""
    try:
        response = await handler(request)
    except web.HTTPException as err:  # 404/405 from the router: a plain answer
        response = web.Response(status=err.status, text=err.reason, content_type="text/plain")
    response.headers.update(HEADERS)
    return response


def new_csrf(response: web.StreamResponse, *, path: str, secure: bool) -> str:
    value = secrets.token_urlsafe(24)
    response.set_cookie(
        CSRF_COOKIE,
        value,
        path=path,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=24 * 3600,
    )
    return value


def csrf_problem(request: web.Request, public_url: str) -> str | None:
    """Why a submit is not from our own page, or None."""
    origin = request.headers.get("Origin")
    if origin and origin.rstrip("/") != origin_of(public_url):
        return Text("This form was sent from another site; open the link from Discord.")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not cookie or not sent or not hmac.compare_digest(cookie, sent):
        return Text("This form's session is missing or stale; reload the page and submit again.")
    return None


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
