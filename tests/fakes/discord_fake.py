"""A fake Discord (REST API v10 + gateway) for end-to-end tests of the bot.

Runs an aiohttp server on 127.0.0.1 (free port) inside the test's event loop::

    async with FakeDiscord() as fake:
        with fake.patch_discord():          # in-process client: Route.BASE + DEFAULT_GATEWAY
            ...
        # or, for a subprocess bot: pass fake.base_url / fake.gateway_url / fake.token

The real discord.py client talks to it over real HTTP and a real WebSocket:

* login (``GET /users/@me``, ``GET /oauth2/applications/@me``), ``GET /gateway/bot``;
* gateway HELLO / IDENTIFY / READY / GUILD_CREATE / heartbeats / RESUME / RECONNECT
  (zlib-stream transport compression when asked, as discord.py does by default);
* application command sync, channel messages (JSON and multipart with files), interaction
  callbacks (``?with_response=1``), follow-ups and original-response edits through the
  interaction webhook, a CDN for the uploaded files;
* simulations: the 3 s acknowledgement deadline (10062), interaction token expiry (50027),
  per-route rate limits with real ``X-RateLimit-*`` headers and 429 storms, the upload limit
  (413 / 40005), deleted messages and channels (10008 / 10003);
* validation of every body against Discord's OpenAPI description and documented limits
  (:mod:`tests.fakes.discord_schema`); problems go to :attr:`FakeDiscord.violations`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
import mimetypes
import re
import secrets
import struct
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import WSMsgType, web

from .discord_schema import VALIDATED_OPERATIONS, DiscordSchema, get_schema

__all__ = [
    "CallbackAttempt",
    "DiscordAPIError",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeFile",
    "FakeGuild",
    "FakeMessage",
    "InteractionRecord",
    "MessageEdit",
    "Permissions",
    "RateLimitRule",
    "RecordedFile",
    "RecordedRequest",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")

DISCORD_EPOCH_MS = 1420070400000
API_VERSION = 10
API_PREFIX = f"/api/v{API_VERSION}"
MIB = 1024 * 1024
DEFAULT_UPLOAD_LIMIT = 10 * MIB

# Message flags
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_IS_COMPONENTS_V2 = 1 << 15
_CREATE_FLAGS = (
    FLAG_SUPPRESS_EMBEDS | FLAG_EPHEMERAL | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_IS_COMPONENTS_V2
)
_EDIT_FLAGS = FLAG_SUPPRESS_EMBEDS | FLAG_IS_COMPONENTS_V2

# Gateway intents that matter here
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15


class Permissions:
    """Permission bits used by the fake (subset)."""

    CREATE_INSTANT_INVITE = 1 << 0
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    CONNECT = 1 << 20
    SPEAK = 1 << 21
    CHANGE_NICKNAME = 1 << 26
    USE_APPLICATION_COMMANDS = 1 << 31
    CREATE_PUBLIC_THREADS = 1 << 35
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ADMINISTRATOR = 1 << 3

    BOT_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
        | CREATE_PUBLIC_THREADS
    )
    EVERYONE_DEFAULT = (
        CREATE_INSTANT_INVITE
        | ADD_REACTIONS
        | VIEW_CHANNEL
        | SEND_MESSAGES
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | USE_EXTERNAL_EMOJIS
        | CONNECT
        | SPEAK
        | CHANGE_NICKNAME
        | USE_APPLICATION_COMMANDS
        | SEND_MESSAGES_IN_THREADS
        | CREATE_PUBLIC_THREADS
    )


# ============================================================================ helpers
class _Snowflakes:
    """Time-based, strictly increasing snowflakes (like Discord's)."""

    def __init__(self) -> None:
        self._last = 0
        self._inc = 0

    def next(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._inc = (self._inc + 1) & 0xFFF
        value = (ms << 22) | (1 << 17) | (1 << 12) | self._inc
        if value <= self._last:
            value = self._last + 1
        self._last = value
        return value


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).isoformat()


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _sanitize_filename(name: str) -> str:
    name = name.replace(" ", "_")
    name = re.sub(r"[^A-Za-z0-9._-]", "", name)
    return name or "unknown"


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF, JPEG or WebP image, else None."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = 1 + int.from_bytes(data[24:27], "little")
                h = 1 + int.from_bytes(data[27:30], "little")
                return w, h
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return int(w) & 0x3FFF, int(h) & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            return None
        if data[:2] == b"\xff\xd8":
            i = 2
            n = len(data)
            while i + 9 < n:
                if data[i] != 0xFF:
                    return None
                marker = data[i + 1]
                if marker == 0xFF:
                    i += 1
                    continue
                if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                    i += 2
                    continue
                (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                    return int(w), int(h)
                i += 2 + seglen
    except (struct.error, IndexError):
        return None
    return None


def _guess_content_type(filename: str, data: bytes) -> str | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:2] == b"\xff\xd8":
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, _ = mimetypes.guess_type(filename)
    if guessed and guessed.startswith("text/"):
        return f"{guessed}; charset=utf-8"
    return guessed


class DiscordAPIError(Exception):
    """An error answer of the fake (status + Discord JSON error code)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: dict[str, Any] | None = None,
        violation: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors
        self.violation = violation
        self.detail = detail

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            data["errors"] = self.errors
        return data


def _unknown_message() -> DiscordAPIError:
    return DiscordAPIError(404, 10008, "Unknown Message")


def _unknown_channel() -> DiscordAPIError:
    return DiscordAPIError(404, 10003, "Unknown Channel")


def _unknown_webhook() -> DiscordAPIError:
    return DiscordAPIError(404, 10015, "Unknown Webhook")


# ============================================================================ records
@dataclass
class FakeFile:
    """A file a simulated user uploads (attachment options, modal file uploads)."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


@dataclass
class FakeAttachment:
    """A stored upload, served by the fake's CDN at :attr:`url`."""

    id: int
    filename: str
    data: bytes
    url: str
    content_type: str | None = None
    description: str | None = None
    ephemeral: bool = False
    title: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    def to_payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            out["content_type"] = self.content_type
        if self.description:
            out["description"] = self.description
        if self.title:
            out["title"] = self.title
        dims = image_size(self.data)
        if dims is not None:
            out["width"], out["height"] = dims
        if self.ephemeral:
            out["ephemeral"] = True
        return out


@dataclass
class MessageEdit:
    """One edit: when, through which request, what was sent, and the message before."""

    time: float
    via: str
    body: dict[str, Any]
    before: dict[str, Any]


class FakeMessage:
    """A message stored by the fake (channel messages, interaction responses, follow-ups)."""

    def __init__(
        self,
        *,
        id: int,
        channel_id: int,
        guild_id: int | None,
        author: dict[str, Any],
        type: int = 0,
        flags: int = 0,
        webhook_id: int | None = None,
        application_id: int | None = None,
        interaction: InteractionRecord | None = None,
    ) -> None:
        self.id = id
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.author = author
        self.type = type
        self.flags = flags
        self.webhook_id = webhook_id
        self.application_id = application_id
        self.interaction = interaction
        self.content: str = ""
        self.embeds: list[dict[str, Any]] = []
        self.components: list[dict[str, Any]] = []
        self.attachments: list[FakeAttachment] = []
        self.message_reference: dict[str, Any] | None = None
        self.created_wall: float = time.time()
        self.created_at: float = time.monotonic()
        self.edited_wall: float | None = None
        self.edits: list[MessageEdit] = []
        self.deleted: bool = False
        self.deleted_at: float | None = None
        self.pinned: bool = False
        self.reactions: dict[str, int] = {}

    # ---------------------------------------------------------------- properties
    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred ("is thinking...") response."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def edit_count(self) -> int:
        return len(self.edits)

    @property
    def history(self) -> list[dict[str, Any]]:
        """Payloads of the earlier versions, oldest first."""
        return [e.before for e in self.edits]

    def walk_components(self) -> Iterator[dict[str, Any]]:
        stack: list[dict[str, Any]] = list(reversed(self.components))
        while stack:
            comp = stack.pop()
            yield comp
            children: list[dict[str, Any]] = []
            if isinstance(comp.get("components"), list):
                children.extend(c for c in comp["components"] if isinstance(c, dict))
            for key in ("component", "accessory"):
                if isinstance(comp.get(key), dict):
                    children.append(comp[key])
            stack.extend(reversed(children))

    def buttons(self) -> list[dict[str, Any]]:
        return [c for c in self.walk_components() if c.get("type") == 2]

    def custom_ids(self) -> list[str]:
        return [
            c["custom_id"] for c in self.walk_components() if isinstance(c.get("custom_id"), str)
        ]

    def component(self, custom_id: str) -> dict[str, Any] | None:
        for comp in self.walk_components():
            if comp.get("custom_id") == custom_id:
                return comp
        return None

    def text(self) -> str:
        """Content, embed texts and Components V2 text displays, joined by newlines."""
        parts: list[str] = [self.content] if self.content else []
        for embed in self.embeds:
            for key in ("title", "description"):
                if embed.get(key):
                    parts.append(str(embed[key]))
            for fld in embed.get("fields") or []:
                parts.append(f"{fld.get('name', '')}: {fld.get('value', '')}")
            footer = embed.get("footer") or {}
            if footer.get("text"):
                parts.append(str(footer["text"]))
        for comp in self.walk_components():
            if comp.get("type") == 10 and comp.get("content"):
                parts.append(str(comp["content"]))
        return "\n".join(parts)

    def attachment(self, filename: str | None = None) -> FakeAttachment:
        """The attachment named ``filename`` (or the only/first one)."""
        for att in self.attachments:
            if filename is None or att.filename == filename:
                return att
        raise KeyError(f"message {self.id} has no attachment {filename!r}")

    # ---------------------------------------------------------------- payload
    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "content": self.content,
            "channel_id": str(self.channel_id),
            "author": self.author,
            "attachments": [a.to_payload() for a in self.attachments],
            "embeds": copy.deepcopy(self.embeds),
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": self.pinned,
            "tts": False,
            "timestamp": _iso(self.created_wall),
            "edited_timestamp": None if self.edited_wall is None else _iso(self.edited_wall),
            "flags": self.flags,
            "components": copy.deepcopy(self.components),
        }
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": {"id": None, "name": name},
                    "count": count,
                    "count_details": {"burst": 0, "normal": count},
                    "me": True,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for name, count in self.reactions.items()
            ]
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        rec = self.interaction
        if rec is not None:
            meta: dict[str, Any] = {
                "id": str(rec.id),
                "type": rec.type,
                "user": rec.user,
                "authorizing_integration_owners": rec.payload.get(
                    "authorizing_integration_owners", {}
                ),
            }
            if rec.type == 2:
                meta["name"] = rec.name
                meta["command_type"] = rec.payload.get("data", {}).get("type", 1)
            if rec.original is not None and rec.original is not self:
                meta["original_response_message_id"] = str(rec.original.id)
            if rec.message_id is not None:
                meta["interacted_message_id"] = str(rec.message_id)
            data["interaction_metadata"] = meta
            data["interaction"] = {
                "id": str(rec.id),
                "type": rec.type,
                "name": rec.name,
                "user": rec.user,
            }
        return data

    def __repr__(self) -> str:
        flags = []
        if self.ephemeral:
            flags.append("ephemeral")
        if self.loading:
            flags.append("loading")
        if self.deleted:
            flags.append("deleted")
        return (
            f"<FakeMessage id={self.id} channel={self.channel_id} content={self.content[:60]!r} "
            f"embeds={len(self.embeds)} attachments={[a.filename for a in self.attachments]} "
            f"custom_ids={self.custom_ids()} edits={self.edit_count} {' '.join(flags)}>"
        )


PUBLIC_THREAD = 11
THREAD_TYPES = frozenset({10, 11, 12})  # announcement, public and private threads


@dataclass
class FakeChannel:
    id: int
    guild_id: int | None
    name: str
    type: int = 0
    position: int = 0
    topic: str | None = None
    parent_id: int | None = None
    nsfw: bool = False
    deleted: bool = False
    bot_permissions: int | None = None
    recipients: list[dict[str, Any]] = field(default_factory=list)
    last_message_id: int | None = None
    owner_id: int = 0  # a thread's: who started it

    def to_payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "last_message_id": None if self.last_message_id is None else str(self.last_message_id),
            "flags": 0,
        }
        if self.type == 1:
            data.pop("name")
            data["recipients"] = self.recipients
            return data
        if self.type in THREAD_TYPES:  # a thread's own fields (Discord's thread channel)
            data.update(
                {
                    "owner_id": str(self.owner_id),
                    "message_count": 0,
                    "member_count": 1,
                    "thread_metadata": {
                        "archived": False,
                        "auto_archive_duration": 1440,
                        "archive_timestamp": "2026-01-01T00:00:00+00:00",
                        "locked": False,
                    },
                }
            )
        data.update(
            {
                "guild_id": str(self.guild_id),
                "position": self.position,
                "permission_overwrites": [],
                "parent_id": None if self.parent_id is None else str(self.parent_id),
                "topic": self.topic,
                "nsfw": self.nsfw,
                "rate_limit_per_user": 0,
            }
        )
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    locale: str = "en-US"
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, dict[str, Any]] = field(default_factory=dict)
    everyone_permissions: int = Permissions.EVERYONE_DEFAULT
    bot_role_id: int = 0
    bot_permissions: int = Permissions.BOT_DEFAULT
    # Roles made with FakeDiscord.add_role (id -> name); the bot left this guild.
    extra_roles: dict[int, str] = field(default_factory=dict)
    left: bool = False

    @property
    def premium_tier(self) -> int:
        if self.upload_limit >= 100 * MIB:
            return 3
        if self.upload_limit >= 50 * MIB:
            return 2
        return 0

    def roles(self) -> list[dict[str, Any]]:
        def role(rid: int, name: str, perms: int, position: int, managed: bool) -> dict[str, Any]:
            return {
                "id": str(rid),
                "name": name,
                "color": 0,
                "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                "hoist": False,
                "icon": None,
                "unicode_emoji": None,
                "position": position,
                "permissions": str(perms),
                "managed": managed,
                "mentionable": False,
                "flags": 0,
            }

        roles = [role(self.id, "@everyone", self.everyone_permissions, 0, False)]
        if self.bot_role_id:
            roles.append(role(self.bot_role_id, "Atelier", self.bot_permissions, 1, True))
        for position, (rid, name) in enumerate(self.extra_roles.items(), 2):
            roles.append(role(rid, name, 0, position, False))
        return roles


