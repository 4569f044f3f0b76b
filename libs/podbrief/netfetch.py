"""Fetching small untrusted documents (feeds, publisher transcripts, chapters) under the SSRF guard, cheaply
enough for a crawler: aiohttp, whose C HTTP parser and connection pool cost a few hundred microseconds of CPU
per exchange where httpx's pure-Python stack costs 2 ms and more (its pool scans every connection on every
request, so its cost grows with the hosts and requests in flight; bench/ingest.py measures both).

The guard is netguard's policy, applied at the same two points as its httpx transport:
- every URL, and every redirect hop (redirects are followed here, by hand), passes `check_url`: scheme,
  metadata names, literal addresses in every notation;
- host names are resolved by `GuardedResolver`, which checks every address of the answer and hands aiohttp
  exactly those, so the socket connects to a checked address (a DNS answer that changes between check and
  connect cannot slip through); TLS still verifies the host name.
Cookies are not kept, proxies from the environment are not used, bodies are counted after decompression."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult

from podbrief.errors import PermanentError, RetryableError
from podbrief.netguard import Allowance, check_address, check_url, raise_for_status, ssl_context
from podbrief.settings import NetSettings

MAX_REMEMBERED_URLS = 100_000
DEFAULT_ACCEPT = "*/*"
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
PERMANENT_REDIRECTS = frozenset({301, 308})


@dataclass(frozen=True)
class Redirect:
    status: int
    from_url: str
    to_url: str

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_REDIRECTS


@dataclass(frozen=True)
class FetchResult:
    status: int
    url: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    history: tuple[Redirect, ...] = ()
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def content_type(self) -> str:
        value: str = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        """The Content-Type's charset parameter, if any."""
        content_type: str = self.headers.get("content-type", "")
        for param in content_type.split(";")[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "charset" and value.strip().strip("\"'"):
                return value.strip().strip("\"'")[:40]
        return None

    @property
    def permanent_url(self) -> str | None:
        """Where the resource now lives for good: the target of the leading run of permanent redirects."""
        target: str | None = None
        for hop in self.history:
            if not hop.permanent:
                break
            target = hop.to_url
        return target


class GuardedResolver(AbstractResolver):
    """Resolves with the system resolver and refuses the whole answer if any address in it is not public."""

    def __init__(self, allow: Allowance) -> None:
        self.allow = allow
        self.inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self.inner.resolve(host, port, family)
        for answer in answers:
            # Scope ids ("fe80::1%eth0") are not part of the address checked.
            check_address(ipaddress.ip_address(str(answer["host"]).split("%", 1)[0]), self.allow, host)
        return answers

    async def close(self) -> None:
        await self.inner.close()


class GuardedClient:
    """One connection pool for every fetch of untrusted URLs in a process. Create it in a running event loop
    (the lifespan) and `aclose()` it there."""

    def __init__(self, net: NetSettings, *, per_host: int = 0) -> None:
        self.allow = Allowance(net.allowed_networks)
        self.max_redirects = net.max_redirects
        # URLs that passed check_url (a pure function of the URL and the allow-list): a crawler asks for the
        # same feed URLs poll after poll, and parsing a URL costs as much CPU as the rest of a 304 exchange.
        self._passed: dict[str, None] = {}
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.allow),
            ssl=ssl_context(),
            # Concurrency is bounded by the caller's per-host and total limits; the pool keeps what it opened.
            limit=0,
            limit_per_host=per_host,
            use_dns_cache=True,
            ttl_dns_cache=60,
            keepalive_timeout=15,
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=net.connect_timeout_s, sock_read=net.read_timeout_s),
            headers={"User-Agent": net.user_agent},
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            auto_decompress=True,
        )

    async def aclose(self) -> None:
        await self.session.close()

    def _check(self, url: str) -> None:
        if url in self._passed:
            return
        check_url(url, self.allow)
        if len(self._passed) >= MAX_REMEMBERED_URLS:
            self._passed.clear()
        self._passed[url] = None

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        accept: str = DEFAULT_ACCEPT,
        headers: Mapping[str, str] | None = None,
        max_redirects: int | None = None,
        deadline_s: float | None = None,
    ) -> FetchResult:
        """GET `url`, following redirects by hand (each hop re-checked, loops detected), reading at most
        `max_bytes` of decoded body. A 304 is returned, not raised; other non-2xx answers raise.

        Raises PermanentError (ssrf_blocked, bad_scheme, invalid_url, too_large, redirect_loop,
        too_many_redirects, bad_redirect, bad_encoding, http_401/403/404/410, http_4xx) or RetryableError
        (timeout, connect, http_5xx, http_429)."""
        limit = self.max_redirects if max_redirects is None else max_redirects
        started = time.monotonic()
        try:
            async with asyncio.timeout(deadline_s):
                return await self._get(url, max_bytes, accept, headers, limit, started)
        except TimeoutError as exc:
            raise RetryableError(f"fetching {url} took longer than {deadline_s}s", reason="timeout") from exc

    async def _get(
        self,
        url: str,
        max_bytes: int,
        accept: str,
        headers: Mapping[str, str] | None,
        limit: int,
        started: float,
    ) -> FetchResult:
        history: list[Redirect] = []
        seen = {url}
        current = url
        req_headers = {"Accept": accept, **(headers or {})}
        while True:
            self._check(current)
            try:
                response = await self.session.get(_wire(current), headers=req_headers, allow_redirects=False)
            except (PermanentError, RetryableError):
                raise
            except (aiohttp.InvalidURL, ValueError) as exc:
                raise PermanentError(f"invalid URL {current!r}: {exc}", reason="invalid_url") from exc
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                raise RetryableError(f"timed out fetching {current}", reason="timeout") from exc
            except aiohttp.ClientConnectorDNSError as exc:
                raise RetryableError(f"cannot resolve the host of {current}: {exc.os_error}", reason="dns") from exc
            except aiohttp.ClientError as exc:
                raise RetryableError(f"cannot fetch {current}: {exc!r}", reason="connect") from exc
            async with response:
                status = response.status
                location = response.headers.get("Location")
                if status in REDIRECT_CODES and location:
                    target = urljoin(current, location.strip())
                    history.append(Redirect(status, current, target))
                    if target in seen:
                        raise PermanentError(f"redirect loop at {target}", reason="redirect_loop")
                    if len(history) > limit:
                        raise PermanentError(f"more than {limit} redirects from {url}", reason="too_many_redirects")
                    seen.add(target)
                    current = target
                    # A 303 or a cross-origin hop must not carry the conditional headers meant for the first URL.
                    req_headers = {"Accept": accept}
                    continue
                found = {k.lower(): v for k, v in response.headers.items()}
                if status == 304:
                    return FetchResult(304, current, found, b"", tuple(history), time.monotonic() - started)
                raise_for_status(status, current)
                body = await _read_limited(response, current, max_bytes)
                return FetchResult(status, current, found, body, tuple(history), time.monotonic() - started)


