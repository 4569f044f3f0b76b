"""The SSRF guard and the size/time-limited fetch (podbrief.netguard), against a real loopback server."""

from __future__ import annotations

import gzip
import ipaddress
from typing import Any

import httpcore
import httpx
import pytest
from podbrief.errors import PermanentError, RetryableError
from podbrief.netguard import (
    Allowance,
    GuardedBackend,
    blocked_reason,
    check_url,
    fetch_limited,
    make_http_client,
)
from podbrief.settings import NetSettings
from podbrief_testing import LoopbackServer

pytestmark = pytest.mark.unit

LOOPBACK_OK = NetSettings(allowed_networks=("127.0.0.0/8",), connect_timeout_s=10, read_timeout_s=10)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.0.10", "private"),
        ("169.254.169.254", "link_local"),  # AWS/GCP/Azure metadata
        ("100.64.0.1", "special_purpose"),  # CGNAT
        ("100.100.100.200", "special_purpose"),  # Alibaba metadata, inside CGNAT
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "private"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link_local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "private"),  # AWS IPv6 metadata
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link_local"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
    ],
)
def test_blocked_addresses(address: str, reason: str) -> None:
    got = blocked_reason(ipaddress.ip_address(address))
    # Python's address tables overlap (240/4 is both private and reserved), so the label may differ; the
    # loopback and metadata labels are the ones operators read in errors, and those must be exact.
    assert got is not None
    if reason in ("loopback", "link_local"):
        assert got == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "151.101.1.1", "2606:4700:4700::1111", "2001:4860::8888"])
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_allow_list_takes_cidrs_and_hostnames() -> None:
    allow = Allowance(["127.0.0.0/8", "feeds.internal.example", " ", "10.0.0.5"])
    assert allow.address_allowed(ipaddress.ip_address("127.0.0.2"))
    assert allow.address_allowed(ipaddress.ip_address("10.0.0.5"))
    assert not allow.address_allowed(ipaddress.ip_address("10.0.0.6"))
    assert allow.host_allowed("FEEDS.internal.example.")
    check_url(httpx.URL("http://feeds.internal.example/x"), allow)  # named hosts bypass the metadata-name check


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "bad_scheme"),
        ("ftp://example.com/feed.xml", "bad_scheme"),
        ("http://metadata.google.internal/computeMetadata/v1/", "ssrf_blocked"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),
        ("http://[::ffff:10.0.0.1]/", "ssrf_blocked"),
        ("http://10.0.0.1:8080/feed", "ssrf_blocked"),
    ],
)
async def test_refused_before_any_connection(url: str, reason: str) -> None:
    async with make_http_client(NetSettings()) as client:
        with pytest.raises(PermanentError) as err:
            await fetch_limited(client, url, max_bytes=1000)
    assert err.value.reason == reason


async def test_loopback_refused_without_allow_list(loopback: LoopbackServer) -> None:
    url = loopback.add("/feed.xml", "<rss/>", "application/rss+xml")
    async with make_http_client(NetSettings()) as client:
        with pytest.raises(PermanentError) as err:
            await fetch_limited(client, url, max_bytes=1000)
        assert err.value.reason == "ssrf_blocked"
        # "localhost" is only caught after DNS: the check runs on the resolved address.
        with pytest.raises(PermanentError) as err2:
            await client.get(url.replace("127.0.0.1", "localhost"))
        assert err2.value.reason == "ssrf_blocked"
    assert loopback.hits.get("/feed.xml", 0) == 0


async def test_allow_list_permits_loopback_and_sends_user_agent(loopback: LoopbackServer) -> None:
    url = loopback.add("/feed.xml", "<rss/>", "application/rss+xml")
    async with make_http_client(LOOPBACK_OK) as client:
        res = await fetch_limited(client, url, max_bytes=1000, accept="application/rss+xml")
    assert res.status == 200 and res.body == b"<rss/>" and res.content_type == "application/rss+xml"
    _, headers = loopback.requests[-1]
    assert headers["user-agent"] == LOOPBACK_OK.user_agent
    assert headers["accept"] == "application/rss+xml"


