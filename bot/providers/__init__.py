"""Provider adapters, built from their config section."""

from __future__ import annotations

import httpx

from bot.config import MaasFluxConfig, MaasMjConfig, MjProxyConfig, ProviderConfig, SandboxConfig
from bot.providers.base import Provider


def build_provider(config: ProviderConfig, client: httpx.AsyncClient) -> Provider:
    """The adapter for one [[providers]] entry; `client` is shared and owned by the caller."""
    # Imported here so that a broken optional adapter cannot stop the others from loading.
    if isinstance(config, MjProxyConfig):
        from bot.providers.mj_proxy import MjProxyProvider

        return MjProxyProvider(config, client)
    if isinstance(config, MaasMjConfig):
        from bot.providers.maas_mj import MaasMjProvider

        return MaasMjProvider(config, client)
    if isinstance(config, MaasFluxConfig):
        from bot.providers.maas_flux import MaasFluxProvider

        return MaasFluxProvider(config, client)
    if isinstance(config, SandboxConfig):
        from bot.providers.sandbox import SandboxProvider

        return SandboxProvider(config, client)
    raise TypeError(f"unknown provider config {type(config).__name__}")
