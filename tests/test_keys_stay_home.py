"""Keys stay home: a key goes only to the provider's own origin, never along a redirect
elsewhere; image links and redirect targets off the provider's own origins are fetched
only from public addresses; every download is bounded in time as well as in bytes.

On the wire with real HTTP servers on 127.0.0.1: the mj-proxy fake (a relay with the
key) and a second server on another port that records everything it is sent (the
"third party"). The address rules are unit tests at the end."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.config import MjProxyConfig, parse_config
from bot.engine.models import JobRequest, JobStatus
from bot.engine.service import Engine
from bot.providers.base import (
    ProviderError,
    ProviderHttp,
    RetryPolicy,
    SubmitRequest,
    TaskRef,
    TaskSnapshot,
)
from bot.providers.mj_proxy import MjProxyProvider
from bot.providers.safe_urls import (
    Destination,
    Hop,
    Origin,
    Pinned,
    RefusedDestination,
    address_kind,
    destination,
    origin_of,
    without_keys,
)
from bot.vocab import Action
from tests.fakes.mj_proxy_fake import FakeMjProxy

# The engine tests run on both stores (tests/stores.py).
pytestmark = pytest.mark.both_stores

KEY = "sk-STAYHOME-0123456789abcdef"
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
KEY_HEADERS = ("authorization", "mj-api-secret")


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ThirdParty:
    """A server on another loopback port that records every request it gets and
    answers each with a small PNG."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.seen.append(Seen(request.method, request.path, headers, await request.read()))
        return web.Response(body=png(), content_type="image/png")

    def keys_seen(self) -> list[str]:
        """Every key header, and every header holding the key, it was ever sent."""
        return [
            name
            for request in self.seen
            for name, value in request.headers.items()
            if name in KEY_HEADERS or KEY in value
        ]


@pytest.fixture
async def third_party() -> AsyncIterator[ThirdParty]:
    party = ThirdParty()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", party.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    party.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield party
    finally:
        await runner.cleanup()


@pytest.fixture
async def relay() -> AsyncIterator[FakeMjProxy]:
    async with FakeMjProxy(flavour="relay", key=KEY) as fake:
        yield fake


def provider(fake: FakeMjProxy, client: httpx.AsyncClient, **over: Any) -> MjProxyProvider:
    return MjProxyProvider(MjProxyConfig(**fake.provider_config(**over)), client, policy=FAST)


