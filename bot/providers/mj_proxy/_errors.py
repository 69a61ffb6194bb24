"""midjourney-proxy answers -> the typed error family: by HTTP status, and by the codes
and words of a submit-style body (`{"code", "description", "result", "properties"}`).

The statuses are read by the shared mapping (`bot.providers.http`); only what means
something else here is mj-proxy's own: 403 is a bad key (or, on new-api, a key that may
not use this action's model), 404/405 a route this server lacks. Every word a server
sends goes through the shared scrubber, which scrubs our key before it cuts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import MjProxyConfig
from bot.providers.base import (
    BadKey,
    Failure,
    Hook,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TaskNotFound,
    answer_error,
    json_words,
    safe_text,
)
from bot.providers.mj_proxy._tables import (
    BUSY,
    MODEL_FORBIDDEN,
    RELAY_TASK_MISSING,
    TASK_MISSING,
    mapping,
    text_of,
)
from bot.providers.scrubbing import SNIPPET_LIMIT

# Where midjourney-proxy servers put their words: `description` (novicezk, trueai's
# submit answers), `message` (trueai), `error.message` (new-api), `msg` (aggregators).
WORD_KEYS = ("description", "message", "error", "msg")


class MjProxyErrors:
    """The errors one configured mj-proxy server's answers stand for."""

    def __init__(self, config: MjProxyConfig) -> None:
        self.config = config
        self.name = config.name
        key = config.api_key.get_secret_value() if config.api_key else ""
        self._secrets = (key,) if key else ()
        self._hooks: dict[int, Hook] = {
            401: self._bad_key,
            403: self._forbidden,
            404: self._route_absent,
            405: self._route_absent,
        }

    def scrub(self, text: str) -> str:
        """A server's words (a failReason, an error) made fit for users and logs: our key
        scrubbed out first, then cut to a message's length."""
        return safe_text(text, self._secrets)

    def error_text(self, data: Any) -> str:
        """The server's own words in a parsed answer, made safe; "" when there are none."""
        return json_words(data, self._secrets, WORD_KEYS)

    def snippet(self, answer: HttpAnswer) -> str:
        """The start of a body we cannot read, to quote: scrubbed, then cut."""
        return answer.scrubbing(*self._secrets).text(SNIPPET_LIMIT)

    def answer_error(self, answer: HttpAnswer, doing: str, what: str) -> ProviderError:
        """The error of a 4xx/5xx answer: the server's own code and words where it sent
        a coded body (not for 401/403: those are about the key), else by status."""
        data = answer.json_or_none()
        if isinstance(data, dict) and "code" in data and answer.status not in (401, 403):
            return self.code_error(data, doing) or self.status_error(answer, what)
        return self.status_error(answer, what)

    def status_error(self, answer: HttpAnswer, what: str) -> ProviderError:
        """The typed error for an HTTP answer that is not a usable 2xx."""
        answer = answer.scrubbing(*self._secrets)
        data = answer.json_or_none()
        # JSON: the fields these servers use; anything else: the shared reading (a page's
        # title, a short plain-text body).
        words = self.error_text(data) if data is not None else None
        return answer_error(answer, doing=what, words=words, overrides=self._hooks)

    # ------------------------------------------------------------------ statuses of our own

    def _bad_key(self, failure: Failure) -> ProviderError:
        return BadKey(
            f"{self.name} rejected the API key (HTTP {failure.status}{failure.said}). Check "
            f"api_key and auth_style (now {self.config.auth_style!r}) in the provider "
            "settings.",
            provider=self.name,
        )

    def _forbidden(self, failure: Failure) -> ProviderError:
        if failure.words and MODEL_FORBIDDEN.search(failure.words):
            # new-api: the key works but may not use this action's model (mj_shorten,
            # swap_face, ...): "该令牌无权访问模型 mj_shorten" (middleware/distributor.go).
            return NotOffered(
                f"{self.name} does not let this key use {failure.doing}{failure.said}.",
                provider=self.name,
            )
        return self._bad_key(failure)

    def _route_absent(self, failure: Failure) -> ProviderError:
        return NotOffered(
            f"{self.name} does not offer {failure.doing} (HTTP {failure.status}).",
            provider=self.name,
        )

    # ------------------------------------------------------------------ coded bodies

    def code_error(self, data: Mapping[str, Any], what: str) -> ProviderError | None:
        """The error a submit-style answer stands for, or None when it is a success."""
        if data.get("success") is False:  # trueai: {"success": false, "code": -1, "message"}
            words = self.error_text(data) or "no reason given"
            if BUSY.search(words):
                return RateLimited(
                    f"{self.name} is full right now ({words}); try again in a few minutes.",
                    provider=self.name,
                )
            return ProviderError(f"{self.name} refused {what}: {words}", provider=self.name)
        raw = data.get("code")
        try:
            code = int(raw) if raw is not None else None
        except (TypeError, ValueError):
            code = None
        if code in (1, 21, 22) or (code is None and data.get("result")):
            return None
        return self._coded_error(data, code, what)

    def _coded_error(self, data: Mapping[str, Any], code: int | None, what: str) -> ProviderError:
        """The error of a submit-style answer whose code is not a success."""
        words = self.error_text(data)
        said = f": {words}" if words else ""
        if code == 23 or (words and BUSY.search(words)):
            return RateLimited(
                f"{self.name} is full right now ({words or 'queue full'}); try again in a few "
                "minutes.",
                provider=self.name,
            )
        if code == 24:
            banned = self.scrub(text_of(mapping(data.get("properties")).get("bannedWord")))
            which = f" (banned word: {banned!r})" if banned else ""
            return PromptRejected(
                f"{self.name} refused the prompt{which}: {words or 'banned prompt'}",
                provider=self.name,
            )
        if code == 3:
            if words and TASK_MISSING.search(words):
                return TaskNotFound(
                    f"{self.name} no longer knows that task: {words}", provider=self.name
                )
            return ProviderUnavailable(
                f"{self.name} has no Midjourney account available right now{said}; try "
                "again later.",
                provider=self.name,
            )
        if code == 4 and words and RELAY_TASK_MISSING.search(words):
            return TaskNotFound(
                f"{self.name} does not know that task ({words}).", provider=self.name
            )
        if code == 4:
            return PromptRejected(
                f"{self.name} refused {what}: {words or 'invalid request'}", provider=self.name
            )
        if code == 5:  # new-api: do_request_failed, empty_response_body, ... (HTTP 400)
            return ProviderUnavailable(
                f"{self.name} could not get an answer from its upstream{said}; try again later.",
                provider=self.name,
            )
        if code == 9:
            return ProviderUnavailable(
                f"{self.name} had a system error{said}; try again later.", provider=self.name
            )
        if code == 30:  # new-api: the group's load is saturated
            return RateLimited(f"{self.name} is busy: {words or 'saturated'}", provider=self.name)
        return ProviderError(
            f"{self.name} refused {what} (code {self.scrub(str(data.get('code')))}): "
            f"{words or 'no reason given'}",
            provider=self.name,
        )
