"""The HTTP layer the HTTP adapters share: one place for each of its decisions.

- The secret scrubber (`scrub`, `clip`, `safe_text`, in `bot.providers.scrubbing`):
  every piece of a server's answer that can reach a user, a log or `atelier check` goes
  through it, scrubbed BEFORE it is cut, so that a key echoed near the cut cannot
  survive in part.
- One answer type (`HttpAnswer`) that knows which secrets its request carried, so its
  snippets and the server's words read from it are always scrubbed.
- One HTTP-answer -> error mapping (`answer_error`): 401, 429, 5xx and the rest mean the
  same on every API; an adapter hands in hooks only for the statuses whose meaning is its
  own (403 is a bad key on mj-proxy and a refused prompt on Cloudsway).
- The retry policy and the transport (`RetryPolicy`, `ProviderHttp`), which turns
  connection failures into the same typed errors for every adapter, follows redirects
  itself (a key goes only to the provider's own origin) and fetches only from the
  provider's own origins or public addresses (`bot.providers.safe_urls`).

`bot.providers.base` re-exports what adapters import from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import html
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from bot.backoff import Backoff
from bot.providers import observing
from bot.providers.errors import (
    BadKey,
    BadResponse,
    ImageGone,
    ImageTooLarge,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from bot.providers.safe_urls import (
    KEY_HEADERS,
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    Destination,
    Hop,
    Origin,
    RefusedDestination,
    Resolver,
    UnresolvedHost,
    destination,
    origin_of,
    system_resolve,
    without_keys,
)
from bot.providers.scrubbing import (
    SNIPPET_LIMIT,
    WORD_KEYS,
    WORDS_LIMIT,
    json_words,
    safe_text,
    said,
)

# --------------------------------------------------------------------------- scrubbing

_READ_WINDOW = 64 * 1024  # how much of a body is ever decoded for a message


# --------------------------------------------------------------------------- answers


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not a number of seconds: an HTTP date, read below
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer, with who sent it and what its request carried that must never be
    echoed: whatever is read from it for a message is scrubbed of those."""

    status: int
    headers: httpx.Headers
    body: bytes
    provider: str = ""
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def scrubbing(self, *secrets: str) -> HttpAnswer:
        """The same answer, with more secrets to keep out of what is read from it."""
        return dataclasses.replace(self, secrets=(*self.secrets, *secrets))

    def json(self) -> Any:
        """The body as JSON, or None when empty. Raises BadResponse on anything else."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise BadResponse(
                f"The provider answered something that is not JSON (HTTP {self.status}: "
                f"{self.text(80)!r}). It may be down or behind a misconfigured proxy; try "
                "again later or ask the server owner to run `atelier check`.",
                provider=self.provider,
            ) from None

    def json_or_none(self) -> Any:
        """The body as JSON, or None when it is empty or not JSON (error answers)."""
        try:
            return self.json()
        except BadResponse:
            return None

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("retry-after"))

    def looks_html(self) -> bool:
        """A markup page (a proxy's error page, a relay's web UI), not an API answer."""
        return self.body[:200].lstrip().startswith(b"<")

    def text(self, limit: int = SNIPPET_LIMIT) -> str:
        """The body as one line of text for a message: scrubbed, then cut."""
        return safe_text(self.body[:_READ_WINDOW].decode("utf-8", "replace"), self.secrets, limit)

    def words(self, keys: Iterable[str] = WORD_KEYS, limit: int = WORDS_LIMIT) -> str:
        """What the server said in an error answer, made safe: its JSON words, a page's
        title, or a short plain-text body; "" when it said nothing readable."""
        data = self.json_or_none()
        if data is not None:
            return json_words(data, self.secrets, keys, limit)
        if not self.body.strip():
            return ""
        if self.looks_html():
            title = _TITLE.search(self.body[:_READ_WINDOW])
            if title is None:
                return ""
            return safe_text(html.unescape(title.group(1).decode("utf-8", "replace")),
                             self.secrets, limit)  # fmt: skip
        return self.text(limit)


# --------------------------------------------------------------------------- the mapping


@dataclass(frozen=True)
class Failure:
    """An error answer as the mapping and the adapters' hooks read it."""

    answer: HttpAnswer
    status: int  # the HTTP status, or the code of an error body sent with 200
    who: str  # whom the message names: the provider, or "<provider>'s image host"
    doing: str  # what was asked, as in "refused <doing>": "task lookups", "the request"
    words: str  # the server's own words, scrubbed and cut ("" when it said nothing)

    @property
    def provider(self) -> str:
        return self.answer.provider

    @property
    def said(self) -> str:
        return said(self.words)

    @property
    def retry_after(self) -> float | None:
        return self.answer.retry_after


