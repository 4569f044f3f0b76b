"""The guarded fetch of small documents (podbrief.netfetch, aiohttp under netguard's policy), against a real
loopback server: the same SSRF guarantees as the httpx transport, the size and time limits, the status
mapping, and redirects followed by hand."""

from __future__ import annotations

import gzip
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from podbrief.errors import PermanentError, RetryableError
from podbrief.netfetch import GuardedClient, GuardedResolver
from podbrief.netguard import Allowance
from podbrief.settings import NetSettings
from podbrief_testing import LoopbackServer

pytestmark = pytest.mark.unit

LOOPBACK_OK = NetSettings(allowed_networks=("127.0.0.0/8",), connect_timeout_s=10, read_timeout_s=10)


@asynccontextmanager
async def guarded(net: NetSettings = LOOPBACK_OK) -> AsyncIterator[GuardedClient]:
    client = GuardedClient(net, per_host=2)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "bad_scheme"),
        ("ftp://example.com/feed.xml", "bad_scheme"),
        ("http://metadata.google.internal/computeMetadata/v1/", "ssrf_blocked"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),
        ("http://[::ffff:10.0.0.1]/", "ssrf_blocked"),
        ("http://10.0.0.1:8080/feed", "ssrf_blocked"),
        ("http://2852039166/latest/meta-data/", "ssrf_blocked"),
        ("http://0x7f000001/feed", "ssrf_blocked"),
        ("http://[::1]:8080/feed", "ssrf_blocked"),
    ],
)
async def test_refused_before_any_connection(url: str, reason: str) -> None:
    async with guarded(NetSettings()) as client:
        with pytest.raises(PermanentError) as err:
            await client.get(url, max_bytes=1000)
    assert err.value.reason == reason


async def test_loopback_refused_without_allow_list(loopback: LoopbackServer) -> None:
    url = loopback.add("/feed.xml", "<rss/>", "application/rss+xml")
    async with guarded(NetSettings()) as client:
        for target in (url, url.replace("127.0.0.1", "localhost")):
            with pytest.raises(PermanentError) as err:
                await client.get(target, max_bytes=1000)
            assert err.value.reason == "ssrf_blocked"
    assert loopback.hits.get("/feed.xml", 0) == 0


async def test_a_name_resolving_to_a_private_address_is_refused_after_dns() -> None:
    # Not a literal and not a known name: only the resolver's check can refuse it.
    resolver = GuardedResolver(Allowance([]))
    with pytest.raises(PermanentError) as err:
        await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    assert err.value.reason == "ssrf_blocked"
    await resolver.close()


async def test_any_private_answer_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    resolver = GuardedResolver(Allowance([]))

    async def answers(host: str, port: int = 0, family: Any = 0) -> list[dict[str, Any]]:
        return [
            {"hostname": host, "host": a, "port": port, "family": socket.AF_INET, "proto": 0, "flags": 0}
            for a in ("93.184.215.14", "10.0.0.7")
        ]

    monkeypatch.setattr(resolver.inner, "resolve", answers)
    with pytest.raises(PermanentError) as err:
        await resolver.resolve("rebind.example", 80)
    assert err.value.reason == "ssrf_blocked"
    await resolver.close()


