"""The e2e benchmark's time per stage: counters read the same way from a registry (the embedded run) and from a
/metrics page (the five services), and an episode's stages split into waiting and the handler's parts that add
up to the total."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podbrief.metrics import new_registry, running_totals
from prometheus_client import Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench import e2e, e2e_stages, report
from bench.e2e_embedded import EmbeddedRun

pytestmark = pytest.mark.unit


def test_a_registry_and_its_page_read_the_same() -> None:
    r = new_registry()
    h = Histogram("podbrief_transcription_phase_seconds", "x", ["phase"], registry=r)
    h.labels("download").observe(1.5)
    h.labels("transcribe").observe(40.0)
    Counter("podbrief_extraction_llm_tokens_total", "x", ["direction", "stage"], registry=r).labels("in", "write").inc(
        7
    )
    Gauge("podbrief_extraction_llm_circuit_open", "x", registry=r).set(1)
    direct = running_totals(r.collect())
    parsed = running_totals(text_string_to_metric_families(generate_latest(r).decode()))
    assert direct == parsed
    assert direct['podbrief_transcription_phase_seconds_sum{phase="transcribe"}'] == 40.0
    assert direct['podbrief_extraction_llm_tokens_total{direction="in",stage="write"}'] == 7.0
    assert not any("circuit_open" in k or "_bucket" in k for k in direct)  # gauges and buckets do not subtract


def used() -> dict[str, dict[str, float]]:
    before = {
        "transcription": {'podbrief_transcription_handler_seconds_sum{topic="d"}': 100.0},
        "extraction": {'podbrief_extraction_handler_seconds_sum{topic="t"}': 50.0},
    }
    after = {
        "transcription": {
            'podbrief_transcription_handler_seconds_sum{topic="d"}': 145.0,
            'podbrief_transcription_phase_seconds_sum{phase="download"}': 2.0,
            'podbrief_transcription_phase_seconds_sum{phase="transcribe"}': 40.0,
        },
        "extraction": {
            'podbrief_extraction_handler_seconds_sum{topic="t"}': 150.0,
            'podbrief_extraction_llm_request_seconds_sum{outcome="ok"}': 90.0,
            'podbrief_extraction_llm_request_seconds_count{outcome="ok"}': 6.0,
            'podbrief_extraction_llm_server_seconds_total{phase="prompt"}': 50.0,
            'podbrief_extraction_llm_server_seconds_total{phase="generation"}': 38.0,
            'podbrief_extraction_llm_tokens_total{direction="in",stage="select"}': 3000.0,
            'podbrief_extraction_llm_tokens_total{direction="in",stage="write"}': 1000.0,
            'podbrief_extraction_llm_tokens_total{direction="out",stage="write"}': 400.0,
        },
    }
    return e2e_stages.minus(after, before)


POINTS = {"feed": 1000.0, "discovered": 1001.0, "transcribed": 1050.0, "extracted": 1160.0, "clustered": 1162.0}


def test_the_rows_split_each_stage_and_add_up_to_the_total() -> None:
    b = e2e_stages.breakdown({**POINTS, "brief": 1165.0}, used())
    s = b["stages_s"]
    assert list(s) == [name for name, _ in e2e_stages.ROWS]
    assert s["poll"] == 1.0
    # transcription: 49 s between its events, 45 s of them in the handler: 2 download, 40 transcribe, 3 other.
    assert (s["transcription: wait"], s["transcription: download"], s["transcription: transcribe"]) == (4.0, 2.0, 40.0)
    assert s["transcription: other"] == 3.0
    # extraction: 110 s between its events, 100 in the handler of which 90 in LLM requests.
    # The server read the prompts for 50 s and wrote for 38 s of the 90 s of requests.
    assert (s["extraction: wait"], s["extraction: other"]) == (10.0, 10.0)
    assert (s["extraction: LLM prompt"], s["extraction: LLM generation"], s["extraction: LLM other"]) == (50, 38, 2)
    assert (b["llm_prompt_tok_s"], b["llm_generation_tok_s"]) == (80.0, 10.53)
    # At the issue trial's rates the same tokens take 4000 / 68 + 400 / 23 = 76.2 s instead of 88 s.
    assert b["total_s_at_trial_llm_rates"] == 153.2
    assert e2e_stages.at_trial_rates(185.0, b) == 173.2  # a clock that started 20 s earlier (the embedded startup)
    assert (s["clustering"], s["compose"]) == (2.0, 3.0)
    assert sum(v for v in s.values() if v is not None) == pytest.approx(b["total_s"]) == 165.0
    assert (b["llm_requests"], b["llm_tokens_in"], b["llm_tokens_out"]) == (6, 4000, 400)
    assert b["handler_s"]["transcription"] == 45.0 and b["handler_s"]["extraction"] == 100.0


def test_an_episode_that_stopped_short_has_no_later_rows() -> None:
    b = e2e_stages.breakdown({"feed": 1000.0, "discovered": 1001.0, "transcribed": 1050.0}, used())
    s = b["stages_s"]
    assert s["transcription: transcribe"] == 40.0
    assert s["extraction: wait"] is None and s["extraction: LLM prompt"] is None and s["compose"] is None
    assert b["total_s"] is None


def test_the_stage_table_has_every_row_and_the_shares_of_the_total() -> None:
    b = e2e_stages.breakdown({**POINTS, "brief": 1165.0}, used())
    row = {f"{k} s": v for k, v in b["stages_s"].items()} | {e2e.TOTAL: 165.0}
    table = e2e.stage_table([row | {"startup_s": 20.0, e2e.TOTAL: 185.0}], [row])
    by = {r["stage"]: r for r in table}
    assert list(by) == ["startup", *(n for n, _ in e2e_stages.ROWS), "feed update to brief"]
    llm = by["extraction: LLM prompt"]
    assert llm["five services p50 s"] == 50.0 and llm["five services share"] == "30%"
    assert by["startup"]["embedded p50 s"] == 20.0 and by["startup"]["five services p50 s"] == "– (running)"
    assert by["feed update to brief"]["embedded p50 s"] == 185.0


def services_run(alone: list[dict[str, object]], stream: list[dict[str, object]]) -> dict[str, object]:
    """What bench.e2e.run_services returns, for a run that went well."""
    per = {n: 1.0 for n in e2e.SERVICES}
    return {
        "alone": alone,
        "stream": stream,
        "interval_s": 30.0,
        "busy_s_per_episode": [sum(r["handler_s"].values()) for r in alone],  # type: ignore[attr-defined]
        "stream_wall_s": 400.0,
        "stream_span_s": 390.0 if stream else None,
        "stream_finished": len(stream),
        "last_release_s": 300.0 if stream else None,
        "cpu_s": {n: 60.0 for n in e2e.SERVICES},
        "timed_out": False,
        "failure": None,
        "startup_s": per,
        "startup_cpu_s": per,
        "idle_cpu_s_per_s": per,
        "tokens": {"prompt": 4000, "completion": 400},
        "chunks": 2.0,
        "transcribed_audio_s": 300.0,
        "dead_lettered": {},
        "peaks": {n: {"total_mb": 500.0, "main_mb": 400.0, "children_mb": 100.0} for n in e2e.SERVICES},
        "delivery_runs": 1,
        "emails": 3,
        "logs": "test-artifacts/bench-e2e/x",
        "namespace": "benchx.",
    }


def test_both_parts_write_their_sections(tmp_path: Path) -> None:
    b = e2e_stages.breakdown({**POINTS, "brief": 1165.0}, used())
    row = {"episode": "a", "audio_s": 300.0, "clip": "jfk.flac", "insights": 2, e2e.TOTAL: 165.0}
    row |= {f"{n}_s": 1.0 for n, _, _ in e2e.SERVICE_STEPS} | {f"{k} s": v for k, v in b["stages_s"].items()}
    row |= {"llm_requests": 6, "llm_tokens_in": 4000, "llm_tokens_out": 400}
    row |= {"handler_s": b["handler_s"], "cpu_s": {n: 12.0 for n in e2e.SERVICES}}
    row |= {e2e.AT_TRIAL: e2e_stages.at_trial_rates(165.0, b)}
    emb_row = {k: v for k, v in row.items() if k not in ("handler_s", "cpu_s")} | {"startup_s": 20.0, e2e.TOTAL: 185.0}
    cfg = e2e.parse(["--alone", "1", "--stream", "3", "--out-dir", str(tmp_path)])
    load = {"before": (1.0, 1.0, 1.0), "after": (2.0, 2.0, 2.0)}
    r = services_run([row], [])
    alone = e2e.summarise_alone(cfg, [EmbeddedRun(emb_row, 200.0, 2000.0, True)], r, load)
    e2e.write_alone(cfg, r, [EmbeddedRun(emb_row, 200.0, 2000.0, True)], alone, None)
    ep = {"episode": "s", "show": "x", "audio_s": 90.0, "clip": "jfk.flac", "insights": 1}
    stream = [ep | {"discovered_s": 1.0, "transcribed_s": 20.0, "extracted_s": 40.0, "clustered_s": 41.0}] * 3
    stream = [s | {"in_brief_s": 42.0 + i} for i, s in enumerate(stream)]
    r = services_run([row], stream)
    e2e.write_stream(cfg, r, e2e.summarise_stream(cfg, r, load), None)

    data = report.load(tmp_path)
    assert report.validate(data) == []
    a, s = data["sections"][e2e.KEY], data["sections"][e2e.STREAM_KEY]
    assert a["extra"]["alone"]["stage_p50_s"]["extraction: LLM generation"] == 38.0
    assert a["extra"]["embedded"]["stage_p50_s"]["startup"] == 20.0
    # 185 s embedded, 165 s on Kafka; at the trial's LLM rates 153.2 s both (the estimate rows say so).
    assert [t["verdict"] for t in a["details"]["targets"]] == ["NOT met", "met", "met (estimate)", "met (estimate)"]
    assert all("estimate" in t["target"] for t in a["details"]["targets"][2:])
    assert s["extra"]["latency_s"]["p50"] == 43.0 and s["extra"]["stream"]["p95_over_p50"] == 1.02  # p95 43.9 s
    assert "scripted stand-in" in s["extra"]["extraction_model"] and "scripted stand-in" in s["notes"]
    assert s["details"]["targets"][0]["verdict"] == "met"


def test_the_streams_stand_in_answers_over_http_with_the_longest_sentence() -> None:
    import httpx
    from podbrief_testing.llm import LoopbackOpenAI

    prompt = "Podcast: Signal Path\nGuest:\n[1] Welcome back.\n[2] Heat pumps now outsell gas boilers in Norway.\n"
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {"json_schema": {"name": "points", "schema": {}}},
    }
    llm = LoopbackOpenAI(responder=e2e.stand_in())
    try:
        r = httpx.post(llm.base_url + "/chat/completions", json=body, timeout=10)
    finally:
        llm.stop()
    points = json.loads(r.json()["choices"][0]["message"]["content"])["p"]
    assert r.status_code == 200 and [(p["s"], p["e"]) for p in points] == [(2, 2)]
