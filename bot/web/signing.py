"""Signed links: who a page is for, what it may show, and until when.

A link's token is an itsdangerous signature (HMAC-SHA256 over a timestamped payload)
of `Claims`: the member it was given to (and what Discord said of them when they
asked: roles, manager or not), where they asked, and the job (or gallery) it opens.
Nobody can change a claim without the key, and a token older than `[http]
link_minutes` is refused.

The key comes from `[http] link_secret`, or is made once and kept in `web.key` beside
the store (readable by the bot's user only), so links survive a restart and every
process of one store signs alike. It is never logged.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

from bot.config import Config
from bot.i18n import Text

EDIT, GALLERY = "edit", "gallery"
KEY_FILE = "web.key"
# Claims' fields up to `locale`: what the oldest links still in use carry.
OLDEST_CLAIMS = 13
_SALT = "atelier.web.link"
_BROWSER_SALT = "atelier.web.browser"


class LinkError(Exception):
    """A link that cannot be used, worded for the person who opened it (a `Text` is
    said in the page's language)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.text = message
        self.status = status


@dataclass(frozen=True)
class Claims:
    kind: str  # EDIT or GALLERY
    user_id: str
    guild_id: str | None
    channel_id: str | None
    role_ids: tuple[str, ...] = ()
    is_manager: bool = False
    # EDIT: the job and the pressed button; the message to reply to.
    job_id: str = ""
    index: int = 0
    variant: str = ""
    reply_to: str | None = None
    # GALLERY: the whole server's jobs (a manager asked for them) or the member's own.
    server_wide: bool = False
    # One per link: what "used once" is recorded by.
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # The member's Discord locale ("zh-CN"): the language the pages speak to them.
    locale: str = ""
    # In a thread: its channel (the server's channel rules follow it).
    parent_channel_id: str | None = None

    def to_wire(self) -> list[Any]:
        """The values in field order: a short token, for Discord's 512-character URLs."""
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def from_wire(cls, data: Any) -> Claims:
        names = [f.name for f in fields(cls)]
        if not isinstance(data, list) or not OLDEST_CLAIMS <= len(data) <= len(names):
            raise TypeError("not this version's claims")
        # A link made before the last fields were added keeps working: they default.
        values = dict(zip(names, data, strict=False))
        values["role_ids"] = tuple(str(r) for r in values["role_ids"])
        return cls(**values)


class LinkSigner:
    def __init__(self, key: str, max_age_seconds: float) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)
        self._browser = URLSafeSerializer(key, salt=_BROWSER_SALT)
        self.max_age = max_age_seconds

    def sign(self, claims: Claims) -> str:
        return self._serializer.dumps(claims.to_wire())

    def verify(self, token: str, kind: str) -> Claims:
        """The claims of a token made here for `kind`, or LinkError saying why not."""
        try:
            data = self._serializer.loads(token, max_age=int(self.max_age))
        except SignatureExpired:
            raise LinkError(
                Text("This link has expired. Ask again in Discord for a new one."), 410
            ) from None
        except BadSignature:
            raise LinkError(
                Text(
                    "This link is not valid (it was changed, or made by another Atelier). "
                    "Ask again in Discord for a new one."
                )
            ) from None
        try:
            claims = Claims.from_wire(data)
        except (TypeError, ValueError):
            raise LinkError(
                Text("This link is from another version of Atelier; ask again.")
            ) from None
        if claims.kind != kind:
            raise LinkError(Text("This link opens another page."), 404)
        return claims

    def browser_mark(self, nonce: str) -> str:
        """The cookie value that shows a browser opened the link of `nonce` first."""
        return self._browser.dumps(nonce)

    def is_browser_mark(self, nonce: str, value: str) -> bool:
        try:
            return bool(self._browser.loads(value) == nonce)
        except BadSignature:
            return False

    def locale_of(self, token: str) -> str | None:
        """The locale a token made here carries, however old it is (an expired link's
        page still speaks its member's language); None for a token not ours."""
        try:
            data = self._serializer.loads(token)  # no max_age: the signature alone
        except BadSignature:
            return None
        try:
            return Claims.from_wire(data).locale
        except (TypeError, ValueError):
            return None


def key_path(config: Config) -> Path:
    """Where the made key is kept: beside the SQLite file; with PostgreSQL in media_dir,
    the folder every process of a cluster shares already, so that a link one process
    signs opens on any of them."""
    if config.storage.url:
        return Path(config.storage.media_dir) / KEY_FILE
    return Path(config.storage.path).parent / KEY_FILE


def signing_key(config: Config) -> str:
    """`[http] link_secret`, else the key kept beside the store (made the first time)."""
    if config.http.link_secret is not None and config.http.link_secret.get_secret_value():
        return config.http.link_secret.get_secret_value()
    if not config.storage.url and config.storage.path == ":memory:":
        return secrets.token_urlsafe(32)  # a store that is gone at exit: so is its key
    path = key_path(config)
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:  # O_EXCL: two processes starting together keep the one key written first
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as out:
        out.write(key)
    return key


def signer_for(config: Config) -> LinkSigner:
    return LinkSigner(signing_key(config), config.http.link_minutes * 60)