# An adapter's reading of one status: the error, or None for the shared one.
Hook = Callable[[Failure], ProviderError | None]


def answer_error(
    answer: HttpAnswer,
    *,
    doing: str = "the request",
    who: str = "",
    words: str | None = None,
    status: int | None = None,
    overrides: Mapping[int, Hook] | None = None,
) -> ProviderError:
    """The typed error for an HTTP answer that is not a usable 2xx.

    `overrides` maps the statuses whose meaning is the adapter's own to its hooks; every
    other status, and a hook that returns None, gets the shared reading. `words` replaces
    what `HttpAnswer.words` reads (an adapter whose servers use other fields); it is
    scrubbed here all the same. `status` stands in for the HTTP status, for the error
    bodies some gateways send with 200.
    """
    failure = Failure(
        answer=answer,
        status=status or answer.status,
        who=who or answer.provider or "The provider",
        doing=doing,
        words=answer.words() if words is None else safe_text(words, answer.secrets),
    )
    hook = (overrides or {}).get(failure.status)
    error = hook(failure) if hook is not None else None
    return error if error is not None else shared_error(failure)


def shared_error(failure: Failure) -> ProviderError:
    """What a status means on every API we know."""
    code, who, said, provider = failure.status, failure.who, failure.said, failure.provider
    if code == 401:
        return BadKey(
            f"{who} refused the API key (HTTP 401{said}); ask the server owner to check api_key.",
            provider=provider,
        )
    if code == 429:
        return RateLimited(
            f"{who} is rate limiting us (HTTP 429{said}); try again shortly.",
            provider=provider,
            retry_after=failure.retry_after,
        )
    if code >= 500:
        return ProviderUnavailable(
            f"{who} is busy or having trouble (HTTP {code}{said}); try again in a few minutes.",
            provider=provider,
            retry_after=failure.retry_after,
        )
    return ProviderError(f"{who} refused {failure.doing} (HTTP {code}{said}).", provider=provider)


def _image_gone(failure: Failure) -> ProviderError:
    return ImageGone(
        f"The image could not be downloaded (HTTP {failure.status}); its link may have expired.",
        provider=failure.provider,
    )


# An image link answering 4xx is expired or removed (429 is only "slow down").
IMAGE_LINK_ERRORS: Mapping[int, Hook] = {
    code: _image_gone for code in range(400, 500) if code != 429
}


# --------------------------------------------------------------------------- retry policy

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Capped, jittered exponential backoff that honours Retry-After.

    Reads (fetch, download, check) are retried on connection errors, 429 and 5xx.
    Submissions are retried only when the request certainly never reached the
    provider (connection refused) or was refused outright (429): a submission that
    may have been accepted is never sent twice.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0

    @property
    def backoff(self) -> Backoff:
        # A Retry-After longer than this is not waited out inside one call: the caller's
        # own loop (runner, dispatcher) waits longer between calls.
        return Backoff(self.base_delay, self.max_delay, retry_after_cap=self.max_delay * 3)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        return self.backoff.delay(attempt, retry_after)

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        idempotent: bool,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> T:
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as err:
                attempt += 1
                if attempt >= self.attempts or not _may_retry(err, idempotent):
                    raise
                await sleep(self.delay(attempt - 1, err.retry_after))


class _NotSent(ProviderUnavailable):
    """The connection failed before the request was sent: safe to retry any call."""


def _may_retry(err: ProviderError, idempotent: bool) -> bool:
    if isinstance(err, _NotSent | RateLimited):
        return True
    return idempotent and err.retryable


