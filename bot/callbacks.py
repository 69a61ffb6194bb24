"""The callback receiver: providers POST here when a task changes (midjourney-proxy's
notifyHook), so that news arrives sooner than the next poll.

A callback is only a hint. Its body is not trusted (no provider signs it, anyone could
send one): the job named in the URL is polled at once, through the usual fetch, and
that answer is what counts. Polling goes on regardless, so a lost callback costs
nothing but a few seconds.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.engine.models import is_job_id
from bot.engine.service import Engine

log = logging.getLogger(__name__)

PATH = "/atelier/callback/{job_id}"


class CallbackServer:
    def __init__(self, engine: Engine, host: str, port: int) -> None:
        self.engine = engine
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self.received = 0

    async def start(self) -> None:
        # Task JSON with a preview URL is small; 1 MiB is plenty and bounds abuse.
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_post(PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]
        log.info("listening for provider callbacks on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if not is_job_id(job_id):
            return web.json_response({"ok": False, "error": "unknown job"}, status=404)
        self.received += 1
        known = self.engine.poke(job_id)
        # Always 200 for a well-formed id: the sender has no use for our bookkeeping.
        return web.json_response({"ok": True, "followed": known})
