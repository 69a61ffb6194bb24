"""A small REST reverse proxy in front of the fake Discord, as nirn-proxy stands in front
of Discord: the bot's `api_base_url` points at it, with a path prefix, and it forwards
each request below that prefix to the fake's `/api/v10`, counting what passes.
"""

from __future__ import annotations

from types import TracebackType

import aiohttp
from aiohttp import web

# Hop-by-hop headers and the ones aiohttp recomputes for the forwarded body.
_DROP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}


class RestProxy:
    def __init__(self, target: str, prefix: str = "/discord-proxy/api/v10") -> None:
        self.target = target.rstrip("/")  # e.g. the fake's base_url, ".../api/v10"
        self.prefix = prefix
        self.forwarded: list[tuple[str, str]] = []  # (method, path below the prefix)
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    async def __aenter__(self) -> RestProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if not request.path.startswith(self.prefix + "/"):
            return web.Response(status=404, text=f"not below {self.prefix}")
        below = request.path[len(self.prefix) :]
        self.forwarded.append((request.method, below))
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        async with self._session.request(
            request.method,
            self.target + below,
            params=request.query,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP}
            if "content-encoding" in {k.lower() for k in answer.headers}:
                kept["Content-Encoding"] = answer.headers["Content-Encoding"]
            return web.Response(status=answer.status, headers=kept, body=body)
