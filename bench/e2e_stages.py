"""Where one episode's time went between the feed update and the brief, the same way for the embedded run and the
five services: the stages between its events on the bus, each service's stage split by that service's own
counters (read before and after the episode) into the time the episode waited for the service and the time the
service's handler spent on it, and the handler time into its parts: the enclosure's download and the
transcription proper; the LLM's requests (the server's own prompt and generation seconds, and the tokens they
carried) and the rest of extraction.

`points` are Unix times: `feed` (the clock's start), then `discovered`, `transcribed`, `extracted`, `clustered`
(the events' `occurred_at`) and `brief` (a composed brief carries the episode's insight). `used` is, per service,
what its counters grew by over the episode (podbrief.metrics.running_totals before and after)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from podbrief_extraction.eval.run import TRIAL_GEN_RATE, TRIAL_PROMPT_RATE

Counters = Mapping[str, float]

# (row, what it is): the rows of the breakdown, in pipeline order; they add up to the total.
ROWS: tuple[tuple[str, str], ...] = (
    ("poll", "feed update until ingest published the episode (feed fetched and parsed, episode stored)"),
    ("transcription: wait", "the discovered event until transcription's handler took it (bus, queue)"),
    ("transcription: download", "the enclosure fetched to a file"),
    ("transcription: transcribe", "decoded and transcribed (Whisper)"),
    ("transcription: other", "the rest of the handler: transcript stored, event published"),
    ("extraction: wait", "the transcribed event until extraction's handler took it (bus, queue)"),
    ("extraction: LLM prompt", "the LLM server reading the prompts (its own timings)"),
    ("extraction: LLM generation", "the LLM server writing the answers, constrained sampling included"),
    ("extraction: LLM other", "the rest of the chat-completion requests: HTTP, waiting for a server slot"),
    ("extraction: other", "the rest of the handler: chunking, grounding, storing, publishing"),
    ("clustering", "the extracted event until the episode's last insight was clustered (embedding, vector search)"),
    ("compose", "the last insight clustered until a composed brief carried the episode (delivery)"),
)
STAGE_OF_ROW = {name: name.split(":")[0] for name, _ in ROWS}


def total(counters: Counters, name: str) -> float:
    """The sum of every labelled sample of `name` (e.g. a histogram's `_sum` over all its topics)."""
    return sum(v for k, v in counters.items() if k == name or k.startswith(name + "{"))


def labelled(counters: Counters, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(v for k, v in counters.items() if k.startswith(name + "{") and all(w in k for w in want))


def minus(after: Mapping[str, Counters], before: Mapping[str, Counters]) -> dict[str, dict[str, float]]:
    """What each service's counters grew by (a counter absent before counts from 0)."""
    return {svc: {k: v - before.get(svc, {}).get(k, 0.0) for k, v in now.items()} for svc, now in after.items()}


def handler_seconds(used: Mapping[str, Counters], service: str) -> float:
    return total(used.get(service, {}), f"podbrief_{service}_handler_seconds_sum")


def _span(points: Mapping[str, float | None], a: str, b: str) -> float | None:
    x, y = points.get(a), points.get(b)
    return None if x is None or y is None else y - x


def _split(stage_s: float | None, handler_s: float) -> tuple[float | None, float]:
    """A stage's wall time as (waiting, in the handler). The events' clocks and the handler's differ by the
    publish at the handler's end, so a wait of a few milliseconds below zero reads as none."""
    if stage_s is None:
        return None, handler_s
    return max(0.0, stage_s - handler_s), min(handler_s, stage_s)


def breakdown(points: Mapping[str, float | None], used: Mapping[str, Counters]) -> dict[str, Any]:
    """Seconds per row of ROWS (None where the episode did not get that far), the total, the LLM's requests and
    tokens, and each service's handler seconds."""
    t = handler_seconds(used, "transcription")
    x = handler_seconds(used, "extraction")
    tx = used.get("transcription", {})
    ex = used.get("extraction", {})
    download = labelled(tx, "podbrief_transcription_phase_seconds_sum", phase="download")
    transcribe = labelled(tx, "podbrief_transcription_phase_seconds_sum", phase="transcribe")
    llm = total(ex, "podbrief_extraction_llm_request_seconds_sum")
    prompt = labelled(ex, "podbrief_extraction_llm_server_seconds_total", phase="prompt")
    generation = labelled(ex, "podbrief_extraction_llm_server_seconds_total", phase="generation")
    t_wait, t_in = _split(_span(points, "discovered", "transcribed"), t)
    x_wait, x_in = _split(_span(points, "transcribed", "extracted"), x)
    rows: dict[str, float | None] = {
        "poll": _span(points, "feed", "discovered"),
        "transcription: wait": t_wait,
        "transcription: download": download if t_wait is not None else None,
        "transcription: transcribe": transcribe if t_wait is not None else None,
        "transcription: other": max(0.0, t_in - download - transcribe) if t_wait is not None else None,
        "extraction: wait": x_wait,
        "extraction: LLM prompt": prompt if x_wait is not None else None,
        "extraction: LLM generation": generation if x_wait is not None else None,
        "extraction: LLM other": max(0.0, min(llm, x_in) - prompt - generation) if x_wait is not None else None,
        "extraction: other": max(0.0, x_in - llm) if x_wait is not None else None,
        "clustering": _span(points, "extracted", "clustered"),
        "compose": _span(points, "clustered", "brief"),
    }
    total_s = _span(points, "feed", "brief")
    tokens_in = labelled(ex, "podbrief_extraction_llm_tokens_total", direction="in")
    tokens_out = labelled(ex, "podbrief_extraction_llm_tokens_total", direction="out")
    at_trial = None
    if total_s is not None and (prompt or generation):
        # An estimate, not a measurement: the server's prompt and generation seconds replaced by the same tokens at
        # the rates of the trial of the default model (a quiet 2-core machine, 2 threads).
        at_trial = round(total_s - prompt - generation + tokens_in / TRIAL_PROMPT_RATE + tokens_out / TRIAL_GEN_RATE, 1)
    return {
        "stages_s": {k: None if v is None else round(v, 2) for k, v in rows.items()},
        "total_s": None if total_s is None else round(total_s, 2),
        "total_s_at_trial_llm_rates": at_trial,
        "llm_requests": int(total(ex, "podbrief_extraction_llm_request_seconds_count")),
        "llm_tokens_in": int(labelled(ex, "podbrief_extraction_llm_tokens_total", direction="in")),
        "llm_tokens_out": int(labelled(ex, "podbrief_extraction_llm_tokens_total", direction="out")),
        "llm_prompt_tok_s": round(labelled(ex, "podbrief_extraction_llm_tokens_total", direction="in") / prompt, 1)
        if prompt
        else None,
        "llm_generation_tok_s": round(
            labelled(ex, "podbrief_extraction_llm_tokens_total", direction="out") / generation, 2
        )
        if generation
        else None,
        "handler_s": {
            svc: round(handler_seconds(used, svc), 2)
            for svc in ("transcription", "extraction", "clustering", "delivery")
        },
    }


AT_TRIAL = "at the trial's LLM rates (estimate)_s"


def at_trial_rates(total_s: float | None, fine: dict[str, Any]) -> float | None:
    """An episode's total (`total_s`, measured from wherever its clock starts) with the LLM server's seconds
    replaced by its tokens at the issue trial's rates (`fine` is its breakdown): what the run would take where the
    default model runs as fast as in the trial. An estimate, labelled as such wherever it is shown."""
    if total_s is None or fine["total_s"] is None or fine["total_s_at_trial_llm_rates"] is None:
        return None
    return round(total_s - (fine["total_s"] - fine["total_s_at_trial_llm_rates"]), 1)
