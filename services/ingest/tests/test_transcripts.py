"""Publisher transcript parsing and rendering (podbrief.transcripts)."""

from __future__ import annotations

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


def test_html_and_plain_text_become_one_untimed_segment() -> None:
    page = (
        b"<!DOCTYPE html><html><head><title>x</title><style>p{}</style></head><body>"
        b"<h1>Episode 12</h1><p>Adam: Hello&nbsp;there.</p><script>var a=1;</script>"
        b"<p>Dave: Hi.</p></body></html>"
    )
    h = parse_publisher_transcript(page, "text/html", duration_s=1800)
    assert h.text == "Episode 12 Adam: Hello there. Dave: Hi."
    assert len(h.segments) == 1 and h.duration_s == 1800 and h.segments[0].end_s == 1800
    p = parse_publisher_transcript("Line one.\r\n\r\nLine   two.".encode("utf-16"), "text/plain")
    assert p.text == "Line one. Line two." and p.duration_s == 0


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
