"""Enclosure downloads: streamed to disk under size, time and content-type limits, through the SSRF guard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from podbrief.errors import PermanentError, RetryableError
from podbrief.netguard import make_http_client
from podbrief.settings import NetSettings
from podbrief_testing import LoopbackServer
from podbrief_transcription.adapters.download import EnclosureFetcher
from podbrief_transcription.settings import DEFAULT_CONTENT_TYPES

pytestmark = pytest.mark.unit


def fetcher(
    handler: httpx.MockTransport | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    max_bytes: int = 1 << 20,
    timeout_s: float = 5.0,
    tmp: Path | None = None,
) -> EnclosureFetcher:
    return EnclosureFetcher(
        client or httpx.AsyncClient(transport=handler),
        max_bytes=max_bytes,
        timeout_s=timeout_s,
        allowed_content_types=DEFAULT_CONTENT_TYPES,
        tmp_dir=tmp,
    )


async def stream_of(chunks: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(chunks):
        yield b"x" * size


async def test_streams_to_a_temp_file_and_removes_it(tmp_path: Path) -> None:
    seen: list[int] = []
    f = fetcher(
        httpx.MockTransport(
            lambda r: httpx.Response(200, headers={"content-type": "audio/mpeg"}, content=b"ID3" + b"a" * 5000)
        ),
        tmp=tmp_path,
    )
    f.on_bytes = seen.append
    async with f.fetch("http://cdn.example.com/a.mp3") as path:
        assert path.read_bytes().startswith(b"ID3") and path.stat().st_size == 5003
        kept = path
    assert not kept.exists()
    assert seen == [5003]


@pytest.mark.parametrize(
    "status,kind,reason",
    [
        (404, PermanentError, "http_404"),
        (410, PermanentError, "http_410"),
        (400, PermanentError, "http_4xx"),
        (503, RetryableError, "http_5xx"),
        (429, RetryableError, "http_429"),
    ],
)
async def test_http_errors_are_classified(status: int, kind: type[Exception], reason: str) -> None:
    f = fetcher(httpx.MockTransport(lambda r: httpx.Response(status)))
    with pytest.raises(kind) as exc:
        async with f.fetch("http://cdn.example.com/a.mp3"):
            pass
    assert exc.value.reason == reason  # type: ignore[attr-defined]


async def test_declared_size_over_the_limit() -> None:
    f = fetcher(
        httpx.MockTransport(
            lambda r: httpx.Response(
                200, headers={"content-type": "audio/mpeg", "content-length": str(10 << 20)}, content=b""
            )
        ),
        max_bytes=1000,
    )
    with pytest.raises(PermanentError) as exc:
        async with f.fetch("http://cdn.example.com/a.mp3"):
            pass
    assert exc.value.reason == "too_large"


async def test_streamed_size_over_the_limit_without_content_length() -> None:
    f = fetcher(
        httpx.MockTransport(
            lambda r: httpx.Response(200, headers={"content-type": "audio/mpeg"}, content=stream_of(100, 1000))
        ),
        max_bytes=10_000,
    )
    with pytest.raises(PermanentError) as exc:
        async with f.fetch("http://cdn.example.com/a.mp3"):
            pass
    assert exc.value.reason == "too_large"


async def test_html_is_not_an_enclosure() -> None:
    f = fetcher(
        httpx.MockTransport(
            lambda r: httpx.Response(200, headers={"content-type": "text/html; charset=utf-8"}, content=b"<html>")
        )
    )
    with pytest.raises(PermanentError) as exc:
        async with f.fetch("http://cdn.example.com/a.mp3"):
            pass
    assert exc.value.reason == "bad_content_type"


async def test_video_and_untyped_enclosures_are_accepted() -> None:
    for ctype in ("video/mp4", "application/octet-stream", ""):
        headers = {"content-type": ctype} if ctype else {}
        f = fetcher(httpx.MockTransport(lambda r, h=headers: httpx.Response(200, headers=h, content=b"data")))
        async with f.fetch("http://cdn.example.com/a.mp4") as path:
            assert path.read_bytes() == b"data"


async def test_slow_download_hits_the_deadline(loopback: LoopbackServer) -> None:
    url = loopback.add("/slow.mp3", b"x" * 100, "audio/mpeg", delay_s=2.0)
    client = make_http_client(NetSettings(allowed_networks=("127.0.0.0/8",)))
    f = fetcher(client=client, timeout_s=0.3)
    with pytest.raises(RetryableError) as exc:
        async with f.fetch(url):
            pass
    await client.aclose()
    assert exc.value.reason == "timeout"


async def test_loopback_is_refused_unless_allowed(loopback: LoopbackServer) -> None:
    url = loopback.add("/a.mp3", b"ID3abc", "audio/mpeg")
    guarded = make_http_client(NetSettings())
    with pytest.raises(PermanentError) as exc:
        async with fetcher(client=guarded).fetch(url):
            pass
    await guarded.aclose()
    assert exc.value.reason == "ssrf_blocked"
    allowed = make_http_client(NetSettings(allowed_networks=("127.0.0.0/8",)))
    async with fetcher(client=allowed).fetch(url) as path:
        assert path.read_bytes() == b"ID3abc"
    await allowed.aclose()
