"""midjourney-proxy answers -> the typed error family: by HTTP status, and by the codes
and words of a submit-style body (`{"code", "description", "result", "properties"}`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.config import MjProxyConfig
from bot.providers.base import (
    BadKey,
    HttpAnswer,
    NotOffered,
    PromptRejected,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    TaskNotFound,
)
from bot.providers.mj_proxy._tables import (
    BUSY,
    MODEL_FORBIDDEN,
    RELAY_TASK_MISSING,
    TASK_MISSING,
    mapping,
    text_of,
)


class MjProxyErrors:
    """The errors one configured mj-proxy server's answers stand for."""

    def __init__(self, config: MjProxyConfig) -> None:
        self.config = config
        self.name = config.name

    def _key(self) -> str:
        return self.config.api_key.get_secret_value() if self.config.api_key else ""

    def scrub(self, text: str) -> str:
        """Server words go to users; make sure they never echo our key back."""
        key = self._key()
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def error_text(self, data: Any) -> str:
        if isinstance(data, dict):
            for key in ("description", "message", "error", "msg"):
                value = data.get(key)
                if isinstance(value, dict):
                    value = value.get("message")
                if isinstance(value, str) and value.strip():
                    return self.scrub(value.strip())
        return ""

    def snippet(self, answer: HttpAnswer) -> str:
        text = answer.body[:160].decode("utf-8", "replace").strip().replace("\n", " ")
        return self.scrub(text)

    def answer_error(self, answer: HttpAnswer, doing: str, what: str) -> ProviderError:
        """The error of a 4xx/5xx answer: the server's own code and words where it sent
        a coded body (not for 401/403: those are about the key), else by status."""
        data = answer.json_or_none()
        if isinstance(data, dict) and "code" in data and answer.status not in (401, 403):
            return self.code_error(data, doing) or self.status_error(answer, what)
        return self.status_error(answer, what)

    def status_error(self, answer: HttpAnswer, what: str) -> ProviderError:
        """The typed error for an HTTP answer that is not a usable 2xx."""
        status = answer.status
        data = answer.json_or_none()
        words = self.error_text(data) or (self.snippet(answer) if data is None else "")
        said = f": {words}" if words else ""
        if status == 403 and words and MODEL_FORBIDDEN.search(words):
            # new-api: the key works but may not use this action's model (mj_shorten,
            # swap_face, ...): "该令牌无权访问模型 mj_shorten" (middleware/distributor.go).
            return NotOffered(
                f"{self.name} does not let this key use {what}{said}.", provider=self.name
            )
        if status in (401, 403):
            return BadKey(
                f"{self.name} rejected the API key (HTTP {status}{said}). Check api_key and "
                f"auth_style (now {self.config.auth_style!r}) in the provider settings.",
                provider=self.name,
            )
        if status == 429:
            return RateLimited(
                f"{self.name} is rate limiting us (HTTP 429{said}); try again shortly.",
                provider=self.name,
                retry_after=answer.retry_after,
            )
        if status >= 500:
            return ProviderUnavailable(
                f"{self.name} is having trouble (HTTP {status}{said}); try again later.",
                provider=self.name,
            )
        if status in (404, 405):
            return NotOffered(
                f"{self.name} does not offer {what} (HTTP {status}).", provider=self.name
            )
        return ProviderError(
            f"{self.name} refused {what} (HTTP {status}{said}).", provider=self.name
        )

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
        props = mapping(data.get("properties"))
        if code == 23 or (words and BUSY.search(words)):
            return RateLimited(
                f"{self.name} is full right now ({words or 'queue full'}); try again in a few "
                "minutes.",
                provider=self.name,
            )
        if code == 24:
            banned = text_of(props.get("bannedWord"))
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
                f"{self.name} has no Midjourney account available right now"
                f"{': ' + words if words else ''}; try again later.",
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
                f"{self.name} could not get an answer from its upstream"
                f"{': ' + words if words else ''}; try again later.",
                provider=self.name,
            )
        if code == 9:
            return ProviderUnavailable(
                f"{self.name} had a system error{': ' + words if words else ''}; try again later.",
                provider=self.name,
            )
        if code == 30:  # new-api: the group's load is saturated
            return RateLimited(f"{self.name} is busy: {words or 'saturated'}", provider=self.name)
        return ProviderError(
            f"{self.name} refused {what} (code {data.get('code')}): {words or 'no reason given'}",
            provider=self.name,
        )
