"""SSRF guard for every fetch of an untrusted URL (feeds, enclosures, transcripts, chapters): the policy
(`check_url`, `check_address`, `Allowance`) and the httpx client built on it (`make_http_client`, which
transcription streams enclosures through). Ingest's many small fetches go through `podbrief.netfetch`, the same
policy under aiohttp.

In the httpx client the check lives in the network backend, below httpx: the hostname is resolved once, every
address is checked, and the socket connects to the checked address itself, so a DNS answer that changes between
check and connect (rebinding) cannot slip through. TLS still uses the hostname for SNI and certificate checks,
because httpcore passes the origin's hostname to `start_tls`. Redirects go through the same transport, so each
hop is checked.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from podbrief.errors import PermanentError, RetryableError
from podbrief.reasons import http_status
from podbrief.settings import NetSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges `ipaddress` does not flag on every Python version, or that deserve naming: CGNAT (also Alibaba's
# metadata address 100.100.100.200), AWS's IPv6 metadata endpoint, NAT64 prefixes that can embed any IPv4.
_EXTRA_BLOCKED: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "192.0.0.0/24",
        "198.18.0.0/15",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "fd00:ec2::254/128",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)
_METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
# http(s)://host[:port] followed by a path, query, fragment or nothing; anything else goes to httpx's parser.
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9][A-Za-z0-9.-]*)(?::[0-9]{1,5})?(?=[/?#]|$)")
# One label of an inet_aton address: decimal, octal (leading 0) or hex (0x).
_NUMERIC_PART = re.compile(r"0[xX][0-9a-fA-F]*|[0-9]+")


class Allowance:
    """`NetSettings.allowed_networks` parsed: CIDRs (or single addresses) and exact hostnames."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def host_allowed(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == n.version and ip in n for n in self.networks)


def blocked_reason(ip: IPAddress) -> str | None:
    """Why an address must not be fetched from, or None when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            return blocked_reason(mapped)
        if ip.teredo is not None:
            return blocked_reason(ip.teredo[1])
    checks = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link_local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    )
    for name, hit in checks:
        if hit:
            return name
    for net in _EXTRA_BLOCKED:
        if ip.version == net.version and ip in net:
            return "special_purpose"
    if not ip.is_global:
        return "not_global"
    return None


def check_address(ip: IPAddress, allow: Allowance, host: str) -> None:
    if allow.host_allowed(host) or allow.address_allowed(ip):
        return
    reason = blocked_reason(ip)
    if reason is not None:
        raise PermanentError(f"refusing to fetch from {host} ({ip}): {reason} address", reason="ssrf_blocked")


def check_url(url: httpx.URL | str, allow: Allowance) -> None:
    """What can be checked before any DNS lookup: the scheme, metadata names and literal addresses."""
    if isinstance(url, str):
        plain = _PLAIN_URL.match(url)
        if plain:
            # The common shape (scheme, ASCII host, port, path), read without a full URL parser: a crawler checks
            # every URL it fetches, and httpx's parser costs as much CPU as the rest of a 304 exchange.
            scheme, host = plain.group(1), plain.group(2).lower()
        else:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as exc:
                raise PermanentError(f"invalid URL {url!r}: {exc}", reason="invalid_url") from exc
            scheme, host = parsed.scheme, parsed.host
    else:
        scheme, host = url.scheme, url.host
    if scheme not in ("http", "https"):
        raise PermanentError(f"only http and https URLs are fetched, not {scheme!r}", reason="bad_scheme")
    if not host:
        raise PermanentError("URL has no host", reason="invalid_url")
    if allow.host_allowed(host):
        return
    if host.lower().rstrip(".") in _METADATA_HOSTS or host.lower().endswith(".internal"):
        raise PermanentError(f"refusing to fetch from {host}: metadata host", reason="ssrf_blocked")
    lowered = host.lower().rstrip(".")
    if lowered == "localhost" or lowered.endswith(".localhost"):
        # RFC 6761: these names are loopback wherever they are resolved; refuse them before any lookup.
        check_address(ipaddress.ip_address("127.0.0.1"), allow, host)
        return
    ip = literal_address(host)
    if ip is not None:
        check_address(ip, allow, host)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names without any DNS lookup, in every form the system resolver accepts: dotted
    quads, IPv6, and the inet_aton forms browsers and libc also read (`2130706433`, `0x7f000001`, `0177.1`,
    `127.1`), which name 127.0.0.1 as surely as `127.0.0.1` does. None for a hostname."""
    bare = host.strip().rstrip(".").strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    if not bare or not all(part and _NUMERIC_PART.fullmatch(part) for part in bare.split(".")):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        # Numeric but out of range ("4294967296", "0x1.0x1.0x1.0x1.0x1"): no resolver reads it as an address,
        # and nothing else would make it a usable hostname.
        raise PermanentError(f"invalid numeric host {host!r}", reason="invalid_url") from None


