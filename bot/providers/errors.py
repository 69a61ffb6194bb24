"""The typed error family every adapter raises, with messages fit for users.

It imports nothing of Atelier, so that the HTTP layer (`bot.providers.http`) and the
protocol (`bot.providers.base`, which re-exports all of it) can both build on it.
"""

from __future__ import annotations

from typing import ClassVar


class ProviderError(Exception):
    """Base of the typed error family. `str(err)` is fit for users; never holds secrets."""

    retryable: ClassVar[bool] = False
    kind: ClassVar[str] = "error"

    def __init__(self, message: str, *, provider: str = "", retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.retry_after = retry_after


class BadKey(ProviderError):
    kind = "bad_key"


class PromptRejected(ProviderError):
    """The provider refused this prompt or input (banned word, invalid parameter)."""

    kind = "rejected"


class RateLimited(ProviderError):
    """429, plan concurrency cap, queue full: try again later."""

    retryable = True
    kind = "rate_limited"


class ProviderUnavailable(ProviderError):
    """Unreachable host, timeouts, 5xx, no account available."""

    retryable = True
    kind = "unavailable"


class BadResponse(ProviderError):
    """The provider answered something we cannot read (HTML, malformed JSON)."""

    retryable = True
    kind = "bad_response"


class NotOffered(ProviderError):
    """This provider does not offer that action (declared, or found out at run time)."""

    kind = "not_offered"


class TaskNotFound(ProviderError):
    kind = "not_found"


class ImageGone(ProviderError):
    """A 4xx on an image URL: expired or removed; asking again will not help."""

    kind = "image_gone"


class ImageTooLarge(ProviderError):
    kind = "too_large"
