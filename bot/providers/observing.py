"""Who hears of provider requests: the observer hook `ProviderHttp` calls.

The bot's metrics register one observer per engine (per shared httpx client) with
`observe`; providers stay free of any metrics library. Nothing registered: nothing is
timed or told, and requests go on as before.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import httpx

from bot.providers.errors import ProviderError


class HttpObserver(Protocol):
    """Told of every request attempt and every typed error. It must not raise or block:
    it is called on the request path."""

    def request(self, provider: str, kind: str, seconds: float, answered: bool) -> None:
        """One attempt: `kind` "api" or "download"; `answered`: it ended without error."""

    def error(self, provider: str, error: ProviderError) -> None:
        """A typed error read from an answer, or met on the way (no answer, a refusal)."""


# Per client, not global: each engine owns one client, so two engines in one process
# (tests, benchmarks) keep their figures apart. Weak: a closed engine's client goes.
_OBSERVERS: weakref.WeakKeyDictionary[httpx.AsyncClient, HttpObserver] = weakref.WeakKeyDictionary()


def observe(client: httpx.AsyncClient, observer: HttpObserver) -> None:
    """Tell `observer` of what every `ProviderHttp` on `client` sends and meets."""
    _OBSERVERS[client] = observer


def noted(client: httpx.AsyncClient, error: ProviderError) -> ProviderError:
    """`error`, after telling the client's observer of it."""
    if (observer := _OBSERVERS.get(client)) is not None:
        observer.error(error.provider or "", error)
    return error


@contextmanager
def timed(client: httpx.AsyncClient, provider: str, kind: str) -> Iterator[None]:
    """Time one attempt; a ProviderError raising out of it is told as an error too."""
    observer = _OBSERVERS.get(client)
    if observer is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    except ProviderError as err:
        observer.request(provider, kind, time.perf_counter() - started, False)
        observer.error(provider, err)
        raise
    except BaseException:
        observer.request(provider, kind, time.perf_counter() - started, False)
        raise
    observer.request(provider, kind, time.perf_counter() - started, True)
