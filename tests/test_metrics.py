"""The pieces of /metrics that need no bot: route templates, error kinds, the engine's
figures read at scrape time, and the shard settings' checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import ConfigError, parse_config
from bot.discord_metrics import DiscordMetrics, route_template
from bot.engine.service import Engine
from bot.metrics import BotMetrics, error_kind
from bot.providers.errors import BadKey, ProviderError, RateLimited
from bot.providers.http import transport_error
from tests.discord_helpers import REPO

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/channels/123/messages/456", "/channels/{id}/messages/{id}"),
        ("/interactions/99/aW50ZXJhY3Rpb246-XYZ/callback", "/interactions/{id}/{token}/callback"),
        ("/webhooks/7/tok_EN/messages/@original", "/webhooks/{id}/{token}/messages/@original"),
        ("/channels/1/messages/2/reactions/%E2%9C%89/@me", "/channels/{id}/messages/{id}/reactions/{param}/@me"),  # noqa: E501
        ("/oauth2/applications/@me", "/oauth2/applications/@me"),
        ("/applications/5/guilds/6/commands", "/applications/{id}/guilds/{id}/commands"),
    ],
)  # fmt: skip
def test_routes_are_templates_without_ids_or_tokens(path: str, template: str) -> None:
    assert route_template(path) == template


def test_routes_are_read_below_a_proxy_prefix() -> None:
    from prometheus_client import CollectorRegistry

    metrics = DiscordMetrics(CollectorRegistry(), "http://proxy:8080/discord/api/v10")
    assert metrics.route_of("http://proxy:8080/discord/api/v10/channels/1/messages") == (
        "/channels/{id}/messages"
    )
    assert metrics.route_of("wss://gateway.discord.gg/?v=10") == "gateway"
    assert metrics.route_of("https://cdn.discordapp.com/attachments/1/2/a.png") == "cdn"
    assert metrics.route_of("http://elsewhere/discord/api/v10/users/@me") == "other"


def test_error_kinds_are_bounded_words() -> None:
    assert error_kind(RateLimited("slow down")) == "rate_limited"
    assert error_kind(BadKey("no")) == "bad_key"
    assert error_kind(ProviderError("refused")) == "refused"
    import httpx

    refused = transport_error(httpx.ConnectError("refused"), "x", provider="p")
    assert error_kind(refused) == "unreachable"


async def test_two_engines_keep_their_own_figures(tmp_path: Path) -> None:
    expositions = []
    for name in ("one", "two"):
        config = parse_config(
            {"storage": {"path": str(tmp_path / f"{name}.db"), "media_dir": str(tmp_path)}}
        )
        async with Engine(config) as engine:
            metrics = BotMetrics(config.discord.api_base_url)
            metrics.watch(engine)  # a global registry would refuse the second one
            metrics.providers.request("sandbox", "api", 0.2, True)
            expositions.append((await metrics.exposition()).decode())
    for text in expositions:
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = (
            "atelier_provider_request_seconds_count",
            (("kind", "api"), ("outcome", "answered"), ("provider", "sandbox")),
        )
        assert samples[key] == 1.0  # each counted its own request only
        assert samples[("atelier_store_up", ())] == 1.0
        assert samples[("atelier_leases_held", ())] == 0.0


@pytest.mark.parametrize(
    ("discord", "problem"),
    [
        ({"shard_ids": [0]}, "shard_ids needs shard_count too"),
        ({"shard_ids": [0, 4], "shard_count": 4}, "shard ids must be 0 to 3 with shard_count 4"),
        ({"shard_ids": [1, 1], "shard_count": 2}, "shard_ids lists a shard twice"),
    ],
)
def test_bad_shard_settings_are_refused(discord: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_config({"discord": discord})


def test_shard_settings_are_read() -> None:
    config = parse_config({"discord": {"shard_ids": [0, 1], "shard_count": 4}})
    assert (config.discord.shard_ids, config.discord.shard_count) == ([0, 1], 4)


async def test_the_grafana_dashboard_uses_the_metrics_served(tmp_path: Path) -> None:
    import json
    import re

    dashboard = json.loads((REPO / "deploy" / "grafana" / "atelier.json").read_text("utf-8"))
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\batelier_[a-z_]+", target["expr"])
    }
    config = parse_config({"storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path)}})
    async with Engine(config) as engine:
        metrics = BotMetrics(config.discord.api_base_url)
        metrics.watch(engine)
        await metrics.exposition()
        served: set[str] = set()
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        for family in metrics.registry.collect():
            served |= {family.name + s for s in suffixes.get(family.type, ("",))}
    assert used and used <= served, used - served


def test_the_compose_files_config_reads_as_the_bot_reads_it() -> None:
    from bot.config import StorageConfig, load_config

    if "url" not in StorageConfig.model_fields:
        pytest.skip("[storage] url comes with the PostgreSQL store, not in this tree yet")
    env = {"DISCORD_TOKEN": "t", "MJ_API_KEY": "k", "POSTGRES_PASSWORD": "p"}
    config = load_config(str(REPO / "deploy" / "config.toml"), env)
    assert config.http.listening and config.discord.api_base_url.endswith("/api/v10")