@dataclass
class RecordedFile:
    field: str
    filename: str
    size: int
    content_type: str | None


@dataclass
class RecordedRequest:
    """One request the fake received (REST only; CDN and gateway are not recorded)."""

    method: str
    path: str
    route: str
    query: dict[str, str]
    json: Any
    files: list[RecordedFile]
    time: float
    wall: float
    status: int = 0
    error_code: int | None = None
    bucket: str | None = None
    response: Any = None

    @property
    def key(self) -> str:
        """``"METHOD /route/{template}"`` (``"METHOD <unknown path>"`` if unrouted)."""
        return f"{self.method} {self.route or self.path}"

    @property
    def file_sizes(self) -> list[int]:
        return [f.size for f in self.files]

    def __repr__(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        return f"<{self.method} {self.path} -> {self.status}{code}>"


@dataclass
class CallbackAttempt:
    time: float
    latency: float
    type: int | None
    body: Any
    status: int
    error_code: int | None = None


class InteractionRecord:
    """An interaction injected by a test, and everything the bot did with it."""

    def __init__(
        self,
        fake: FakeDiscord,
        *,
        id: int,
        token: str,
        type: int,
        name: str,
        payload: dict[str, Any],
        user: dict[str, Any],
        channel_id: int,
        guild_id: int | None,
        message_id: int | None = None,
    ) -> None:
        self._fake = fake
        self.id = id
        self.token = token
        self.type = type
        self.name = name
        self.payload = payload
        self.user = user
        self.user_id = int(user["id"])
        self.channel_id = channel_id
        self.guild_id = guild_id
        self.message_id = message_id
        self.dispatched_at: float = time.monotonic()
        self.callbacks: list[CallbackAttempt] = []
        self.ack_at: float | None = None
        self.ack_type: int | None = None
        self.ack_data: Any = None
        self.original: FakeMessage | None = None
        self.followups: list[FakeMessage] = []
        self.modal: dict[str, Any] | None = None
        self.choices: list[dict[str, Any]] | None = None
        self.forced_expired = False
        self._first_followup_done = False

    # ---------------------------------------------------------------- state
    @property
    def acked(self) -> bool:
        """True once a callback was accepted."""
        return self.ack_type is not None

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the first callback attempt (accepted or not)."""
        if not self.callbacks:
            return None
        return self.callbacks[0].latency

    @property
    def ack_status(self) -> int | None:
        """HTTP status of the first callback attempt."""
        return self.callbacks[0].status if self.callbacks else None

    @property
    def late(self) -> bool:
        return any(c.error_code == 10062 for c in self.callbacks)

    @property
    def expired(self) -> bool:
        if self.forced_expired:
            return True
        return time.monotonic() - self.dispatched_at > self._fake.token_lifetime

    def expire(self) -> None:
        """Make the token expire now (later webhook calls get 401 / 50027)."""
        self.forced_expired = True

    @property
    def messages(self) -> list[FakeMessage]:
        """Original response (if any) followed by the follow-ups."""
        out = [] if self.original is None else [self.original]
        return out + [m for m in self.followups if m is not self.original]

    # ---------------------------------------------------------------- waiting
    async def wait_ack(self, timeout: float = 5.0) -> InteractionRecord:
        """Wait for the first callback attempt (check :attr:`acked` / :attr:`ack_status`)."""
        await self._fake.wait_for(
            lambda: bool(self.callbacks), timeout, what=f"callback for interaction {self.name!r}"
        )
        return self

    async def wait_response(
        self,
        timeout: float = 10.0,
        predicate: Callable[[FakeMessage], bool] | None = None,
    ) -> FakeMessage:
        """Wait until the original response exists, is not "thinking", and matches."""

        def check() -> FakeMessage | None:
            msg = self.original
            if msg is None or msg.loading:
                return None
            if predicate is not None and not predicate(msg):
                return None
            return msg

        return await self._fake.wait_for(
            check, timeout, what=f"original response of interaction {self.name!r}"
        )

    async def wait_followup(
        self,
        timeout: float = 10.0,
        predicate: Callable[[FakeMessage], bool] | None = None,
    ) -> FakeMessage:
        """Wait for a follow-up message (a new message sent via the interaction webhook)."""

        def check() -> FakeMessage | None:
            for msg in self.followups:
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self._fake.wait_for(
            check, timeout, what=f"follow-up of interaction {self.name!r}"
        )

    def __repr__(self) -> str:
        return (
            f"<InteractionRecord id={self.id} type={self.type} name={self.name!r} "
            f"ack_type={self.ack_type} ack_status={self.ack_status} latency={self.ack_latency}>"
        )


@dataclass
class RateLimitRule:
    limit: int
    per: float
    bucket: str


@dataclass
class _BucketState:
    remaining: int
    reset_at: float


@dataclass
class _Storm:
    remaining: int
    retry_after: float
    is_global: bool


@dataclass
class _Upload:
    field: str
    index: int
    filename: str
    data: bytes
    content_type: str | None


@dataclass
class _RouteDef:
    method: str
    template: str
    handler: Callable[[_Ctx], Awaitable[web.StreamResponse]]
    auth: bool = True
    global_limit: bool = True
    regex: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        def repl(m: re.Match[str]) -> str:
            name = m.group(1)
            pattern = r"\d+" if name.endswith("_id") else r"[^/]+"
            return f"(?P<{name}>{pattern})"

        self.regex = re.compile("^" + re.sub(r"\{(\w+)\}", repl, self.template) + "/?$")

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class _Ctx:
    request: web.Request
    route: _RouteDef
    params: dict[str, str]
    body: Any
    files: list[_Upload]
    rec: RecordedRequest

    def int_param(self, name: str) -> int:
        return int(self.params[name])

    def flag(self, name: str) -> bool:
        return self.request.query.get(name, "").lower() in ("1", "true", "yes")


class _GatewaySession:
    def __init__(self, session_id: str, shard_id: int, shard_count: int, intents: int) -> None:
        self.session_id = session_id
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.seq = 0
        self.conn: _GatewayConn | None = None
        self.buffer: deque[tuple[int, dict[str, Any]]] = deque(maxlen=2000)
        self.invalid = False


class _GatewayConn:
    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compress = compress
        self.session: _GatewaySession | None = None
        self.heartbeats = 0
        self.last_heartbeat: float | None = None
        self._lock = asyncio.Lock()
        self._zlib: Any = None
        self._zstd: Any = None
        self._zstd_flush: Any = None
        if compress == "zlib-stream":
            self._zlib = zlib.compressobj()
        elif compress == "zstd-stream":
            self._setup_zstd()

    def _setup_zstd(self) -> None:
        try:
            import zstandard  # type: ignore[import-not-found]

            self._zstd = zstandard.ZstdCompressor().compressobj()
            self._zstd_flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK
        except ImportError:
            try:
                from compression import zstd  # type: ignore[import-not-found]

                self._zstd = zstd.ZstdCompressor()
                self._zstd_flush = zstd.ZstdCompressor.FLUSH_BLOCK
            except ImportError:  # discord.py accepts uncompressed text frames too
                self._zstd = None

    async def send(self, payload: Mapping[str, Any]) -> None:
        text = _dumps(payload)
        async with self._lock:
            if self.ws.closed:
                return
            try:
                if self._zlib is not None:
                    raw = text.encode("utf-8")
                    data = self._zlib.compress(raw) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(data)
                elif self._zstd is not None:
                    raw = text.encode("utf-8")
                    if hasattr(self._zstd, "flush") and not hasattr(self._zstd, "last_mode"):
                        data = self._zstd.compress(raw) + self._zstd.flush(self._zstd_flush)
                    else:
                        data = self._zstd.compress(raw, mode=self._zstd_flush)
                    await self.ws.send_bytes(data)
                else:
                    await self.ws.send_str(text)
            except ConnectionError:
                pass


# ============================================================================ the fake
class FakeDiscord:
    """Fake Discord REST v10 + gateway server.  See the module docstring."""

    # Route keys for set_rate_limit() / storm_429()
    ROUTE_MESSAGE_CREATE = "POST /channels/{channel_id}/messages"
    ROUTE_MESSAGE_EDIT = "PATCH /channels/{channel_id}/messages/{message_id}"
    ROUTE_MESSAGE_DELETE = "DELETE /channels/{channel_id}/messages/{message_id}"
    ROUTE_CALLBACK = "POST /interactions/{interaction_id}/{interaction_token}/callback"
    ROUTE_FOLLOWUP = "POST /webhooks/{webhook_id}/{webhook_token}"
    ROUTE_ORIGINAL_EDIT = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original"
    ROUTE_WEBHOOK_MESSAGE_EDIT = (
        "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
    )

    def __init__(
        self,
        *,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        shard_count: int = 1,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        token_lifetime: float = 15 * 60.0,
        ack_deadline: float = 3.0,
        heartbeat_interval_ms: int = 41250,
        global_rate_limit: int | None = 50,
        validate: bool = True,
        reject_invalid: bool = True,
        dispatch_message_events: bool = True,
        spec_path: str | None = None,
        bot_name: str = "Atelier",
        guild_name: str = "Atelier Test Guild",
        channel_name: str = "general",
    ) -> None:
        self._ids = _Snowflakes()
        self.host = host
        self._requested_port = port
        self.port: int = 0
        self.shard_count = shard_count
        self.token_lifetime = token_lifetime
        self.ack_deadline = ack_deadline
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.global_rate_limit = global_rate_limit
        self.validate = validate
        self.reject_invalid = reject_invalid
        self.dispatch_message_events = dispatch_message_events
        self._spec_path = spec_path
        self._schema: DiscordSchema | None = None

        self.application_id: int = self._ids.next()
        bot_id = self.application_id  # modern apps: bot user id == application id
        self.bot_user: dict[str, Any] = {
            "id": str(bot_id),
            "username": bot_name,
            "global_name": None,
            "discriminator": "4242",
            "avatar": None,
            "bot": True,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "verified": True,
            "mfa_enabled": False,
            "email": None,
            "locale": "en-US",
            "premium_type": 0,
        }
        if token is None:
            import base64

            head = base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
            token = f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(28)}"
        self.token: str = token
        self.owner: dict[str, Any] = self._make_user("owner")
        self.users: dict[int, dict[str, Any]] = {int(self.owner["id"]): self.owner}
        default_user = self._make_user("tester")
        self.users[int(default_user["id"])] = default_user
        self.user_id: int = int(default_user["id"])

        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, list[FakeMessage]] = {}
        self._messages_by_id: dict[int, FakeMessage] = {}
        self._attachments: dict[int, FakeAttachment] = {}
        guild = self._new_guild(guild_name, channel_name, upload_limit)
        self.guild_id: int = guild.id
        self.channel_id: int = next(iter(guild.channels))

        self.registered_commands: dict[int | None, list[dict[str, Any]]] = {}
        self.command_syncs: list[tuple[int | None, float]] = []
        self.interactions: list[InteractionRecord] = []
        self._interactions_by_id: dict[int, InteractionRecord] = {}
        self._interactions_by_token: dict[str, InteractionRecord] = {}

        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.count_429: int = 0
        self.nonce_repeats: int = 0  # creates answered with the message of an earlier nonce
        self.responses_429: list[RecordedRequest] = []
        self._per_second: Counter[int] = Counter()

        self._rules: dict[str, RateLimitRule] = {}
        self.default_rate_limit: tuple[int, float] = (50, 1.0)
        for key, (limit, per) in {
            self.ROUTE_MESSAGE_CREATE: (5, 5.0),
            self.ROUTE_MESSAGE_EDIT: (5, 5.0),
            self.ROUTE_MESSAGE_DELETE: (5, 1.0),
            self.ROUTE_FOLLOWUP: (5, 2.0),
            self.ROUTE_ORIGINAL_EDIT: (5, 2.0),
            self.ROUTE_WEBHOOK_MESSAGE_EDIT: (5, 2.0),
        }.items():
            self.set_rate_limit(key, limit, per)
        self._buckets: dict[tuple[str, tuple[str, ...]], _BucketState] = {}
        self._storms: dict[str, _Storm] = {}
        self._nonces: dict[tuple[str, str], tuple[float, FakeMessage]] = {}  # enforce_nonce
        self._global_window: deque[float] = deque()

        self.sessions: dict[str, _GatewaySession] = {}
        self._shard_sessions: dict[int, _GatewaySession] = {}
        self._conns: set[_GatewayConn] = set()
        self.ready_shards: set[int] = set()
        self.identify_count = 0
        self.resume_count = 0
        self.heartbeat_count = 0
        self.gateway_received: list[dict[str, Any]] = []
        self.presence: dict[str, Any] | None = None
        self.closed_dms: set[int] = set()  # members who take no DMs (see close_dms)
        self.gateway_down = False  # new gateway connections refused (see take_gateway_down)

        self._routes: list[_RouteDef] = self._build_routes()
        self._runner: web.AppRunner | None = None
        self._changed: asyncio.Event | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self.started = False

    # ================================================================ lifecycle
    async def start(self) -> FakeDiscord:
        if self.started:
            return self
        if self.validate:
            self._schema = get_schema(self._spec_path)
            if not self._schema.available:
                _log.warning("discord-openapi.json not found: only documented limits are checked")
        app = web.Application(client_max_size=1024 * MIB)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        server = site._server  # aiohttp has no public accessor
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        self.started = True
        _log.info("FakeDiscord listening on %s", self.http_base)
        return self

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1001, message=b"fake discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ================================================================ addresses
    @property
    def http_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"{self.http_base}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        """Value for ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY`` (as a yarl.URL)."""
        return f"ws://{self.host}:{self.port}/gateway"

    def subprocess_env(self) -> dict[str, str]:
        """Environment variables a bot subprocess can use to reach the fake."""
        return {
            "DISCORD_TOKEN": self.token,
            "DISCORD_API_BASE": self.base_url,
            "DISCORD_GATEWAY_URL": self.gateway_url,
            "DISCORD_APPLICATION_ID": str(self.application_id),
            "DISCORD_GUILD_ID": str(self.guild_id),
            "DISCORD_CHANNEL_ID": str(self.channel_id),
        }

    @contextlib.contextmanager
    def patch_discord(self) -> Iterator[None]:
        """Point discord.py (this process) at the fake; restores the old values on exit.

        Sets ``discord.http.Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY``: a plain
        ``Client``/``Bot`` never asks ``/gateway/bot`` and connects to DEFAULT_GATEWAY, and an
        ``AutoShardedClient`` falls back to it after an INVALID_SESSION.
        """
        import yarl
        from discord.gateway import DiscordWebSocket
        from discord.http import Route

        old_base = Route.BASE
        old_gateway = DiscordWebSocket.DEFAULT_GATEWAY
        Route.BASE = self.base_url
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        try:
            yield
        finally:
            Route.BASE = old_base
            DiscordWebSocket.DEFAULT_GATEWAY = old_gateway

    # ================================================================ world setup
    def _make_user(self, name: str, *, bot: bool = False) -> dict[str, Any]:
        return {
            "id": str(self._ids.next()),
            "username": name,
            "global_name": name.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }

    def _member(
        self, user: dict[str, Any], guild: FakeGuild, *, bot: bool = False
    ) -> dict[str, Any]:
        return {
            "user": user,
            "nick": None,
            "avatar": None,
            "banner": None,
            "roles": [str(guild.bot_role_id)] if bot and guild.bot_role_id else [],
            "joined_at": _iso(time.time() - 86400),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def _new_guild(self, name: str, channel_name: str, upload_limit: int) -> FakeGuild:
        guild = FakeGuild(
            id=self._ids.next(),
            name=name,
            owner_id=int(self.owner["id"]),
            upload_limit=upload_limit,
            bot_role_id=self._ids.next(),
        )
        self.guilds[guild.id] = guild
        for user in (self.owner, self.bot_user):
            guild.members[int(user["id"])] = self._member(user, guild, bot=user is self.bot_user)
        for user_id, user in list(getattr(self, "users", {}).items()):
            guild.members.setdefault(user_id, self._member(user, guild))
        channel = FakeChannel(id=self._ids.next(), guild_id=guild.id, name=channel_name)
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        return guild

    def add_user(self, username: str = "user") -> int:
        """A new (human) user, member of every guild.  Returns the user id."""
        user = self._make_user(username)
        uid = int(user["id"])
        self.users[uid] = user
        for guild in self.guilds.values():
            guild.members[uid] = self._member(user, guild)
        return uid

    async def add_guild(self, name: str = "Another Guild", channel_name: str = "general") -> int:
        """A new guild with one text channel (GUILD_CREATE is sent if connected)."""
        guild = self._new_guild(name, channel_name, DEFAULT_UPLOAD_LIMIT)
        payload = self._guild_create_payload(guild)
        # A guild the bot joins comes without "unavailable" (false means "back from an
        # outage"): discord.py tells them apart as on_guild_join / on_guild_available.
        payload.pop("unavailable", None)
        await self._dispatch("GUILD_CREATE", payload, guild.id)
        return guild.id

    async def add_channel(
        self,
        name: str = "channel",
        *,
        guild_id: int | None = None,
        bot_permissions: int | None = None,
    ) -> int:
        """A new text channel (CHANNEL_CREATE is sent if connected).  Returns its id.

        ``bot_permissions`` overrides the bot's permissions in this channel.
        """
        guild = self.guilds[guild_id or self.guild_id]
        channel = FakeChannel(
            id=self._ids.next(),
            guild_id=guild.id,
            name=name,
            position=len(guild.channels),
            bot_permissions=bot_permissions,
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        await self._dispatch("CHANNEL_CREATE", channel.to_payload(), guild.id)
        self._notify()
        return channel.id

    async def add_thread(self, parent_id: int, name: str = "thread") -> int:
        """A new public thread in channel `parent_id` (THREAD_CREATE is sent if
        connected). Its messages are its own, as a channel's; returns its id."""
        parent = self.channels[parent_id]
        assert parent.guild_id is not None, "threads are in a server's channels"
        thread = FakeChannel(
            id=self._ids.next(),
            guild_id=parent.guild_id,
            name=name,
            type=PUBLIC_THREAD,
            parent_id=parent_id,
            bot_permissions=parent.bot_permissions,
            owner_id=self.user_id,
        )
        self.channels[thread.id] = thread
        self.messages[thread.id] = []
        await self._dispatch("THREAD_CREATE", thread.to_payload(), parent.guild_id)
        self._notify()
        return thread.id

    async def delete_channel(self, channel_id: int) -> None:
        """Delete a channel: later requests to it get 404 / 10003 Unknown Channel."""
        channel = self.channels[channel_id]
        channel.deleted = True
        if channel.guild_id is not None:
            self.guilds[channel.guild_id].channels.pop(channel_id, None)
            await self._dispatch("CHANNEL_DELETE", channel.to_payload(), channel.guild_id)
        self._notify()

    async def delete_message(self, message_id: int) -> None:
        """Delete a message (as a user/moderator would): edits get 404 / 10008."""
        msg = self._messages_by_id[message_id]
        await self._mark_deleted(msg)

    def set_upload_limit(self, limit: int, guild_id: int | None = None) -> None:
        self.guilds[guild_id or self.guild_id].upload_limit = limit

    @property
    def upload_limit(self) -> int:
        """Upload limit (bytes per file) of the default guild."""
        return self.guilds[self.guild_id].upload_limit

    @upload_limit.setter
    def upload_limit(self, value: int) -> None:
        self.set_upload_limit(value)

    def set_bot_permissions(self, permissions: int, *, channel_id: int | None = None) -> None:
        """Bot permissions guild-wide (default guild) or in one channel."""
        if channel_id is None:
            self.guilds[self.guild_id].bot_permissions = permissions
        else:
            self.channels[channel_id].bot_permissions = permissions

    def _bot_perms(self, channel: FakeChannel) -> int:
        if channel.guild_id is None:
            return Permissions.BOT_DEFAULT
        guild = self.guilds[channel.guild_id]
        if channel.bot_permissions is not None:
            perms = channel.bot_permissions
        else:
            perms = guild.bot_permissions | guild.everyone_permissions
        if perms & Permissions.ADMINISTRATOR:
            return (1 << 53) - 1
        return perms

    # ================================================================ queries
    def get_message(self, message_id: int) -> FakeMessage:
        return self._messages_by_id[message_id]

    def channel_messages(
        self, channel_id: int | None = None, *, include_deleted: bool = False
    ) -> list[FakeMessage]:
        msgs = self.messages.get(channel_id or self.channel_id, [])
        return [m for m in msgs if include_deleted or not m.deleted]

    def all_messages(self, *, include_deleted: bool = False) -> list[FakeMessage]:
        out = [m for m in self._messages_by_id.values() if include_deleted or not m.deleted]
        out.sort(key=lambda m: m.id)
        return out

    def last_message(self, channel_id: int | None = None) -> FakeMessage | None:
        msgs = self.channel_messages(channel_id)
        return msgs[-1] if msgs else None

    def attachment(self, attachment_id: int) -> FakeAttachment:
        return self._attachments[attachment_id]

    def command(self, name: str, *, guild_id: int | None = None) -> dict[str, Any] | None:
        """A registered command by name: in ``guild_id`` first, then global."""
        scopes: list[int | None] = [guild_id or self.guild_id, None]
        for scope in scopes:
            for cmd in self.registered_commands.get(scope, []):
                if cmd["name"] == name:
                    return cmd
        return None

    def violations_of(self, kind: str) -> list[str]:
        """Violations whose tag (``[schema]``, ``[late-callback]``, ...) is ``kind``."""
        tag = f"[{kind}]"
        return [v for v in self.violations if v.startswith(tag)]

    def requests_to(self, route: str) -> list[RecordedRequest]:
        """Recorded requests whose key (``"METHOD /template"``) or template is ``route``."""
        return [r for r in self.requests if r.key == route or r.route == route]

    def requests_per_second(self) -> dict[int, int]:
        """Request count per wall-clock second (unix time, int)."""
        return dict(sorted(self._per_second.items()))

    @property
    def max_requests_per_second(self) -> int:
        return max(self._per_second.values(), default=0)

    def current_rps(self, window: float = 1.0) -> int:
        now = time.monotonic()
        return sum(1 for r in reversed(self.requests[-500:]) if now - r.time <= window)

    # ================================================================ waiting
    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def wait_for(
        self, predicate: Callable[[], T | None], timeout: float = 10.0, *, what: str = "condition"
    ) -> T:
        """Wait until ``predicate()`` returns something truthy (re-checked on every change)."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"FakeDiscord: timed out after {timeout}s waiting for {what}")
            if self._changed is None:
                self._changed = asyncio.Event()
            event = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    async def wait_for_message(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        timeout: float = 10.0,
        *,
        channel_id: int | None = None,
        include_loading: bool = False,
    ) -> FakeMessage:
        """First (oldest) live message matching ``predicate`` (edits are re-checked)."""

        def check() -> FakeMessage | None:
            if channel_id is not None:
                pool = self.channel_messages(channel_id)
            else:
                pool = self.all_messages()
            for msg in pool:
                if msg.loading and not include_loading:
                    continue
                if predicate is None or predicate(msg):
                    return msg
            return None

        return await self.wait_for(check, timeout, what="a matching message")

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 10.0
    ) -> RecordedRequest:
        def check() -> RecordedRequest | None:
            return next((r for r in self.requests if r.status and predicate(r)), None)

        return await self.wait_for(check, timeout, what="a matching request")

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every shard got READY and its GUILD_CREATEs."""
        await self.wait_for(
            lambda: len(self.ready_shards) >= self.shard_count,
            timeout,
            what=f"{self.shard_count} shard(s) to IDENTIFY",
        )

    async def wait_commands_synced(
        self, timeout: float = 30.0, *, guild_id: int | None = None, global_: bool = False
    ) -> list[dict[str, Any]]:
        """Wait for a command sync (guild ``guild_id``/default guild, or global)."""
        scope: int | None = None if global_ else (guild_id or self.guild_id)
        await self.wait_for(
            lambda: any(s == scope for s, _ in self.command_syncs),
            timeout,
            what=f"command sync for {'global' if scope is None else scope}",
        )
        return self.registered_commands.get(scope, [])

    # ================================================================ rate limits
    def set_rate_limit(self, route: str, limit: int, per: float) -> None:
        """Bucket size for ``route`` (``"METHOD /template"`` or just ``/template``).

        Buckets are per major parameter (channel, guild, webhook+token), like Discord's.
        """
        bucket = hashlib.sha1(route.encode()).hexdigest()[:32]
        self._rules[route] = RateLimitRule(limit=limit, per=per, bucket=bucket)
        for key in [k for k in getattr(self, "_buckets", {}) if k[0] == bucket]:
            del self._buckets[key]

    def storm_429(
        self, route: str, n: int, *, retry_after: float = 0.1, is_global: bool = False
    ) -> None:
        """The next ``n`` requests to ``route`` get a 429 (discord.py gives up after 5)."""
        self._storms[route] = _Storm(remaining=n, retry_after=retry_after, is_global=is_global)

    def _rule_for(self, route: _RouteDef) -> RateLimitRule:
        rule = self._rules.get(route.key) or self._rules.get(route.template)
        if rule is None:
            limit, per = self.default_rate_limit
            bucket = hashlib.sha1(route.key.encode()).hexdigest()[:32]
            rule = RateLimitRule(limit=limit, per=per, bucket=bucket)
        return rule

    def _rate_check(
        self, route: _RouteDef, params: Mapping[str, str], now: float
    ) -> tuple[dict[str, str], _Storm | None, float | None, bool]:
        """(headers, storm, retry_after, is_global).  retry_after None = allowed."""
        rule = self._rule_for(route)
        major = tuple(
            params[k]
            for k in (
                "channel_id",
                "guild_id",
                "webhook_id",
                "webhook_token",
                "interaction_id",
                "interaction_token",
            )
            if k in params
        )
        state = self._buckets.get((rule.bucket, major))
        if state is None or state.reset_at <= now:
            state = _BucketState(remaining=rule.limit, reset_at=now + rule.per)
            self._buckets[(rule.bucket, major)] = state
        storm = self._storms.get(route.key) or self._storms.get(route.template)
        retry_after: float | None = None
        is_global = False
        if storm is not None and storm.remaining > 0:
            storm.remaining -= 1
            retry_after = storm.retry_after
            is_global = storm.is_global
        elif route.global_limit and self.global_rate_limit is not None:
            while self._global_window and now - self._global_window[0] >= 1.0:
                self._global_window.popleft()
            if len(self._global_window) >= self.global_rate_limit:
                retry_after = 1.0 - (now - self._global_window[0]) + 0.01
                is_global = True
        if retry_after is None:
            if state.remaining <= 0:
                retry_after = state.reset_at - now + 0.005
            else:
                state.remaining -= 1
                if route.global_limit:
                    self._global_window.append(now)
        reset_after = max(state.reset_at - now, 0.0)
        headers = {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(max(state.remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": rule.bucket,
        }
        return headers, storm, retry_after, is_global

    # ================================================================ HTTP plumbing
    def _build_routes(self) -> list[_RouteDef]:
        R = _RouteDef
        app = "/applications/{application_id}"
        wh = "/webhooks/{webhook_id}/{webhook_token}"
        return [
            R("GET", "/gateway", self._h_gateway, auth=False),
            R("GET", "/gateway/bot", self._h_gateway_bot),
            R("GET", "/users/@me", self._h_me),
            R("GET", "/users/{user_id}", self._h_user),
            R("DELETE", "/users/@me/guilds/{guild_id}", self._h_leave_guild),
            R("POST", "/users/@me/channels", self._h_create_dm),
            R("GET", "/oauth2/applications/@me", self._h_app_info),
            R("GET", "/applications/@me", self._h_app_info),
            R("GET", f"{app}/commands", self._h_get_commands),
            R("PUT", f"{app}/commands", self._h_put_commands),
            R("POST", f"{app}/commands", self._h_post_command),
            R("GET", f"{app}/commands/{{command_id}}", self._h_get_command),
            R("PATCH", f"{app}/commands/{{command_id}}", self._h_patch_command),
            R("DELETE", f"{app}/commands/{{command_id}}", self._h_delete_command),
            R("GET", f"{app}/guilds/{{guild_id}}/commands/permissions", self._h_empty_list),
            R("GET", f"{app}/guilds/{{guild_id}}/commands", self._h_get_commands),
            R("PUT", f"{app}/guilds/{{guild_id}}/commands", self._h_put_commands),
            R("POST", f"{app}/guilds/{{guild_id}}/commands", self._h_post_command),
            R("GET", f"{app}/guilds/{{guild_id}}/commands/{{command_id}}", self._h_get_command),
            R("PATCH", f"{app}/guilds/{{guild_id}}/commands/{{command_id}}", self._h_patch_command),
            R(
                "DELETE",
                f"{app}/guilds/{{guild_id}}/commands/{{command_id}}",
                self._h_delete_command,
            ),
            R("GET", "/channels/{channel_id}", self._h_get_channel),
            R("GET", "/channels/{channel_id}/messages", self._h_history),
            R("POST", "/channels/{channel_id}/messages", self._h_create_message),
            R("POST", "/channels/{channel_id}/messages/bulk-delete", self._h_bulk_delete),
            R("GET", "/channels/{channel_id}/messages/{message_id}", self._h_get_message),
            R("PATCH", "/channels/{channel_id}/messages/{message_id}", self._h_edit_message),
            R("DELETE", "/channels/{channel_id}/messages/{message_id}", self._h_delete_message),
            R(
                "PUT",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._h_add_reaction,
            ),
            R(
                "DELETE",
                "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                self._h_remove_reaction,
            ),
            R("POST", "/channels/{channel_id}/typing", self._h_no_content),
            R("GET", "/guilds/{guild_id}", self._h_get_guild),
            R("GET", "/guilds/{guild_id}/channels", self._h_guild_channels),
            R("GET", "/guilds/{guild_id}/roles", self._h_guild_roles),
            R("GET", "/guilds/{guild_id}/members/{user_id}", self._h_guild_member),
            R(
                "POST",
                "/interactions/{interaction_id}/{interaction_token}/callback",
                self._h_callback,
                auth=False,
                global_limit=False,
            ),
            R("POST", wh, self._h_followup, auth=False, global_limit=False),
            R(
                "GET",
                f"{wh}/messages/@original",
                self._h_webhook_get,
                auth=False,
                global_limit=False,
            ),
            R(
                "PATCH",
                f"{wh}/messages/@original",
                self._h_webhook_edit,
                auth=False,
                global_limit=False,
            ),
            R(
                "DELETE",
                f"{wh}/messages/@original",
                self._h_webhook_delete,
                auth=False,
                global_limit=False,
            ),
            R(
                "GET",
                f"{wh}/messages/{{message_id}}",
                self._h_webhook_get,
                auth=False,
                global_limit=False,
            ),
            R(
                "PATCH",
                f"{wh}/messages/{{message_id}}",
                self._h_webhook_edit,
                auth=False,
                global_limit=False,
            ),
            R(
                "DELETE",
                f"{wh}/messages/{{message_id}}",
                self._h_webhook_delete,
                auth=False,
                global_limit=False,
            ),
        ]

    def _match(self, method: str, path: str) -> tuple[_RouteDef, dict[str, str]] | None:
        for route in self._routes:
            if route.method != method:
                continue
            m = route.regex.match(path)
            if m:
                return route, m.groupdict()
        return None

    @staticmethod
    def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> web.Response:
        hdrs = {"Via": "1.1 google"}
        if headers:
            hdrs.update(headers)
        if status == 204:
            return web.Response(status=204, headers=hdrs)
        hdrs["Content-Type"] = "application/json"
        return web.Response(status=status, body=_dumps(data).encode("utf-8"), headers=hdrs)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._gateway_handler(request)
        path = request.path
        if request.method == "GET" and (
            path.startswith("/attachments/") or path.startswith("/ephemeral-attachments/")
        ):
            return self._serve_attachment(path)
        if not path.startswith(API_PREFIX + "/"):
            return self._json(404, {"message": "404: Not Found", "code": 0})
        return await self._handle_api(request, path[len(API_PREFIX) :])

    def _serve_attachment(self, path: str) -> web.Response:
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[2].isdigit():
            att = self._attachments.get(int(parts[2]))
            if att is not None:
                return web.Response(
                    status=200,
                    body=att.data,
                    headers={"Content-Type": att.content_type or "application/octet-stream"},
                )
        return web.Response(status=404, text="Not Found")

    async def _read_body(self, request: web.Request) -> tuple[Any, list[_Upload]]:
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            body: Any = None
            uploads: list[_Upload] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not hasattr(part, "read"):
                    continue
                name = getattr(part, "name", None) or ""
                raw = bytes(await part.read(decode=False))  # type: ignore[union-attr]
                if name == "payload_json":
                    body = json.loads(raw.decode("utf-8"))
                    continue
                m = re.fullmatch(r"files\[(\d+)\]", name) or re.fullmatch(r"file(\d*)", name)
                index = int(m.group(1) or 0) if m else len(uploads)
                uploads.append(
                    _Upload(
                        field=name,
                        index=index,
                        filename=getattr(part, "filename", None) or f"file{index}",
                        data=raw,
                        content_type=part.headers.get("Content-Type"),
                    )
                )
            return body, uploads
        raw_body = await request.read()
        if not raw_body:
            return None, []
        try:
            return json.loads(raw_body.decode("utf-8")), []
        except (UnicodeDecodeError, json.JSONDecodeError):
            return {"__unparseable__": raw_body[:200].decode("utf-8", "replace")}, []

    async def _handle_api(self, request: web.Request, sub: str) -> web.StreamResponse:
        now = time.monotonic()
        wall = time.time()
        try:
            body, uploads = await self._read_body(request)
        except Exception as exc:
            body, uploads = None, []
            _log.warning("FakeDiscord: could not read body of %s %s: %s", request.method, sub, exc)
        matched = self._match(request.method, sub)
        rec = RecordedRequest(
            method=request.method,
            path=sub,
            route=matched[0].template if matched else "",
            query=dict(request.query),
            json=body,
            files=[RecordedFile(u.field, u.filename, len(u.data), u.content_type) for u in uploads],
            time=now,
            wall=wall,
        )
        self.requests.append(rec)
        self._per_second[int(wall)] += 1
        try:
            response = await self._process(request, matched, rec, body, uploads, now)
        except Exception:
            _log.exception("FakeDiscord: handler crashed for %s %s", request.method, sub)
            rec.status = 500
            self._notify()
            return self._json(500, {"message": "500: Internal Server Error (fake)", "code": 0})
        rec.status = response.status
        self._notify()
        return response

    async def _process(
        self,
        request: web.Request,
        matched: tuple[_RouteDef, dict[str, str]] | None,
        rec: RecordedRequest,
        body: Any,
        uploads: list[_Upload],
        now: float,
    ) -> web.StreamResponse:
        if matched is None:
            self.unhandled.append(rec)
            _log.warning("FakeDiscord: unhandled route %s %s", rec.method, rec.path)
            rec.error_code = 0
            return self._json(404, {"message": "404: Not Found", "code": 0})
        route, params = matched

        if route.auth and request.headers.get("Authorization") != f"Bot {self.token}":
            self._violation("auth", rec, "missing or wrong bot token")
            rec.error_code = 0
            return self._json(401, {"message": "401: Unauthorized", "code": 0})

        headers, storm, retry_after, is_global = self._rate_check(route, params, now)
        rec.bucket = headers["X-RateLimit-Bucket"]
        if retry_after is not None:
            self.count_429 += 1
            self.responses_429.append(rec)
            retry_after = max(round(retry_after, 3), 0.001)
            scope = "global" if is_global else ("shared" if storm is not None else "user")
            headers.update(
                {
                    "Retry-After": str(max(1, math.ceil(retry_after))),
                    "X-RateLimit-Scope": scope,
                    "X-RateLimit-Remaining": "0",
                }
            )
            if is_global:
                headers["X-RateLimit-Global"] = "true"
            data = {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": is_global,
            }
            rec.response = data
            return self._json(429, data, headers)

        ctx = _Ctx(request=request, route=route, params=params, body=body, files=uploads, rec=rec)
        try:
            self._check_uploads(ctx)
            self._validate_body(ctx)
            response = await route.handler(ctx)
        except DiscordAPIError as err:
            rec.error_code = err.code
            rec.response = err.body()
            if err.violation:
                text = f"{err.status}/{err.code} {err.message}"
                self._violation(
                    err.violation, rec, f"{text} ({err.detail})" if err.detail else text
                )
            return self._json(err.status, err.body(), headers)
        for key, value in headers.items():
            response.headers[key] = value
        return response

    def _violation(self, kind: str, rec: RecordedRequest | None, problem: str) -> None:
        where = f"{rec.method} {rec.path}" if rec is not None else "-"
        text = f"[{kind}] {where}: {problem}"
        _log.warning("FakeDiscord violation: %s", text)
        self.violations.append(text)

    # ---------------------------------------------------------------- uploads & validation
    def _guild_for(self, ctx: _Ctx) -> FakeGuild | None:
        params = ctx.params
        if "channel_id" in params:
            channel = self.channels.get(int(params["channel_id"]))
            if channel is not None and channel.guild_id is not None:
                return self.guilds.get(channel.guild_id)
            return None
        token = params.get("interaction_token") or params.get("webhook_token")
        if token is not None:
            rec = self._interactions_by_token.get(token)
            if rec is not None and rec.guild_id is not None:
                return self.guilds.get(rec.guild_id)
            return None
        if "guild_id" in params:
            return self.guilds.get(int(params["guild_id"]))
        return None

    def _check_uploads(self, ctx: _Ctx) -> None:
        if not ctx.files:
            return
        guild = self._guild_for(ctx)
        limit = guild.upload_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        for up in ctx.files:
            if len(up.data) > limit:
                raise DiscordAPIError(
                    413,
                    40005,
                    "Request entity too large",
                    violation="upload-too-large",
                    detail=f"{up.filename}: {len(up.data)} bytes > limit {limit}",
                )

    def _validate_body(self, ctx: _Ctx) -> None:
        if not self.validate or (ctx.route.method, ctx.route.template) not in _VALIDATED:
            return
        if ctx.body is None and ctx.route.method in ("PATCH", "GET", "DELETE"):
            return
        assert self._schema is not None
        problems = self._schema.validate(
            ctx.route.method, ctx.route.template, ctx.body, file_count=len(ctx.files)
        )
        if not problems:
            return
        for problem in problems:
            self._violation("schema", ctx.rec, problem)
        if self.reject_invalid:
            errors: dict[str, Any] = {}
            for i, problem in enumerate(problems):
                key = problem.split(":", 1)[0].strip().replace(" ", "_") or f"problem_{i}"
                entry = errors.setdefault(key, {"_errors": []})
                entry["_errors"].append({"code": "BASE_TYPE_INVALID", "message": problem})
            raise DiscordAPIError(400, 50035, "Invalid Form Body", errors=errors)

    # ================================================================ REST handlers
    async def _h_gateway(self, ctx: _Ctx) -> web.Response:
        return self._json(200, {"url": self.gateway_url})

    async def _h_gateway_bot(self, ctx: _Ctx) -> web.Response:
        return self._json(
            200,
            {
                "url": self.gateway_url,
                "shards": self.shard_count,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000 - self.identify_count,
                    "reset_after": 14_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    async def _h_me(self, ctx: _Ctx) -> web.Response:
        return self._json(200, self.bot_user)

    async def _h_user(self, ctx: _Ctx) -> web.Response:
        uid = ctx.int_param("user_id")
        if uid == int(self.bot_user["id"]):
            return self._json(200, self.bot_user)
        user = self.users.get(uid)
        if user is None:
            raise DiscordAPIError(404, 10013, "Unknown User")
        return self._json(200, user)

    async def _h_create_dm(self, ctx: _Ctx) -> web.Response:
        recipient = int((ctx.body or {}).get("recipient_id", 0))
        user = self.users.get(recipient)
        if user is None:
            raise DiscordAPIError(400, 50035, "Invalid Form Body")
        for channel in self.channels.values():
            if (
                channel.type == 1
                and channel.recipients
                and channel.recipients[0]["id"] == user["id"]
            ):
                return self._json(200, channel.to_payload())
        channel = FakeChannel(
            id=self._ids.next(), guild_id=None, name="", type=1, recipients=[user]
        )
        self.channels[channel.id] = channel
        self.messages[channel.id] = []
        return self._json(200, channel.to_payload())

    async def _h_app_info(self, ctx: _Ctx) -> web.Response:
        return self._json(
            200,
            {
                "id": str(self.application_id),
                "name": self.bot_user["username"],
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(self.token.encode()).hexdigest(),
                "owner": self.owner,
                "team": None,
                "flags": 0,
                "bot": self.bot_user,
                "rpc_origins": [],
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "role_connections_verification_url": None,
                "tags": [],
                "approximate_guild_count": len(self.guilds),
                "integration_types_config": {"0": {}},
            },
        )

    async def _h_empty_list(self, ctx: _Ctx) -> web.Response:
        return self._json(200, [])

    async def _h_no_content(self, ctx: _Ctx) -> web.Response:
        self._require_channel(ctx)
        return self._json(204, None)

    # ---------------------------------------------------------------- commands
    def _command_scope(self, ctx: _Ctx) -> int | None:
        if ctx.int_param("application_id") != self.application_id:
            raise DiscordAPIError(403, 50001, "Missing Access")
        if "guild_id" in ctx.params:
            gid = ctx.int_param("guild_id")
            if gid not in self.guilds:
                raise DiscordAPIError(403, 50001, "Missing Access")
            return gid
        return None

    def _store_command(
        self, scope: int | None, body: Mapping[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        ctype = body.get("type", 1) or 1
        cmd: dict[str, Any] = {
            "id": existing["id"] if existing else str(self._ids.next()),
            "application_id": str(self.application_id),
            "version": str(self._ids.next()),
            "type": ctype,
            "name": body.get("name", existing["name"] if existing else ""),
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description") or "",
            "description_localizations": body.get("description_localizations"),
            "options": copy.deepcopy(body.get("options") or []),
            "default_member_permissions": body.get("default_member_permissions"),
            "nsfw": bool(body.get("nsfw", False)),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
        }
        if scope is not None:
            cmd["guild_id"] = str(scope)
        else:
            cmd["dm_permission"] = body.get("dm_permission", True)
        if existing is not None:
            for key, value in existing.items():
                if key not in body and key in (
                    "options",
                    "description",
                    "default_member_permissions",
                ):
                    cmd[key] = value
        return cmd

    async def _h_get_commands(self, ctx: _Ctx) -> web.Response:
        scope = self._command_scope(ctx)
        return self._json(200, self.registered_commands.get(scope, []))

    async def _h_put_commands(self, ctx: _Ctx) -> web.Response:
        scope = self._command_scope(ctx)
        old = {(c["type"], c["name"]): c for c in self.registered_commands.get(scope, [])}
        new: list[dict[str, Any]] = []
        for body in ctx.body or []:
            if not isinstance(body, Mapping):
                continue
            key = (body.get("type", 1) or 1, body.get("name"))
            new.append(self._store_command(scope, body, old.get(key)))
        self.registered_commands[scope] = new
        self.command_syncs.append((scope, time.monotonic()))
        return self._json(200, new)

    async def _h_post_command(self, ctx: _Ctx) -> web.Response:
        scope = self._command_scope(ctx)
        body = ctx.body or {}
        cmds = self.registered_commands.setdefault(scope, [])
        key = (body.get("type", 1) or 1, body.get("name"))
        existing = next((c for c in cmds if (c["type"], c["name"]) == key), None)
        cmd = self._store_command(scope, body, existing)
        if existing is not None:
            cmds[cmds.index(existing)] = cmd
            return self._json(200, cmd)
        cmds.append(cmd)
        return self._json(201, cmd)

    def _find_command(self, ctx: _Ctx) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        scope = self._command_scope(ctx)
        cmds = self.registered_commands.get(scope, [])
        cid = ctx.params["command_id"]
        for cmd in cmds:
            if cmd["id"] == cid:
                return cmds, cmd
        raise DiscordAPIError(404, 10063, "Unknown application command")

    async def _h_get_command(self, ctx: _Ctx) -> web.Response:
        _, cmd = self._find_command(ctx)
        return self._json(200, cmd)

    async def _h_patch_command(self, ctx: _Ctx) -> web.Response:
        cmds, cmd = self._find_command(ctx)
        scope = self._command_scope(ctx)
        merged = {**cmd, **(ctx.body or {})}
        new = self._store_command(scope, merged, cmd)
        cmds[cmds.index(cmd)] = new
        return self._json(200, new)

    async def _h_delete_command(self, ctx: _Ctx) -> web.Response:
        cmds, cmd = self._find_command(ctx)
        cmds.remove(cmd)
        return self._json(204, None)

    # ---------------------------------------------------------------- channels & guilds
    def _require_channel(self, ctx: _Ctx) -> FakeChannel:
        channel = self.channels.get(ctx.int_param("channel_id"))
        if channel is None or channel.deleted:
            raise _unknown_channel()
        if channel.guild_id is not None and not self._bot_perms(channel) & Permissions.VIEW_CHANNEL:
            raise DiscordAPIError(403, 50001, "Missing Access")
        return channel

    def _require_guild(self, ctx: _Ctx) -> FakeGuild:
        guild = self.guilds.get(ctx.int_param("guild_id"))
        if guild is None:
            raise DiscordAPIError(404, 10004, "Unknown Guild")
        return guild

    async def _h_leave_guild(self, ctx: _Ctx) -> web.Response:
        """DELETE /users/@me/guilds/{guild.id}: the bot leaves; GUILD_DELETE follows."""
        guild = self._require_guild(ctx)
        if guild.left:
            raise DiscordAPIError(404, 10004, "Unknown Guild")
        guild.left = True
        await self._dispatch("GUILD_DELETE", {"id": str(guild.id)}, guild.id)
        self._notify()
        return self._json(204, None)

    async def _h_get_channel(self, ctx: _Ctx) -> web.Response:
        return self._json(200, self._require_channel(ctx).to_payload())

    def _guild_rest_payload(self, guild: FakeGuild) -> dict[str, Any]:
        return {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "region": "deprecated",
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 1,
            "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": guild.roles(),
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": str(next(iter(guild.channels), guild.id)),
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": {0: 0, 2: 7, 3: 14}[guild.premium_tier],
            "preferred_locale": guild.locale,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "incidents_data": None,
        }

    async def _h_get_guild(self, ctx: _Ctx) -> web.Response:
        guild = self._require_guild(ctx)
        data = self._guild_rest_payload(guild)
        if ctx.flag("with_counts"):
            data["approximate_member_count"] = len(guild.members)
            data["approximate_presence_count"] = len(guild.members)
        return self._json(200, data)

    async def _h_guild_channels(self, ctx: _Ctx) -> web.Response:
        guild = self._require_guild(ctx)
        return self._json(200, [c.to_payload() for c in guild.channels.values()])

    async def _h_guild_roles(self, ctx: _Ctx) -> web.Response:
        return self._json(200, self._require_guild(ctx).roles())

    async def _h_guild_member(self, ctx: _Ctx) -> web.Response:
        guild = self._require_guild(ctx)
        member = guild.members.get(ctx.int_param("user_id"))
        if member is None:
            raise DiscordAPIError(404, 10007, "Unknown Member")
        return self._json(200, member)

    # ---------------------------------------------------------------- messages
    def _require_message(self, ctx: _Ctx, channel: FakeChannel) -> FakeMessage:
        msg = self._messages_by_id.get(ctx.int_param("message_id"))
        if msg is None or msg.deleted or msg.channel_id != channel.id or msg.ephemeral:
            raise _unknown_message()
        return msg

    def _store_upload(
        self, up: _Upload, channel_id: int, meta: Mapping[str, Any]
    ) -> FakeAttachment:
        att_id = self._ids.next()
        filename = _sanitize_filename(str(meta.get("filename") or up.filename))
        ex = f"{int(time.time()) + 86400:x}"
        url = (
            f"{self.http_base}/attachments/{channel_id}/{att_id}/{quote(filename)}"
            f"?ex={ex}&is={int(time.time()):x}&hm={secrets.token_hex(32)}&"
        )
        att = FakeAttachment(
            id=att_id,
            filename=filename,
            data=up.data,
            url=url,
            content_type=_guess_content_type(filename, up.data),
            description=meta.get("description"),
            title=meta.get("title"),
        )
        self._attachments[att_id] = att
        return att

    def _apply_body(
        self,
        msg: FakeMessage,
        body: Mapping[str, Any],
        uploads: Sequence[_Upload],
        *,
        creating: bool,
    ) -> None:
        if "content" in body:
            msg.content = body.get("content") or ""
        if "embeds" in body:
            embeds = []
            for embed in body.get("embeds") or []:
                e = copy.deepcopy(dict(embed))
                e.setdefault("type", "rich")
                embeds.append(e)
            msg.embeds = embeds
        if "components" in body:
            comps = copy.deepcopy(list(body.get("components") or []))
            counter = 0

            def assign(items: list[Any]) -> None:
                nonlocal counter
                for comp in items:
                    if not isinstance(comp, dict):
                        continue
                    counter += 1
                    comp.setdefault("id", counter)
                    if isinstance(comp.get("components"), list):
                        assign(comp["components"])
                    for key in ("component", "accessory"):
                        if isinstance(comp.get(key), dict):
                            assign([comp[key]])

            assign(comps)
            msg.components = comps
        flags = body.get("flags")
        if isinstance(flags, int):
            if creating:
                msg.flags = (msg.flags & ~_CREATE_FLAGS) | (flags & _CREATE_FLAGS)
            else:
                msg.flags = (msg.flags & ~_EDIT_FLAGS) | (flags & _EDIT_FLAGS)
        by_index = {u.index: u for u in uploads}
        attachments_meta = body.get("attachments")
        if isinstance(attachments_meta, list):
            current = {a.id: a for a in msg.attachments}
            new_list: list[FakeAttachment] = []
            for meta in attachments_meta:
                if not isinstance(meta, Mapping) or "id" not in meta:
                    continue
                try:
                    aid = int(meta["id"])
                except (TypeError, ValueError):
                    raise DiscordAPIError(400, 50035, "Invalid Form Body") from None
                if aid in current:
                    new_list.append(current[aid])
                elif aid in by_index:
                    new_list.append(self._store_upload(by_index.pop(aid), msg.channel_id, meta))
                else:
                    raise DiscordAPIError(
                        400,
                        50035,
                        "Invalid Form Body",
                        errors={"attachments": {"_errors": [{"code": "ATTACHMENT_NOT_FOUND"}]}},
                    )
            for up in by_index.values():
                new_list.append(self._store_upload(up, msg.channel_id, {}))
            msg.attachments = new_list
        elif uploads:
            for up in uploads:
                msg.attachments.append(self._store_upload(up, msg.channel_id, {}))
        ref = body.get("message_reference")
        if creating and isinstance(ref, Mapping) and ref.get("message_id"):
            msg.message_reference = {
                "type": ref.get("type", 0),
                "message_id": str(ref["message_id"]),
                "channel_id": str(ref.get("channel_id") or msg.channel_id),
            }
            if msg.guild_id is not None:
                msg.message_reference["guild_id"] = str(msg.guild_id)
            if msg.type == 0:
                msg.type = 19
        # attachment://name in embeds resolves to the uploaded file's URL
        names = {a.filename: a.url for a in msg.attachments}
        for embed in msg.embeds:
            for key in ("image", "thumbnail", "author", "footer"):
                part = embed.get(key)
                if not isinstance(part, dict):
                    continue
                for url_key in ("url", "icon_url"):
                    url = part.get(url_key)
                    if isinstance(url, str) and url.startswith("attachment://"):
                        target = names.get(url[len("attachment://") :])
                        if target:
                            part["proxy_url" if url_key == "url" else "proxy_icon_url"] = target
                            part[url_key] = target

    @staticmethod
    def _is_empty(msg: FakeMessage) -> bool:
        return not (msg.content or msg.embeds or msg.components or msg.attachments)

    def _new_message(
        self,
        channel: FakeChannel,
        body: Mapping[str, Any],
        uploads: Sequence[_Upload],
        *,
        type: int = 0,
        flags: int = 0,
        webhook: bool = False,
        interaction: InteractionRecord | None = None,
        allow_empty: bool = False,
    ) -> FakeMessage:
        msg = FakeMessage(
            id=self._ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=self.bot_user,
            type=type,
            flags=flags,
            webhook_id=self.application_id if webhook else None,
            application_id=self.application_id if webhook else None,
            interaction=interaction,
        )
        self._apply_body(msg, body, uploads, creating=True)
        if not webhook:
            msg.flags &= ~FLAG_EPHEMERAL
        if not allow_empty and self._is_empty(msg):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        self._messages_by_id[msg.id] = msg
        self.messages.setdefault(channel.id, []).append(msg)
        channel.last_message_id = msg.id
        return msg

    def _edit(
        self, msg: FakeMessage, body: Mapping[str, Any], uploads: Sequence[_Upload], via: str
    ) -> None:
        before = msg.to_payload()
        was_loading = msg.loading
        self._apply_body(msg, body, uploads, creating=False)
        if self._is_empty(msg):
            # roll back, Discord refuses to make a message empty
            self._restore(msg, before)
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        msg.flags &= ~FLAG_LOADING
        if not was_loading:
            msg.edited_wall = time.time()
        msg.edits.append(
            MessageEdit(time=time.monotonic(), via=via, body=dict(body), before=before)
        )

    def _restore(self, msg: FakeMessage, payload: Mapping[str, Any]) -> None:
        msg.content = payload["content"]
        msg.embeds = payload["embeds"]
        msg.components = payload["components"]
        msg.flags = payload["flags"]
        ids = {int(a["id"]) for a in payload["attachments"]}
        msg.attachments = [self._attachments[i] for i in ids if i in self._attachments]

    async def _mark_deleted(self, msg: FakeMessage) -> None:
        if msg.deleted:
            return
        msg.deleted = True
        msg.deleted_at = time.monotonic()
        self._notify()
        if not msg.ephemeral:
            data: dict[str, Any] = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            await self._dispatch_message_event("MESSAGE_DELETE", data, msg)

    async def _dispatch_message_event(
        self, event: str, data: dict[str, Any], msg: FakeMessage
    ) -> None:
        if not self.dispatch_message_events or msg.ephemeral:
            return
        intent = INTENT_GUILD_MESSAGES if msg.guild_id is not None else INTENT_DIRECT_MESSAGES
        guild_id = msg.guild_id if msg.guild_id is not None else self.guild_id
        await self._dispatch(event, data, guild_id, intent=intent)

    def _message_event_payload(self, msg: FakeMessage) -> dict[str, Any]:
        data = msg.to_payload()
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            guild = self.guilds[msg.guild_id]
            member = guild.members.get(int(msg.author["id"]))
            if member is not None and msg.webhook_id is None:
                data["member"] = {k: v for k, v in member.items() if k != "user"}
        return data

    def _check_send_perms(self, channel: FakeChannel, uploads: Sequence[_Upload]) -> None:
        if channel.guild_id is None:
            return
        perms = self._bot_perms(channel)
        if not perms & Permissions.SEND_MESSAGES:
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        if uploads and not perms & Permissions.ATTACH_FILES:
            raise DiscordAPIError(403, 50013, "Missing Permissions")

    async def _h_create_message(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        self._check_send_perms(channel, ctx.files)
        self._check_dm_open(channel)
        repeated = self._nonce_repeat(ctx.body or {})
        if repeated is not None:  # enforce_nonce: the message already posted, no new one
            ctx.rec.response = {"id": str(repeated.id)}
            return self._json(200, repeated.to_payload())
        msg = self._new_message(channel, ctx.body or {}, ctx.files)
        self._note_nonce(ctx.body or {}, msg)
        await self._dispatch_message_event("MESSAGE_CREATE", self._message_event_payload(msg), msg)
        ctx.rec.response = {"id": str(msg.id)}
        return self._json(200, msg.to_payload())

    # ---- enforce_nonce (POST /channels/{channel.id}/messages): "If enforce_nonce is true
    # and nonce is present, it will be checked for uniqueness in the past few minutes. If
    # another message was created by the same author with the same nonce, that message
    # will be returned and no new message will be created."
    NONCE_WINDOW = 180.0  # "a few minutes"

    def _nonce_key(self, body: Mapping[str, Any]) -> tuple[str, str] | None:
        nonce = body.get("nonce")
        if not body.get("enforce_nonce") or nonce is None or nonce == "":
            return None
        return str(self.bot_user["id"]), str(nonce)

    def _nonce_repeat(self, body: Mapping[str, Any]) -> FakeMessage | None:
        key = self._nonce_key(body)
        seen = self._nonces.get(key) if key else None
        if seen is None or time.monotonic() - seen[0] > self.NONCE_WINDOW:
            return None
        self.nonce_repeats += 1
        return seen[1]

    def _note_nonce(self, body: Mapping[str, Any], msg: FakeMessage) -> None:
        key = self._nonce_key(body)
        if key:
            self._nonces[key] = (time.monotonic(), msg)

    async def _h_get_message(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        return self._json(200, self._require_message(ctx, channel).to_payload())

    async def _h_history(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        q = ctx.request.query
        limit = max(1, min(int(q.get("limit", 50)), 100))
        msgs = [m for m in self.messages.get(channel.id, []) if not m.deleted and not m.ephemeral]
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])]
            msgs = msgs[:limit]
        if "around" in q:
            around = int(q["around"])
            older = [m for m in msgs if m.id <= around][-(limit // 2 + 1) :]
            newer = [m for m in msgs if m.id > around][: limit // 2]
            msgs = older + newer
        msgs = msgs[-limit:]
        return self._json(200, [m.to_payload() for m in reversed(msgs)])

    async def _h_edit_message(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        msg = self._require_message(ctx, channel)
        if msg.author["id"] != self.bot_user["id"]:
            raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        if ctx.files:
            self._check_send_perms(channel, ctx.files)
        self._edit(msg, ctx.body or {}, ctx.files, via="channel")
        await self._dispatch_message_event("MESSAGE_UPDATE", self._message_event_payload(msg), msg)
        return self._json(200, msg.to_payload())

    async def _h_delete_message(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        msg = self._require_message(ctx, channel)
        if msg.author["id"] != self.bot_user["id"] and not (
            self._bot_perms(channel) & Permissions.MANAGE_MESSAGES
        ):
            raise DiscordAPIError(403, 50013, "Missing Permissions")
        await self._mark_deleted(msg)
        return self._json(204, None)

    async def _h_bulk_delete(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        for mid in (ctx.body or {}).get("messages", []):
            msg = self._messages_by_id.get(int(mid))
            if msg is not None and msg.channel_id == channel.id:
                await self._mark_deleted(msg)
        return self._json(204, None)

    async def _h_add_reaction(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        msg = self._require_message(ctx, channel)
        emoji = ctx.params["emoji"]
        msg.reactions[emoji] = msg.reactions.get(emoji, 0) + 1
        return self._json(204, None)

    async def _h_remove_reaction(self, ctx: _Ctx) -> web.Response:
        channel = self._require_channel(ctx)
        msg = self._require_message(ctx, channel)
        emoji = ctx.params["emoji"]
        if msg.reactions.get(emoji, 0) > 1:
            msg.reactions[emoji] -= 1
        else:
            msg.reactions.pop(emoji, None)
        return self._json(204, None)

    # ---------------------------------------------------------------- interactions (bot side)
    async def _h_callback(self, ctx: _Ctx) -> web.Response:
        now = time.monotonic()
        rec = self._interactions_by_id.get(ctx.int_param("interaction_id"))
        body = ctx.body if isinstance(ctx.body, Mapping) else {}
        cb_type = body.get("type")
        if rec is None or rec.token != ctx.params["interaction_token"]:
            raise DiscordAPIError(
                404, 10062, "Unknown interaction", violation="unknown-interaction"
            )
        latency = now - rec.dispatched_at
        attempt = CallbackAttempt(time=now, latency=latency, type=cb_type, body=ctx.body, status=0)
        rec.callbacks.append(attempt)
        try:
            response = await self._process_callback(ctx, rec, body, latency)
        except DiscordAPIError as err:
            attempt.status = err.status
            attempt.error_code = err.code
            raise
        attempt.status = response.status
        return response

    async def _process_callback(
        self, ctx: _Ctx, rec: InteractionRecord, body: Mapping[str, Any], latency: float
    ) -> web.Response:
        cb_type = body.get("type")
        if rec.acked:
            raise DiscordAPIError(
                400,
                40060,
                "Interaction has already been acknowledged.",
                violation="double-ack",
            )
        if latency > self.ack_deadline:
            raise DiscordAPIError(
                404,
                10062,
                "Unknown interaction",
                violation="late-callback",
                detail=f"{rec.name}: {latency:.2f}s > {self.ack_deadline}s",
            )
        data = body.get("data") if isinstance(body.get("data"), Mapping) else {}
        assert isinstance(data, Mapping)
        allowed = {
            1: {1},
            2: {4, 5, 9},
            3: {4, 5, 6, 7, 9},
            4: {8},
            5: {4, 5, 6, 7},
        }.get(rec.type, set())
        if cb_type not in allowed:
            raise DiscordAPIError(
                400,
                50035,
                "Invalid Form Body",
                errors={"type": {"_errors": [{"code": "INTERACTION_CALLBACK_TYPE_INVALID"}]}},
                violation="callback-type",
                detail=f"callback type {cb_type} not valid for interaction type {rec.type}",
            )
        channel = self.channels.get(rec.channel_id)
        msg: FakeMessage | None = None
        if cb_type in (4, 5):
            if channel is None or channel.deleted:
                raise _unknown_channel()
            flags = data.get("flags") or 0
            ephemeral = FLAG_EPHEMERAL if isinstance(flags, int) and flags & FLAG_EPHEMERAL else 0
            mtype = 20 if rec.type == 2 else 0
            if cb_type == 4:
                msg = self._new_message(
                    channel, data, ctx.files, type=mtype, webhook=True, interaction=rec
                )
            else:
                msg = self._new_message(
                    channel,
                    {},
                    [],
                    type=mtype,
                    flags=FLAG_LOADING | ephemeral,
                    webhook=True,
                    interaction=rec,
                    allow_empty=True,
                )
            rec.original = msg
        elif cb_type in (6, 7):
            source = self._messages_by_id.get(rec.message_id or 0)
            if source is None or source.deleted:
                raise _unknown_message()
            if cb_type == 7:
                self._edit(source, data, ctx.files, via="callback")
                msg = source
            rec.original = source
        elif cb_type == 8:
            rec.choices = list(data.get("choices") or [])
        elif cb_type == 9:
            rec.modal = copy.deepcopy(dict(data))
        rec.ack_type = cb_type
        rec.ack_at = time.monotonic()
        rec.ack_data = copy.deepcopy(ctx.body)
        if msg is not None and cb_type in (4, 5):
            await self._dispatch_message_event(
                "MESSAGE_CREATE", self._message_event_payload(msg), msg
            )
        elif msg is not None:
            await self._dispatch_message_event(
                "MESSAGE_UPDATE", self._message_event_payload(msg), msg
            )
        if not ctx.flag("with_response"):
            return self._json(204, None)
        interaction: dict[str, Any] = {
            "id": str(rec.id),
            "type": rec.type,
            "response_message_loading": cb_type == 5,
            "response_message_ephemeral": bool(msg is not None and msg.ephemeral),
        }
        if msg is not None:
            interaction["response_message_id"] = str(msg.id)
        out: dict[str, Any] = {"interaction": interaction}
        if msg is not None:
            out["resource"] = {"type": cb_type, "message": msg.to_payload()}
        elif cb_type not in (1, 6):
            out["resource"] = {"type": cb_type}
        return self._json(200, out)

    def _webhook_interaction(self, ctx: _Ctx) -> InteractionRecord:
        if ctx.int_param("webhook_id") != self.application_id:
            raise _unknown_webhook()
        rec = self._interactions_by_token.get(ctx.params["webhook_token"])
        if rec is None:
            raise DiscordAPIError(
                401, 50027, "Invalid Webhook Token", violation="invalid-webhook-token"
            )
        if rec.expired:
            raise DiscordAPIError(
                401,
                50027,
                "Invalid Webhook Token",
                violation="expired-token",
                detail=f"interaction {rec.name!r} token older than {self.token_lifetime}s",
            )
        if not rec.acked:
            raise DiscordAPIError(404, 10015, "Unknown Webhook", violation="not-acknowledged")
        return rec

    def _webhook_target(self, ctx: _Ctx, rec: InteractionRecord) -> FakeMessage:
        mid = ctx.params.get("message_id")
        if mid is None:
            msg = rec.original
        else:
            msg = next((m for m in rec.messages if m.id == int(mid)), None)
        if msg is None or msg.deleted:
            raise _unknown_message()
        return msg

    async def _h_followup(self, ctx: _Ctx) -> web.Response:
        rec = self._webhook_interaction(ctx)
        body = ctx.body if isinstance(ctx.body, Mapping) else {}
        original = rec.original
        if (
            rec.ack_type == 5
            and original is not None
            and original.loading
            and not rec._first_followup_done
        ):
            # The first follow-up after a deferred response completes the "thinking" message.
            rec._first_followup_done = True
            if original.deleted:
                raise _unknown_message()
            self._edit(original, body, ctx.files, via="followup")
            msg = original
            await self._dispatch_message_event(
                "MESSAGE_UPDATE", self._message_event_payload(msg), msg
            )
        else:
            channel = self.channels.get(rec.channel_id)
            if channel is None or channel.deleted:
                raise _unknown_channel()
            flags = body.get("flags") or 0
            ephemeral = FLAG_EPHEMERAL if isinstance(flags, int) and flags & FLAG_EPHEMERAL else 0
            msg = self._new_message(
                channel,
                body,
                ctx.files,
                type=20 if rec.type == 2 else 0,
                flags=ephemeral,
                webhook=True,
                interaction=rec,
            )
            rec.followups.append(msg)
            await self._dispatch_message_event(
                "MESSAGE_CREATE", self._message_event_payload(msg), msg
            )
        if not ctx.flag("wait"):
            return self._json(204, None)
        return self._json(200, msg.to_payload())

    async def _h_webhook_get(self, ctx: _Ctx) -> web.Response:
        rec = self._webhook_interaction(ctx)
        return self._json(200, self._webhook_target(ctx, rec).to_payload())

    async def _h_webhook_edit(self, ctx: _Ctx) -> web.Response:
        rec = self._webhook_interaction(ctx)
        msg = self._webhook_target(ctx, rec)
        self._edit(msg, ctx.body if isinstance(ctx.body, Mapping) else {}, ctx.files, via="webhook")
        await self._dispatch_message_event("MESSAGE_UPDATE", self._message_event_payload(msg), msg)
        return self._json(200, msg.to_payload())

    async def _h_webhook_delete(self, ctx: _Ctx) -> web.Response:
        rec = self._webhook_interaction(ctx)
        msg = self._webhook_target(ctx, rec)
        await self._mark_deleted(msg)
        return self._json(204, None)

    # ================================================================ gateway
    async def _gateway_handler(self, request: web.Request) -> web.StreamResponse:
        if self.gateway_down:  # an outage: the upgrade is refused, REST still answers
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = _GatewayConn(ws, request.query.get("compress"))
        self._conns.add(conn)
        try:
            await conn.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        payload = json.loads(msg.data)
                    except json.JSONDecodeError:
                        await ws.close(code=4002, message=b"Error while decoding payload.")
                        break
                    await self._gateway_op(conn, payload)
                elif msg.type == WSMsgType.BINARY:
                    await ws.close(code=4002, message=b"Error while decoding payload.")
                    break
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._conns.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
            self._notify()
        return ws

    async def _gateway_op(self, conn: _GatewayConn, payload: Mapping[str, Any]) -> None:
        op = payload.get("op")
        data = payload.get("d")
        if op != 1:
            self.gateway_received.append(dict(payload))
        if op == 1:
            conn.heartbeats += 1
            conn.last_heartbeat = time.monotonic()
            self.heartbeat_count += 1
            await conn.send({"op": 11})
        elif op == 2 and isinstance(data, Mapping):
            await self._identify(conn, data)
        elif op == 6 and isinstance(data, Mapping):
            await self._resume(conn, data)
        elif op == 3:
            self.presence = dict(data) if isinstance(data, Mapping) else None
        elif op == 8 and isinstance(data, Mapping):
            await self._request_members(conn, data)
        elif op in (4, 14, 31):
            pass
        else:
            await conn.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, conn: _GatewayConn, data: Mapping[str, Any]) -> None:
        if conn.session is not None:
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard = data.get("shard") or [0, 1]
        shard_id, shard_count = int(shard[0]), int(shard[1])
        if shard_count != self.shard_count or not 0 <= shard_id < shard_count:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        self.identify_count += 1
        old = self._shard_sessions.get(shard_id)
        if old is not None:
            old.invalid = True
        session = _GatewaySession(
            secrets.token_hex(16), shard_id, shard_count, int(data.get("intents") or 0)
        )
        self.sessions[session.session_id] = session
        self._shard_sessions[shard_id] = session
        session.conn = conn
        conn.session = session
        guilds = [
            g for g in self.guilds.values() if self._shard_of(g.id) == shard_id and not g.left
        ]
        await self._send_event(
            session,
            "READY",
            {
                "v": API_VERSION,
                "user": self.bot_user,
                "user_settings": {},
                "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self.gateway_url,
                "shard": [shard_id, shard_count],
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "presences": [],
                "relationships": [],
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": ["fake"],
                "auth": {},
                "_trace": ['["fake-discord",{"micros":1}]'],
            },
        )
        for guild in guilds:
            await self._send_event(session, "GUILD_CREATE", self._guild_create_payload(guild))
        self.ready_shards.add(shard_id)
        self._notify()

    async def _resume(self, conn: _GatewayConn, data: Mapping[str, Any]) -> None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or session.invalid or data.get("token") != self.token:
            await conn.send({"op": 9, "d": False})
            return
        self.resume_count += 1
        if session.conn is not None and session.conn is not conn:
            with contextlib.suppress(Exception):
                await session.conn.ws.close(code=4000, message=b"Session resumed elsewhere.")
        session.conn = conn
        conn.session = session
        last = int(data.get("seq") or 0)
        for seq, payload in list(session.buffer):
            if seq > last:
                await conn.send(payload)
        await self._send_event(session, "RESUMED", {"_trace": ['["fake-discord",{"micros":1}]']})
        self._notify()

    async def _request_members(self, conn: _GatewayConn, data: Mapping[str, Any]) -> None:
        session = conn.session
        guild = self.guilds.get(int(data.get("guild_id") or 0))
        if session is None or guild is None:
            return
        payload: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": list(guild.members.values()),
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            payload["nonce"] = data["nonce"]
        if data.get("presences"):
            payload["presences"] = []
        await self._send_event(session, "GUILD_MEMBERS_CHUNK", payload)

    def _shard_of(self, guild_id: int) -> int:
        return (guild_id >> 22) % self.shard_count

    def _guild_create_payload(self, guild: FakeGuild) -> dict[str, Any]:
        data = self._guild_rest_payload(guild)
        data.update(
            {
                "joined_at": _iso(time.time() - 86400),
                "large": False,
                "unavailable": False,
                "member_count": len(guild.members),
                "voice_states": [],
                "members": list(guild.members.values()),
                "channels": [c.to_payload() for c in guild.channels.values() if not c.deleted],
                "threads": [],
                "presences": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
                "embedded_activities": [],
                "lazy": True,
                "application_command_counts": {},
            }
        )
        return data

    async def _send_event(self, session: _GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.buffer.append((session.seq, payload))
        if session.conn is not None:
            await session.conn.send(payload)

    async def _dispatch(
        self, event: str, data: Any, guild_id: int, *, intent: int | None = None
    ) -> bool:
        """Send a dispatch to the shard of ``guild_id``; False if no session for it."""
        session = self._shard_sessions.get(self._shard_of(guild_id))
        if session is None or session.invalid:
            return False
        if intent is not None and not session.intents & intent:
            return False
        await self._send_event(session, event, data)
        return True

    async def dispatch_event(self, event: str, data: Any, *, guild_id: int | None = None) -> None:
        """Send any gateway dispatch (e.g. a hand-made MESSAGE_CREATE) to the bot."""
        if not await self._dispatch(event, data, guild_id or self.guild_id):
            raise RuntimeError("FakeDiscord: the bot has no gateway session for that shard")

    async def reconnect_gateway(self, shard_id: int = 0) -> None:
        """Send op 7 RECONNECT: the client reconnects and RESUMEs."""
        session = self._shard_sessions.get(shard_id)
        if session is None or session.conn is None:
            raise RuntimeError(f"FakeDiscord: shard {shard_id} is not connected")
        await session.conn.send({"op": 7, "d": None})

    async def invalidate_session(self, shard_id: int = 0, *, resumable: bool = False) -> None:
        """Send op 9 INVALID_SESSION (the client re-IDENTIFIes unless ``resumable``)."""
        session = self._shard_sessions.get(shard_id)
        if session is None or session.conn is None:
            raise RuntimeError(f"FakeDiscord: shard {shard_id} is not connected")
        if not resumable:
            session.invalid = True
            self.ready_shards.discard(shard_id)
        await session.conn.send({"op": 9, "d": resumable})

    async def take_gateway_down(self) -> None:
        """A gateway outage: every shard's socket closes and reconnects are refused until
        `bring_gateway_up` (REST keeps answering)."""
        self.gateway_down = True
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=4000, message=b"fake outage")

    def bring_gateway_up(self) -> None:
        self.gateway_down = False

    async def drop_connection(self, shard_id: int = 0, code: int = 4000) -> None:
        """Close the shard's socket abruptly (discord.py resumes on codes like 4000)."""
        session = self._shard_sessions.get(shard_id)
        if session is None or session.conn is None:
            raise RuntimeError(f"FakeDiscord: shard {shard_id} is not connected")
        await session.conn.ws.close(code=code, message=b"fake drop")

    # ================================================================ interactions (test side)
    def _interaction_token(self) -> str:
        return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(120)

    def _base_interaction(
        self, itype: int, user_id: int | None, channel_id: int | None, locale: str
    ) -> tuple[dict[str, Any], dict[str, Any], FakeChannel]:
        channel = self.channels[channel_id or self.channel_id]
        uid = user_id or self.user_id
        user = self.users.get(uid)
        if user is None:
            raise KeyError(f"unknown user {uid}; create users with add_user()")
        payload: dict[str, Any] = {
            "id": str(self._ids.next()),
            "application_id": str(self.application_id),
            "type": itype,
            "token": self._interaction_token(),
            "version": 1,
            "channel_id": str(channel.id),
            "channel": channel.to_payload(),
            "app_permissions": str(self._bot_perms(channel)),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": DEFAULT_UPLOAD_LIMIT,
        }
        if channel.guild_id is not None:
            guild = self.guilds[channel.guild_id]
            perms = guild.everyone_permissions
            if uid == guild.owner_id:
                perms = (1 << 53) - 1
            member = dict(guild.members.get(uid) or self._member(user, guild))
            member["user"] = user
            member["permissions"] = str(perms)
            payload.update(
                {
                    "guild_id": str(guild.id),
                    "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
                    "guild_locale": guild.locale,
                    "member": member,
                    "authorizing_integration_owners": {"0": str(guild.id)},
                    "context": 0,
                    "attachment_size_limit": guild.upload_limit,
                }
            )
        else:
            payload.update(
                {
                    "user": user,
                    "authorizing_integration_owners": {"0": "0"},
                    "context": 1,
                }
            )
        return payload, user, channel

    async def _inject(
        self, payload: dict[str, Any], user: dict[str, Any], channel: FakeChannel, name: str
    ) -> InteractionRecord:
        rec = InteractionRecord(
            self,
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            name=name,
            payload=payload,
            user=user,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            message_id=int(payload["message"]["id"]) if "message" in payload else None,
        )
        self.interactions.append(rec)
        self._interactions_by_id[rec.id] = rec
        self._interactions_by_token[rec.token] = rec
        guild_id = channel.guild_id if channel.guild_id is not None else self.guild_id
        rec.dispatched_at = time.monotonic()
        if not await self._dispatch("INTERACTION_CREATE", payload, guild_id):
            raise RuntimeError(
                "FakeDiscord: the bot is not connected to the gateway (await fake.wait_ready())"
            )
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.ack_deadline + 0.05, self._check_acked, rec))
        self._notify()
        return rec

    def _check_acked(self, rec: InteractionRecord) -> None:
        if not rec.callbacks:
            self._violation(
                "no-ack",
                None,
                f"interaction {rec.name!r} (type {rec.type}, id {rec.id}) was not acknowledged "
                f"within {self.ack_deadline}s",
            )
            self._notify()

    def _store_user_upload(
        self, file: FakeFile | tuple[str, bytes] | bytes, channel_id: int
    ) -> FakeAttachment:
        if isinstance(file, bytes):
            file = FakeFile("upload.bin", file)
        elif isinstance(file, tuple):
            file = FakeFile(file[0], file[1])
        att_id = self._ids.next()
        filename = _sanitize_filename(file.filename)
        url = (
            f"{self.http_base}/ephemeral-attachments/{self.application_id}/{att_id}/"
            f"{quote(filename)}?ex={int(time.time()) + 86400:x}&is={int(time.time()):x}"
            f"&hm={secrets.token_hex(32)}&"
        )
        att = FakeAttachment(
            id=att_id,
            filename=filename,
            data=file.data,
            url=url,
            content_type=file.content_type or _guess_content_type(filename, file.data),
            description=file.description,
            ephemeral=True,
        )
        self._attachments[att_id] = att
        return att

    @staticmethod
    def _infer_option_type(value: Any) -> int:
        if isinstance(value, bool):
            return 5
        if isinstance(value, int):
            return 4
        if isinstance(value, float):
            return 10
        if isinstance(value, (FakeFile, bytes, tuple)):
            return 11
        return 3

    def _build_options(
        self,
        defs: list[dict[str, Any]] | None,
        values: Mapping[str, Any],
        channel_id: int,
        resolved: dict[str, dict[str, Any]],
        where: str,
    ) -> list[dict[str, Any]]:
        by_name = {d["name"]: d for d in defs or []}
        if defs is not None:
            unknown = [k for k in values if k not in by_name]
            if unknown:
                raise ValueError(
                    f"{where}: unknown option(s) {unknown}; registered: {list(by_name)}"
                )
            missing = [d["name"] for d in defs if d.get("required") and d["name"] not in values]
            if missing:
                raise ValueError(f"{where}: missing required option(s) {missing}")
        out: list[dict[str, Any]] = []
        for name, value in values.items():
            otype = by_name[name]["type"] if name in by_name else self._infer_option_type(value)
            if otype == 11:
                att = self._store_user_upload(value, channel_id)
                resolved.setdefault("attachments", {})[str(att.id)] = att.to_payload()
                out.append({"name": name, "type": 11, "value": str(att.id)})
            elif otype == 6:
                uid = int(value)
                user = self.users.get(uid) or self.bot_user
                resolved.setdefault("users", {})[str(uid)] = user
                guild = self.guilds.get(self.channels[channel_id].guild_id or 0)
                if guild is not None and uid in guild.members:
                    member = {k: v for k, v in guild.members[uid].items() if k != "user"}
                    member["permissions"] = str(guild.everyone_permissions)
                    resolved.setdefault("members", {})[str(uid)] = member
                out.append({"name": name, "type": 6, "value": str(uid)})
            elif otype == 7:
                ch = self.channels[int(value)]
                resolved.setdefault("channels", {})[str(ch.id)] = {
                    **ch.to_payload(),
                    "permissions": str(Permissions.EVERYONE_DEFAULT),
                }
                out.append({"name": name, "type": 7, "value": str(ch.id)})
            elif otype == 8:
                out.append(self._role_option(name, int(value), channel_id, resolved))
            elif otype == 4:
                out.append({"name": name, "type": 4, "value": int(value)})
            elif otype == 10:
                out.append({"name": name, "type": 10, "value": float(value)})
            elif otype == 5:
                out.append({"name": name, "type": 5, "value": bool(value)})
            else:
                out.append(
                    {"name": name, "type": otype, "value": value if otype != 3 else str(value)}
                )
        return out

    async def send_slash_command(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        attachments: Mapping[str, FakeFile | tuple[str, bytes] | bytes] | None = None,
        user_id: int | None = None,
        channel_id: int | None = None,
        locale: str = "en-US",
        strict: bool = True,
    ) -> InteractionRecord:
        """Dispatch a slash command (INTERACTION_CREATE type 2) as a user would.

        ``name`` may contain sub-commands (``"mj imagine"``).  ``options`` maps option
        names to values (str/int/float/bool, a user id for user options, FakeFile for
        attachments); ``attachments`` is a convenience for attachment options.  Option
        types come from the registered command when there is one; with ``strict`` unknown
        or missing required options raise ``ValueError``.
        """
        parts = name.split()
        values: dict[str, Any] = dict(options or {})
        values.update(attachments or {})
        payload, user, channel = self._base_interaction(2, user_id, channel_id, locale)
        cmd = self.command(parts[0], guild_id=channel.guild_id or self.guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        defs: list[dict[str, Any]] | None = None
        chain: list[tuple[str, int]] = []
        if cmd is not None:
            defs = cmd.get("options") or []
            for sub in parts[1:]:
                sub_def = next((o for o in defs if o["name"] == sub), None)
                if sub_def is None:
                    raise ValueError(f"/{name}: {sub!r} is not a registered sub-command")
                chain.append((sub, sub_def["type"]))
                defs = sub_def.get("options") or []
        else:
            chain = [(sub, 1 if i == len(parts) - 2 else 2) for i, sub in enumerate(parts[1:])]
        built = self._build_options(
            defs if strict else None, values, channel.id, resolved, f"/{name}"
        )
        for sub, stype in reversed(chain):
            built = [{"name": sub, "type": stype, "options": built}]
        data: dict[str, Any] = {
            "id": cmd["id"] if cmd else str(self._ids.next()),
            "name": parts[0],
            "type": 1,
        }
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if cmd is not None and cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        payload["data"] = data
        return await self._inject(payload, user, channel, name)

    async def send_autocomplete(
        self,
        name: str,
        focused: str,
        value: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> InteractionRecord:
        """Dispatch an autocomplete request (type 4); the choices land in ``rec.choices``."""
        parts = name.split()
        payload, user, channel = self._base_interaction(4, user_id, channel_id, "en-US")
        cmd = self.command(parts[0], guild_id=channel.guild_id or self.guild_id)
        resolved: dict[str, dict[str, Any]] = {}
        built = self._build_options(None, dict(options or {}), channel.id, resolved, f"/{name}")
        built.append({"name": focused, "type": 3, "value": value, "focused": True})
        for i, sub in reversed(list(enumerate(parts[1:]))):
            built = [{"name": sub, "type": 1 if i == len(parts) - 2 else 2, "options": built}]
        payload["data"] = {
            "id": cmd["id"] if cmd else str(self._ids.next()),
            "name": parts[0],
            "type": 1,
            "options": built,
        }
        if cmd is not None and cmd.get("guild_id"):
            # As for the command itself: Discord names the guild of a guild command.
            payload["data"]["guild_id"] = cmd["guild_id"]
        return await self._inject(payload, user, channel, name)

    def _component_payload(
        self, message_id: int, custom_id: str, user_id: int | None
    ) -> tuple[dict[str, Any], dict[str, Any], FakeChannel, FakeMessage, dict[str, Any]]:
        msg = self._messages_by_id.get(message_id)
        if msg is None:
            raise KeyError(f"unknown message {message_id}")
        if msg.deleted:
            raise ValueError(f"message {message_id} was deleted")
        comp = msg.component(custom_id)
        if comp is None:
            raise ValueError(
                f"message {message_id} has no component {custom_id!r}: {msg.custom_ids()}"
            )
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        payload, user, channel = self._base_interaction(3, user_id, msg.channel_id, "en-US")
        payload["message"] = msg.to_payload()
        return payload, user, channel, msg, comp

    async def click_button(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """Click a button of a stored message (INTERACTION_CREATE type 3)."""
        payload, user, channel, _, comp = self._component_payload(message_id, custom_id, user_id)
        payload["locale"] = locale  # the clicking member's Discord language
        if comp.get("type") != 2:
            raise ValueError(f"component {custom_id!r} is not a button")
        payload["data"] = {"custom_id": custom_id, "component_type": 2, "id": comp.get("id", 0)}
        return await self._inject(payload, user, channel, custom_id)

    async def select_option(
        self,
        message_id: int,
        custom_id: str,
        values: Sequence[str],
        *,
        user_id: int | None = None,
    ) -> InteractionRecord:
        """Choose values in a select menu of a stored message."""
        payload, user, channel, _, comp = self._component_payload(message_id, custom_id, user_id)
        payload["data"] = {
            "custom_id": custom_id,
            "component_type": comp.get("type", 3),
            "values": list(values),
            "id": comp.get("id", 0),
        }
        return await self._inject(payload, user, channel, custom_id)

    async def submit_modal(
        self,
        custom_id: str,
        values: Mapping[str, Any],
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        source: InteractionRecord | None = None,
    ) -> InteractionRecord:
        """Submit a modal (INTERACTION_CREATE type 5).

        ``values`` maps input custom_ids to a str (text input / radio), a list of str
        (selects, checkbox groups), a bool (checkbox) or a list of FakeFile (file upload).
        The structure follows the modal the bot showed (``source``, default: the latest
        interaction answered with a modal of that custom_id).
        """
        if source is None:
            source = next(
                (
                    r
                    for r in reversed(self.interactions)
                    if r.modal is not None and r.modal.get("custom_id") == custom_id
                ),
                None,
            )
        payload, user, channel = self._base_interaction(
            5,
            user_id or (source.user_id if source else None),
            channel_id or (source.channel_id if source else None),
            "en-US",
        )
        resolved: dict[str, dict[str, Any]] = {}

        def submitted(comp: Mapping[str, Any]) -> dict[str, Any]:
            cid = comp.get("custom_id")
            ctype = comp.get("type", 4)
            out: dict[str, Any] = {"type": ctype, "id": comp.get("id", 0), "custom_id": cid}
            value = values.get(str(cid), comp.get("value", ""))
            if ctype == 19:
                files = value if isinstance(value, list) else [value]
                ids = []
                for f in files:
                    if isinstance(f, (FakeFile, bytes, tuple)):
                        att = self._store_user_upload(f, channel.id)
                        resolved.setdefault("attachments", {})[str(att.id)] = att.to_payload()
                        ids.append(str(att.id))
                out["values"] = ids
            elif ctype == 23:
                out["value"] = bool(value)
            elif ctype in (3, 5, 6, 7, 8, 22):
                out["values"] = [str(v) for v in (value if isinstance(value, list) else [value])]
            else:
                out["value"] = value if isinstance(value, str) else str(value)
            return out

        components: list[dict[str, Any]] = []
        if source is not None and source.modal is not None:
            for top in source.modal.get("components") or []:
                if top.get("type") == 1:
                    inner = [submitted(c) for c in top.get("components") or []]
                    components.append({"type": 1, "id": top.get("id", 0), "components": inner})
                elif top.get("type") == 18 and isinstance(top.get("component"), dict):
                    components.append(
                        {
                            "type": 18,
                            "id": top.get("id", 0),
                            "component": submitted(top["component"]),
                        }
                    )
                elif top.get("type") == 10:
                    components.append({"type": 10, "id": top.get("id", 0)})
        else:
            for i, (cid, value) in enumerate(values.items()):
                if isinstance(value, bool):
                    ctype = 23
                elif isinstance(value, list):
                    ctype = 19 if value and isinstance(value[0], FakeFile) else 3
                else:
                    ctype = 4
                item = submitted({"custom_id": cid, "type": ctype, "id": i * 2 + 2})
                components.append({"type": 1, "id": i * 2 + 1, "components": [item]})
        data: dict[str, Any] = {"custom_id": custom_id, "components": components}
        if resolved:
            data["resolved"] = resolved
        payload["data"] = data
        if source is not None and source.message_id is not None:
            msg = self._messages_by_id.get(source.message_id)
            if msg is not None:
                payload["message"] = msg.to_payload()
        return await self._inject(payload, user, channel, custom_id)

    async def post_user_message(
        self,
        content: str,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        files: Sequence[FakeFile] = (),
    ) -> FakeMessage:
        """A human posts a message (stored, and MESSAGE_CREATE is dispatched).

        Like Discord, the content is blanked in the event unless the bot asked for the
        privileged MESSAGE_CONTENT intent or is mentioned.
        """
        channel = self.channels[channel_id or self.channel_id]
        user = self.users[user_id or self.user_id]
        msg = FakeMessage(
            id=self._ids.next(), channel_id=channel.id, guild_id=channel.guild_id, author=user
        )
        msg.content = content
        for f in files:
            up = _Upload("files[0]", 0, f.filename, f.data, f.content_type)
            msg.attachments.append(self._store_upload(up, channel.id, {}))
        self._messages_by_id[msg.id] = msg
        self.messages.setdefault(channel.id, []).append(msg)
        data = msg.to_payload()
        if channel.guild_id is not None:
            data["guild_id"] = str(channel.guild_id)
            member = self.guilds[channel.guild_id].members.get(int(user["id"]))
            if member is not None:
                data["member"] = {k: v for k, v in member.items() if k != "user"}
            session = self._shard_sessions.get(self._shard_of(channel.guild_id))
            mentioned = f"<@{self.bot_user['id']}>" in content
            if (
                session is not None
                and not session.intents & INTENT_MESSAGE_CONTENT
                and not mentioned
            ):
                # Without the privileged MESSAGE_CONTENT intent Discord blanks these fields.
                data.update(content="", embeds=[], attachments=[], components=[])
        await self._dispatch_message_event("MESSAGE_CREATE", data, msg)
        self._notify()
        return msg

    # ================================================================ misc
    def summary(self) -> str:
        """Human-readable dump for assertion messages."""
        lines = [
            f"requests={len(self.requests)} 429s={self.count_429} violations={len(self.violations)}"
        ]
        for v in self.violations[-10:]:
            lines.append(f"  violation: {v}")
        for msg in self.all_messages(include_deleted=True)[-10:]:
            lines.append(f"  {msg!r}")
        for req in self.requests[-15:]:
            lines.append(f"  {req!r}")
        return "\n".join(lines)

    # ------------------------------------------------- roles, leaving, forged presses
    async def add_role(self, name: str, *, guild_id: int | None = None) -> int:
        """A new role in a guild (GUILD_ROLE_CREATE is sent if connected); its id."""
        guild = self.guilds[guild_id or self.guild_id]
        role_id = self._ids.next()
        guild.extra_roles[role_id] = name
        payload = next(r for r in guild.roles() if r["id"] == str(role_id))
        await self._dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": payload}, guild.id
        )
        return role_id

    def set_member_roles(
        self, user_id: int, role_ids: Sequence[int], *, guild_id: int | None = None
    ) -> None:
        """The roles a member has (sent in every interaction's member payload)."""
        guild = self.guilds[guild_id or self.guild_id]
        member = guild.members[user_id]
        member["roles"] = [str(r) for r in role_ids]

    def _role_option(
        self, name: str, role_id: int, channel_id: int, resolved: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        guild = self.guilds[self.channels[channel_id].guild_id or self.guild_id]
        role = next((r for r in guild.roles() if r["id"] == str(role_id)), None)
        if role is None:
            raise ValueError(f"guild {guild.id} has no role {role_id}")
        resolved.setdefault("roles", {})[str(role_id)] = role
        return {"name": name, "type": 8, "value": str(role_id)}

    async def forge_press(
        self,
        message_id: int,
        custom_id: str,
        *,
        channel_id: int | None = None,
        user_id: int | None = None,
    ) -> InteractionRecord:
        """A button press with a ``custom_id`` of the client's choosing (another job's,
        another guild's, an action the job never offered), on a copy of the message
        that carries it; ``channel_id`` (in any guild) says where the press comes from
        (default: the message's channel)."""
        msg = self._messages_by_id[message_id]
        payload, user, channel = self._base_interaction(
            3, user_id, channel_id or msg.channel_id, "en-US"
        )
        message = msg.to_payload()
        # discord.py routes a press only to a button the message carries: this one does.
        button = {"type": 2, "style": 2, "label": "forged", "custom_id": custom_id}
        message["components"] = [{"type": 1, "components": [button]}]
        payload["message"] = message
        payload["data"] = {"custom_id": custom_id, "component_type": 2, "id": 0}
        return await self._inject(payload, user, channel, custom_id)

    # ------------------------------------------------- reactions and DMs
    def close_dms(self, user_id: int) -> None:
        """This member takes no DMs from the bot: the DM channel opens, but a message to
        it answers 403 50007, as on Discord."""
        self.closed_dms.add(user_id)

    def _check_dm_open(self, channel: FakeChannel) -> None:
        if channel.type != 1 or not channel.recipients:
            return
        if int(channel.recipients[0]["id"]) in self.closed_dms:
            raise DiscordAPIError(403, 50007, "Cannot send messages to this user")

    def dm_messages(self, user_id: int) -> list[FakeMessage]:
        """What the bot sent a member by DM (their DM channel's messages)."""
        for channel in self.channels.values():
            if channel.type == 1 and any(int(r["id"]) == user_id for r in channel.recipients):
                return [m for m in self.messages.get(channel.id, []) if not m.deleted]
        return []

    async def react(self, message_id: int, emoji: str, *, user_id: int | None = None) -> None:
        """A member (default: the tester; the bot's own id for the bot) adds a unicode
        reaction to a message: counted on it, and MESSAGE_REACTION_ADD is dispatched
        only to a session with the GUILD_MESSAGE_REACTIONS intent, like Discord (a
        session without it gets nothing: RuntimeError)."""
        msg = self._messages_by_id[message_id]
        uid = user_id or self.user_id
        user = self.bot_user if uid == int(self.bot_user["id"]) else self.users[uid]
        msg.reactions[emoji] = msg.reactions.get(emoji, 0) + 1
        data: dict[str, Any] = {
            "type": 0,
            "user_id": str(uid),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "message_author_id": msg.author["id"],
            "emoji": {"id": None, "name": emoji},
            "burst": False,
            "burst_colors": [],
        }
        guild_id = msg.guild_id if msg.guild_id is not None else self.guild_id
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            member = self.guilds[msg.guild_id].members.get(uid)
            data["member"] = member or self._member(user, self.guilds[msg.guild_id])
        sent = await self._dispatch(
            "MESSAGE_REACTION_ADD", data, guild_id, intent=INTENT_GUILD_MESSAGE_REACTIONS
        )
        if not sent:
            raise RuntimeError("FakeDiscord: no session with the reactions intent got it")

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FakeDiscord]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


_VALIDATED: frozenset[tuple[str, str]] = frozenset(VALIDATED_OPERATIONS)