def transport_error(
    err: httpx.HTTPError, who: str, *, provider: str, hint: str = "", unsure: bool = False
) -> ProviderError:
    """The typed error for a request that got no answer. `unsure`: the request may have
    arrived (a submission that timed out), so the message says the job may exist."""
    # The exception's own text may hold the URL; its type says enough, in few words.
    what = type(err).__name__
    if isinstance(err, httpx.ConnectError):
        # Connection refused / DNS failure: the request never left. Safe to retry.
        return _NotSent(f"Cannot reach {who} ({what}){hint}.", provider=provider)
    if isinstance(err, httpx.TimeoutException):
        message = f"{_capital(who)} did not answer in time; try again in a few minutes."
    else:
        message = f"The connection to {who} failed ({what}); try again in a few minutes."
    if unsure:
        message += f" The request may have reached {who}, so the job may have started anyway."
    return ProviderUnavailable(message, provider=provider)


def _capital(words: str) -> str:
    return words[:1].upper() + words[1:]


# --------------------------------------------------------------------------- transport


def _header_secrets(headers: Mapping[str, str]) -> list[str]:
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in KEY_HEADERS:
            found += [value, value.split(" ", 1)[-1]]  # "Bearer <key>" and "<key>"
    return found


class ProviderHttp:
    """A small JSON-over-HTTP helper shared by the HTTP adapters.

    It turns transport failures into typed errors, applies the retry policy, and reads
    error answers through the shared mapping with the adapter's own `overrides`. The
    keys in `headers`, and any other `secrets` given, are scrubbed from every message.

    Redirects are followed here, never by the client (the engine's client has
    `follow_redirects=False`): at most `MAX_REDIRECTS` hops, the key headers kept only
    while the origin is `base_url`'s, and every URL off the provider's own origins
    (`base_url`'s and `home`) checked to be public before anything is sent to it.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        headers: Mapping[str, str],
        *,
        provider: str,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        secrets: Iterable[str] = (),
        overrides: Mapping[int, Hook] | None = None,
        home: Iterable[str] = (),
        resolve: Resolver = system_resolve,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.provider = provider
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.secrets = tuple(s for s in (*secrets, *_header_secrets(headers)) if s)
        self.overrides: Mapping[int, Hook] = overrides or {}
        # The one origin keys go to, and every origin trusted whatever its address.
        self.key_origin = origin_of(self.base_url)
        origins = (origin_of(url) for url in (self.base_url, *home))
        self.home: frozenset[Origin] = frozenset(o for o in origins if o is not None)
        self.resolve = resolve
        self.requests_sent = 0  # for benchmarks and `check`

    def __repr__(self) -> str:
        return f"ProviderHttp(provider={self.provider!r}, base_url={self.base_url!r})"

    def error(
        self,
        answer: HttpAnswer,
        *,
        doing: str = "the request",
        words: str | None = None,
        status: int | None = None,
    ) -> ProviderError:
        """The typed error for an answer to one of our requests (see `answer_error`)."""
        error = answer_error(
            answer, doing=doing, words=words, status=status, overrides=self.overrides
        )
        return observing.noted(self.client, error)

    async def send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        idempotent: bool,
        retry_statuses: bool = True,
    ) -> HttpAnswer:
        """Send one request, with retries per the policy.

        When `retry_statuses` is set, 429 and 5xx answers raise their typed errors (so
        the policy can retry them); otherwise every HTTP answer is returned for the
        adapter to read.
        """

        async def attempt() -> HttpAnswer:
            answer = await self._send_once(method, path, json_body, idempotent)
            if retry_statuses and (answer.status == 429 or answer.status >= 500):
                raise self.error(answer)
            return answer

        return await self.policy.run(attempt, idempotent=idempotent)

    async def _send_once(
        self, method: str, path: str, json_body: Any, idempotent: bool
    ) -> HttpAnswer:
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        with observing.timed(self.client, self.provider, "api"):
            try:
                async with self._exchange(Hop(method, url, json_body), keyed=True) as response:
                    body = await response.aread()
            except httpx.HTTPError as err:
                raise transport_error(
                    err,
                    self.provider,
                    provider=self.provider,
                    hint="; check its base_url and that the server is up",
                    unsure=not idempotent,
                ) from None
        return self._answer(response.status_code, response.headers, body)

    def _answer(self, status: int, headers: httpx.Headers, body: bytes) -> HttpAnswer:
        return HttpAnswer(status, headers, body, provider=self.provider, secrets=self.secrets)

    # ---- redirects and destinations

    @asynccontextmanager
    async def _exchange(
        self, hop: Hop, *, keyed: bool, image: bool = False
    ) -> AsyncIterator[httpx.Response]:
        """The streamed answer at the end of `hop`'s redirect chain (closed on exit).
        `keyed`: the adapter's headers go along while the origin is the key's own.
        `image`: the chain fetches an image link (the messages say so)."""
        for _ in range(MAX_REDIRECTS + 1):
            # To the very address that was checked (a second lookup could answer another).
            pinned = (await self._check(hop.url, image=image)).pinned(hop.url)
            request = self.client.build_request(
                hop.method,
                pinned.url,
                json=hop.body,
                headers={**self._headers_for(hop.url, keyed=keyed, image=image), **pinned.headers},
                timeout=self.timeout,
                extensions=pinned.extensions,
            )
            self.requests_sent += 1
            response = await self.client.send(request, stream=True)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                try:
                    yield response
                finally:
                    await response.aclose()
                return
            await response.aclose()
            hop = hop.after(response.status_code, self._target(hop.url, location))
        raise ProviderError(  # a loop: asking again would loop again
            f"{self.provider} redirected {'the image link' if image else 'a request'} more "
            f"than {MAX_REDIRECTS} times; Atelier stopped following it.",
            provider=self.provider,
        )

    def _target(self, url: str, location: str) -> str:
        """`location` read against the URL asked for (not the pinned address)."""
        try:
            return str(httpx.URL(url).join(location))
        except httpx.InvalidURL:
            raise BadResponse(
                f"{self.provider} redirected to a link Atelier cannot read.",
                provider=self.provider,
            ) from None

    def _headers_for(self, url: str, *, keyed: bool, image: bool) -> dict[str, str]:
        """The adapter's headers for a request to `url`: all of them (when `keyed`) on
        the key's own origin; elsewhere none for an image, and none that carries a key
        for an API call."""
        if keyed and self.key_origin is not None and origin_of(url) == self.key_origin:
            return self.headers
        return {} if image or not keyed else without_keys(self.headers, self.secrets)

    async def _check(self, url: str, *, image: bool) -> Destination:
        """Refuse a URL off the provider's own origins unless its host is public."""
        try:
            return await destination(url, home=self.home, resolve=self.resolve)
        except RefusedDestination as refused:
            link = "The provider's image link" if image else f"{self.provider}'s redirect"
            raise ProviderError(refused.sentence(link), provider=self.provider) from None
        except UnresolvedHost:
            who = "the image host" if image else f"{self.provider}'s redirect target"
            raise _NotSent(
                f"Cannot reach {who} (its name does not resolve).", provider=self.provider
            ) from None

    # ---- downloads

    async def download(self, url: str, max_bytes: int, *, keyed: bool = False) -> bytes:
        """Fetch image bytes with a byte cap (reads are retried). `keyed`: a link on the
        provider's own origin that needs the key (a relay's /mj/image/{id}); otherwise
        no adapter header goes with it: image hosts need no key, and must never be sent
        one. The time bound is the caller's (the engine's download deadline)."""

        async def attempt() -> bytes:
            with observing.timed(self.client, self.provider, "download"):
                try:
                    async with self._exchange(Hop("GET", url), keyed=keyed, image=True) as got:
                        if got.status_code >= 400:
                            raise answer_error(
                                self._answer(got.status_code, got.headers, b""),
                                who=f"{self.provider}'s image host",
                                doing="the image download",
                                words="",
                                overrides=IMAGE_LINK_ERRORS,
                            )
                        return await self._read_capped(got, max_bytes)
                except httpx.HTTPError as err:
                    raise transport_error(err, "the image host", provider=self.provider) from None

        return await self.policy.run(attempt, idempotent=True)

    async def _read_capped(self, response: httpx.Response, max_bytes: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLarge(
                    f"The image is larger than the {max_bytes // (1024 * 1024)} MiB Atelier "
                    "accepts.",
                    provider=self.provider,
                )
            chunks.append(chunk)
        return b"".join(chunks)
