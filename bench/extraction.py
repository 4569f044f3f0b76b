"""Extraction benchmark (`python -m bench.extraction`): one OpenAI-compatible server (the embedded
llama-server with the packaged SmolLM2-135M, started here with `--parallel` slots and continuous batching, or
`--base-url`), fed the same transcript chunks twice:

- the peer: plain sequential calls, one request at a time (httpx, the same request bodies);
- podbrief: the service's path, `Extractor.extract` over every transcript at once through the real
  `LLMClient` with its bounded concurrency (`--concurrency`), grammar-constrained answers, gates and repairs.

The chunks are real transcripts: the labelled extraction eval set and the bundled demo episodes' scripts.
Reports chunks/s, prompt and completion tokens/s (from each response's `usage`) and wall time, and the floor:
the chunks' tokens at the server's own best prompt and generation rates (measured with long requests).
Writes the "extraction" section of bench/results.json and RESULTS.md (`--out-dir`; `--smoke`: one chunk)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from podbrief.events import Segment, Transcript
from podbrief_extraction.adapters.llm import LLMClient, Usage
from podbrief_extraction.eval.run import DATASET
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import ExtractionSettings
from podbrief_run import demo

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = uuid.UUID("5b0d7a52-3f7e-4c0e-9a39-7f3c2f1d6b10")
# Demo scripts carry no timings: speech at about 2.5 words a second.
WORDS_PER_S = 2.5


@dataclass(frozen=True)
class Item:
    key: str
    show: str
    title: str
    transcript: Transcript


def _transcript(segments: list[Segment]) -> Transcript:
    return Transcript(
        text=" ".join(s.text for s in segments), language="en", duration_s=segments[-1].end_s, segments=tuple(segments)
    )


def items() -> list[Item]:
    """The eval set's hand-labelled chunks, then the demo episodes (timed at 2.5 words/s)."""
    out = []
    for it in json.loads(DATASET.read_text())["items"]:
        segs = [Segment.model_validate(s) for s in it["segments"]]
        out.append(Item("eval:" + it["id"], it["show"], it["title"], _transcript(segs)))
    for ep in demo.episodes():
        segs, t = [], 0.0
        for s in ep["segments"]:
            dur = len(s["text"].split()) / WORDS_PER_S
            segs.append(Segment(start_s=round(t, 2), end_s=round(t + dur, 2), text=s["text"], speaker=s["speaker"]))
            t += dur + 0.3
        out.append(Item("demo:" + ep["guid"], ep["show"], ep["title"], _transcript(segs)))
    return out


def request_bodies(extractor: Extractor, chosen: list[Item]) -> list[dict[str, Any]]:
    """Exactly what the service sends for each chunk's select call (prompt, schema, sampling settings)."""
    s = extractor.settings
    bodies = []
    for it in chosen:
        for chunk in extractor.chunks(it.transcript):
            messages, schema, max_tokens = extractor.select_request(chunk, show=it.show, title=it.title)
            body: dict[str, Any] = {
                "model": s.llm.model,
                "messages": messages,
                "temperature": s.llm.temperature,
                "max_tokens": max_tokens,
                "stream": False,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "points", "strict": True, "schema": schema},
                },
            }
            if s.llm.seed is not None:
                body["seed"] = s.llm.seed
            bodies.append(body)
    return bodies


def sequential(base_url: str, bodies: list[dict[str, Any]], timeout_s: float) -> dict[str, Any]:
    """The peer: one request at a time, nothing else."""
    usage, cached = Usage(), 0
    best = {"prompt": 0.0, "gen": 0.0}
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        t0 = time.perf_counter()
        for body in bodies:
            res = client.post("/chat/completions", json=body)
            res.raise_for_status()
            data = res.json()
            u = data.get("usage") or {}
            usage.add(Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), 1))
            cached += _cached(u)
            # The server's own per-request rates (llama-server `timings`), over samples long enough to mean much.
            t = data.get("timings") or {}
            if int(t.get("prompt_n") or 0) >= 64:
                best["prompt"] = max(best["prompt"], float(t.get("prompt_per_second") or 0))
            if int(t.get("predicted_n") or 0) >= 16:
                best["gen"] = max(best["gen"], float(t.get("predicted_per_second") or 0))
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "chunks": len(bodies),
        "usage": usage,
        "insights": None,
        "failed": 0,
        "cached": cached,
        "best_rates": best,
    }


