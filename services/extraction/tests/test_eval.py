"""The evaluation's own logic: the labelled corpus is consistent with the transcripts, and the scoring rules
(label match by evidence overlap, sponsor reads, grounded, synthesized) decide as documented in LABELLING.md."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from podbrief.events import Insight, insight_id
from podbrief_extraction.eval import corpus
from podbrief_extraction.eval.run import (
    Meter,
    first_person,
    is_synthesis,
    ranking_auc,
    reader_agreement,
    rescore,
    score_episode,
    summarise,
    table,
)
from podbrief_extraction.extractor import Decision, ExtractionResult

pytestmark = pytest.mark.unit

SHARED = Path(__file__).resolve().parents[3] / "../shared/data/transcripts/changelog"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared transcripts are not available")


@needs_shared
def test_every_label_is_evidenced_and_every_break_has_a_sponsor_read() -> None:
    import json

    episodes = corpus.load(transcripts=SHARED)
    reads = json.loads(corpus.SPONSOR_READS.read_text())
    all_reads = [r[:40] for r in reads["dev"] + reads["heldout"]]
    assert len(episodes) == 8
    assert {e.split for e in episodes} == {"dev", "heldout"}
    assert sum(e.split == "heldout" for e in episodes) == 4
    for ep in episodes:
        assert len(ep.labels) >= 5, ep.file
        assert ep.ads, ep.file
        assert all(p.role in ("host", "guest") for p in ep.people)
        # Reads are spoken by a host, on the path a publisher transcript takes.
        hosts = {p.name for p in ep.people if p.role == "host"}
        read_segments = [s for s in ep.transcript.segments if any(r in s.text for r in all_reads)]
        assert read_segments and all(s.speaker in hosts for s in read_segments)
        # The second reader's eight points, each found in the transcript (the loader fails otherwise).
        assert len(ep.reader) == 8, ep.file


def test_spans_overlap_by_at_least_min_8_tokens_or_half_the_shorter() -> None:
    assert corpus.overlaps((0, 20), (12, 40))
    assert not corpus.overlaps((0, 20), (14, 40))  # 6 shared tokens of a 20-token span
    assert corpus.overlaps((10, 14), (12, 30))  # half of a 4-token span
    assert not corpus.overlaps((0, 10), (10, 20))


def test_the_sponsor_read_goes_after_each_break() -> None:
    md = "**A:** one.\n\n**Break**: \\[01:00\\]\n\n**A:** two.\n\n**Break**: \\[02:00\\]\n\n**B:** three."
    out, used = corpus.insert_sponsor_reads(md, "Host Name", ["READ ONE.", "READ TWO."])
    assert used == ["READ ONE.", "READ TWO."]
    assert out.index("**Host Name:** READ ONE.") < out.index("**A:** two.") < out.index("**Host Name:** READ TWO.")
    plain, used = corpus.insert_sponsor_reads("**A:** one.\n\n**B:** two.\n\n**A:** three.", "H", ["R."])
    assert used == ["R."] and "**H:** R." in plain


@pytest.mark.parametrize(
    ("text", "quote", "synthesized"),
    [
        (
            "So Kyutai is a non-profit lab.",
            "So Kyutai is a non-profit lab that we launched a year ago in Paris.",
            False,
        ),
        ("Kyutai, a Paris non-profit founded a year ago, builds open models.", "So Kyutai is a non-profit lab.", True),
        ("so kyutai is a NON-PROFIT lab", "So Kyutai is a non-profit lab.", False),
        # The quote behind an attribution is still the quote (the 1.5B model's habit).
        (
            "Alexandre Défossez says the dataset was fairly large, a few tens of thousands of hours, and it was "
            "sufficient to get to the state for the demo.",
            "The dataset was fairly large - I think a few tens of thousands of hours - and it was sufficient to get "
            "to the state for the demo.",
            False,
        ),
        (
            "Alexandre Défossez says tens of thousands of hours of audio were enough for the demo, so Moshi needed "
            "no more data than a speech recogniser.",
            "The dataset was fairly large - I think a few tens of thousands of hours - and it was sufficient to get "
            "to the state for the demo.",
            True,
        ),
    ],
)
def test_synthesis_means_not_the_quote_a_piece_of_it_or_a_copy(text: str, quote: str, synthesized: bool) -> None:
    assert is_synthesis(text, quote) is synthesized


@pytest.mark.parametrize(
    ("text", "first"),
    [
        # Kept texts of the evaluation's runs: the speaker's sentence behind "X says".
        ("Jeff Smith says we are a purpose-built company and our true North goes deeper in our faith.", True),
        ("Phillip Carter says it's good for our business because users dig deeper.", True),
        ("Ajay Kulkarni says the team indexed the docs, and I haven't seen anyone else doing it.", True),
        ("Jeff Smith says again, not to put more directions on the company, but let’s master health first.", True),
        ("Matt Colyer says we've settled on a compass metaphor for evaluating AI solutions.", True),
        ("Commercial models get teams from zero to one. We then move to open models for control.", True),
        # The third person, and the words that only look like a first person.
        ("Jeff Smith says the US military needs to address suicide rates with screening tools.", False),
        ("Sid Sijbrandij says it's Docker's best year, and the users' data shows it.", False),
        ("Kent Quirk says I/O dominates the latency of Go services that talk to databases.", False),
        # A first person inside a quotation is the speaker's, quoted: the brief's voice.
        ("Jeff Smith says music mirrors mood: 'if we can bottle this up, we've got a rocket ship.'", False),
        ('Scott Johnston says Docker focused on developers first, "we knew that three years ago".', False),
        ("Kent Quirk says Go's 'compatibility promise' matters, and we rely on it.", True),
    ],
)
def test_a_text_in_the_speakers_first_person_is_told_from_one_in_the_third(text: str, first: bool) -> None:
    assert first_person(text) is first


@needs_shared
def test_scoring_an_episode() -> None:
    [ep] = corpus.load("dev", transcripts=SHARED, only={"practical-ai-298"})
    label = next(lab for lab in ep.labels if lab.id == "modality-gap")
    episode = uuid.uuid4()

    def insight(text: str, quote: str) -> Insight:
        return Insight(insight_id=insight_id(episode, quote, 1.0), text=text, quote=quote, start_s=1.0, end_s=2.0)

    evidence = "And the model would get much better replies on trivia QA than it would get with the audio."
    ad = "This episode is brought to you by Nimbus Logs."
    result = ExtractionResult(
        [
            insight("Moshi answers trivia better in text mode than by voice, a modality gap.", evidence),
            insight(ad, ad),
            insight("Something not in the transcript.", "words that nobody ever said on this show at all"),
        ]
    )
    # A candidate the gates refused still shows that picking found its label.
    refused = next(lab for lab in ep.labels if lab.id == "mimi-codec-12hz")
    codec = "with the goal of having a really highly compressed representation at 12.5 Hertz"
    result.decisions.append(Decision(1, 0.0, "Mimi runs at 12.5 Hz", codec, 0.5, "unsupported_number"))
    # Ranked below a candidate that matches no label, above another; the sponsor read was never ranked.
    welcome, thanks = "Welcome to another episode of Practical AI.", "Thanks for having me."
    result.decisions.append(Decision(1, 0.0, "welcome", welcome, 0.7, "episode_cap"))
    result.decisions.append(Decision(1, 0.0, "thanks", thanks, 0.2, "episode_cap"))
    result.decisions.append(Decision(0, 0.0, "ad", ad, 0.9, "promotional"))
    meter = Meter(None)
    score = score_episode(ep, result, meter, {})
    assert score.found == [label.id] and score.proposed == sorted([label.id, refused.id])
    rows = score.insights
    assert rows[0]["labels"] == [label.id] and rows[0]["grounded"] and rows[0]["synthesized"]
    assert rows[1]["sponsor"] and not rows[1]["synthesized"]
    assert not rows[2]["grounded"] and rows[2]["labels"] == []
    summary = summarise([score], remote=False)
    assert summary["recall"] == round(1 / len(ep.labels), 3) and summary["proposed"] == 2
    assert [d["labels"] for d in score.decisions] == [[refused.id], [], [], []]
    assert summary["ranking_auc"] == 0.5
    assert summary["precision"] == round(1 / 3, 3) and summary["sponsor_insights"] == 1
    assert summary["grounded"] == round(2 / 3, 3) and summary["unreviewed"] == 2


def test_the_ranking_auc_is_the_chance_that_a_labelled_candidate_outranks_an_unlabelled_one() -> None:
    def d(score: float, labelled: bool, outcome: str = "episode_cap") -> dict[str, object]:
        return {"score": score, "labels": ["x"] if labelled else [], "outcome": outcome}

    assert ranking_auc([d(0.9, True), d(0.5, False), d(0.4, False)]) == 1.0
    assert ranking_auc([d(0.3, True), d(0.5, False)]) == 0.0
    assert ranking_auc([d(0.5, True), d(0.5, False), d(0.4, False)]) == 0.75  # a tie counts half
    # Candidates that never reached the ranking are not judged by it.
    assert ranking_auc([d(0.9, True), d(0.5, False), d(0.95, False, "promotional"), d(1, False, "duplicate")]) == 1.0
    assert ranking_auc([d(0.9, True), d(0.8, True)]) is None  # nothing to rank them against
    assert ranking_auc([]) is None
    assert ranking_auc([{"score": 0.9, "outcome": "kept"}, d(0.5, False)]) is None  # saved without labels


@needs_shared
def test_a_rescore_applies_the_current_definitions_of_a_synthesis_and_the_third_person() -> None:
    # A report saved when "Ana Ruiz says" and the quote's own words counted as a synthesis is counted again, and
    # one saved before the third person was measured gains it.
    from dataclasses import asdict

    [ep] = corpus.load("dev", transcripts=SHARED, only={"practical-ai-298"})
    quote = "And the model would get much better replies on trivia QA than it would get with the audio."
    copy = "Alexandre Défossez says the model would get much better replies on trivia QA than it would get with audio."
    restated = "Alexandre Défossez says Moshi answers trivia questions better from text than from speech."
    ours = "Alexandre Défossez says our model answers trivia questions better from text than from speech."
    episode = uuid.uuid4()
    result = ExtractionResult(
        [
            Insight(insight_id=insight_id(episode, quote, t), text=text, quote=quote, start_s=t, end_s=t + 1)
            for t, text in ((1.0, copy), (5.0, restated), (9.0, ours))
        ]
    )
    saved = asdict(score_episode(ep, result, Meter(None), {}))
    for row in saved["insights"]:
        row["synthesized"] = True
        del row["third_person"]
    model = {"model": "qwen", "preset": "qwen1.5b", "endpoint": "embedded llama-server", "episodes": [saved]}
    report = {"set": "dev", "models": [model]}
    rows = rescore(report)["models"][0]["episodes"][0]["insights"]
    assert [r["synthesized"] for r in rows] == [False, True, True]
    assert [r["third_person"] for r in rows] == [True, True, False]
    summary = report["models"][0]["summary"]
    assert summary["synthesized"] == summary["third_person"] == round(2 / 3, 3)
    assert "| 0.667 | 0.667 |" in table(report)


@needs_shared
def test_the_second_readers_points_score_like_kept_insights(tmp_path: Path) -> None:
    import json

    evidence = "And the model would get much better replies on trivia QA than it would get with the audio."
    welcome = "Welcome to another episode of the Practical AI Podcast."

    def reader_file(*quotes: str) -> Path:
        points = [
            {"id": f"p{i}", "claim": "c", "evidence": [q, "not checked: only the first span is the quote"]}
            for i, q in enumerate(quotes)
        ]
        path = tmp_path / "second.json"
        path.write_text(json.dumps({"episodes": [{"file": "practical-ai-298.md", "insights": points}]}))
        return path

    [ep] = corpus.load("dev", transcripts=SHARED, only={"practical-ai-298"}, reader_file=reader_file(evidence, welcome))
    assert len(ep.reader) == 2
    agreement = reader_agreement([ep])
    assert agreement == {
        "episodes": 1,
        "labels": len(ep.labels),
        "found": 1,
        "recall": round(1 / len(ep.labels), 3),
        "points": 2,
        "matching": 1,
        "precision": 0.5,
    }
    # An episode the reader did not read is left out, not counted as zero.
    [other] = corpus.load("dev", transcripts=SHARED, only={"ship-it-134"}, reader_file=reader_file(evidence))
    assert other.reader == [] and reader_agreement([other]) is None
    with pytest.raises(corpus.CorpusError, match="second reader's p0"):
        corpus.load("dev", transcripts=SHARED, only={"practical-ai-298"}, reader_file=reader_file("words nobody said"))


@needs_shared
def test_a_saved_episode_result_is_reused_only_with_the_same_model_prompts_and_settings(tmp_path: Path) -> None:
    import json

    from podbrief_extraction.eval.run import cached_score, fingerprint, review_key
    from podbrief_extraction.settings import ExtractionSettings, QualitySettings

    [ep] = corpus.load("dev", transcripts=SHARED, only={"practical-ai-298"})
    quote = "And the model would get much better replies on trivia QA than it would get with the audio."
    text = "Moshi answers trivia better in text mode than by voice."
    episode = uuid.uuid4()
    result = ExtractionResult(
        [Insight(insight_id=insight_id(episode, quote, 1.0), text=text, quote=quote, start_s=1.0, end_s=2.0)]
    )
    score = score_episode(ep, result, Meter(None), {})
    key = fingerprint(ExtractionSettings(), None)
    path = tmp_path / "saved.json"
    path.write_text(json.dumps({"fingerprint": key, **score.__dict__}))

    # Same settings: the saved result, with the reviewer list as it is now.
    reviewed = {review_key(ep.file, quote, text): {"verdict": "specific_true"}}
    again = cached_score(path, key, ep, reviewed)
    assert again is not None and again.found == score.found and again.insights[0]["review"] == "specific_true"
    # Another model, other settings or another slice of the episode: run again.
    assert fingerprint(ExtractionSettings(model_preset="tiny"), None) != key
    assert fingerprint(ExtractionSettings(quality=QualitySettings(max_insights_per_episode=5)), None) != key
    assert fingerprint(ExtractionSettings(), 10.0) != key
    assert cached_score(path, "another", ep, reviewed) is None
    assert cached_score(tmp_path / "missing.json", key, ep, reviewed) is None


def test_the_held_out_table_is_a_generated_section_of_the_readme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podbrief.generated import sections
    from podbrief_extraction.eval import run

    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- generated:eval-heldout -->\n(not yet measured)\n<!-- /generated:eval-heldout -->\n")
    monkeypatch.setattr(run, "README", readme)
    summary = {
        "recall": 0.5, "found": 3, "labels": 6, "precision": 0.75, "correct": 3, "kept": 4, "grounded": 1.0,
        "synthesized": 0.75, "sponsor_insights": 0, "cpu_s_per_audio_hour": 1234.0, "tokens_in_per_audio_hour": 9000,
        "tokens_out_per_audio_hour": 800, "wall_s_per_audio_hour": 700.0, "prompt_tokens_per_s": 68.0,
        "generation_tokens_per_s": 23.0, "cpu_min_per_audio_hour_at_trial_rates": 12.5,
    }  # fmt: skip
    report = {
        "episodes": 4, "audio_hours": 4.2, "date": "2026-12-05T03:00:00+00:00",
        "machine": {"cpu": "AMD EPYC", "cores": 2}, "load_before": [1.0, 1.0, 1.0], "results_md": "eval/results/x.md",
        "models": [{"model": "qwen", "preset": "qwen1.5b", "endpoint": None, "summary": summary}],
    }  # fmt: skip
    run.update_readme(report)
    [s] = sections(readme.read_text())
    assert s.name == "eval-heldout" and not s.hand_edited and "make eval-extraction" in s.source
    # (`n/a`: a report saved before the proposed labels and the decisions' labels were recorded)
    assert "| qwen (preset qwen1.5b) | 0.5 (3/6) | n/a | n/a | 0.75 (3/4) |" in s.body
    assert "not yet measured" not in s.body
    run.update_readme(report)  # re-running replaces the section, never adds a second one
    assert len(sections(readme.read_text())) == 1
