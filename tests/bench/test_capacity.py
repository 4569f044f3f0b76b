"""The capacity model renders from a results.json and its arithmetic holds when recomputed here from the raw
inputs (published figures typed in again, not read from the module), and every published figure has a source."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench import capacity

pytestmark = pytest.mark.unit

FIXTURE = Path(__file__).parent / "fixtures" / "results.json"
DAY = 86_400
E, L, P, U = 70_000, 45, 3.0, 0.7
AUDIO_S = E * L * 60
# Published figures, typed again from the sources rather than imported.
WHISPER_SPEED_3070TI = 780 / 17  # 13 min in 17 s, large-v2 fp16 batch 8
VLLM_8B_H100 = 12_434.40
BANDWIDTH = {"L4": 300, "A10G": 600, "A100 80GB": 2_000, "H100 SXM": 3_350}
PRICE = {"L4": 0.80, "A10G": 1.006, "A100 80GB": 1.50, "H100 SXM": 3.00}


Rendered = tuple[str, dict[str, capacity.Input], capacity.Result]


def table(md: str, first_header: str) -> list[list[str]]:
    """Rows (cells) of the markdown table whose header row starts with `first_header`."""
    lines = md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split(" | ")])
    return rows


def dollars(cell: str) -> float:
    return float(cell.replace("*", "").replace("$", "").replace(",", ""))


@pytest.fixture
def rendered(tmp_path: Path) -> Rendered:
    out = tmp_path / "CAPACITY.md"
    capacity.main(["--results", str(FIXTURE), "--out", str(out)])
    inputs = capacity.gather_inputs(capacity.Measured.load(FIXTURE))
    return out.read_text(), inputs, capacity.compute(inputs)


def test_measured_inputs_are_taken_from_results_json_with_their_dates(rendered: Rendered) -> None:
    md, inputs, _ = rendered
    assert inputs["transcribe_cpu"].value == pytest.approx(9.0)  # e2e wins over the transcription rows
    assert inputs["insights_per_min"].value == pytest.approx(20 / 50)
    assert inputs["prompt_per_min"].value == pytest.approx(60_000 / 50)
    assert inputs["completion_per_min"].value == pytest.approx(6_000 / 50)
    assert inputs["embed_cpu"].value == pytest.approx(1 / 80)
    assert inputs["delivery_cpu_sub"].value == pytest.approx(5.0 / 10_000)  # the largest run
    assert inputs["ingest_cpu"].value == pytest.approx(0.05)
    assert inputs["tiny_wer"].value == pytest.approx(0.07)
    for key in ("transcribe_cpu", "insights_per_min", "embed_cpu", "delivery_cpu_sub"):
        assert inputs[key].origin == "measured"
    assert inputs["completion_per_chunk"].origin == "default"
    assert "results.json `e2e`, 2026-11-28T09:00:00+00:00" in md
    assert "results.json `clustering`, 2026-11-28T08:30:00+00:00" in md
    inputs_rows = {r[0]: r for r in table(md, "input")}
    assert inputs_rows["insights per audio minute"][3] == "measured"
    assert inputs_rows["completion tokens per chunk"][3] == "default"
    assert inputs_rows["peak RSS, transcription (e2e)"][1] == "700"


def test_arithmetic_recomputed_independently(rendered: Rendered) -> None:
    md, _, result = rendered
    f = result.figures
    assert f["audio_h_day"] == E * L / 60 == 52_500
    tokens_day = E * L * (60_000 / 50 + 6_000 / 50)
    assert f["tokens_day"] == pytest.approx(tokens_day)

    for kind, bw in BANDWIDTH.items():
        speed = WHISPER_SPEED_3070TI * bw / 608
        raw = AUDIO_S / (speed * DAY * U)
        assert f[f"trans_mean:{kind}"] == math.ceil(raw)
        assert f[f"trans_peak:{kind}"] == math.ceil(raw * P)
        assert f[f"trans_usd:{kind}"] == pytest.approx(PRICE[kind] / (speed * U))
        tok_s = VLLM_8B_H100 * bw / 3_350
        assert f[f"extr_peak:{kind}"] == math.ceil(tokens_day / (tok_s * DAY * U) * P)
    headline = dict(table(md, "question"))
    assert (
        f"H100 SXM: {f['trans_peak:H100 SXM']:.0f} / {f['trans_mean:H100 SXM']:.0f}"
        in headline["GPUs, transcription (peak / mean)"]
    )

    points = E * L * (20 / 50) * 365
    assert f["qdrant_points_year"] == pytest.approx(points)
    assert f["qdrant_ram_f32_gb"] == pytest.approx(points * 384 * 4 * 1.5 / 1e9)
    assert f["qdrant_ram_int8_gb"] == pytest.approx(points * 384 * 1.5 / 1e9)
    assert f["qdrant_nodes"] == math.ceil(points * 384 * 1.5 / 64e9) * 2

    assert f["smtp_per_s"] == pytest.approx(1_000_000 * 0.25 / 3600)
    # Partitions never fewer than the consumers that read them.
    for topic, consumer in (("episode.discovered", "transcription"), ("episode.transcribed", "extraction")):
        assert f[f"partitions:{topic}"] >= f[f"replicas:{consumer}"]
        assert f[f"partitions:{topic}"] % 6 == 0


def test_cost_table_totals_are_the_sum_of_their_parts(rendered: Rendered) -> None:
    md, _, result = rendered
    rows = table(md, "GPU kind (both GPU stages)")
    assert len(rows) == 5  # four kinds and the cheapest combination
    for row in rows:
        parts = [dollars(c) for c in row[1:6]]
        assert sum(parts) == pytest.approx(dollars(row[6]), abs=6e-4)  # cells are rounded to 4 decimals
    kinds = {r[0]: dollars(r[6]) for r in rows[:-1]}
    assert dollars(rows[-1][6]) <= min(kinds.values()) + 1e-4
    trans = {k: result.figures[f"trans_usd:{k}"] for k in BANDWIDTH}
    extr = {k: result.figures[f"extr_usd:{k}"] for k in BANDWIDTH}
    rest = result.figures["cpu_usd"] + result.figures["storage_usd"] + result.figures["qdrant_usd"]
    assert result.figures["usd_audio_h_best"] == pytest.approx(min(trans.values()) + min(extr.values()) + rest)


def test_every_published_figure_has_a_source_url(rendered: Rendered) -> None:
    md, inputs, _ = rendered
    assert capacity.SOURCES
    for s in capacity.SOURCES:
        assert s.url.startswith("https://"), s.key
        assert s.says and s.note
        assert f"**`{s.key}`**" in md and f"<{s.url}>" in md
    published = [i for i in inputs.values() if i.origin == "published"]
    assert published
    for i in published:
        assert i.source in capacity.SOURCE_KEYS, i.key
    # The GPU throughput figures the model rests on are cited where they are used.
    for key in ("fw-readme", "vllm-pr7117", "qdrant-capacity"):
        assert md.count(f"`{key}`") >= 2, key
    assert "faster-whisper" in md and "github.com/SYSTRAN/faster-whisper" in md
    assert "github.com/vllm-project/vllm" in md


def test_sensitivity_moves_the_right_way(rendered: Rendered) -> None:
    md, _, _ = rendered
    rows = {r[0]: r for r in table(md, "case")}
    base, longer, big = rows["base: 45 min, 8B"], rows["60-min episodes"], rows["70B LLM"]
    assert float(longer[1].replace(",", "")) == 70_000
    assert int(longer[2].split()[0]) > int(base[2].split()[0])
    assert int(big[3].split()[0]) > int(base[3].split()[0])
    assert int(big[3].split()[0]) % 4 == 0  # tensor-parallel groups of four
    assert dollars(big[5]) > dollars(base[5])


def test_defaults_without_results_and_the_older_layout(tmp_path: Path) -> None:
    missing = capacity.gather_inputs(capacity.Measured.load(tmp_path / "absent.json"))
    assert not [i for i in missing.values() if i.origin == "measured"]
    out = tmp_path / "c.md"
    capacity.main(["--results", str(tmp_path / "absent.json"), "--out", str(out)])
    assert "Measured sections used: none" in out.read_text()

    old = tmp_path / "old.json"
    old.write_text(
        json.dumps(
            {
                "transcription": [{"mode": "service (event in, event out)", "audio_s": 347.1, "cpu_s": 59.43}],
                "clustering": [{"throughput": {"embed_per_s": 74.7}}],
            }
        )
    )
    legacy = capacity.gather_inputs(capacity.Measured.load(old))
    assert legacy["transcribe_cpu"].origin == "measured"
    assert legacy["transcribe_cpu"].value == pytest.approx(59.43 / 347.1 * 60)
    assert "undated" in legacy["embed_cpu"].note


def test_event_sizes_are_measured_from_the_real_models() -> None:
    sizes = capacity.event_sizes(45, 150, 15, 384)
    assert set(sizes) == {
        "episode.discovered",
        "episode.transcribed",
        "insights.extracted",
        "insight.clustered",
        "brief.delivered",
    }
    # A 45-minute transcript with word timings travels compressed, well under the bus's 8 MiB message limit.
    assert 20_000 < sizes["episode.transcribed"] < 8 * 1024 * 1024
    assert sizes["insight.clustered"] > 384 * 4  # the vector travels as JSON floats
    assert sizes["brief.delivered"] < 2_000


def test_reads_what_report_update_section_writes(tmp_path: Path) -> None:
    from bench import report

    extra = {"cpu_s_per_audio_min": {"ingest": 0.1}, "insights": 30, "audio_minutes": 60}
    report.update_section("e2e", title="e2e", command="make bench", extra=extra, out_dir=tmp_path)
    report.update_section(
        "delivery",
        title="delivery",
        command="make bench-delivery",
        details={"sizes": [{"subscribers": 2000, "candidates": 5000, "vectorised_cpu_s": 3.0}]},
        out_dir=tmp_path,
    )
    inputs = capacity.gather_inputs(capacity.Measured.load(tmp_path / "results.json"))
    assert inputs["ingest_cpu"].value == pytest.approx(0.1)
    assert inputs["insights_per_min"].value == pytest.approx(0.5)
    assert inputs["delivery_cpu_sub"].value == pytest.approx(3.0 / 2000)
    assert inputs["delivery_cpu_sub"].note.startswith("measured: results.json `delivery`, 20")
    assert inputs["embed_cpu"].origin == "default"
