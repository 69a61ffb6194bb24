"""Where Atelier may send a request: the address rules for links a provider hands us.

A provider's answer names URLs (image links, redirect targets) that Atelier then fetches
from inside the operator's network. Left unchecked, a relay could point those at the
cloud metadata service (169.254.169.254), at a database on 10.0.0.5 or at another
service on the bot's own loopback, and have its answer stored or quoted. So a link is
fetched only when it is on one of the provider's own configured origins (a self-hosted
relay on 127.0.0.1 is normal) or when every address its host resolves to is public.

A key travels only to the provider's own origin: `Hop` is one step of a redirect chain
as Atelier follows it itself, and `without_keys` is what is left of a request's headers
once the origin changed (httpx alone strips only Authorization).

A name is looked up once, and the request then goes to the address that was checked
(`Destination.pinned`), so a name that answers a public address to the check and a
private one to the connection a moment later (DNS rebinding) reaches nothing new.

Pure rules (`address_kind`, `origin_of`, `Hop`, `without_keys`, `Destination.pinned`)
plus one async check (`destination`) that resolves the host with the loop's
resolver; nothing here knows about HTTP clients.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses (as text) the host resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The cloud metadata services: named apart, since they are the worst place to reach.
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Origin(NamedTuple):
    """Scheme, host and port: what must stay the same for a key to go along."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# Headers that carry a key: dropped whenever a request leaves the key's origin.
KEY_HEADERS = frozenset({"authorization", "mj-api-secret", "x-api-key", "api-key"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5  # hops followed for one request; more is a loop or a trap


@dataclass(frozen=True)
class Hop:
    """One request of a redirect chain: what is sent where."""

    method: str
    url: str
    body: Any = None

    def after(self, status: int, location: str) -> Hop:
        """The next request, for a redirect answer `status` pointing at `location` (an
        absolute URL). A 303, and a 301/302 after a POST, become a GET without a body,
        as browsers do; 307/308 repeat the request as it was."""
        if status == 303 or (status in (301, 302) and self.method == "POST"):
            return Hop("HEAD" if self.method == "HEAD" else "GET", location)
        return Hop(self.method, location, self.body)


def without_keys(headers: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """`headers` less every one that carries a key: the known key headers by name, and
    any other whose value holds one of `secrets` (a key configured under another name)."""
    keys = [s for s in secrets if s]
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in KEY_HEADERS and not any(key in value for key in keys)
    }


class RefusedDestination(Exception):
    """A link whose host is not public (or not http/https). `detail` names the host,
    the address and its kind, e.g. "127.0.0.1, loopback"; never the path or query,
    which may carry a signed token."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        self.host = host
        self.address = address
        self.kind = kind
        shown = address if host == address or not address else f"{host} at {address}"
        self.detail = f"{shown}, {kind}" if shown else kind
        super().__init__(self.detail)

    def sentence(self, link: str) -> str:
        """The refusal as a message, `link` naming what was refused ("The provider's
        image link")."""
        if not self.address:
            return f"{link} is not an http(s) link; Atelier does not fetch those."
        return f"{link} points to a private address ({self.detail}); Atelier does not fetch those."


@dataclass(frozen=True)
class Pinned:
    """A request made to go to one checked address: the URL to connect to, the headers
    that keep the name it was for (Host), and the request extensions of the HTTP client
    (httpx's `sni_hostname`: TLS still names, and its certificate is still checked
    against, the host name)."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, Any]


@dataclass(frozen=True)
class Destination:
    """Where a request may go: its origin, and the checked address to connect to (None
    when nothing was looked up: a home origin, or a host that is an address already)."""

    origin: Origin
    address: str | None = None

    def pinned(self, url: str) -> Pinned:
        if self.address is None:
            return Pinned(url, {}, {})
        parts = urlsplit(url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        port = f":{parts.port}" if parts.port is not None else ""
        # The name as it goes on the wire (an international one in its IDNA form; it
        # resolved, so it encodes), without the link's user info.
        name = self.origin.host.encode("idna").decode("ascii")
        connect = urlunsplit((parts.scheme, host + port, parts.path, parts.query, ""))
        tls = {"sni_hostname": name} if self.origin.scheme == "https" else {}
        # A client pools connections by the address dialled: one made for this name must
        # never carry a request for another name on the same address (a CDN's), so a
        # pinned connection is not kept for reuse.
        return Pinned(connect, {"Host": name + port, "Connection": "close"}, tls)


class UnresolvedHost(Exception):
    """The host name has no address (or the resolver failed): nothing was sent."""


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) URL, lower-cased with the default port filled in; None
    for anything else (another scheme, no host, a malformed port)."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_kind(address: IPAddress) -> str | None:
    """Why `address` is not a public one ("loopback", "private", "link-local", "cloud
    metadata", "unspecified", "multicast", "reserved"), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            return address_kind(inner)
    # Order matters: the most telling name first (::1 is also "reserved").
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address in _METADATA:
        return "cloud metadata"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"  # 240/4, IPv6 ranges not yet assigned
    site_local = isinstance(address, ipaddress.IPv6Address) and address.is_site_local
    if address.is_private or site_local:
        return "private"  # 10/8, 172.16/12, 192.168/16, fc00::/7, documentation ranges
    if not address.is_global:
        return "reserved"  # 100.64/10 (shared NAT) and the like
    return None


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, through the loop's resolver (off the loop)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        raise UnresolvedHost(type(err).__name__) from None
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: a zone id
    except ValueError:
        return None


async def destination(
    url: str,
    *,
    home: Collection[Origin] = (),
    resolve: Resolver = system_resolve,
) -> Destination:
    """Where `url` may be fetched: its origin and the checked address to connect to.
    Raises RefusedDestination when its host is (or resolves to) an address that is not
    public, UnresolvedHost when it has no address. Origins in `home` (the provider's
    own) are allowed whatever they are."""
    origin = origin_of(url)
    if origin is None:
        raise RefusedDestination("", "", "not an http(s) link")
    if origin in home:
        return Destination(origin)
    literal = _literal(origin.host)
    if literal is not None:
        kind = address_kind(literal)
        if kind is not None:
            raise RefusedDestination(origin.host, origin.host, kind)  # as the link spells it
        return Destination(origin)
    addresses = await resolve(origin.host, origin.port)
    if not addresses:
        raise UnresolvedHost("no address")
    # Every address counts: a name with one public and one private address could be
    # connected to either.
    for text in addresses:
        address = _literal(text)
        kind = "unreadable address" if address is None else address_kind(address)
        if kind is not None:
            raise RefusedDestination(origin.host, text, kind)
    # IPv4 first: one address is dialled, and an IPv6 one may have no route here.
    chosen = next((a for a in addresses if ":" not in a), addresses[0])
    return Destination(origin, chosen.split("%", 1)[0])
