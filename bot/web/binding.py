"""A link belongs to the first browser that opens it: a forwarded or leaked URL opens
nothing elsewhere.

The first open of a link records `<nonce>#opened` in the `used_links` table (atomic:
of two browsers racing, one wins) and gives that browser a cookie holding the nonce,
signed with the links' key (HttpOnly, SameSite=Strict, for as long as the link
lives). Every later request with that link (the page again, its images, the submit)
must bring the cookie; without it the answer says the link was opened elsewhere.

SameSite=Strict cookies are not sent when the member follows the link again from
Discord (a cross-site navigation): such a request gets a page that reloads itself
from this origin (`HOP`), which does carry the cookie; a browser without it is then
refused.
"""

from __future__ import annotations

import enum

from aiohttp import web

from bot.engine.store import Store
from bot.i18n import Text
from bot.web import used_links
from bot.web.signing import LinkError, LinkSigner

COOKIE_PREFIX = "atelier_link_"
OPENED = "#opened"
ELSEWHERE = Text(
    "This link was first opened in another browser, and works only there. Open it in "
    "that browser, or ask again in Discord for a new link."
)


class Admission(enum.Enum):
    HELD = "held"  # this browser has the link's cookie
    FIRST = "first"  # nobody opened the link yet: this browser gets it (set the cookie)
    HOP = "hop"  # maybe ours, but the cookie was withheld: reload from our own origin


def cookie_name(nonce: str) -> str:
    return COOKIE_PREFIX + nonce


def holds(request: web.Request, signer: LinkSigner, nonce: str) -> bool:
    value = request.cookies.get(cookie_name(nonce), "")
    return bool(value) and signer.is_browser_mark(nonce, value)


def _cross_site(request: web.Request) -> bool:
    return request.headers.get("Sec-Fetch-Site") == "cross-site"


async def admit(store: Store, signer: LinkSigner, request: web.Request, nonce: str) -> Admission:
    """Whether this browser may open the link's page; LinkError when another has it."""
    if holds(request, signer, nonce):
        return Admission.HELD
    if await used_links.take(store, nonce + OPENED):
        return Admission.FIRST
    if _cross_site(request):
        return Admission.HOP
    raise LinkError(ELSEWHERE)


def require(request: web.Request, signer: LinkSigner, nonce: str) -> None:
    """For the requests a page makes (images, submit): the cookie, or LinkError."""
    if not holds(request, signer, nonce):
        raise LinkError(ELSEWHERE)


def give(
    response: web.StreamResponse, signer: LinkSigner, nonce: str, *, path: str, secure: bool
) -> None:
    response.set_cookie(
        cookie_name(nonce),
        signer.browser_mark(nonce),
        path=path,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=max(int(signer.max_age), 60),
    )
