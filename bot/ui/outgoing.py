"""What the presenter sends, as plain data, and the errors a sender reports.

The presenter decides *what* a message says and *when* it is sent; a `Sender` (the
Discord one lives in `discord_sender.py`) does the HTTP. Keeping this boundary free of
discord.py types lets the pacing and coalescing logic be tested with a fake sender and
a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Style = Literal["primary", "secondary", "success", "danger"]


@dataclass(frozen=True)
class ButtonSpec:
    custom_id: str
    label: str | None = None
    emoji: str | None = None
    style: Style = "secondary"


@dataclass(frozen=True)
class FileSpec:
    name: str
    data: bytes


@dataclass
class Outgoing:
    content: str
    embeds: list[dict[str, Any]] = field(default_factory=list)
    # On an edit: None keeps the message's attachments, a list replaces them ([] clears).
    files: list[FileSpec] | None = None
    rows: list[list[ButtonSpec]] = field(default_factory=list)
    # The one user this message may ping (results); everything else is sent silently.
    mention_user: str | None = None
    # On a post: Discord returns the message already posted with this nonce (in the
    # last few minutes) instead of a second one, so a repeated post is harmless.
    nonce: str | None = None


class SendError(Exception):
    """A send or edit that did not happen. Subclasses say what to do about it."""


class MessageGone(SendError):
    """The message was deleted (10008): stop editing it."""


class ChannelGone(SendError):
    """The channel was deleted or the bot lost access (10003, 403): stop showing the job."""


class TooLarge(SendError):
    """The upload was over the limit (40005 / 413): re-encode smaller and try again."""


class EditCapped(SendError):
    """Discord's cap on edits of messages older than an hour (30046)."""


class Throttled(SendError):
    """Rate limited beyond what the HTTP client waits out by itself."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.1f} s")
        self.retry_after = retry_after


class Transient(SendError):
    """A server error or a network failure: try again later."""


class Rejected(SendError):
    """Discord refused the request (a 4xx that retrying will not fix)."""


class Sender(Protocol):
    async def send(self, channel_id: int, message: Outgoing, *, reply_to: int | None) -> int:
        """Post a message in a channel; returns its id."""

    async def edit(self, channel_id: int, message_id: int, message: Outgoing) -> None:
        """Edit a message the bot owns (with the bot token: works at any age)."""

    async def delete(self, channel_id: int, message_id: int) -> None:
        """Delete a message the bot owns (MessageGone when it is gone already)."""

    def upload_limit(self, guild_id: str | None) -> int:
        """Bytes per file that a channel of this guild accepts when no interaction told us."""

    def jump_url(self, guild_id: str | None, channel_id: int, message_id: int) -> str:
        """A link to a message."""
