"""`/healthz`: whether this bot process is ready to serve.

Ready means its Discord gateway shards are connected (interactions reach it) and its
store answers (jobs can be written). 200 with a small JSON body when ready; 503 with
what is wrong otherwise, for a load balancer, an orchestrator's readiness probe or a
person with curl.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from aiohttp import web

from bot.engine.census import StoreUnreachable


@dataclass(frozen=True)
class GatewayState:
    ready: bool  # discord.py's READY reached (every shard identified once)
    shards: dict[int, bool] = field(default_factory=dict)  # shard id -> connected now


class Health:
    def __init__(
        self,
        gateway: Callable[[], GatewayState],
        store: Callable[[], Awaitable[None]],
    ) -> None:
        self.gateway = gateway
        self.store = store  # raises StoreUnreachable when the store cannot be read

    async def report(self) -> tuple[bool, dict[str, object]]:
        problems: list[str] = []
        state = self.gateway()
        if not state.ready:
            problems.append("the Discord gateway is not connected yet")
        down = sorted(shard for shard, connected in state.shards.items() if not connected)
        if down:
            problems.append(f"Discord gateway shard(s) {', '.join(map(str, down))} disconnected")
        try:
            await self.store()
            store = "ok"
        except StoreUnreachable as err:
            store = "unreachable"
            problems.append(str(err))
        body: dict[str, object] = {
            "status": "ok" if not problems else "unavailable",
            "gateway": "connected" if state.ready and not down else "disconnected",
            "shards": {
                str(s): "connected" if c else "disconnected" for s, c in state.shards.items()
            },
            "store": store,
        }
        if problems:
            body["problems"] = problems
        return not problems, body

    def routes(self) -> Iterator[web.RouteDef]:
        async def healthz(_: web.Request) -> web.Response:
            ready, body = await self.report()
            return web.json_response(body, status=200 if ready else 503)

        yield web.get("/healthz", healthz)
