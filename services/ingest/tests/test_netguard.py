"""The SSRF guard and the size/time-limited fetch (podbrief.netguard), against a real loopback server."""

from __future__ import annotations

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
        ("http://metadata.google.internal/computeMetadata/v1/", "ssrf_blocked"),
        ("http://169.254.169.254/latest/meta-data/", "ssrf_blocked"),
        ("http://[::ffff:10.0.0.1]/", "ssrf_blocked"),
        ("http://10.0.0.1:8080/feed", "ssrf_blocked"),
        ("http://2852039166/latest/meta-data/", "ssrf_blocked"),
    ],
)
async def test_the_httpx_client_refuses_before_any_connection(url: str, reason: str) -> None:
    """make_http_client (transcription's enclosure downloads): the same policy in httpx's transport."""
    async with make_http_client(NetSettings()) as client:
        with pytest.raises(PermanentError) as err:
            await client.get(url)
    assert err.value.reason == reason


async def test_the_httpx_client_checks_resolved_addresses_and_every_redirect(loopback: LoopbackServer) -> None:
    url = loopback.add("/feed.xml", "<rss/>", "application/rss+xml")
    loopback.add("/r", b"", "text/plain", status=302, headers={"Location": "http://169.254.169.254/latest/"})
    async with make_http_client(NetSettings()) as client:
        for target in (url, url.replace("127.0.0.1", "localhost")):
            with pytest.raises(PermanentError) as err:
                await client.get(target)
            assert err.value.reason == "ssrf_blocked"
    assert loopback.hits.get("/feed.xml", 0) == 0
    async with make_http_client(LOOPBACK_OK) as client:
        ok = await client.get(url)
        assert ok.text == "<rss/>" and loopback.requests[-1][1]["user-agent"] == LOOPBACK_OK.user_agent
        with pytest.raises(PermanentError) as err:
            await client.get(loopback.url("/r"))  # httpx follows it, through the same transport
        assert err.value.reason == "ssrf_blocked"


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


async def test_a_host_that_does_not_resolve_fails_with_reason_dns() -> None:
    # RFC 2606 reserves .invalid: no resolver answers it, with or without a network.
    async with make_http_client(NetSettings()) as client:
        with pytest.raises(RetryableError) as err:
            await client.get("http://podbrief-no-such-host.invalid/feed.xml")
    assert err.value.reason == "dns"
    assert "podbrief-no-such-host.invalid" in str(err.value)
