"""The bot's one HTTP server (`[http]`): provider callbacks, health and metrics, and the
web pages all hang their routes on it, so an owner opens one port and puts one reverse
proxy in front of it.

It knows nothing of what is served; each part hands in its routes before `start`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiohttp import web

log = logging.getLogger(__name__)

# Callback bodies are small task JSON and page forms carry a prompt and a mask; 4 MiB
# holds a full-size mask drawn in the browser and still bounds abuse.
MAX_BODY_BYTES = 4 * 1024 * 1024


class HttpServer:
    def __init__(self, host: str, port: int, *, max_body: int = MAX_BODY_BYTES) -> None:
        self.host = host
        self.port = port
        self.app = web.Application(client_max_size=max_body)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Called by each part before `start` (aiohttp freezes the router then)."""
        self.app.add_routes(list(routes))

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        if self.port == 0:  # asked for any free port: say which one the OS gave
            self.port = self._runner.addresses[0][1]
        log.info("HTTP server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