def _cached(usage: dict[str, Any]) -> int:
    """Prompt tokens the server took from its prefix cache instead of evaluating (llama-server, vLLM)."""
    return int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)


class CountingTransport(httpx.AsyncBaseTransport):
    """Reads `usage.prompt_tokens_details.cached_tokens` off every response the real client receives: the
    client's own accounting has no field for it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.cached = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        res = await self.inner.handle_async_request(request)
        body = await res.aread()
        with contextlib.suppress(ValueError, AttributeError):
            self.cached += _cached(json.loads(body).get("usage") or {})
        return httpx.Response(res.status_code, headers=res.headers, content=body, extensions=res.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def concurrent(settings: ExtractionSettings, base_url: str, chosen: list[Item]) -> dict[str, Any]:
    """podbrief: every transcript's select calls through the service's Extractor at once (the calls the peer
    makes too); the client's semaphore bounds requests in flight."""
    counting = CountingTransport()
    async with LLMClient(settings.llm, base_url=base_url, transport=counting) as llm:
        extractor = Extractor(llm, settings)
        t0 = time.perf_counter()
        results = await asyncio.gather(
            *(extractor.select_only(it.transcript, show=it.show, title=it.title) for it in chosen)
        )
        wall = time.perf_counter() - t0
    usage = Usage()
    for r in results:
        usage.add(r.usage)
    return {
        "wall_s": wall,
        "chunks": sum(r.chunks_total for r in results),
        "usage": usage,
        "insights": sum(r.candidates for r in results),
        "failed": sum(r.chunks_failed for r in results),
        "cached": counting.cached,
    }