async def test_connects_to_the_checked_address(monkeypatch: pytest.MonkeyPatch, loopback: LoopbackServer) -> None:
    """The socket is opened to the address the resolver checked, never to a second lookup of the name."""
    import asyncio

    loopback.add("/x", "ok", "text/plain")
    looked_up: list[str] = []
    connected: list[str] = []
    real_getaddrinfo = socket.getaddrinfo
    real_sock_connect = asyncio.selector_events.BaseSelectorEventLoop.sock_connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(str(host))
        return real_getaddrinfo(host, *args, **kwargs)

    async def sock_connect(self: Any, sock: Any, address: Any) -> Any:
        connected.append(address[0])
        return await real_sock_connect(self, sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(asyncio.selector_events.BaseSelectorEventLoop, "sock_connect", sock_connect)
    async with guarded(NetSettings(allowed_networks=("127.0.0.0/8", "::1/128"))) as client:
        res = await client.get(f"http://localhost:{loopback.port}/x", max_bytes=100)
    assert res.body == b"ok"
    assert looked_up.count("localhost") == 1 and connected and all(a in ("127.0.0.1", "::1") for a in connected)


async def test_allow_list_permits_loopback_and_sends_user_agent(loopback: LoopbackServer) -> None:
    url = loopback.add("/feed.xml", "<rss/>", "application/rss+xml")
    async with guarded() as client:
        res = await client.get(url, max_bytes=1000, accept="application/rss+xml")
    assert res.status == 200 and res.body == b"<rss/>" and res.content_type == "application/rss+xml"
    _, headers = loopback.requests[-1]
    assert headers["user-agent"] == LOOPBACK_OK.user_agent
    assert headers["accept"] == "application/rss+xml"
    assert "cookie" not in headers


async def test_allow_list_by_hostname(loopback: LoopbackServer) -> None:
    loopback.add("/x", "ok", "text/plain")
    async with guarded(NetSettings(allowed_networks=("localhost",))) as client:
        res = await client.get(f"http://localhost:{loopback.port}/x", max_bytes=100)
    assert res.body == b"ok"


async def test_redirect_to_private_address_is_refused(loopback: LoopbackServer) -> None:
    url = loopback.add(
        "/r", b"", "text/plain", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    loopback.add("/r6", b"", "text/plain", status=301, headers={"Location": "http://[::ffff:10.0.0.1]/"})
    loopback.add("/rn", b"", "text/plain", status=307, headers={"Location": "http://2852039166/"})
    async with guarded() as client:
        for target in (url, loopback.url("/r6"), loopback.url("/rn")):
            with pytest.raises(PermanentError) as err:
                await client.get(target, max_bytes=100)
            assert err.value.reason == "ssrf_blocked"


async def test_redirect_from_allowed_name_to_disallowed_address(loopback: LoopbackServer) -> None:
    loopback.add("/hop", b"", "text/plain", status=302, headers={"Location": loopback.url("/final")})
    loopback.add("/final", "secret", "text/plain")
    async with guarded(NetSettings(allowed_networks=("localhost",))) as client:
        with pytest.raises(PermanentError) as err:
            await client.get(f"http://localhost:{loopback.port}/hop", max_bytes=100)
    assert err.value.reason == "ssrf_blocked"
    assert loopback.hits.get("/final", 0) == 0


async def test_permanent_redirects_are_recorded_and_conditions_dropped(loopback: LoopbackServer) -> None:
    loopback.add("/old", b"", "text/plain", status=301, headers={"Location": "/newer"})
    loopback.add("/newer", b"", "text/plain", status=308, headers={"Location": loopback.url("/new")})
    loopback.add("/new", "here", "text/plain")
    loopback.add("/temp", b"", "text/plain", status=302, headers={"Location": "/new"})
    async with guarded() as client:
        res = await client.get(loopback.url("/old"), max_bytes=100, headers={"If-None-Match": '"x"'})
        temp = await client.get(loopback.url("/temp"), max_bytes=100)
    assert res.body == b"here" and res.url == loopback.url("/new")
    assert [h.status for h in res.history] == [301, 308]
    assert res.permanent_url == loopback.url("/new")
    assert temp.permanent_url is None and temp.history[0].status == 302
    sent = [h for path, h in loopback.requests if path == "/new"]
    assert "if-none-match" not in sent[0]


async def test_redirect_loop_and_too_many_redirects(loopback: LoopbackServer) -> None:
    loopback.add("/a", b"", "text/plain", status=302, headers={"Location": "/b"})
    loopback.add("/b", b"", "text/plain", status=302, headers={"Location": "/a"})
    for i in range(10):
        loopback.add(f"/c{i}", b"", "text/plain", status=302, headers={"Location": f"/c{i + 1}"})
    async with guarded() as client:
        with pytest.raises(PermanentError) as loop:
            await client.get(loopback.url("/a"), max_bytes=100)
        with pytest.raises(PermanentError) as chain:
            await client.get(loopback.url("/c0"), max_bytes=100)
    assert loop.value.reason == "redirect_loop"
    assert chain.value.reason == "too_many_redirects"


async def test_body_cap_counts_declared_and_decoded_bytes(loopback: LoopbackServer) -> None:
    loopback.add("/big", b"x" * 5000, "text/plain")
    bomb = gzip.compress(b"\0" * 2_000_000)
    loopback.add("/bomb", bomb, "application/xml", headers={"Content-Encoding": "gzip"})
    loopback.add("/small.gz", gzip.compress(b"<rss>ok</rss>"), "application/xml", headers={"Content-Encoding": "gzip"})
    loopback.add("/broken.gz", b"not gzip at all", "application/xml", headers={"Content-Encoding": "gzip"})
    async with guarded() as client:
        with pytest.raises(PermanentError) as big:
            await client.get(loopback.url("/big"), max_bytes=1000)
        with pytest.raises(PermanentError) as gz:
            await client.get(loopback.url("/bomb"), max_bytes=100_000)
        small = await client.get(loopback.url("/small.gz"), max_bytes=100)
        with pytest.raises(PermanentError) as broken:
            await client.get(loopback.url("/broken.gz"), max_bytes=100)
    assert big.value.reason == gz.value.reason == "too_large"
    assert len(bomb) < 100_000  # the cap applied to the decompressed size
    assert small.body == b"<rss>ok</rss>"
    assert broken.value.reason == "bad_encoding"


async def test_slow_server_times_out(loopback: LoopbackServer) -> None:
    loopback.add("/slow", "late", "text/plain", delay_s=3.0)
    net = NetSettings(allowed_networks=("127.0.0.0/8",), read_timeout_s=1.0, connect_timeout_s=10)
    async with guarded(net) as client:
        with pytest.raises(RetryableError) as err:
            await client.get(loopback.url("/slow"), max_bytes=100)
    assert err.value.reason == "timeout"


async def test_overall_deadline(loopback: LoopbackServer) -> None:
    loopback.add("/slow", "late", "text/plain", delay_s=3.0)
    async with guarded() as client:
        with pytest.raises(RetryableError) as err:
            await client.get(loopback.url("/slow"), max_bytes=100, deadline_s=1.0)
    assert err.value.reason == "timeout"


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (500, RetryableError, "http_5xx"),
        (503, RetryableError, "http_5xx"),
        (429, RetryableError, "http_429"),
        (404, PermanentError, "http_404"),
        (410, PermanentError, "http_410"),
        (400, PermanentError, "http_4xx"),
        (302, PermanentError, "bad_redirect"),
    ],
)
async def test_status_mapping(loopback: LoopbackServer, status: int, kind: type[Exception], reason: str) -> None:
    loopback.add("/s", "nope", "text/plain", status=status)
    async with guarded() as client:
        with pytest.raises(kind) as err:
            await client.get(loopback.url("/s"), max_bytes=100)
    assert getattr(err.value, "reason", None) == reason