def _wire(url: str) -> yarl.URL:
    """The URL as it goes on the wire: an ASCII URL exactly as written (yarl would otherwise decode escapes
    such as %3A, and a server may route on the raw path), anything else percent-encoded by yarl."""
    if url.isascii() and url.isprintable() and " " not in url:
        return yarl.URL(url, encoded=True)
    return yarl.URL(url)


async def _read_limited(response: Any, url: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes and "Content-Encoding" not in response.headers:
        raise PermanentError(f"{url} is {declared} bytes, over the {max_bytes}-byte limit", reason="too_large")
    chunks: list[bytes] = []
    total = 0
    try:
        # Decoded bytes are counted, so a gzip bomb hits the cap as surely as a plain large body.
        async for chunk in response.content.iter_chunked(1 << 16):
            total += len(chunk)
            if total > max_bytes:
                raise PermanentError(f"{url} is over the {max_bytes}-byte limit", reason="too_large")
            chunks.append(chunk)
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise RetryableError(f"timed out reading {url}", reason="timeout") from exc
    except aiohttp.ClientPayloadError as exc:
        if "encoding" in str(exc).lower() or "decompress" in str(exc).lower():
            raise PermanentError(f"cannot decode {url}: {exc}", reason="bad_encoding") from exc
        raise RetryableError(f"connection lost reading {url}: {exc!r}", reason="connect") from exc
    except aiohttp.ClientError as exc:
        raise RetryableError(f"connection lost reading {url}: {exc!r}", reason="connect") from exc
    return b"".join(chunks)


__all__ = ["FetchResult", "GuardedClient", "GuardedResolver", "Redirect"]