async def test_allow_list_by_hostname(loopback: LoopbackServer) -> None:
    loopback.add("/x", "ok", "text/plain")
    net = NetSettings(allowed_networks=("localhost",))
    async with make_http_client(net) as client:
        res = await fetch_limited(client, f"http://localhost:{loopback.port}/x", max_bytes=100)
    assert res.body == b"ok"


async def test_redirect_to_private_address_is_refused(loopback: LoopbackServer) -> None:
    url = loopback.add(
        "/r", b"", "text/plain", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}
    )
    loopback.add("/r6", b"", "text/plain", status=301, headers={"Location": "http://[::ffff:10.0.0.1]/"})
    async with make_http_client(LOOPBACK_OK) as client:
        for target in (url, loopback.url("/r6")):
            with pytest.raises(PermanentError) as err:
                await fetch_limited(client, target, max_bytes=100)
            assert err.value.reason == "ssrf_blocked"
        # httpx's own redirect following goes through the same transport, so it is refused too.
        with pytest.raises(PermanentError) as err:
            await client.get(url)
        assert err.value.reason == "ssrf_blocked"


async def test_redirect_from_allowed_name_to_disallowed_address(loopback: LoopbackServer) -> None:
    loopback.add("/hop", b"", "text/plain", status=302, headers={"Location": loopback.url("/final")})
    loopback.add("/final", "secret", "text/plain")
    net = NetSettings(allowed_networks=("localhost",))
    async with make_http_client(net) as client:
        with pytest.raises(PermanentError) as err:
            await fetch_limited(client, f"http://localhost:{loopback.port}/hop", max_bytes=100)
    assert err.value.reason == "ssrf_blocked"
    assert loopback.hits.get("/final", 0) == 0


async def test_permanent_redirects_are_recorded(loopback: LoopbackServer) -> None:
    loopback.add("/old", b"", "text/plain", status=301, headers={"Location": "/newer"})
    loopback.add("/newer", b"", "text/plain", status=308, headers={"Location": loopback.url("/new")})
    loopback.add("/new", "here", "text/plain")
    loopback.add("/temp", b"", "text/plain", status=302, headers={"Location": "/new"})
    async with make_http_client(LOOPBACK_OK) as client:
        res = await fetch_limited(client, loopback.url("/old"), max_bytes=100)
        temp = await fetch_limited(client, loopback.url("/temp"), max_bytes=100)
    assert res.body == b"here" and res.url == loopback.url("/new")
    assert [h.status for h in res.history] == [301, 308]
    assert res.permanent_url == loopback.url("/new")
    assert temp.permanent_url is None and temp.history[0].status == 302


async def test_redirect_loop_and_too_many_redirects(loopback: LoopbackServer) -> None:
    loopback.add("/a", b"", "text/plain", status=302, headers={"Location": "/b"})
    loopback.add("/b", b"", "text/plain", status=302, headers={"Location": "/a"})
    for i in range(10):
        loopback.add(f"/c{i}", b"", "text/plain", status=302, headers={"Location": f"/c{i + 1}"})
    async with make_http_client(LOOPBACK_OK) as client:
        with pytest.raises(PermanentError) as loop:
            await fetch_limited(client, loopback.url("/a"), max_bytes=100)
        with pytest.raises(PermanentError) as chain:
            await fetch_limited(client, loopback.url("/c0"), max_bytes=100)
    assert loop.value.reason == "redirect_loop"
    assert chain.value.reason == "too_many_redirects"


