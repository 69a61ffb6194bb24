"""Discord requests and 429s by route, counted from discord.py's own HTTP session.

discord.py takes an aiohttp `TraceConfig` (`http_trace=`) for the session that carries
every REST call, interaction callback, CDN read and gateway connect; each attempt (its
own 429 retries included) passes here. Routes are labelled as templates, ids and tokens
replaced (`PATCH /channels/{id}/messages/{id}`), so a label never carries an
interaction token and the number of series stays bounded.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Histogram

# Path words Discord's API uses are short lowercase words ("messages", "@original",
# "bulk-delete", "oauth2"); anything else (an id, a token, an emoji) is a parameter.
_WORD = re.compile(r"^[a-z@][a-z0-9@._-]{0,23}$")
_TOKEN_AFTER = {"interactions", "webhooks"}  # /interactions/{id}/{token}/callback
DISCORD_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def route_template(path: str) -> str:
    """`/channels/123/messages/456` -> `/channels/{id}/messages/{id}` (a path below the
    API base); tokens and other parameters become `{token}` and `{param}`."""
    parts = [p for p in path.split("/") if p]
    out: list[str] = []
    for index, part in enumerate(parts):
        if part.isdigit():
            out.append("{id}")
        elif index >= 2 and parts[index - 2] in _TOKEN_AFTER and parts[index - 1].isdigit():
            out.append("{token}")
        elif _WORD.match(part):
            out.append(part)
        else:
            out.append("{param}")
    return "/" + "/".join(out)


class DiscordMetrics:
    def __init__(self, registry: CollectorRegistry, api_base_url: str) -> None:
        base = urlsplit(api_base_url)
        # A proxy base URL may carry a path prefix ("/discord/api/v10"): routes are read
        # below it, so they are the same with or without the proxy.
        self.api_netloc = base.netloc
        self.api_path = base.path.rstrip("/")
        self.requests = Counter(
            "atelier_discord_requests",
            "Discord HTTP requests by method, route and status (each attempt counts).",
            ["method", "route", "status"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "atelier_discord_rate_limited",
            "Discord 429 answers by route and Discord's limit scope (user, global, shared).",
            ["route", "scope"],
            registry=registry,
        )
        self.latency = Histogram(
            "atelier_discord_request_seconds",
            "Discord HTTP request time by route, seconds.",
            ["route"],
            buckets=DISCORD_LATENCY_BUCKETS,
            registry=registry,
        )
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._started)
        self.trace.on_request_end.append(self._ended)
        self.trace.on_request_exception.append(self._failed)

    def route_of(self, url: str) -> str:
        """The route label of a request: its API path as a template, "gateway" for the
        gateway's WebSocket, "cdn" for attachments read, "other" for anything else."""
        parts = urlsplit(url)
        if parts.scheme in ("ws", "wss"):
            return "gateway"
        if parts.netloc == self.api_netloc and parts.path.startswith(self.api_path + "/"):
            return route_template(parts.path[len(self.api_path) :])
        return "cdn" if "/attachments/" in parts.path else "other"

    async def _started(
        self,
        _: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        context.atelier_started = time.perf_counter()
        context.atelier_route = self.route_of(str(params.url))

    async def _ended(
        self,
        _: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestEndParams,
    ) -> None:
        route = self._finish(context, str(params.url))
        status = params.response.status
        self.requests.labels(params.method, route, str(status)).inc()
        if status == 429:
            headers = params.response.headers
            is_global = headers.get("X-RateLimit-Global", "").lower() == "true"
            scope = "global" if is_global else headers.get("X-RateLimit-Scope", "unknown")
            # Only Discord's three words: a proxy's own header values stay out of labels.
            scope = scope if scope in ("user", "global", "shared") else "unknown"
            self.rate_limited.labels(route, scope).inc()

    async def _failed(
        self,
        _: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestExceptionParams,
    ) -> None:
        route = self._finish(context, str(params.url))
        self.requests.labels(params.method, route, "error").inc()

    def _finish(self, context: SimpleNamespace, url: str) -> str:
        route = getattr(context, "atelier_route", None) or self.route_of(url)
        started = getattr(context, "atelier_started", None)
        if started is not None:
            self.latency.labels(route).observe(time.perf_counter() - started)
        return str(route)