async def server_rates(
    base_url: str, long_prompt: list[dict[str, str]], gen_tokens: int, streams: int
) -> dict[str, float]:
    """The server's own best rates: prompt processing on the longest chunk's prompt (one token generated), and
    generation with one long free-running completion, then with `streams` of them at once (batched)."""

    async def one(client: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        t0 = time.perf_counter()
        res = await client.post("/chat/completions", json=body)
        res.raise_for_status()
        return time.perf_counter() - t0, res.json()

    story = [{"role": "user", "content": "Write a very long story about a lighthouse keeper and the sea."}]
    gen_body = {"model": "embedded", "messages": story, "max_tokens": gen_tokens, "temperature": 0.7}
    gen_body["ignore_eos"] = True  # llama-server: run to max_tokens, so the rate is measured over all of them
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        # cache_prompt off, so the prefix cache cannot skip the work; the best of three (the machine is shared).
        prompt_rate, prompt_tokens = 0.0, 0
        for _ in range(3):
            pp_wall, pp = await one(
                client, {"model": "embedded", "messages": long_prompt, "max_tokens": 1, "cache_prompt": False}
            )
            timings = pp.get("timings") or {}
            prompt_tokens = int((pp.get("usage") or {}).get("prompt_tokens") or 0)
            prompt_rate = max(prompt_rate, float(timings.get("prompt_per_second") or prompt_tokens / pp_wall))
        wall, single = await one(client, gen_body)
        done = int((single.get("usage") or {}).get("completion_tokens") or 0)
        single_rate = float((single.get("timings") or {}).get("predicted_per_second") or done / wall)
        t0 = time.perf_counter()
        many = await asyncio.gather(*(one(client, {**gen_body, "seed": i}) for i in range(streams)))
        wall = time.perf_counter() - t0
        total = sum(int((m.get("usage") or {}).get("completion_tokens") or 0) for _, m in many)
    return {
        "prompt_tokens_per_s": prompt_rate,
        "prompt_tokens_measured": prompt_tokens,
        "gen_tokens_per_s_one_stream": single_rate,
        f"gen_tokens_per_s_{streams}_streams": total / wall,
        "gen_tokens_per_s_best": max(single_rate, total / wall),
    }


def _row(name: str, r: dict[str, Any]) -> dict[str, Any]:
    u: Usage = r["usage"]
    return {
        "runner": name,
        "chunks": r["chunks"],
        "requests": u.requests,
        "wall_s": round(r["wall_s"], 2),
        "chunks_per_s": round(r["chunks"] / r["wall_s"], 3),
        "prompt_tokens": u.prompt_tokens,
        "prompt_tokens_from_cache": r["cached"],
        "completion_tokens": u.completion_tokens,
        "prompt_tokens_per_s": round(u.prompt_tokens / r["wall_s"], 1),
        "completion_tokens_per_s": round(u.completion_tokens / r["wall_s"], 2),
        "insights_kept": r["insights"] if r["insights"] is not None else "",
        "chunks_failed": r["failed"],
    }


def per_chunk_settings(**overrides: Any) -> ExtractionSettings:
    """The service's settings with the model picking each chunk's points (`candidates=model`, prompt v4): the
    unit of work these benchmarks measure is that call per chunk, which the default (code proposes the
    passages) does not make."""
    return ExtractionSettings(  # type: ignore[call-arg]
        _env_file=None, prompt_version="v4", quality={"candidates": "model"}, **overrides
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    # The small packaged model: this measures the client's concurrency against one server, not model quality.
    settings = per_chunk_settings(model_preset="tiny")
    settings = settings.model_copy(
        update={
            "llm": settings.llm.model_copy(update={"concurrency": args.concurrency}),
            "llama": settings.llama.model_copy(
                update={
                    "parallel": args.parallel,
                    # llama-server splits -c across its slots: each slot keeps the full per-request context.
                    "ctx_size": settings.llm.context_tokens * args.parallel,
                    "threads": args.threads or settings.llama.threads,
                    "binary": REPO_ROOT / settings.llama.binary,
                }
            ),
        }
    )
    all_items = items()
    chosen = all_items[: args.items] if args.items else all_items
    async with LLMClient(settings.llm, base_url="http://unused.invalid/v1") as probe:
        bodies = request_bodies(Extractor(probe, settings), chosen)
    longest = max(bodies, key=lambda b: sum(len(m["content"]) for m in b["messages"]))["messages"]
    if args.smoke:
        longest = longest[:1]  # the system prompt alone: the smoke run checks the harness, not the rate
    # Each part against a freshly started server, so neither inherits the other's prompt cache.
    async with _server(args, settings) as base_url:
        rates = await server_rates(base_url, longest, args.gen_tokens, args.parallel)
    async with _server(args, settings) as base_url:
        seq = await asyncio.to_thread(sequential, base_url, bodies, settings.llm.timeout_s)
    async with _server(args, settings) as base_url:
        conc = await concurrent(settings, base_url, chosen)
    return {"settings": settings, "rates": rates, "sequential": seq, "concurrent": conc, "items": chosen}


@contextlib.asynccontextmanager
async def _server(args: argparse.Namespace, settings: ExtractionSettings) -> AsyncIterator[str]:
    if args.base_url is not None:
        yield args.base_url
        return
    async with EmbeddedLlamaServer(settings.llama) as server:
        # Warm-up on an unrelated prompt: weights paged in, nothing of the measured prompts cached.
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            warm = {"model": "embedded", "messages": [{"role": "user", "content": "Hello."}], "max_tokens": 4}
            (await client.post("/chat/completions", json=warm)).raise_for_status()
        yield server.base_url


def _publish(args: argparse.Namespace, out: dict[str, Any], command: str) -> None:
    from bench.report import Comparison, Floor, update_section

    seq, conc, rates = out["sequential"], out["concurrent"], out["rates"]
    s_row, c_row = _row("sequential calls (peer)", seq), _row("podbrief: Extractor + LLMClient", conc)
    peer = "sequential calls, same server"
    cmp = [
        Comparison(
            "extraction", "chunks per second", "chunks/s", c_row["chunks_per_s"], peer, s_row["chunks_per_s"], "higher"
        ),
        Comparison(
            "extraction",
            "completion tokens per second",
            "tokens/s",
            c_row["completion_tokens_per_s"],
            peer,
            s_row["completion_tokens_per_s"],
            "higher",
        ),
        Comparison(
            "extraction",
            "prompt tokens per second",
            "tokens/s",
            c_row["prompt_tokens_per_s"],
            peer,
            s_row["prompt_tokens_per_s"],
            "higher",
        ),
        Comparison(
            "extraction",
            f"wall time, {conc['chunks']} chunks",
            "s",
            c_row["wall_s"],
            peer,
            s_row["wall_s"],
            "lower",
            note=f"{c_row['requests']} requests (repairs included) vs {s_row['requests']}",
        ),
    ]
    u: Usage = conc["usage"]
    evaluated = u.prompt_tokens - conc["cached"]
    seen = seq["best_rates"]
    prompt_rate = max(rates["prompt_tokens_per_s"], seen["prompt"])
    gen_rate = max(rates["gen_tokens_per_s_best"], seen["gen"])
    floor = evaluated / prompt_rate + u.completion_tokens / gen_rate
    basis = (
        f"the run's {evaluated:,} evaluated prompt tokens ({u.prompt_tokens:,} less {conc['cached']:,} from the "
        f"server's prefix cache) at its best measured prompt rate, {prompt_rate:.0f} tokens/s, + "
        f"{u.completion_tokens:,} completion tokens at its best measured generation rate, {gen_rate:.1f} tokens/s. "
        f"Best of: the longest chunk's prompt alone, 3 times ({rates['prompt_tokens_per_s']:.0f}/s); one long "
        f"free-running completion ({rates['gen_tokens_per_s_one_stream']:.1f}/s); {args.parallel} at once "
        f"({rates[f'gen_tokens_per_s_{args.parallel}_streams']:.1f}/s in all); and the server's own timings of "
        f"each sequential request ({seen['prompt']:.0f}/s prompt, {seen['gen']:.1f}/s generation). Grammar "
        "sampling and HTTP ignored"
    )
    s = out["settings"]
    update_section(
        "extraction",
        title="Extraction: LLM calls",
        command=command,
        comparisons=cmp,
        floors=[Floor("extraction", f"wall time, {conc['chunks']} chunks", "s", c_row["wall_s"], floor, basis)],
        details={"runs": [c_row, s_row], "server rates": [{k: round(v, 2) for k, v in rates.items()}]},
        notes=(
            f"Server: {'llama-server, ' + s.llama.gguf.name if args.base_url is None else args.base_url}, "
            f"{args.parallel} slots (continuous batching), {s.llama.threads} thread(s), {s.llama.ctx_size} context "
            f"tokens. {len(out['items'])} transcripts ({conc['chunks']} chunks: the labelled eval set and the demo "
            f"episodes). podbrief runs them as the service does (prompt {s.prompt_version}, quote-constrained JSON "
            f"schema, gates, one repair round on invalid output) with client concurrency {args.concurrency}; the "
            "peer sends the same request bodies one at a time. Both start on a fresh server. The prompts share "
            "their system prompt, which llama-server keeps in each slot's prefix cache: one-at-a-time calls reuse "
            "it from the previous request in nearly every call, while concurrent calls start on cold slots, so "
            "the peer evaluates fewer prompt tokens (see prompt_tokens_from_cache). With one server thread and "
            "prompt processing dominating the work, concurrency can only win the generation part."
        ),
        extra={"rates": rates, "seen_rates": seen, "parallel": args.parallel, "concurrency": args.concurrency},
        order=30,
        out_dir=args.out_dir,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallel", type=int, default=4, help="llama-server slots (continuous batching)")
    ap.add_argument("--concurrency", type=int, default=None, help="client requests in flight (default: --parallel)")
    ap.add_argument("--threads", type=int, default=0, help="llama-server threads (default: the service's, 1)")
    ap.add_argument("--items", type=int, default=None, help="transcripts to use (default all; 1 with --smoke)")
    ap.add_argument("--gen-tokens", type=int, default=None, help="length of the rate-measuring generations (256)")
    ap.add_argument("--base-url", default=None, help="another OpenAI-compatible server instead of llama-server")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench")
    args = ap.parse_args(argv)
    args.concurrency = args.concurrency or args.parallel
    if args.smoke:
        args.items = args.items or 1
        args.parallel = min(args.parallel, 2)
        args.concurrency = min(args.concurrency, 2)
    args.gen_tokens = args.gen_tokens or (16 if args.smoke else 256)
    out = asyncio.run(run(args))
    _publish(args, out, "python -m bench.extraction " + " ".join(argv if argv is not None else sys.argv[1:]))
    for name, r in (("sequential", out["sequential"]), ("podbrief", out["concurrent"])):
        sys.stdout.write(json.dumps(_row(name, r)) + "\n")
    sys.stdout.write(json.dumps({k: round(v, 2) for k, v in out["rates"].items()}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
