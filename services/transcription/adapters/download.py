"""Streamed download of an enclosure to a temporary file, with size, time and content-type limits. The HTTP
client is injected: in the service it is netguard's SSRF-guarded client, which checks every redirect hop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from podbrief.errors import PermanentError, RetryableError
from podbrief.netguard import raise_for_status

log = logging.getLogger(__name__)

ACCEPT = "audio/*, video/*;q=0.8, application/octet-stream;q=0.5, */*;q=0.1"


class EnclosureFetcher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_bytes: int,
        timeout_s: float,
        allowed_content_types: tuple[str, ...],
        tmp_dir: Path | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.allowed = tuple(t.lower() for t in allowed_content_types)
        self.tmp_dir = tmp_dir
        self.on_bytes = on_bytes

    def _type_ok(self, content_type: str) -> bool:
        if not content_type or not self.allowed:
            return True  # servers that send no type at all are common for audio; PyAV decides
        return any(content_type == t or (t.endswith("/") and content_type.startswith(t)) for t in self.allowed)

    @contextlib.asynccontextmanager
    async def fetch(self, url: str) -> AsyncIterator[Path]:
        """Download `url` to a temporary file that is removed when the block exits."""
        if self.tmp_dir is not None:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="enclosure-", suffix=".bin", dir=self.tmp_dir)
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await self._stream(url, out)
                except TimeoutError as exc:
                    raise RetryableError(
                        f"downloading {url} took longer than {self.timeout_s:.0f}s", reason="timeout"
                    ) from exc
            yield path
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)

    async def _stream(self, url: str, out: Any) -> None:
        try:
            async with self.client.stream("GET", url, headers={"Accept": ACCEPT}) as response:
                raise_for_status(response.status_code, url)
                ctype = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if not self._type_ok(ctype):
                    raise PermanentError(f"{url} is {ctype!r}, not audio or video", reason="bad_content_type")
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise PermanentError(
                        f"{url} is {declared} bytes, over the {self.max_bytes}-byte limit", reason="too_large"
                    )
                total = 0
                async for chunk in response.aiter_bytes():
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise PermanentError(f"{url} is over the {self.max_bytes}-byte limit", reason="too_large")
                    out.write(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(total)
                log.info("enclosure downloaded", extra={"bytes": total, "content_type": ctype})
        except httpx.TimeoutException as exc:
            raise RetryableError(f"timed out fetching {url}", reason="timeout") from exc
        except httpx.TooManyRedirects as exc:
            raise PermanentError(f"too many redirects from {url}", reason="too_many_redirects") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(f"invalid enclosure URL {url!r}: {exc}", reason="invalid_url") from exc
        except httpx.TransportError as exc:
            raise RetryableError(f"cannot fetch {url}: {exc!r}", reason="connect") from exc
