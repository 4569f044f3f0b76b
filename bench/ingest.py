"""Ingest benchmark (`make bench-ingest`, i.e. `python -m bench.ingest`).

A loopback server with N feeds, most answering 304 Not Modified and a share (`--changed-ratio`) serving
new items. Reports feeds per second and CPU seconds per 1,000 polls for the crawler (SQLite, in-memory bus)
beside a plain sequential httpx+feedparser loop measured in the same run. The loopback server runs in this
process, so its CPU is in both figures alike. Writes the "ingest" section of bench/results.json and
bench/RESULTS.md (`--out-dir` elsewhere); `--smoke` runs 200 feeds."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, cast

import feedparser
import httpx
import orjson
import sqlalchemy as sa
from podbrief.bus import Bus, MemoryTransport
from podbrief.events.ids import feed_id
from podbrief.metrics import new_registry
from podbrief.service import ServiceContext
from podbrief.settings import BusSettings, DatabaseSettings, NetSettings
from podbrief_ingest.app import build_deps
from podbrief_ingest.models import Feed
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer
from pydantic import SecretStr

from bench.floors import loopback_gbps
from bench.report import DEFAULT_DIR, Comparison, Floor, update_section


def _feed(n: int, items: int, version: int) -> bytes:
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


def _serve(server: LoopbackServer, feeds: int, changed: int, items: int) -> list[str]:
    urls = []
    for n in range(feeds):
        # Changed feeds carry a new validator and new items; the rest answer 304 to the stored ETag.
        version = 2 if n < changed else 1
        urls.append(
            server.add(
                f"/f/{n}.xml",
                _feed(n, items, version),
                "application/rss+xml",
                headers={"ETag": f'"v{version}"'},
            )
        )
    return urls


async def _crawler_run(urls: list[str], per_host: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = IngestSettings(
            db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp}/bench.db")),
            net=NetSettings(allowed_networks=("127.0.0.0/8",)),
            bus=BusSettings(kind="memory"),
            poll_enabled=False,
            per_host_concurrency=per_host,
            max_concurrent_polls=max(per_host, 64),
        )
        transport = MemoryTransport()
        await transport.start()
        ctx = ServiceContext("ingest", settings, Bus(transport, settings.bus), new_registry())
        async with build_deps(ctx) as deps:
            now = datetime.now(UTC)
            # Registered as if polled before: validators stored, back catalogue done.
            rows = [
                {
                    "id": feed_id(u),
                    "source_url": u,
                    "url": u,
                    "status": "active",
                    "locked": False,
                    "meta": {},
                    "moved_from": [],
                    "backfilled": True,
                    "poll_interval_s": 1800.0,
                    "next_poll_at": now,
                    "error_count": 0,
                    "polls": 0,
                    "not_modified_count": 0,
                    "etag": '"v1"',
                    "created_at": now,
                    "updated_at": now,
                }
                for u in urls
            ]
            async with deps.engine.begin() as conn:
                # A declarative model's __table__ is its Table (typed only as FromClause).
                await conn.execute(sa.insert(cast(sa.Table, Feed.__table__)), rows)
            wall, cpu = time.perf_counter(), time.process_time()
            report = await deps.crawler.poll_all()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await transport.stop()
    return {"wall_s": wall, "cpu_s": cpu, "report": vars(report)}


def _baseline(urls: list[str]) -> dict[str, Any]:
    etags: dict[str, str] = {u: '"v1"' for u in urls}
    parsed = not_modified = entries = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with httpx.Client(timeout=30) as client:
        for u in urls:
            res = client.get(u, headers={"If-None-Match": etags[u]})
            if res.status_code == 304:
                not_modified += 1
                continue
            entries += len(feedparser.parse(res.content).entries)
            parsed += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "parsed": parsed, "not_modified": not_modified, "entries": entries}


def _floor(body: bytes, feeds: int, changed: int, per_k: float) -> tuple[float, str]:
    """CPU seconds per 1,000 polls that no crawler can beat here: every changed feed parsed once by feedparser
    (measured alone, best of 5) plus every byte of every exchange moved over loopback (measured bandwidth)."""
    parse_s = min(_timed(lambda: feedparser.parse(body)) for _ in range(5))
    gbps = loopback_gbps(32)
    exchanged = changed * (len(body) + HEADER_BYTES) + (feeds - changed) * HEADER_BYTES
    floor = (changed * parse_s + exchanged / (gbps * 1e9)) * per_k
    basis = (
        f"{changed} changed feeds x feedparser {parse_s * 1e3:.2f} ms each (measured alone) + "
        f"{exchanged / 1e6:.2f} MB exchanged (bodies + ~{HEADER_BYTES} B of headers per poll) at "
        f"{gbps:.2f} GB/s loopback, per 1,000 polls"
    )
    return floor, basis


# Request and response headers of one conditional GET, roughly (a 304 has no body).
HEADER_BYTES = 400


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _publish(args: argparse.Namespace, result: dict[str, Any], floor: tuple[float, str], command: str) -> None:
    c, b = result["crawler"], result["baseline_sequential_httpx_feedparser"]
    peer = "sequential httpx + feedparser loop"
    report = c["report"]
    update_section(
        "ingest",
        title="Ingest: polling feeds",
        command=command,
        order=10,
        out_dir=args.out_dir,
        comparisons=[
            Comparison(
                "ingest", "feeds polled per second", "feeds/s", c["feeds_per_s"], peer, b["feeds_per_s"], "higher"
            ),
            Comparison(
                "ingest",
                "CPU per 1,000 polls",
                "CPU s",
                c["cpu_s_per_1000_polls"],
                peer,
                b["cpu_s_per_1000_polls"],
                "lower",
                note="loopback server in-process: its CPU is in both figures",
            ),
        ],
        floors=[Floor("ingest", "CPU per 1,000 polls", "CPU s", c["cpu_s_per_1000_polls"], floor[0], floor[1])],
        details={
            "runs": [
                {
                    "runner": name,
                    "feeds": result["feeds"],
                    "changed": result["changed"],
                    "wall_s": round(r["wall_s"], 2),
                    "cpu_s": round(r["cpu_s"], 2),
                    "feeds_per_s": round(r["feeds_per_s"], 1),
                    "cpu_s_per_1000_polls": round(r["cpu_s_per_1000_polls"], 3),
                }
                for name, r in (("podbrief crawler", c), (peer, b))
            ]
        },
        notes=(
            f"{result['feeds']:,} feeds on one loopback host, {result['changed']:,} changed (new items, new ETag), "
            f"the rest answering 304 Not Modified. The crawler (per-host concurrency {args.per_host}, SQLite "
            f"state, SSRF guard, in-memory bus) emitted {report.get('episodes_emitted')} episodes and saw "
            f"{report.get('not_modified')} 304s; the peer keeps ETags in a dict, stores nothing and has no guard."
        ),
        extra={"feeds": result["feeds"], "changed": result["changed"], "crawler_report": report},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--feeds", type=int, default=None, help="feeds to poll (default 10,000; 200 with --smoke)")
    ap.add_argument("--changed-ratio", type=float, default=0.01)
    ap.add_argument("--items", type=int, default=5, help="items per feed document")
    ap.add_argument(
        "--per-host",
        type=int,
        default=32,
        help="per-host concurrency (every bench feed shares the one loopback host)",
    )
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_DIR, help="where results.json and RESULTS.md go")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    if args.feeds is None:
        args.feeds = 200 if args.smoke else 10_000
    changed = max(1, int(args.feeds * args.changed_ratio))
    server = LoopbackServer().start()
    try:
        urls = _serve(server, args.feeds, changed, args.items)
        baseline = _baseline(urls)
        crawler = asyncio.run(_crawler_run(urls, args.per_host))
    finally:
        server.stop()
    per_k = 1000 / args.feeds
    result = {
        "run_id": uuid.uuid4().hex[:8],
        "feeds": args.feeds,
        "changed": changed,
        "crawler": {
            "feeds_per_s": args.feeds / crawler["wall_s"],
            "cpu_s_per_1000_polls": crawler["cpu_s"] * per_k,
            **crawler,
        },
        "baseline_sequential_httpx_feedparser": {
            "feeds_per_s": args.feeds / baseline["wall_s"],
            "cpu_s_per_1000_polls": baseline["cpu_s"] * per_k,
            **baseline,
        },
    }
    floor = _floor(_feed(0, args.items, 2), args.feeds, changed, per_k)
    text = orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text)
    command = "python -m bench.ingest " + " ".join(argv if argv is not None else sys.argv[1:])
    _publish(args, result, floor, command.strip())
    c, b = result["crawler"], result["baseline_sequential_httpx_feedparser"]
    sys.stderr.write(
        f"crawler : {c['feeds_per_s']:8.1f} feeds/s  {c['cpu_s_per_1000_polls']:6.2f} CPU s/1000 polls "
        f"(emitted {crawler['report']['episodes_emitted']}, 304s {crawler['report']['not_modified']})\n"
        f"baseline: {b['feeds_per_s']:8.1f} feeds/s  {b['cpu_s_per_1000_polls']:6.2f} CPU s/1000 polls "
        "(sequential httpx + feedparser, no storage, no SSRF guard)\n"
        f"floor   : {floor[0]:8.4f} CPU s/1000 polls ({floor[1]})\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
