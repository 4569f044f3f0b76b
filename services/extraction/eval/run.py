"""Precision and recall of extraction on the labelled set, for the configured endpoint or the embedded model.

    python -m podbrief_extraction.eval.run [--base-url http://vllm:8000/v1 --model Qwen/Qwen2.5-7B-Instruct]

A kept insight is correct when its quote covers at least half of an expected insight's quote (or the other way
round); precision = correct kept / kept, recall = expected insights found / expected. Every kept insight has
already passed the grounding and specificity gates, so precision measures whether the model picked passages a
careful reader would keep."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from podbrief.events import Segment, Transcript
from podbrief.events.ids import NAMESPACE
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.grounding import norm_tokens
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.settings import ExtractionSettings

DATASET = Path(__file__).parent / "dataset.json"


def covers(found: str, expected: str) -> bool:
    a, b = norm_tokens(found), norm_tokens(expected)
    if not a or not b:
        return False
    common = len(set(a) & set(b))
    return common / len(set(b)) >= 0.5 or common / len(set(a)) >= 0.8


async def evaluate(settings: ExtractionSettings, base_url: str, data: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    kept_total = correct_total = expected_total = found_total = 0
    tokens_out = 0
    started = time.perf_counter()
    async with LLMClient(settings.llm, base_url=base_url) as llm:
        extractor = Extractor(llm, settings)
        for item in data["items"]:
            segs = tuple(Segment.model_validate(s) for s in item["segments"])
            t = Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=segs[-1].end_s, segments=segs)
            result = await extractor.extract(
                t,
                episode_id=uuid.uuid5(NAMESPACE, "eval:" + item["id"]),
                show=item["show"],
                title=item["title"],
            )
            tokens_out += result.usage.completion_tokens
            expected = [e["quote"] for e in item["expected"]]
            correct = sum(1 for i in result.insights if any(covers(i.quote, e) for e in expected))
            found = sum(1 for e in expected if any(covers(i.quote, e) for i in result.insights))
            kept_total += len(result.insights)
            correct_total += correct
            expected_total += len(expected)
            found_total += found
            rows.append(
                {
                    "id": item["id"],
                    "kept": len(result.insights),
                    "correct": correct,
                    "expected": len(expected),
                    "found": found,
                    "chunks_failed": result.chunks_failed,
                    "dropped": dict(result.dropped),
                    "insights": [{"text": i.text, "quote": i.quote} for i in result.insights],
                }
            )
    elapsed = time.perf_counter() - started
    return {
        "model": settings.llm.model,
        "endpoint": base_url,
        "prompt_version": f"insights_{settings.prompt_version}",
        "precision": round(correct_total / kept_total, 3) if kept_total else None,
        "recall": round(found_total / expected_total, 3) if expected_total else None,
        "kept": kept_total,
        "correct": correct_total,
        "expected": expected_total,
        "found": found_total,
        "seconds": round(elapsed, 1),
        "completion_tokens": tokens_out,
        "items": rows,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = ExtractionSettings()
    updates = {k: v for k, v in (("base_url", args.base_url), ("model", args.model)) if v}
    if updates:
        settings = settings.model_copy(update={"llm": settings.llm.model_copy(update=updates)})
    data = json.loads(DATASET.read_text())
    if settings.llm.base_url:
        return await evaluate(settings, settings.llm.base_url, data)
    async with EmbeddedLlamaServer(settings.llama) as server:
        return await evaluate(settings, server.base_url, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--base-url",
        help="OpenAI-compatible endpoint (default: EXTRACTION_LLM__BASE_URL, else the embedded CPU model)",
    )
    parser.add_argument("--model", help="model name to request (default: EXTRACTION_LLM__MODEL)")
    parser.add_argument("--out", type=Path, help="also write the full report as JSON here")
    parser.add_argument("--verbose", action="store_true", help="print every kept insight")
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    w = sys.stdout.write
    w(f"model {report['model']} at {report['endpoint']} ({report['prompt_version']}), {report['seconds']}s\n")
    w(f"precision {report['precision']} ({report['correct']}/{report['kept']} kept insights match a label)\n")
    w(f"recall    {report['recall']} ({report['found']}/{report['expected']} labelled insights found)\n")
    for row in report["items"]:
        w(
            f"  {row['id']:<18} kept {row['kept']} correct {row['correct']} "
            f"found {row['found']}/{row['expected']}"
            f" failed_chunks {row['chunks_failed']} dropped {row['dropped']}\n"
        )
        if args.verbose:
            for ins in row["insights"]:
                w(f"      - {ins['text']}  <<{ins['quote']}>>\n")


if __name__ == "__main__":
    main()