async def error_of(call: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    assert KEY not in str(caught.value)
    return caught.value


async def imagine_done(mj: MjProxyProvider) -> TaskSnapshot:
    request = SubmitRequest(Action.IMAGINE, prompt="a fox", text="a fox")
    result = await mj.submit(request)
    data = dict(result.data)
    for _ in range(12):
        ref = TaskRef(result.task_id, Action.IMAGINE, data)
        snap = (await mj.fetch([ref]))[result.task_id]
        data.update(snap.extra)
        if snap.state.finished:
            return snap
    raise AssertionError("the fake's task did not finish")


# --------------------------------------------------------------------------- (a), (b)


async def test_a_relay_image_link_redirected_to_another_origin_gets_no_key_and_is_refused(
    relay: FakeMjProxy, third_party: ThirdParty, client: httpx.AsyncClient
) -> None:
    relay.redirect(f"{third_party.url}/stolen.png", match="/image/")
    err = await error_of(provider(relay, client).download(f"{relay.base_url}/mj/image/7", 1 << 20))
    assert "points to a private address (127.0.0.1, loopback)" in str(err)
    assert "Atelier does not fetch those" in str(err)
    assert third_party.seen == []  # refused before anything was sent there
    asked = [r for r in relay.requests if r.endpoint == "/image/7"]
    assert len(asked) == 1 and asked[0].headers["mj-api-secret"] == KEY  # home: keyed


async def test_a_redirect_to_a_trusted_origin_is_followed_without_the_key(
    relay: FakeMjProxy, third_party: ThirdParty, client: httpx.AsyncClient
) -> None:
    """The same redirect, to an origin the operator trusts by name (image_origins): the
    image arrives, and the key headers never leave the relay's origin."""
    relay.redirect(f"{third_party.url}/cdn/1.png", match="/image/")
    mj = provider(relay, client, image_origins=[relay.cdn_url, third_party.url])
    data = await mj.download(f"{relay.base_url}/mj/image/7", 1 << 20)
    assert data.startswith(b"\x89PNG")
    assert [s.path for s in third_party.seen] == ["/cdn/1.png"]
    assert third_party.keys_seen() == []


@pytest.mark.parametrize("relative", [False, True])
async def test_b_a_redirect_within_the_relays_origin_keeps_working(
    relay: FakeMjProxy, client: httpx.AsyncClient, relative: bool
) -> None:
    mj = provider(relay, client)
    done = await imagine_done(mj)
    real = done.image_urls[0]
    assert real.startswith(f"{relay.base_url}/mj/image/")
    target = real.removeprefix(relay.base_url) if relative else real
    relay.redirect(target, status=301, match="/image/moved")
    data = await mj.download(f"{relay.base_url}/mj/image/moved", 1 << 20)
    assert data.startswith(b"\x89PNG")
    last = [r for r in relay.requests if r.endpoint.startswith("/image/")][-1]
    assert last.headers["mj-api-secret"] == KEY  # the relay wants it, and it is home
    assert relay.violations == []


async def test_a_redirect_loop_stops_after_five_hops(
    relay: FakeMjProxy, client: httpx.AsyncClient
) -> None:
    relay.redirect(f"{relay.base_url}/mj/image/loop", times=100, match="/image/loop")
    err = await error_of(provider(relay, client).download(f"{relay.base_url}/mj/image/loop", 1))
    assert "more than 5 times" in str(err)
    assert relay.count("/image/loop") == 6  # the first and five hops, and no retry


# --------------------------------------------------------------------------- (c)


async def test_c_an_image_link_on_another_loopback_origin_is_refused(
    relay: FakeMjProxy, third_party: ThirdParty, client: httpx.AsyncClient
) -> None:
    err = await error_of(provider(relay, client).download(f"{third_party.url}/a.png", 1 << 20))
    assert str(err).startswith("The provider's image link points to a private address")
    assert "(127.0.0.1, loopback)" in str(err)
    assert third_party.seen == []


@pytest.mark.parametrize(
    ("url", "detail"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, cloud metadata"),
        ("http://10.1.2.3/a.png", "10.1.2.3, private"),
        ("http://[::ffff:192.168.0.9]/a.png", "::ffff:192.168.0.9, private"),
        ("http://[fe80::1]/a.png", "fe80::1, link-local"),
        ("http://0.0.0.0:8080/a.png", "0.0.0.0, unspecified"),
    ],
)
async def test_c_private_literals_are_refused_before_any_connection(
    client: httpx.AsyncClient, url: str, detail: str
) -> None:
    http = ProviderHttp(client, "http://127.0.0.1:1", {"mj-api-secret": KEY}, provider="mj")
    err = await error_of(http.download(url, 1 << 20))
    assert f"({detail})" in str(err)
    assert http.requests_sent == 0


async def test_c_every_address_a_name_resolves_to_counts(client: httpx.AsyncClient) -> None:
    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("images.example", 443)
        return ["93.184.216.34", "10.0.0.5"]  # one public, one private: refused

    http = ProviderHttp(client, "https://api.example", {}, provider="mj", resolve=resolve)
    err = await error_of(http.download("https://images.example/a.png?sig=abc", 1 << 20))
    assert "(images.example at 10.0.0.5, private)" in str(err)
    assert "sig=abc" not in str(err)  # a link's token is never quoted
    assert http.requests_sent == 0


async def test_c_the_request_goes_to_the_address_that_was_checked() -> None:
    """DNS rebinding: a name that answers a public address to the check and a private
    one a moment later. The request is dialled to the checked address (the name kept
    in Host and in TLS's SNI, so the certificate is still checked against it), each
    redirect hop is looked up and checked again, and the second answer is refused.
    The HTTP client itself never resolves the name (MockTransport sees what it dials)."""
    answers = iter([["93.184.216.34", "2606:2800:220:1::1"], ["10.0.0.5"]])
    looked_up: list[tuple[str, int]] = []

    async def rebinding(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return next(answers)

    dialled: list[httpx.Request] = []

    def cdn(request: httpx.Request) -> httpx.Response:
        dialled.append(request)
        return httpx.Response(302, headers={"location": "/next.png?sig=2"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(cdn)) as mock:
        http = ProviderHttp(mock, "https://api.example", {}, provider="mj", resolve=rebinding)
        err = await error_of(http.download("https://images.example:8443/a.png?sig=1", 1 << 20))
    assert "(images.example at 10.0.0.5, private)" in str(err)
    assert looked_up == [("images.example", 8443), ("images.example", 8443)]
    [first] = dialled  # the redirect's target was never dialled
    assert str(first.url) == "https://93.184.216.34:8443/a.png?sig=1"
    assert first.headers["host"] == "images.example:8443"
    assert first.extensions["sni_hostname"] == "images.example"
    assert first.headers["connection"] == "close"  # never reused for another name


def test_c_pinning_spells_addresses_and_leaves_literals_and_home_alone() -> None:
    v6 = Destination(Origin("http", "images.example", 80), "2606:2800:220:1::1")
    pinned = v6.pinned("http://user@images.example/x?y=1")
    assert pinned.url == "http://[2606:2800:220:1::1]/x?y=1"
    assert pinned.headers["Host"] == "images.example" and pinned.extensions == {}
    idn = Destination(Origin("https", "bücher.example", 443), "93.184.216.34")
    pinned = idn.pinned("https://Bücher.example/a.png")
    assert pinned.headers["Host"] == "xn--bcher-kva.example"
    assert pinned.extensions == {"sni_hostname": "xn--bcher-kva.example"}
    literal = Destination(Origin("https", "1.1.1.1", 443))
    assert literal.pinned("https://1.1.1.1/x") == Pinned("https://1.1.1.1/x", {}, {})


async def test_c_a_link_that_is_not_http_is_refused(client: httpx.AsyncClient) -> None:
    http = ProviderHttp(client, "http://127.0.0.1:1", {}, provider="mj")
    err = await error_of(http.download("file:///etc/passwd", 1 << 20))
    assert "is not an http(s) link" in str(err)


# --------------------------------------------------------------------------- (d)


async def test_d_a_trickling_download_fails_at_its_deadline_and_frees_the_slot(
    tmp_path: Path,
) -> None:
    async with FakeMjProxy(flavour="novicezk", key=KEY) as fake:
        config = parse_config(
            {
                "storage": {"path": str(tmp_path / "a.db"), "media_dir": str(tmp_path / "m")},
                "engine": {"download_timeout_seconds": 2},
                "providers": [fake.provider_config(max_concurrent=1)],
            }
        )
        engine = Engine(config)
        await engine.start()
        try:
            fake.trickle(0.5, times=20, match="cdn:")  # a byte every 0.5 s, for a minute
            job = await engine.submit(JobRequest(Action.IMAGINE, prompt="a slow fox"))
            started = time.monotonic()
            while not (current := await engine.get(job.id)) or not current.finished:
                await asyncio.sleep(0.05)
                assert time.monotonic() - started < 15, "the download was never cut"
            waited = time.monotonic() - started
            assert current.status is JobStatus.FAILED
            assert current.failure is not None
            assert "did not finish within 2 s" in current.failure
            assert 2 <= waited < 8
            assert engine.runner.count_for(fake.provider_config()["name"]) == 0
        finally:
            await engine.stop()


# --------------------------------------------------------------------------- (e)


async def test_e_a_submit_redirected_to_another_origin_is_refused_and_sends_nothing(
    relay: FakeMjProxy, third_party: ThirdParty, client: httpx.AsyncClient
) -> None:
    relay.redirect(f"{third_party.url}/grab", match="/submit/imagine")
    request = SubmitRequest(Action.IMAGINE, prompt="a fox", text="a fox")
    err = await error_of(provider(relay, client).submit(request))
    assert "mj's redirect points to a private address (127.0.0.1, loopback)" in str(err)
    assert third_party.seen == []


@pytest.mark.parametrize(("status", "method"), [(302, "GET"), (303, "GET"), (307, "POST")])
async def test_e_submit_redirects_never_carry_the_key(
    relay: FakeMjProxy,
    third_party: ThirdParty,
    client: httpx.AsyncClient,
    status: int,
    method: str,
) -> None:
    """Trusted by name, so the redirect is followed: 302/303 after a POST become a GET
    without a body, 307 repeats the POST; no key header goes along either way."""
    relay.redirect(f"{third_party.url}/grab", status=status, match="/submit/imagine")
    mj = provider(relay, client, image_origins=[third_party.url])
    request = SubmitRequest(Action.IMAGINE, prompt="a fox", text="a fox")
    with pytest.raises(ProviderError):
        await mj.submit(request)  # a PNG is no submit answer
    assert [(s.method, s.path) for s in third_party.seen] == [(method, "/grab")]
    assert (third_party.seen[0].body != b"") is (method == "POST")
    assert third_party.keys_seen() == []
    assert third_party.seen[0].headers.get("content-type", "").startswith("application/json") is (
        method == "POST"
    )


async def test_e_a_poll_redirected_elsewhere_carries_no_key(
    relay: FakeMjProxy, third_party: ThirdParty, client: httpx.AsyncClient
) -> None:
    mj = provider(relay, client, image_origins=[third_party.url], batch_fetch=False)
    result = await mj.submit(SubmitRequest(Action.IMAGINE, prompt="a fox", text="a fox"))
    relay.redirect(f"{third_party.url}/poll", times=10, match="/task/")
    with pytest.raises(ProviderError):
        await mj.fetch([TaskRef(result.task_id, Action.IMAGINE, dict(result.data))])
    assert third_party.seen and all(s.path == "/poll" for s in third_party.seen)
    assert third_party.keys_seen() == []


# --------------------------------------------------------------------------- (f) units


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "reserved"),  # shared (carrier-grade NAT) space
        ("192.0.2.10", "private"),  # documentation (TEST-NET-1)
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:c0a8:0101::1", "private"),  # 6to4 around 192.168.1.1
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 around 127.0.0.1
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("172.32.0.1", None),  # just past 172.16/12
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_f_address_kind(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_f_origins() -> None:
    assert origin_of("HTTPS://Example.COM/a?b") == Origin("https", "example.com", 443)
    assert origin_of("http://127.0.0.1:8080/x") == Origin("http", "127.0.0.1", 8080)
    assert origin_of("http://[::1]/x") == Origin("http", "::1", 80)
    assert origin_of("sandbox://1/1") is None
    assert origin_of("http://host:notaport/") is None
    assert origin_of("http://127.0.0.1:8080") != origin_of("http://127.0.0.1:8081")


async def test_f_destination_trusts_home_even_on_loopback() -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("a literal or a home origin needs no lookup")

    home = {Origin("http", "127.0.0.1", 8080)}
    assert (await destination("http://127.0.0.1:8080/x", home=home, resolve=no_dns)).origin
    with pytest.raises(RefusedDestination) as refused:
        await destination("http://127.0.0.1:8081/x", home=home, resolve=no_dns)
    assert refused.value.kind == "loopback"
    public = (await destination("http://1.1.1.1/x", home=home, resolve=no_dns)).origin
    assert public == Origin("http", "1.1.1.1", 80)


def test_f_redirect_methods() -> None:
    post = Hop("POST", "http://a/x", {"prompt": "p"})
    assert post.after(302, "http://b/y") == Hop("GET", "http://b/y")
    assert post.after(301, "http://b/y") == Hop("GET", "http://b/y")
    assert post.after(303, "http://b/y") == Hop("GET", "http://b/y")
    assert post.after(307, "http://b/y") == Hop("POST", "http://b/y", {"prompt": "p"})
    assert post.after(308, "http://b/y") == Hop("POST", "http://b/y", {"prompt": "p"})
    assert Hop("GET", "http://a/x").after(301, "http://b/y") == Hop("GET", "http://b/y")


def test_f_without_keys_drops_every_header_that_holds_a_key() -> None:
    headers = {
        "Authorization": f"Bearer {KEY}",
        "mj-api-secret": KEY,
        "X-Custom-Token": KEY,  # a key under a name we do not know
        "Accept": "application/json",
    }
    assert without_keys(headers, [KEY]) == {"Accept": "application/json"}
