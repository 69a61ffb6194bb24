"""The connection every step of the adapter talks through: one configured server, its
HTTP helper and the errors its answers stand for."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bot.config import MjProxyConfig
from bot.providers.base import HttpAnswer, ProviderHttp, RetryPolicy
from bot.providers.mj_proxy._errors import MjProxyErrors


def auth_headers(config: MjProxyConfig) -> dict[str, str]:
    """The key in the header style the server reads (REFERENCE.md section 1)."""
    headers = {"Accept": "application/json"}
    key = config.api_key.get_secret_value() if config.api_key else ""
    if not key:
        return headers
    style = config.auth_style
    if style == "bearer":
        headers["Authorization"] = f"Bearer {key}"
        # novicezk reads only mj-api-secret, and new-api relays fall back to it: with
        # both, the default style works on either (trueai needs "authorization").
        headers["mj-api-secret"] = key
    elif style == "mj-api-secret":
        headers["mj-api-secret"] = key
    else:  # "authorization": trueai takes the header verbatim as its token
        headers["Authorization"] = key
    return headers


def looks_html(answer: HttpAnswer) -> bool:
    """A web page where JSON was due: a relay's front end answering a route it lacks."""
    head = answer.body[:200].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<"))


@dataclass(frozen=True)
class Wire:
    """One configured server as the steps see it: settings, HTTP helper, error mapping."""

    config: MjProxyConfig
    client: httpx.AsyncClient
    http: ProviderHttp
    errors: MjProxyErrors

    @classmethod
    def open(
        cls, config: MjProxyConfig, client: httpx.AsyncClient, policy: RetryPolicy | None
    ) -> Wire:
        http = ProviderHttp(
            client,
            config.base_url.rstrip("/"),
            auth_headers(config),
            provider=config.name,
            policy=policy,
            timeout=config.request_timeout,
            home=config.image_origins,
        )
        return cls(config, client, http, MjProxyErrors(config))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def base_url(self) -> str:
        return self.http.base_url

    def http_with(self, policy: RetryPolicy, timeout: float) -> ProviderHttp:
        """The same server and key with another retry policy or read timeout."""
        return ProviderHttp(
            self.client,
            self.base_url,
            auth_headers(self.config),
            provider=self.name,
            policy=policy,
            timeout=timeout,
            home=self.config.image_origins,
        )

    def path(self, endpoint: str, mode: str | None = None) -> str:
        # trueai and the aggregators pick the speed by path prefix; plain /mj is the default.
        if mode and self.config.mode_style == "path":
            return f"/mj-{mode}/mj{endpoint}"
        return f"/mj{endpoint}"