async def test_body_cap_counts_declared_and_decoded_bytes(loopback: LoopbackServer) -> None:
    loopback.add("/big", b"x" * 5000, "text/plain")
    bomb = gzip.compress(b"\0" * 2_000_000)
    loopback.add("/bomb", bomb, "application/xml", headers={"Content-Encoding": "gzip"})
    loopback.add("/small.gz", gzip.compress(b"<rss>ok</rss>"), "application/xml", headers={"Content-Encoding": "gzip"})
    async with make_http_client(LOOPBACK_OK) as client:
        with pytest.raises(PermanentError) as big:
            await fetch_limited(client, loopback.url("/big"), max_bytes=1000)
        with pytest.raises(PermanentError) as gz:
            await fetch_limited(client, loopback.url("/bomb"), max_bytes=100_000)
        small = await fetch_limited(client, loopback.url("/small.gz"), max_bytes=100)
    assert big.value.reason == gz.value.reason == "too_large"
    assert len(bomb) < 100_000  # the cap applied to the decompressed size
    assert small.body == b"<rss>ok</rss>"


async def test_slow_server_times_out(loopback: LoopbackServer) -> None:
    loopback.add("/slow", "late", "text/plain", delay_s=3.0)
    net = NetSettings(allowed_networks=("127.0.0.0/8",), read_timeout_s=1.0, connect_timeout_s=10)
    async with make_http_client(net) as client:
        with pytest.raises(RetryableError) as err:
            await fetch_limited(client, loopback.url("/slow"), max_bytes=100)
    assert err.value.reason == "timeout"


async def test_overall_deadline(loopback: LoopbackServer) -> None:
    loopback.add("/slow", "late", "text/plain", delay_s=3.0)
    async with make_http_client(LOOPBACK_OK) as client:
        with pytest.raises(RetryableError) as err:
            await fetch_limited(client, loopback.url("/slow"), max_bytes=100, deadline_s=1.0)
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
    ],
)
async def test_status_mapping(loopback: LoopbackServer, status: int, kind: type[Exception], reason: str) -> None:
    loopback.add("/s", "nope", "text/plain", status=status)
    async with make_http_client(LOOPBACK_OK) as client:
        with pytest.raises(kind) as err:
            await fetch_limited(client, loopback.url("/s"), max_bytes=100)
    assert getattr(err.value, "reason", None) == reason


async def test_not_modified_is_returned(loopback: LoopbackServer) -> None:
    loopback.add("/f", "body", "text/plain", headers={"ETag": '"v1"'})
    async with make_http_client(LOOPBACK_OK) as client:
        first = await fetch_limited(client, loopback.url("/f"), max_bytes=100)
        second = await fetch_limited(
            client, loopback.url("/f"), max_bytes=100, headers={"If-None-Match": first.headers["etag"]}
        )
    assert first.status == 200 and second.not_modified and second.body == b""


async def test_connection_refused_is_retryable() -> None:
    async with make_http_client(LOOPBACK_OK) as client:
        with pytest.raises(RetryableError) as err:
            await fetch_limited(client, "http://127.0.0.1:1/feed", max_bytes=100)
    assert err.value.reason == "connect"


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> Any:
        self.hosts.append(host)
        raise httpcore.ConnectError("recorded only")


class _FixedAnswers(GuardedBackend):
    def __init__(self, answers: list[str], allow: Allowance, inner: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(allow, inner)
        self.answers = [ipaddress.ip_address(a) for a in answers]

    async def _resolve(self, host: str, port: int, timeout_s: float | None) -> Any:
        return self.answers


async def test_connects_to_the_checked_address_not_the_name() -> None:
    inner = _RecordingBackend()
    backend = GuardedBackend(Allowance(["127.0.0.0/8", "::1/128"]), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("localhost", 80, timeout=1)
    # The name was resolved here and the inner backend only ever saw addresses: no second lookup to rebind.
    assert inner.hosts and all(ipaddress.ip_address(h).is_loopback for h in inner.hosts)


async def test_any_private_answer_refuses_the_name() -> None:
    inner = _RecordingBackend()
    backend = _FixedAnswers(["93.184.215.14", "10.0.0.7"], Allowance([]), inner)
    with pytest.raises(PermanentError) as err:
        await backend.connect_tcp("rebind.example", 80, timeout=1)
    assert err.value.reason == "ssrf_blocked" and inner.hosts == []
