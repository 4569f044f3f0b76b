"""Ingest benchmark (`make bench-ingest`, i.e. `python -m bench.ingest`): the crawler beside a sequential
httpx + feedparser loop, in two scenarios, against feed hosts running in a process of their own
(bench/feedhost.py), so each figure is the client's own CPU and the hosts' is in neither.

- fast: 10,000 feeds on one loopback host that answers at once; 1% changed (new items, new ETag), the rest
  answer 304 Not Modified. What one poll costs the poller: CPU seconds per 1,000 polls.
- slow: 10,000 feeds spread over 200 hosts that answer each request after 100 ms, as distant hosts do; 1%
  changed. How fast polling goes when the network, not the CPU, sets the pace. The crawler runs with its
  configured per-host politeness (INGEST_PER_HOST_CONCURRENCY, default 2) and the hosts count the most
  requests they ever had in flight from it. At ~0.1 s a feed the sequential loop would need 17 minutes for
  10,000, so it polls a sample (`--peer-sample`, default 300 feeds, spread over the hosts) and its rate is
  compared; its 10,000-feed time is that rate extrapolated, and says so. Here the best simple alternative is
  concurrent, so a second peer polls all the feeds: the same loop on asyncio and httpx's async client, with the
  crawler's own limits per host and in flight.

The crawler runs as the service does (SQLite state, SSRF guard with loopback allowed, in-memory bus), with
its feeds registered as if polled before (validators stored, back catalogue done). The peer keeps ETags in a
dict, parses changed feeds with feedparser, stores nothing and has no guard. The floor is what no poller
can go under on this machine, measured here: one HTTP exchange per poll on a kept-alive connection with no
HTTP library at all (raw socket send and receive), plus one expat parse per changed feed.

Writes the "ingest" section of bench/results.json and RESULTS.md (`--out-dir` elsewhere); `--smoke` runs
tiny sizes; `--profile FILE` writes a pyinstrument profile of the crawler's fast-scenario run."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from xml.etree import ElementTree

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
from podbrief_testing import free_port
from pydantic import SecretStr

from bench.feedhost import feed_document, feed_url, host_address
from bench.report import DEFAULT_DIR, MEASURED, Comparison, Floor, update_section

PEER = "sequential httpx + feedparser loop"
# Where the network sets the pace, the simple alternative a competent engineer would write is concurrent: the same
# loop on asyncio with httpx's async client, holding the crawler's own per-host and total limits.
CONCURRENT_PEER = "concurrent httpx + feedparser loop (asyncio, same limits)"


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    feeds: int
    hosts: int
    latency_ms: float
    peer_sample: int  # feeds the peer polls (all of them when >= feeds)

    @property
    def changed(self) -> int:
        return max(1, self.feeds // 100)


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    if args.smoke:
        return [
            Scenario("fast", "1 host, no latency", 300, 1, 0, 300),
            Scenario("slow", "20 hosts, 20 ms", 300, 20, 20, 40),
        ]
    return [
        Scenario("fast", "1 host, no latency", args.feeds, 1, 0, args.feeds),
        Scenario(
            "slow",
            f"{args.hosts} hosts, {args.latency_ms:g} ms",
            args.feeds,
            args.hosts,
            args.latency_ms,
            args.peer_sample,
        ),
    ]


class FeedHosts:
    """bench.feedhost in a subprocess, for one runner."""

    def __init__(self, s: Scenario, items: int) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.feedhost",
                f"--hosts={s.hosts}",
                f"--port={self.port}",
                f"--changed={s.changed}",
                f"--items={items}",
                f"--latency-ms={s.latency_ms}",
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("bench.feedhost did not start")
        self.urls = [feed_url(n, s.hosts, self.port) for n in range(s.feeds)]

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"http://{host_address(0)}:{self.port}/stats", timeout=10).json()
        return data

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def _crawl(urls: list[str], profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = IngestSettings(
            _env_file=None,  # type: ignore[call-arg]
            db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp}/bench.db")),
            net=NetSettings(allowed_networks=("127.0.0.0/8",)),
            bus=BusSettings(kind="memory"),
            poll_enabled=False,
        )
        transport = MemoryTransport()
        await transport.start()
        ctx = ServiceContext("ingest", settings, Bus(transport, settings.bus), new_registry())
        async with build_deps(ctx) as deps:
            now = datetime.now(UTC)
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
            profiler = _profiler(profile)
            wall, cpu = time.perf_counter(), time.process_time()
            report = await deps.crawler.poll_all()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            profile_text = None
            if profiler is not None:
                profiler.stop()
                profile_text = profiler.output_text(unicode=True, color=False)
        await transport.stop()
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "polled": len(urls),
        "report": vars(report),
        "per_host": settings.per_host_concurrency,
        "in_flight": settings.max_concurrent_polls,
        "profile": profile_text,
    }


def _profiler(wanted: bool) -> Any:
    if not wanted:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="enabled")
    profiler.start()
    return profiler


def _sample(urls: list[str], n: int) -> list[str]:
    """`n` feeds spread evenly over the list (so over every host)."""
    if n >= len(urls):
        return list(urls)
    step = len(urls) / n
    return [urls[int(i * step)] for i in range(n)]


def _sequential(urls: list[str]) -> dict[str, Any]:
    etags: dict[str, str] = {u: '"v1"' for u in urls}
    parsed = not_modified = entries = 0
    wall, cpu = time.perf_counter(), time.process_time()
    with httpx.Client(timeout=30) as client:
        for u in urls:
            res = client.get(u, headers={"If-None-Match": etags[u]})
            if res.status_code == 304:
                not_modified += 1
                continue
            etags[u] = res.headers.get("etag", "")
            entries += len(feedparser.parse(res.content).entries)
            parsed += 1
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "polled": len(urls), "parsed": parsed, "not_modified": not_modified}


async def _concurrent(urls: list[str], per_host: int, in_flight: int) -> dict[str, Any]:
    etags: dict[str, str] = {u: '"v1"' for u in urls}
    counts = {"parsed": 0, "not_modified": 0}
    total = asyncio.Semaphore(in_flight)
    hosts: dict[str, asyncio.Semaphore] = {}
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    wall, cpu = time.perf_counter(), time.process_time()
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def poll(u: str) -> None:
            host = hosts.setdefault(httpx.URL(u).netloc.decode(), asyncio.Semaphore(per_host))
            async with total, host:
                res = await client.get(u, headers={"If-None-Match": etags[u]})
            if res.status_code == 304:
                counts["not_modified"] += 1
                return
            etags[u] = res.headers.get("etag", "")
            feedparser.parse(res.content)
            counts["parsed"] += 1

        await asyncio.gather(*(poll(u) for u in urls))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "polled": len(urls), **counts, "per_host": per_host, "in_flight": in_flight}


def _raw_exchange_cpu(port: int, n: int = 3000) -> float:
    """CPU seconds this process spends on one conditional GET answered 304 on a kept-alive connection, with no
    HTTP library: send the request bytes, read the response bytes. No poller can spend less per poll."""
    host = host_address(0)
    with socket.create_connection((host, port)) as sock:

        def exchange(i: int) -> None:
            sock.sendall(f'GET /f/{i}.xml HTTP/1.1\r\nHost: {host}:{port}\r\nIf-None-Match: "v1"\r\n\r\n'.encode())
            got = b""
            while not got.endswith(b"\r\n\r\n"):
                got += sock.recv(4096)

        for i in range(200):
            exchange(i + 10_000)
        cpu = time.process_time()
        for i in range(n):
            exchange(i + 10_000)
        return (time.process_time() - cpu) / n


def _floor(s: Scenario, items: int, exchange_s: float) -> tuple[float, str]:
    body = feed_document(0, items, 2)
    parse_s = min(_timed(lambda: ElementTree.fromstring(body)) for _ in range(20))
    per_k = 1000 / s.feeds
    floor = (s.feeds * exchange_s + s.changed * parse_s) * per_k
    basis = (
        f"per poll, one conditional GET on a kept-alive loopback connection done with raw socket calls and no "
        f"HTTP library ({exchange_s * 1e6:.0f} µs of CPU here), plus per changed feed ({s.changed} of "
        f"{s.feeds}) one expat parse of its {len(body):,}-byte document ({parse_s * 1e6:.0f} µs); per 1,000 polls"
    )
    return floor, basis


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_scenario(s: Scenario, args: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    hosts = FeedHosts(s, args.items)
    try:
        sample = _sample(hosts.urls, s.peer_sample)
        peer = _sequential(sample)
        exchange_s = _raw_exchange_cpu(hosts.port) if s.latency_ms == 0 else None
    finally:
        hosts.stop()
    hosts = FeedHosts(s, args.items)
    try:
        crawler = asyncio.run(_crawl(hosts.urls, profile is not None))
        crawler["hosts"] = hosts.stats()
        text = crawler.pop("profile")
        if profile is not None and text:
            profile.parent.mkdir(parents=True, exist_ok=True)
            profile.write_text(text)
    finally:
        hosts.stop()
    runs = [crawler, peer]
    concurrent = None
    if s.latency_ms > 0:
        hosts = FeedHosts(s, args.items)
        try:
            concurrent = asyncio.run(_concurrent(hosts.urls, crawler["per_host"], crawler["in_flight"]))
            concurrent["hosts"] = hosts.stats()
        finally:
            hosts.stop()
        runs.append(concurrent)
    for r in runs:
        r["feeds_per_s"] = r["polled"] / r["wall_s"]
        r["cpu_s_per_1000_polls"] = r["cpu_s"] * 1000 / r["polled"]
        r["seconds_for_all"] = s.feeds / r["feeds_per_s"]
    out: dict[str, Any] = {"scenario": s.__dict__ | {"changed": s.changed}, "crawler": crawler, "peer": peer}
    if concurrent is not None:
        out["peer_concurrent"] = concurrent
    if exchange_s is not None:
        out["floor"] = _floor(s, args.items, exchange_s)
    return out


def _targets(fast: dict[str, Any], slow: dict[str, Any], s: Scenario) -> list[tuple[str, bool, str]]:
    cpu_ratio = fast["crawler"]["cpu_s_per_1000_polls"] / fast["peer"]["cpu_s_per_1000_polls"]
    speedup = slow["crawler"]["feeds_per_s"] / slow["peer"]["feeds_per_s"]
    peak = slow["crawler"]["hosts"]["max_in_flight_per_host"]
    return [
        ("CPU per 1,000 polls at most 2x the peer's (fast)", cpu_ratio <= 2, f"{cpu_ratio:.2f}x"),
        ("at least 20x the peer's feeds/s (slow)", speedup >= 20, f"{speedup:.1f}x"),
        (
            f"{s.feeds:,} feeds in under 60 s (slow)",
            slow["crawler"]["wall_s"] < 60,
            f"{slow['crawler']['wall_s']:.1f} s",
        ),
        (
            "per-host politeness kept (slow)",
            peak <= slow["crawler"]["per_host"],
            f"at most {peak} in flight per host (limit {slow['crawler']['per_host']})",
        ),
    ]


def _publish(args: argparse.Namespace, results: dict[str, dict[str, Any]], command: str, load: dict[str, Any]) -> None:
    fast, slow = results["fast"], results["slow"]
    fs, ss = Scenario(**_fields(fast["scenario"])), Scenario(**_fields(slow["scenario"]))
    extrapolated = ss.peer_sample < ss.feeds

    def compare(
        r: dict[str, Any], field: str, metric: str, unit: str, better: str, note: str = "", basis: str = MEASURED
    ) -> Comparison:
        return Comparison(
            "ingest",
            metric,
            unit,
            r["crawler"][field],
            PEER,
            r["peer"][field],
            better,
            note=note,
            peer_basis=basis,  # type: ignore[arg-type]
        )

    sampled = f"peer measured on {ss.peer_sample} of the {ss.feeds:,} feeds" if extrapolated else ""
    comparisons = [
        compare(
            fast,
            "cpu_s_per_1000_polls",
            f"CPU per 1,000 polls ({fs.label})",
            "CPU s",
            "lower",
            "each process's own CPU; the feed host runs in another process",
        ),
        compare(fast, "feeds_per_s", f"feeds polled per second ({fs.label})", "feeds/s", "higher"),
        compare(slow, "feeds_per_s", f"feeds polled per second ({ss.label})", "feeds/s", "higher", sampled),
        compare(
            slow,
            "seconds_for_all",
            f"time to poll {ss.feeds:,} feeds ({ss.label})",
            "s",
            "lower",
            "peer extrapolated from its rate on the sample" if extrapolated else "",
            f"extrapolated from its rate on {ss.peer_sample:,} of the {ss.feeds:,} feeds" if extrapolated else MEASURED,
        ),
        compare(slow, "cpu_s_per_1000_polls", f"CPU per 1,000 polls ({ss.label})", "CPU s", "lower", sampled),
    ]
    conc = slow.get("peer_concurrent")
    if conc is not None:
        limits = f"at most {conc['per_host']} per host and {conc['in_flight']} in flight, as the crawler"
        for field, metric, unit, better in (
            ("feeds_per_s", f"feeds polled per second ({ss.label})", "feeds/s", "higher"),
            ("cpu_s_per_1000_polls", f"CPU per 1,000 polls ({ss.label})", "CPU s", "lower"),
        ):
            comparisons.append(
                Comparison(
                    "ingest",
                    metric,
                    unit,
                    slow["crawler"][field],
                    CONCURRENT_PEER,
                    conc[field],
                    better,  # type: ignore[arg-type]
                    note=f"peer polled all {conc['polled']:,} feeds, {limits}",
                )
            )
    floor, basis = fast["floor"]
    floors = [
        Floor(
            "ingest",
            f"CPU per 1,000 polls ({fs.label})",
            "CPU s",
            fast["crawler"]["cpu_s_per_1000_polls"],
            floor,
            basis,
        )
    ]
    rows = []
    for key, r in results.items():
        runners = [("podbrief crawler", r["crawler"]), (PEER, r["peer"])]
        if "peer_concurrent" in r:
            runners.append((CONCURRENT_PEER, r["peer_concurrent"]))
        for name, run in runners:
            rows.append(
                {
                    "scenario": key,
                    "runner": name,
                    "feeds polled": run["polled"],
                    "wall_s": round(run["wall_s"], 2),
                    "cpu_s": round(run["cpu_s"], 2),
                    "feeds_per_s": round(run["feeds_per_s"], 1),
                    "cpu_s_per_1000_polls": round(run["cpu_s_per_1000_polls"], 3),
                }
            )
    targets = _targets(fast, slow, ss)
    notes = (
        f"Feed hosts in their own process (bench/feedhost.py); {fs.changed:,} of {fs.feeds:,} feeds changed in each "
        f"scenario, the rest answer 304. The crawler: SQLite state, SSRF guard, in-memory bus, per-host "
        f"concurrency {slow['crawler']['per_host']} and {slow['crawler']['in_flight']} polls in flight (its "
        f"defaults); in the slow scenario the hosts saw at most {slow['crawler']['hosts']['max_in_flight_per_host']} "
        f"of its requests in flight per host. The peer keeps ETags in a dict, parses changed feeds with feedparser, "
        f"stores nothing and has no guard. Targets: "
        + "; ".join(f"{name}: {'met' if ok else 'NOT met'} ({how})" for name, ok, how in targets)
        + f". Load average (1/5/15 min) before: {load['before']}, after: {load['after']}."
    )
    headline = [
        (
            f"ingest, CPU per 1,000 polls ({fs.label})",
            f"{fast['crawler']['cpu_s_per_1000_polls']:.3f} CPU s vs {fast['peer']['cpu_s_per_1000_polls']:.3f} for "
            f"a {PEER} (both measured)",
        )
    ]
    if conc is not None:
        headline.append(
            (
                f"ingest, {ss.feeds:,} feeds ({ss.label})",
                f"{slow['crawler']['feeds_per_s']:,.0f} feeds/s vs {conc['feeds_per_s']:,.0f} for a {CONCURRENT_PEER} "
                "(both measured on every feed)",
            )
        )
    update_section(
        "ingest",
        title="Ingest: polling feeds",
        headline=headline,
        command=command,
        order=10,
        out_dir=args.out_dir,
        comparisons=comparisons,
        floors=floors,
        details={"runs": rows},
        notes=notes,
        extra={
            "results": results,
            "targets": [{"target": n, "met": ok, "measured": how} for n, ok, how in targets],
            "load_average": load,
        },
    )


def _fields(d: dict[str, Any]) -> dict[str, Any]:
    return {k: d[k] for k in ("key", "label", "feeds", "hosts", "latency_ms", "peer_sample")}


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=10_000, help="feeds per scenario")
    ap.add_argument("--hosts", type=int, default=200, help="hosts in the slow scenario")
    ap.add_argument("--latency-ms", type=float, default=100.0, help="each answer's delay in the slow scenario")
    ap.add_argument("--peer-sample", type=int, default=300, help="feeds the sequential loop polls in the slow scenario")
    ap.add_argument("--items", type=int, default=5, help="items per feed document")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_DIR, help="where results.json and RESULTS.md go")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    ap.add_argument("--profile", type=Path, default=None, help="write a pyinstrument profile of the fast crawl here")
    args = ap.parse_args(argv)
    load = {"before": _load()}
    results: dict[str, dict[str, Any]] = {}
    for s in scenarios(args):
        results[s.key] = run_scenario(s, args, args.profile if s.key == "fast" else None)
        c, p = results[s.key]["crawler"], results[s.key]["peer"]
        sys.stderr.write(
            f"{s.key:5s} crawler: {c['feeds_per_s']:8.1f} feeds/s {c['cpu_s_per_1000_polls']:6.3f} CPU s/1000 polls "
            f"({c['wall_s']:.1f} s for {c['polled']:,}; emitted {c['report']['episodes_emitted']}, 304s "
            f"{c['report']['not_modified']}, failed {c['report']['failed']}; max in flight per host "
            f"{c['hosts']['max_in_flight_per_host']})\n"
            f"{s.key:5s} peer   : {p['feeds_per_s']:8.1f} feeds/s {p['cpu_s_per_1000_polls']:6.3f} CPU s/1000 polls "
            f"({p['wall_s']:.1f} s for {p['polled']:,})\n"
        )
        if "peer_concurrent" in results[s.key]:
            q = results[s.key]["peer_concurrent"]
            sys.stderr.write(
                f"{s.key:5s} peer, concurrent: {q['feeds_per_s']:8.1f} feeds/s {q['cpu_s_per_1000_polls']:6.3f} CPU "
                f"s/1000 polls ({q['wall_s']:.1f} s for {q['polled']:,}; max in flight per host "
                f"{q['hosts']['max_in_flight_per_host']})\n"
            )
    load["after"] = _load()
    text = orjson.dumps({"run_id": uuid.uuid4().hex[:8], **results}, option=orjson.OPT_INDENT_2).decode()
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text)
    command = "python -m bench.ingest " + " ".join(argv if argv is not None else sys.argv[1:])
    _publish(args, results, command.strip(), load)
    for name, ok, how in _targets(results["fast"], results["slow"], Scenario(**_fields(results["slow"]["scenario"]))):
        sys.stderr.write(f"target {'met    ' if ok else 'NOT MET'} {name}: {how}\n")
    floor, basis = results["fast"]["floor"]
    sys.stderr.write(f"floor: {floor:.4f} CPU s/1000 polls ({basis})\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
