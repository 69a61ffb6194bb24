"""The bot's metrics, served at `/metrics` in Prometheus' text format.

Each bot has a registry of its own (never prometheus-client's global one), so several
engines in one process keep their figures apart. Two kinds of figure:

- counted as things happen: provider request latency and errors (the observer hook in
  `bot.providers.observing`), Discord requests and 429s (discord.py's aiohttp session
  traces, `bot.discord_metrics`);
- read at scrape time (`EngineCollector`): jobs by status and provider and spend from
  the store, queue depth and leases from the engine. Nothing to drift from the truth.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from bot.discord_metrics import DiscordMetrics
from bot.engine import census
from bot.engine.models import JobStatus
from bot.engine.service import Engine
from bot.providers.errors import ProviderError
from bot.providers.observing import observe

# Provider calls take from tens of milliseconds (a status poll) to a minute (a slow
# submit or an image download).
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def error_kind(error: ProviderError) -> str:
    """A bounded label for an error: its class, in snake case (`RateLimited` ->
    "rate_limited"); a plain ProviderError (a refusal) is "refused"."""
    name = type(error).__name__.lstrip("_")
    if name == "ProviderError":
        return "refused"
    if name == "NotSent":  # the connection failed before anything was sent
        return "unreachable"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class ProviderObserver:
    """The `HttpObserver` the engine's HTTP client reports to."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "atelier_provider_request_seconds",
            "Provider HTTP request attempts by provider and kind (api, download), seconds.",
            ["provider", "kind", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.errors = Counter(
            "atelier_provider_errors",
            "Provider errors by provider and kind (bad_key, rate_limited, unavailable, ...).",
            ["provider", "kind"],
            registry=registry,
        )

    def request(self, provider: str, kind: str, seconds: float, answered: bool) -> None:
        outcome = "answered" if answered else "failed"
        self.latency.labels(provider, kind, outcome).observe(seconds)

    def error(self, provider: str, error: ProviderError) -> None:
        self.errors.labels(provider, error_kind(error)).inc()


class EngineCollector(Collector):
    """Figures read from the engine when scraped. The store's (jobs, spend) need a query,
    so `refresh` reads them just before each exposition and `collect` reports them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._jobs: dict[tuple[str, str], int] = {}
        self._spend: list[census.Spend] = []
        self._store_up = False

    async def refresh(self) -> None:
        """Read the store's figures; a store that cannot be read keeps the last ones and
        says so in `atelier_store_up` (/healthz tells what is wrong)."""
        try:
            self._jobs = await census.job_counts(self.engine.store)
            self._spend = await census.spend(self.engine.store)
        except Exception:
            self._store_up = False
        else:
            self._store_up = True

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "atelier_store_up",
            "1 when the store answered the last scrape's queries, else 0.",
            value=int(self._store_up),
        )
        yield self._job_family()
        waiting = GaugeMetricFamily(
            "atelier_queue_waiting",
            "Jobs waiting in Atelier's queue for room at their provider.",
            labels=["provider"],
        )
        depth = self.engine.dispatcher.waiting()
        for provider in self.engine.providers:
            waiting.add_metric([provider], depth.get(provider, 0))
        yield waiting
        yield GaugeMetricFamily(
            "atelier_leases_held",
            "Active jobs this process owns (follows, collects and presents).",
            value=self.engine.runner.leases_held(),
        )
        spend = CounterMetricFamily(
            "atelier_spend_credits",
            "Credits in the ledger since it began, by provider and kind (charge, refund).",
            labels=["provider", "kind"],
        )
        for line in self._spend:
            spend.add_metric([line.provider, "charge"], line.charged)
            spend.add_metric([line.provider, "refund"], line.refunded)
        yield spend

    def _job_family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "atelier_jobs",
            "Jobs in the store by status and provider.",
            labels=["status", "provider"],
        )
        # Every configured provider shows every status, 0 included, so that a graph
        # has a line before the first job reaches that state.
        counts = {(s.value, p): 0 for s in JobStatus for p in self.engine.providers}
        counts.update(self._jobs)
        for (status, provider), count in sorted(counts.items()):
            family.add_metric([status, provider], count)
        return family


class BotMetrics:
    """One bot's registry and the places that feed it. Made before the Discord client
    (which takes `discord.trace`), then given the engine with `watch`."""

    def __init__(self, api_base_url: str) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.providers = ProviderObserver(self.registry)
        self.discord = DiscordMetrics(self.registry, api_base_url)
        self._engine: EngineCollector | None = None

    def watch(self, engine: Engine) -> None:
        self._engine = EngineCollector(engine)
        self.registry.register(self._engine)
        # The engine's one HTTP client carries every provider request (its own, not a
        # global one: another engine in this process keeps its own figures). Read from
        # its private attribute: the engine module is at its size limit.
        observe(engine.http_client, self.providers)

    async def exposition(self) -> bytes:
        if self._engine is not None:
            await self._engine.refresh()
        return generate_latest(self.registry)

    def routes(self) -> Iterator[web.RouteDef]:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(
                body=await self.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        yield web.get("/metrics", metrics)