def raise_for_status(status: int, url: str) -> None:
    """The error an HTTP status means for a fetch (a redirect has been followed already): 429 and 5xx are worth
    retrying, other 4xx are not, a 3xx left over had no usable Location."""
    if status == 429 or status >= 500:
        raise RetryableError(f"{url} answered {status}", reason=http_status(status))
    if status >= 400:
        raise PermanentError(f"{url} answered {status}", reason=http_status(status))
    if status >= 300:
        raise PermanentError(f"{url} answered {status} without a usable Location", reason="bad_redirect")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves once, checks every answer, connects to the checked address."""

    def __init__(self, allow: Allowance, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        from httpcore._backends.auto import AutoBackend

        self.allow = allow
        self.inner = inner or AutoBackend()

    async def _resolve(self, host: str, port: int, timeout_s: float | None) -> list[IPAddress]:
        try:
            return [ipaddress.ip_address(host)]
        except ValueError:
            pass
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP), timeout_s
            )
        except TimeoutError as exc:
            raise RetryableError(f"resolving {host} timed out", reason="dns") from exc
        except OSError as exc:
            # Its own reason: "the name does not resolve" is the commonest way a moved or dead host fails.
            raise RetryableError(f"cannot resolve {host}: {exc}", reason="dns") from exc
        seen: list[IPAddress] = []
        for info in infos:
            # Scope ids ("fe80::1%eth0") are stripped by ip_address; the address itself is what we check.
            ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            if ip not in seen:
                seen.append(ip)
        return seen

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolve(host, port, timeout)
        if not addresses:
            raise httpcore.ConnectError(f"no addresses for {host}")
        # Every answer is checked, not just the one used: a name that mixes public and private answers is
        # suspicious and refused outright.
        for ip in addresses:
            check_address(ip, self.allow, host)
        last: Exception | None = None
        for ip in addresses:
            try:
                return await self.inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise PermanentError("unix sockets are not fetched", reason="ssrf_blocked")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


@functools.cache
def ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs a few hundred milliseconds; one verified context serves every client.
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the guarded backend underneath and a URL check on every request."""

    def __init__(self, net: NetSettings, *, max_connections: int = 100) -> None:
        context = ssl_context()
        super().__init__(
            verify=context,
            trust_env=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=20),
        )
        self.allow = Allowance(net.allowed_networks)
        # httpx has no public knob for the network backend, so the pool is rebuilt with the same options.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=max_connections,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            http1=True,
            http2=False,
            network_backend=GuardedBackend(self.allow),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_url(request.url, self.allow)
        return await super().handle_async_request(request)


def make_http_client(net: NetSettings, *, timeout: httpx.Timeout | None = None) -> httpx.AsyncClient:
    """An httpx client for untrusted URLs: SSRF-guarded on every hop, our User-Agent, no proxies from the
    environment (a proxy would resolve names beyond the guard's reach), bounded redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(net),
        timeout=timeout or httpx.Timeout(net.read_timeout_s, connect=net.connect_timeout_s),
        headers={"User-Agent": net.user_agent},
        follow_redirects=True,
        max_redirects=net.max_redirects,
        trust_env=False,
    )


__all__ = [
    "Allowance",
    "GuardedBackend",
    "GuardedTransport",
    "blocked_reason",
    "check_address",
    "check_url",
    "literal_address",
    "make_http_client",
    "raise_for_status",
    "ssl_context",
]
