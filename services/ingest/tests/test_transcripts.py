"""Publisher transcript parsing and rendering (podbrief.transcripts)."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest
from podbrief.errors import PermanentError
from podbrief.events.models import Segment, Transcript
from podbrief.transcripts import kind_of, parse_publisher_transcript, to_srt, to_vtt

pytestmark = pytest.mark.unit

VTT = (
    "\ufeffWEBVTT Kind: captions\r\n\r\n"
    "STYLE\r\n::cue { color: yellow }\r\n\r\n"
    "NOTE this is a comment\r\nspanning lines\r\n\r\n"
    "intro\r\n"
    "00:01.000 --> 00:04.500 align:start position:10%\r\n"
    "<v Adam Curry>Welcome to <b>Podcasting</b> 2.0 &amp; friends</v>\r\n\r\n"
    "01:02:03.250 --> 01:02:05.000\r\n"
    "<v.loud Dave Jones>Board meeting.\r\n"
    "Second line <c.yellow>styled</c>\r\n"
)

SRT = (
    "1\n00:00:00,000 --> 00:00:02,500\nAnd so my fellow Americans,\n\n"
    "2\n00:00:02,500 --> 00:00:05,1\nask not what your <i>country</i> can do for you\n\n"
    "3\n00:00:05,100 --> 00:00:05,100\n\n"
)


def test_vtt_with_bom_crlf_styles_voices_and_short_times() -> None:
    t = parse_publisher_transcript(VTT.encode("utf-8"), "text/vtt", language="en")
    assert t.source == "publisher" and t.language == "en"
    assert [s.text for s in t.segments] == [
        "Welcome to Podcasting 2.0 & friends",
        "Board meeting. Second line styled",
    ]
    assert [s.speaker for s in t.segments] == ["Adam Curry", "Dave Jones"]
    assert t.segments[0].start_s == 1.0 and t.segments[0].end_s == 4.5
    assert t.segments[1].start_s == pytest.approx(3723.25)
    assert t.duration_s == pytest.approx(3725.0)


@pytest.mark.parametrize("mime", ["application/x-subrip", "application/srt", "text/srt"])
def test_srt(mime: str) -> None:
    t = parse_publisher_transcript(SRT.encode(), mime)
    assert len(t.segments) == 2  # the empty cue is dropped
    assert t.segments[1].text == "ask not what your country can do for you"
    assert t.segments[1].end_s == pytest.approx(5.1)  # one-digit milliseconds mean tenths
    assert t.text.startswith("And so my fellow Americans, ask not")


def test_captions_served_as_text_plain_keep_their_timings() -> None:
    t = parse_publisher_transcript(SRT.encode(), "text/plain")
    assert len(t.segments) == 2 and t.segments[0].end_s == 2.5


def test_podcasting20_json_with_speakers() -> None:
    doc = {
        "version": "1.0.0",
        "segments": [
            {
                "speaker": "Kevin",
                "startTime": 0.5,
                "endTime": 4.25,
                "body": "We have a brand new episode today.",
            },
            {
                "speaker": "Alban",
                "startTime": "4.25",
                "endTime": "9.0",
                "body": "And a lot of news to cover.",
            },
            {"speaker": "Alban", "startTime": 9.0, "body": "No end time here."},
            {"startTime": 10, "endTime": 11},
        ],
    }
    t = parse_publisher_transcript(orjson.dumps(doc), "application/json")
    assert [(s.speaker, s.start_s, s.end_s) for s in t.segments] == [
        ("Kevin", 0.5, 4.25),
        ("Alban", 4.25, 9.0),
        ("Alban", 9.0, 9.0),
    ]
    assert t.model == "publisher:json"


def test_word_per_segment_json_is_merged_into_sentences_with_words() -> None:
    words = "So this is the show . And here is more".split()
    doc = {
        "version": "1.0.0",
        "segments": [
            {"speaker": "A", "startTime": i * 0.5, "endTime": i * 0.5 + 0.4, "body": w} for i, w in enumerate(words)
        ],
    }
    doc["segments"][4]["body"] = "show."
    del doc["segments"][5]
    t = parse_publisher_transcript(orjson.dumps(doc), "application/json")
    assert len(t.segments) == 2
    assert t.segments[0].text == "So this is the show."
    assert len(t.segments[0].words) == 5 and t.segments[0].words[4].end_s == pytest.approx(2.4)


def test_html_and_plain_text_keep_recurring_speaker_labels_and_spread_times_over_the_duration() -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>x</title><style>p{}</style></head><body>"
        b"<h1>Episode 12</h1><p>Adam: Hello&nbsp;there.</p><script>var a=1;</script>"
        b"<p>Dave: Hi.</p><p>Adam: Bye now.</p><p>Dave: See you.</p></body></html>"
    )
    h = parse_publisher_transcript(page, "text/html", duration_s=1800)
    assert [(s.speaker, s.text) for s in h.segments] == [
        (None, "Episode 12"),
        ("Adam", "Hello there."),
        ("Dave", "Hi."),
        ("Adam", "Bye now."),
        ("Dave", "See you."),
    ]
    assert h.duration_s == 1800 and h.segments[-1].end_s == 1800
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(h.segments, h.segments[1:], strict=False))
    # A one-off "Note:" is text, not a speaker.
    p = parse_publisher_transcript("Note: recorded live.\r\n\r\nLine   two.".encode("utf-16"), "text/plain")
    assert p.text == "Note: recorded live. Line two." and p.duration_s == 0
    assert {s.speaker for s in p.segments} == {None}


def test_podcasting20_html_with_cite_and_time() -> None:
    page = (
        b"<cite>Kevin:</cite><time>0:00</time><p>Welcome to the show about open podcasting.</p>"
        b"<cite>Alban:</cite><time>0:12</time><p>Thanks. Today we talk about transcripts</p>"
        b"<p>and why they matter.</p>"
        b"<cite>Kevin:</cite><time>1:05</time><p>Great.</p>"
    )
    t = parse_publisher_transcript(page, "text/html")
    assert [(s.speaker, s.start_s) for s in t.segments] == [
        ("Kevin", 0.0),
        ("Alban", 12.0),
        ("Alban", pytest.approx(12.0 + 53.0 * 6 / 10)),
        ("Kevin", 65.0),
    ]
    assert t.model == "publisher:html"


def test_srt_speaker_labels_carry_to_the_following_cues() -> None:
    srt = (
        "1\n00:00:00,000 --> 00:00:02,000\nJane Doe: Hello and welcome.\n\n"
        "2\n00:00:02,000 --> 00:00:04,000\nToday is special.\n\n"
        "3\n00:00:04,000 --> 00:00:06,000\nJohn Roe: Thanks, Jane.\n\n"
        "4\n00:00:06,000 --> 00:00:08,000\nJane Doe: Let us start.\n"
    )
    t = parse_publisher_transcript(srt.encode(), "application/srt")
    assert [(s.speaker, s.text) for s in t.segments] == [
        ("Jane Doe", "Hello and welcome."),
        ("Jane Doe", "Today is special."),
        ("John Roe", "Thanks, Jane."),
        ("Jane Doe", "Let us start."),
    ]


MARKDOWN = (
    "**Adam Stacoviak:** \\[00:00\\] Well, friends, welcome back. Today we have a guest.\n\n"
    "**Ajay Kulkarni:** Thanks for having me \\[laughs\\]. It's *great* to be here.\n\n"
    "A second paragraph of the same turn, about [databases](https://example.com).\n\n"
    "**Break**: \\[01:00\\]\n\n"
    "**Adam Stacoviak:** \\[02:00\\] So what changed? \\[unintelligible 00:02:10.05\\] Tell me.\n\n"
    "**Ajay Kulkarni:** Everything changed.\n"
)


def test_changelog_markdown_becomes_speaker_turns_with_interpolated_word_times() -> None:
    t = parse_publisher_transcript(MARKDOWN.encode(), "text/markdown", language="en")
    assert t.model == "publisher:markdown" and t.source == "publisher"
    assert [s.speaker for s in t.segments] == [
        "Adam Stacoviak",
        "Ajay Kulkarni",
        "Ajay Kulkarni",
        "Adam Stacoviak",
        "Ajay Kulkarni",
    ]
    # Stage notes, escapes, emphasis and links are gone; the break turn carries no words.
    assert t.segments[1].text == "Thanks for having me . It's great to be here."
    assert t.segments[2].text.endswith("about databases.")
    assert "Break" not in t.text and "laughs" not in t.text and "unintelligible" not in t.text
    # Times: anchored at [00:00], [01:00] (the break), [02:00] and the note's 00:02:10.05, interpolated between.
    assert t.segments[0].start_s == 0.0
    assert t.segments[3].start_s == 120.0
    assert 0.0 < t.segments[1].start_s < t.segments[2].start_s < 60.0
    words = [w for s in t.segments for w in s.words]
    assert all(a.start_s <= b.start_s for a, b in itertools.pairwise(words))
    tell = next(w for w in t.segments[3].words if w.text == "Tell")
    assert tell.start_s == pytest.approx(130.05)
    assert t.duration_s > 130.05  # the last turn runs on past the last known time


def test_an_escaped_asterisk_is_a_literal_not_emphasis() -> None:
    # The Changelog writes a bleeped word `\*bleep\*`: read as emphasis first, it had left `\bleep\`.
    md = "**Phillip Carter:** Ship to learn, see what happens, \\*bleep\\* around and find out. It's *so* \\_fun\\_.\n"
    t = parse_publisher_transcript(md.encode(), "text/markdown", language="en")
    assert t.segments[0].text == "Ship to learn, see what happens, *bleep* around and find out. It's so _fun_."


def test_markdown_is_sniffed_when_served_as_plain_text() -> None:
    t = parse_publisher_transcript(MARKDOWN.encode(), "text/plain")
    assert t.model == "publisher:markdown" and t.segments[0].speaker == "Adam Stacoviak"
    assert kind_of("text/markdown") == "markdown"


CHANGELOG = Path(__file__).resolve().parents[3] / "../shared/data/transcripts/changelog"


@pytest.mark.skipif(not CHANGELOG.is_dir(), reason="../shared/data/transcripts/changelog is not available")
@pytest.mark.parametrize("name", sorted(p.name for p in CHANGELOG.glob("*.md") if p.name != "README.md"))
def test_every_changelog_transcript_imports_with_speakers_and_monotonic_times(name: str) -> None:
    text = (CHANGELOG / name).read_bytes()
    t = parse_publisher_transcript(text, "text/markdown", language="en")
    speakers = {s.speaker for s in t.segments}
    assert None not in speakers and len(speakers) >= 2
    # No speaker markup and no escape left ("s\*\*t" is the author's literal "s**t").
    assert all(":**" not in s.text and "\\" not in s.text for s in t.segments), "markup or an escape left"
    starts = [w.start_s for s in t.segments for w in s.words]
    assert starts == sorted(starts)
    # The last timestamp in the file is a lower bound for the duration; speech runs at 100-250 words a minute.
    import re

    stamps = re.findall(rb"\\\[(?:[a-z ]+ )?((?:\d+:)?\d+:\d\d)(?:[.,]\d+)?\\\]", text)
    last = max(sum(int(x) * 60**i for i, x in enumerate(reversed(s.decode().split(":")))) for s in stamps)
    assert last <= t.duration_s < last + 25 * 60
    assert 100 <= len(starts) / (t.duration_s / 60) <= 250


def test_generic_mime_is_sniffed() -> None:
    assert parse_publisher_transcript(VTT.encode(), "application/octet-stream").model == "publisher:vtt"
    assert kind_of("text/vtt; charset=utf-8") == "vtt" and kind_of("application/x-subrip") == "srt"
    assert kind_of("image/png") is None


@pytest.mark.parametrize(
    ("body", "mime"),
    [
        (b"WEBVTT\n\n", "text/vtt"),
        (b"{nope", "application/json"),
        (b'{"segments": 3}', "application/json"),
        (b"   ", "text/plain"),
    ],
)
def test_unusable_transcripts_raise_permanent(body: bytes, mime: str) -> None:
    with pytest.raises(PermanentError):
        parse_publisher_transcript(body, mime)


def test_renderers_round_trip() -> None:
    t = Transcript(
        text="x",
        duration_s=3725,
        source="publisher",
        segments=(
            Segment(start_s=1.0, end_s=4.5, text="Welcome & hello", speaker="Adam"),
            Segment(start_s=3723.25, end_s=3725.0, text="Board --> meeting"),
            Segment(start_s=3726.0, end_s=3726.0, text="untimed"),
        ),
    )
    vtt = to_vtt(t)
    assert vtt.startswith("WEBVTT\n\n1\n00:00:01.000 --> 00:00:04.500\n<v Adam>Welcome &amp; hello\n")
    assert "01:02:03.250 --> 01:02:05.000" in vtt
    srt = to_srt(t)
    assert srt.startswith("1\n00:00:01,000 --> 00:00:04,500\nAdam: Welcome & hello\n")
    again = parse_publisher_transcript(vtt.encode(), "text/vtt")
    # WebVTT escapes the arrow as --&gt; (so it survives); SRT has no escaping, so the arrow is broken up.
    assert [s.text for s in again.segments] == ["Welcome & hello", "Board --> meeting", "untimed"]
    assert "Board -> meeting" in srt
    assert again.segments[0].speaker == "Adam" and again.segments[2].end_s == 3727.0
    from_srt = parse_publisher_transcript(srt.encode(), "application/srt")
    assert [s.start_s for s in from_srt.segments] == [1.0, 3723.25, 3726.0]