async def test_not_modified_is_returned(loopback: LoopbackServer) -> None:
    loopback.add("/f", "body", "text/plain; charset=iso-8859-1", headers={"ETag": '"v1"'})
    async with guarded() as client:
        first = await client.get(loopback.url("/f"), max_bytes=100)
        second = await client.get(loopback.url("/f"), max_bytes=100, headers={"If-None-Match": first.headers["etag"]})
    assert first.status == 200 and first.charset == "iso-8859-1"
    assert second.not_modified and second.body == b""


async def test_connection_refused_is_retryable() -> None:
    async with guarded() as client:
        with pytest.raises(RetryableError) as err:
            await client.get("http://127.0.0.1:1/feed", max_bytes=100)
    assert err.value.reason == "connect"


async def test_cookies_are_not_kept(loopback: LoopbackServer) -> None:
    loopback.add("/set", "x", "text/plain", headers={"Set-Cookie": "track=1; Path=/"})
    loopback.add("/next", "y", "text/plain")
    async with guarded() as client:
        await client.get(loopback.url("/set"), max_bytes=100)
        await client.get(loopback.url("/next"), max_bytes=100)
    assert "cookie" not in loopback.requests[-1][1]


async def test_a_host_that_does_not_resolve_fails_with_reason_dns() -> None:
    async with guarded(NetSettings()) as client:
        with pytest.raises(RetryableError) as err:
            await client.get("http://podbrief-no-such-host.invalid/feed.xml", max_bytes=1000)
    assert err.value.reason == "dns"
