"""Moderation before money: a prompt is checked against banned words before anything is
stored, charged or sent, and every refusal is written to the audit trail.

Two lists apply: the operator's (`[moderation] banned_words`, every server and the
terminal) and the server's own (`ServerSettings.banned_words`, set by its managers).

How a banned word matches (`WordList.find`):
- case-insensitively (`str.casefold`, so "Gore", "GORE" and "gore" are one word; "ß"
  and "ss" too) after NFKC normalisation (full-width "ｇｏｒｅ" is "gore");
- on word boundaries, Unicode-aware: "ass" does not hit "class" or "passage", "café"
  does not hit "cafés" (the boundary is "not a letter or digit", not ASCII `\\b`, so
  a word that starts or ends with a symbol, such as "c++", still matches);
- a phrase of several words matches across any run of whitespace ("blood  bath");
- Chinese, Japanese and Korean words match as substrings: those scripts write words
  without spaces between them, so there is no boundary to look for ("暴力" hits "很暴力的").

What is checked: the words of the prompt and the values of its parameters, but not
`--no`: a banned word there asks the provider to leave that thing OUT of the image,
which is what a server that bans it wants (a provider with its own list may still
refuse it; that refusal is shown with its word and not charged). Image-prompt URLs are
not words and are not checked.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence

from bot.engine.audit import AuditKind, AuditLog
from bot.engine.intake import RequestError
from bot.engine.models import Job, JobRequest
from bot.engine.prompt import PromptError, parse_prompt
from bot.engine.settings import ServerSettings
from bot.i18n import Text
from bot.vocab import Param

log = logging.getLogger(__name__)

BANNED_REASON = "banned word"  # the audit's outcome for a prompt refused here
DETAIL_LIMIT = 300  # characters of a refusal's message kept in the audit

# Scripts written without spaces between words: Han, kana, Hangul (syllables and jamo),
# CJK compatibility ideographs and the supplementary ideograph planes.
_UNSPACED = re.compile(
    "[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]"
)
# "Not inside a word": no letter, digit or underscore right before / after the match.
_BEFORE, _AFTER = r"(?<!\w)", r"(?!\w)"


class BannedWord(RequestError):
    """A prompt that holds a banned word. The message names the word for the author (the
    front ends show refusals to the person who asked, and only to them); `word` is kept
    for the audit's `detail`, which only managers see."""

    def __init__(self, word: str, *, server: bool) -> None:
        where = Text("on this server") if server else Text("here")
        super().__init__(
            Text(
                "Your prompt contains {word!r}, which is not allowed {where}. Nothing was sent "
                "or charged; change the prompt and try again.",
                word=word,
                where=where,
            ),
            reason=BANNED_REASON,
        )
        self.word = word


def normalise(text: str) -> str:
    """The form both the prompt and the banned words are compared in."""
    return unicodedata.normalize("NFKC", text).casefold()


def _pattern(word: str) -> re.Pattern[str] | None:
    """The pattern one banned word (or phrase) matches; None for a blank entry."""
    parts = normalise(word).split()
    if not parts:
        return None
    body = r"\s+".join(re.escape(part) for part in parts)
    if _UNSPACED.search(word):
        return re.compile(body)  # no word boundaries in these scripts: a substring
    return re.compile(_BEFORE + body + _AFTER)


class WordList:
    """Banned words compiled once; `find` names the first one a text holds."""

    def __init__(self, words: Iterable[str]) -> None:
        self.entries: list[tuple[str, re.Pattern[str]]] = []
        for word in words:
            pattern = _pattern(word)
            if pattern is not None:
                self.entries.append((word.strip(), pattern))

    def find(self, text: str) -> str | None:
        """The banned word (as it was configured) that `text` holds, or None."""
        folded = normalise(text)
        for word, pattern in self.entries:
            if pattern.search(folded):
                return word
        return None


@functools.lru_cache(maxsize=256)
def _server_list(words: tuple[str, ...]) -> WordList:
    # Servers' lists change rarely and every request reads one: compile each list once.
    return WordList(words)


def checked_text(prompt: str) -> str:
    """The parts of a prompt that are checked: its words and parameter values, without
    image URLs and `--no` (see the module doc). A prompt that does not parse is checked
    whole (the prompt rules refuse it next anyway)."""
    try:
        parsed = parse_prompt(prompt)
    except PromptError:
        return prompt
    values = [value for name, value in parsed.params.items() if name != Param.NO.value]
    return " ".join([parsed.text, *values])


class Moderator:
    """The banned-word check of every request's prompt."""

    def __init__(self, banned_words: Sequence[str]) -> None:
        self.global_words = WordList(banned_words)

    def check(
        self, request: JobRequest, parent: Job | None, settings: ServerSettings | None
    ) -> None:
        """Raise BannedWord when the prompt this request would send holds a banned word:
        its own (a new prompt, a remix, a custom zoom), else its parent's (a re-roll or a
        variation sends the parent's prompt again, so a word banned since is refused)."""
        prompt = request.prompt.strip() or (parent.prompt if parent is not None else "")
        if not prompt:
            return
        text = checked_text(prompt)
        word = self.global_words.find(text)
        if word is not None:
            raise BannedWord(word, server=False)
        if settings is not None and settings.banned_words:
            word = _server_list(tuple(settings.banned_words)).find(text)
            if word is not None:
                raise BannedWord(word, server=True)


async def record_refusal(audit: AuditLog, request: JobRequest, err: RequestError) -> None:
    """The audit entry of a refused request: who, where, what, and the short reason; in
    `detail` (for managers) the banned word, when that was it, else what the asker was
    told. A store that cannot write it is logged: the refusal still reaches the asker."""
    detail = err.word if isinstance(err, BannedWord) else str(err)[:DETAIL_LIMIT]
    try:
        await audit.record(
            AuditKind.REFUSAL,
            guild_id=request.guild_id,
            channel_id=request.channel_id,
            user_id=request.user_id,
            job_id=request.parent_id,
            provider=request.provider,
            action=request.action.value,
            outcome=err.reason,
            detail=detail,
        )
    except Exception:
        log.exception("recording the refusal of a %s request failed", request.action.value)
