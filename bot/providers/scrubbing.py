"""The secret scrubber: every piece of a server's answer that can reach a user, a log or
`atelier check` goes through it, scrubbed BEFORE it is cut, so that a key echoed near
the cut cannot survive in part. `bot.providers.http` re-exports it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MASK = "***"  # what a secret becomes
MIN_SECRET = 4  # a shorter "secret" would scrub ordinary words
WORDS_LIMIT = 300  # a server's words inside one of our messages: fits a Discord message
SNIPPET_LIMIT = 160  # a raw body quoted in a message
# Where the servers we know put their words in a JSON error, in the order tried.
WORD_KEYS = ("message", "msg", "error", "description")


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret in it replaced by ***.

    Run it on the whole text, before any cut: a cut first may leave half a key, which
    no longer matches and so would be shown. Longer secrets go first, so that a secret
    that contains another ("Bearer <key>" and "<key>") is replaced whole.
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut. Only on scrubbed text."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def safe_text(text: str, secrets: Iterable[str], limit: int = WORDS_LIMIT) -> str:
    """A server's text made fit for a message: scrubbed, folded to one line, then cut."""
    return clip(" ".join(scrub(text, secrets).split()), limit)


def json_words(
    data: Any,
    secrets: Iterable[str],
    keys: Iterable[str] = WORD_KEYS,
    limit: int = WORDS_LIMIT,
) -> str:
    """A server's own words in a parsed answer (the first of `keys` that holds text; a
    nested {"error": {"message": ...}} counts), made safe; "" when there are none."""
    if isinstance(data, str):
        return safe_text(data, secrets, limit)
    if not isinstance(data, dict):
        return ""
    for key in keys:
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("message")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            words = safe_text(str(value), secrets, limit)
            if words:
                return words
    return ""


def said(words: str) -> str:
    """': <words>' to put inside a sentence, or nothing when the server said nothing."""
    return f": {words.rstrip('. ')}" if words else ""
