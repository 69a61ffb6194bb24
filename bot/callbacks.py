"""The callback receiver: providers POST here when a task changes (midjourney-proxy's
notifyHook), so that news arrives sooner than the next poll.

A callback is only a hint. Its body is not trusted (no provider signs it, anyone could
send one): the job named in the URL is polled at once, through the usual fetch, and
that answer is what counts. Polling goes on regardless, so a lost callback costs
nothing but a few seconds.
"""

from __future__ import annotations

from aiohttp import web

from bot.engine.models import is_job_id
from bot.engine.service import Engine

PATH = "/atelier/callback/{job_id}"


class CallbackReceiver:
    """The callback route, hung on the bot's `HttpServer`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.received = 0

    def routes(self) -> list[web.RouteDef]:
        return [web.post(PATH, self._handle)]

    async def _handle(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if not is_job_id(job_id):
            return web.json_response({"ok": False, "error": "unknown job"}, status=404)
        self.received += 1
        known = self.engine.poke(job_id)
        # Always 200 for a well-formed id: the sender has no use for our bookkeeping.
        return web.json_response({"ok": True, "followed": known})
