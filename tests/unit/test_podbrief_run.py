"""`podbrief run`'s own pieces (the services it drives have their own tests): the loopback host that serves local
feeds and audio, turning the command's inputs into feed URLs, the demo feeds, the file mailer, and what the
progress bars say while a CPU model works through an episode."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import feedparser
import httpx
import pytest
from podbrief.metrics import new_registry
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_run import demo
from podbrief_run.layout import DataDir
from podbrief_run.localhost import LocalHost
from podbrief_run.runner import FeedInputError, FileMailer, LLMActivity, _settings, resolve_feeds

pytestmark = pytest.mark.unit

RSS = b'<?xml version="1.0"?><rss version="2.0"><channel><title>Local</title></channel></rss>'


@pytest.fixture
def host() -> Iterator[LocalHost]:
    server = LocalHost().start()
    yield server
    server.stop()


def test_local_host_serves_bytes_and_files_and_404s_the_rest(host: LocalHost, tmp_path: Path) -> None:
    audio = tmp_path / "episode.opus"
    audio.write_bytes(bytes(range(256)) * 1000)
    feed_url = host.add_bytes("/feed.xml", RSS, "application/rss+xml")
    audio_url = host.add_file("/audio/episode.opus", audio, "audio/ogg")
    with httpx.Client() as client:
        feed = client.get(feed_url)
        assert (feed.status_code, feed.content, feed.headers["content-type"]) == (200, RSS, "application/rss+xml")
        got = client.get(audio_url)
        assert got.content == audio.read_bytes() and got.headers["content-length"] == str(audio.stat().st_size)
        head = client.head(audio_url)
        assert head.status_code == 200 and head.headers["content-length"] == str(audio.stat().st_size)
        assert head.content == b""
        assert client.get(host.base_url + "/nothing-here").status_code == 404


def test_urls_pass_through_and_nothing_is_served(host: LocalHost) -> None:
    feeds, local = resolve_feeds(["https://example.com/a.xml", "http://example.org/b", "http://example.org/b"], host)
    assert [f.url for f in feeds] == ["https://example.com/a.xml", "http://example.org/b"] and local is False
    assert [f.label for f in feeds] == [f.url for f in feeds]


def test_an_opml_file_gives_its_feeds(host: LocalHost, tmp_path: Path) -> None:
    opml = tmp_path / "subscriptions.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body>'
        '<outline text="a" type="rss" xmlUrl="https://example.com/a.xml"/>'
        '<outline text="folder"><outline text="b" xmlUrl="https://example.com/b.xml"/></outline>'
        "</body></opml>"
    )
    feeds, local = resolve_feeds([str(opml)], host)
    assert [f.url for f in feeds] == ["https://example.com/a.xml", "https://example.com/b.xml"] and local is False
    assert all(str(opml) in f.label for f in feeds)


def test_a_feed_file_is_served_from_loopback(host: LocalHost, tmp_path: Path) -> None:
    feed = tmp_path / "show.xml"
    feed.write_bytes(RSS)
    feeds, local = resolve_feeds([str(feed)], host)
    assert local is True and len(feeds) == 1 and feeds[0].url.startswith(host.base_url)
    assert feeds[0].label == str(feed)
    assert httpx.get(feeds[0].url).content == RSS
    # The same file gets the same URL in every run (its episode ids depend on it).
    other = LocalHost(port=0).start()
    try:
        again, _ = resolve_feeds([str(feed)], other)
        assert again[0].url.removeprefix(other.base_url) == feeds[0].url.removeprefix(host.base_url)
    finally:
        other.stop()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "not an http(s) URL and no such file"),
        ("<opml><body></body></opml>", "lists no feeds"),
        ("<opml><body><outline", "not a readable OPML file"),
    ],
)
def test_bad_inputs_say_which_and_why(host: LocalHost, tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "subscriptions.opml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(FeedInputError, match=re.escape(expected)) as caught:
        resolve_feeds([str(path)], host)
    assert str(path) in str(caught.value)


def test_without_inputs_the_demo_shows_are_served_with_their_audio(host: LocalHost) -> None:
    feeds, local = resolve_feeds([], host)
    urls = [f.url for f in feeds]
    assert local is True and len(urls) == len(demo.shows()) == 5
    with httpx.Client() as client:
        enclosures = []
        for url in urls:
            parsed = feedparser.parse(client.get(url).content)
            assert parsed.feed.title and parsed.entries
            enclosures += [e.enclosures[0] for e in parsed.entries]
        assert len(enclosures) == len(demo.episodes())
        for enc in enclosures:
            head = client.head(enc.href)
            assert head.status_code == 200 and int(head.headers["content-length"]) == int(enc.length)


def test_the_file_mailer_writes_each_message_as_an_eml(tmp_path: Path) -> None:
    mailer = FileMailer(tmp_path / "briefs")
    message = EmailMessage()
    message["To"], message["Subject"], message["List-Unsubscribe"] = "you@example.com", "Your brief", "<https://u>"
    message.set_content("five insights")
    message_id = asyncio.run(mailer.send(message))
    [(path, sent)] = mailer.sent
    assert path.parent == tmp_path / "briefs" and path.suffix == ".eml" and "brief" in path.name
    assert sent is message and message_id == f"<{path.name}>"
    assert b"five insights" in path.read_bytes()


def test_llm_activity_counts_this_runs_answers_and_tokens_over_every_stage() -> None:
    registry = new_registry()
    metrics = ExtractionMetrics.create(registry)
    metrics.llm_requests.labels("ok").inc(4)  # an earlier episode in this process: not this run's
    metrics.tokens.labels("out", "select").inc(1000)
    activity = LLMActivity(registry)
    assert activity.detail() == ""  # nothing answered yet: no line at all
    metrics.llm_requests.labels("ok").inc()
    metrics.tokens.labels("out", "select").inc(120)
    assert activity.detail() == "1 LLM answer, 120 tokens written"
    metrics.llm_requests.labels("ok").inc(2)
    metrics.llm_requests.labels("timeout").inc()  # a failed attempt is no answer
    metrics.tokens.labels("out", "write").inc(2000)
    metrics.tokens.labels("in", "write").inc(9000)  # the prompt is not written
    assert activity.detail() == "3 LLM answers, 2,120 tokens written"
    assert LLMActivity(None).detail() == ""


def test_extraction_takes_as_many_episodes_at_once_as_its_llm_answers(tmp_path: Path) -> None:
    """One at a time on the embedded CPU model, so episodes finish (and the bar moves) one by one."""
    embedded = _settings(DataDir(tmp_path), True, {}, demo=True)
    assert embedded["extraction"].llm.concurrency == 1
    assert embedded["extraction"].bus.max_in_flight == 1
    assert embedded["transcription"].bus.max_in_flight > 1  # the others keep theirs
    vllm = {"extraction": {"llm": {"base_url": "http://vllm:8000/v1", "concurrency": 16}}}
    assert _settings(DataDir(tmp_path), True, vllm)["extraction"].bus.max_in_flight == 16
