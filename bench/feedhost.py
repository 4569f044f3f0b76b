"""Feed hosts for the ingest benchmark, in a process of their own (as real hosts are: their CPU is not the
crawler's).

One asyncio HTTP/1.1 server listens on `--hosts` loopback addresses (127.1.0.1, 127.1.0.2, ...), so a
crawler sees that many hosts and its per-host politeness applies to each. Feed `n` lives at
`http://<host n % hosts>:<port>/f/<n>.xml`; the first `--changed` feeds have a new version (ETag "v2", new
items), the rest answer 304 to `If-None-Match: "v1"`. Every answer waits `--latency-ms` first, as a distant
host does. The server counts requests and the most requests in flight at once per host, and answers
`GET /stats` with them (JSON). It prints `ready` on stdout once it listens.

    python -m bench.feedhost --hosts 200 --port 18300 --changed 100 --items 5 --latency-ms 100"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

FIRST_HOST = (127, 1, 0, 1)


def host_address(index: int) -> str:
    """The loopback address of host `index` (0-based): 127.1.0.1, ..., 127.1.0.254, 127.1.1.1, ..."""
    a, b, c, d = FIRST_HOST
    return f"{a}.{b}.{c + index // 254}.{d + index % 254}"


def feed_url(n: int, hosts: int, port: int) -> str:
    return f"http://{host_address(n % hosts)}:{port}/f/{n}.xml"


def feed_document(n: int, items: int, version: int) -> bytes:
    """Feed `n` at `version`: `items` episodes, newest last, ids and dates that change with the version."""
    base = datetime(2026, 1, 1, tzinfo=UTC)
    entries = "".join(
        f"<item><title>Feed {n} episode {i}</title><guid>f{n}-v{version}-e{i}</guid>"
        f"<pubDate>{format_datetime(base + timedelta(days=i, hours=version))}</pubDate>"
        f'<enclosure url="https://cdn.example.com/{n}/{version}/{i}.mp3" length="1" type="audio/mpeg"/>'
        "</item>"
        for i in range(items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
        f"<link>https://example.com/{n}</link>{entries}</channel></rss>"
    ).encode()


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.not_modified = 0
        self.in_flight: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def started(self, host: str) -> None:
        self.requests += 1
        now = self.in_flight.get(host, 0) + 1
        self.in_flight[host] = now
        if now > self.peak.get(host, 0):
            self.peak[host] = now

    def finished(self, host: str) -> None:
        self.in_flight[host] -= 1

    def as_json(self) -> bytes:
        peaks = sorted(self.peak.values())
        return json.dumps(
            {
                "requests": self.requests,
                "not_modified": self.not_modified,
                "hosts_seen": len(self.peak),
                "max_in_flight_per_host": peaks[-1] if peaks else 0,
            }
        ).encode()


class FeedHost(asyncio.Protocol):
    def __init__(self, args: argparse.Namespace, stats: Stats, bodies: dict[int, bytes]) -> None:
        self.args, self.stats, self.bodies = args, stats, bodies
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.host = str(transport.get_extra_info("sockname")[0])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else "/"
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            if path == "/stats":
                self._send(200, {"Content-Type": "application/json"}, self.stats.as_json())
                continue
            self.stats.started(self.host)
            delay = self.args.latency_ms / 1000
            if delay:
                asyncio.get_running_loop().call_later(delay, self._answer, path, headers)
            else:
                self._answer(path, headers)

    def _answer(self, path: str, headers: dict[str, str]) -> None:
        self.stats.finished(self.host)
        try:
            n = int(path.rsplit("/", 1)[-1].split(".", 1)[0])
        except ValueError:
            self._send(404, {}, b"not found")
            return
        version = 2 if n < self.args.changed else 1
        etag = f'"v{version}"'
        if headers.get("if-none-match") == etag:
            self.stats.not_modified += 1
            self._send(304, {"ETag": etag}, b"")
            return
        body = self.bodies.get(n)
        if body is None:
            body = self.bodies[n] = feed_document(n, self.args.items, version)
        self._send(200, {"ETag": etag, "Content-Type": "application/rss+xml"}, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = {200: "OK", 304: "Not Modified", 404: "Not Found"}[status]
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


async def serve(args: argparse.Namespace) -> None:
    stats = Stats()
    bodies: dict[int, bytes] = {}
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(
            lambda: FeedHost(args, stats, bodies), host_address(i), args.port, backlog=4096, reuse_address=True
        )
        for i in range(args.hosts)
    ]
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--changed", type=int, default=0, help="feeds 0..N-1 have a new version")
    ap.add_argument("--items", type=int, default=5)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
