"""A hostile publisher's feed through the whole pipeline (#21), as five OS processes on a real Kafka broker and
PostgreSQL, to an email received by a real SMTP server. The show and episode titles carry Rich markup, HTML, a
bidi override and a zero-width space, and CR/LF (and U+2028) that try to forge an "Unsubscribe:" line and a Bcc
header; the show title and the description are longer than anything stores; the newest episode's publisher
transcript carries terminal escapes and a 250-character speaker. Nothing of it may reach a subscriber raw:
the plain-text email has no forged line and no control, bidi or zero-width character, the Subject and the
recipients are untouched, the HTML is escaped, the JSON APIs carry folded and bounded fields, the long speaker
costs nothing (no dead letter, no failure), and extraction's public status shows no validation internals."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from podbrief.events.ids import episode_id
from podbrief.events.models import EpisodeRef, Insight
from podbrief.status import ServiceStatus
from podbrief.text import BIDI_CONTROLS, INVISIBLE
from podbrief_cli.status import remote_status
from podbrief_testing import LoopbackServer, SmtpSink, scrape_metric
from podbrief_testing.feeds import EVIL, LONG_SPEAKER, hostile_feed
from podbrief_testing.html_tags import start_tags

from .conftest import SERVICES, Pipeline, sign_up_and_confirm, wait_for_delivery_pool, wait_for_extraction

pytestmark = pytest.mark.e2e

READER = "reader@example.org"
# Control characters a terminal or a mail client acts on (tab and LF are allowed in multi-line text only).
CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HIDDEN = BIDI_CONTROLS + INVISIBLE
# What an HTML renderer would turn back into a hidden character.
HIDDEN_ENTITIES = re.compile(r"&#(?:x0*(?:202[a-e]|200[b-f]|206[0-9]|feff)|0*(?:82(?:0[3-7]|3[4-8])|65279));", re.I)


def limit(model: Any, name: str) -> int:
    return int(next(m.max_length for m in model.model_fields[name].metadata if hasattr(m, "max_length")))


SHOW_MAX, TITLE_MAX, SPEAKER_MAX = limit(EpisodeRef, "show"), limit(EpisodeRef, "title"), limit(Insight, "speaker")


def assert_one_clean_line(value: object, max_chars: int, what: str) -> None:
    """A display field as every renderer may show it: one line, no control, bidi or zero-width character, and
    within its bound."""
    assert isinstance(value, str), (what, value)
    assert "\n" not in value and "\r" not in value and "\u2028" not in value, (what, value)
    assert not CONTROLS.search(value), (what, value)
    assert not any(c in value for c in HIDDEN), (what, value)
    assert len(value) <= max_chars, (what, len(value), max_chars)


def assert_clean_text(text: str, what: str) -> None:
    """Multi-line text (an email body, a page): no control character but LF and tab, nothing hidden."""
    assert not CONTROLS.search(text.replace("\r\n", "\n")), (what, CONTROLS.findall(text))
    assert not any(c in text for c in HIDDEN), (what, [hex(ord(c)) for c in text if c in HIDDEN])
    assert "\x1b" not in text and "[2J" not in text and "]8;;" not in text, what


def assert_escaped_html(html: str, what: str) -> None:
    """The publisher's markup arrives as text: escaped where it is shown, never a tag, a link or a hidden
    character."""
    tags = start_tags(html)
    assert tags, what
    for tag, attrs in tags:
        assert tag not in ("script", "iframe", "object", "embed"), (what, tag, attrs)
        assert tag != "img" or EVIL not in str(attrs), (what, tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on") and EVIL not in (value or ""), (what, tag, name, value)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, f"{what}: the show's <script> is not shown escaped"
    assert not HIDDEN_ENTITIES.search(html), what
    assert_clean_text(html, what)


def lines_starting(text: str, prefixes: Iterable[str]) -> list[str]:
    return [line for line in text.splitlines() if line.strip().lower().startswith(tuple(p.lower() for p in prefixes))]


def test_a_hostile_feed_reaches_the_subscriber_folded_bounded_and_escaped(
    pipeline: Pipeline, loopback: LoopbackServer, smtp_sink: SmtpSink, shared_dir: Path
) -> None:
    procs, admin_key, _ = pipeline
    admin = {"X-API-Key": admin_key}
    delivery = procs["delivery"].base_url
    feed_url, guids = hostile_feed(shared_dir, loopback)
    spoken, whispered = (episode_id(feed_url, g) for g in guids)

    confirmed, _ = sign_up_and_confirm(
        delivery,
        smtp_sink,
        READER,
        "patriotism, citizenship, public service and what Americans can do for their country",
    )
    r = httpx.post(procs["ingest"].base_url + "/v1/feeds", json={"url": feed_url}, headers=admin, timeout=60)
    assert r.status_code == 201, r.text
    feed = r.json()["feed"]
    assert_one_clean_line(feed["title"], SHOW_MAX, "the feed's title in ingest's API")

    # The 250-character speaker and the escapes cost nothing: both episodes reach extraction without a dead
    # letter (wait_for_extraction fails on the first one), and the publisher transcript was the one used.
    wait_for_extraction(procs, 2)
    r = httpx.get(f"{procs['ingest'].base_url}/v1/feeds/{feed['id']}/episodes", headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    recorded = {e["id"]: e for e in r.json()["items"]}
    assert set(recorded) == {str(spoken), str(whispered)}, recorded
    assert recorded[str(spoken)]["transcript_source"] == "publisher", recorded[str(spoken)]
    for e in recorded.values():
        assert e["status"] == "emitted", e
        assert_one_clean_line(e["title"], TITLE_MAX, "an episode title in ingest's API")
    cut = recorded[str(whispered)]["title"]  # over-long: cut at a word, not refused
    assert cut.endswith("…") and len(cut) > TITLE_MAX * 4 // 5, cut

    # The stored transcript (and its SRT) kept the speech and lost the escapes; the speaker fits an insight.
    transcription = procs["transcription"].base_url
    stored = httpx.get(f"{transcription}/v1/episodes/{spoken}/transcript", timeout=30).json()
    assert "ask not what your country can do for you" in stored["text"], stored["text"]
    assert_clean_text(stored["text"], "the stored transcript")
    for seg in stored["segments"]:
        assert_one_clean_line(seg["speaker"], SPEAKER_MAX, "a stored speaker")
        assert seg["speaker"].startswith("Dr. ") and seg["speaker"].endswith("…"), seg["speaker"]
    assert_clean_text(httpx.get(f"{transcription}/v1/episodes/{spoken}/transcript?format=srt", timeout=30).text, "SRT")

    # Extraction's public status: a stable status and counters, no validation internals.
    extraction = procs["extraction"].base_url
    insights: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for ep in (spoken, whispered):
        status = httpx.get(f"{extraction}/v1/episodes/{ep}", timeout=10)
        assert status.status_code == 200, status.text
        assert status.json()["status"] in ("done", "skipped"), status.text
        assert status.json()["error"] is None and status.json()["error_reason"] is None, status.text
        assert_one_clean_line(status.json()["show"], SHOW_MAX, "the show in extraction's status")
        assert_one_clean_line(status.json()["title"], TITLE_MAX, "the title in extraction's status")
        for leak in ("last_error", "input_value", "pydantic", "Traceback", "validation error"):
            assert leak not in status.text, (leak, status.text)
        insights[ep] = httpx.get(f"{extraction}/v1/episodes/{ep}/insights", timeout=10).json()["insights"]
    assert insights[spoken], "no insight kept from the publisher transcript with the long speaker"
    for i in insights[spoken]:
        assert_one_clean_line(i["speaker"], SPEAKER_MAX, "an insight's speaker")
        assert_one_clean_line(i["quote"], limit(Insight, "quote"), "an insight's quote")
    wait_for_delivery_pool(procs, sum(len(v) for v in insights.values()))

    r = httpx.post(delivery + "/v1/admin/deliveries/run", json={"force": True}, headers=admin, timeout=120)
    assert r.status_code == 200 and r.json()["sent"] == 1, r.text
    brief = smtp_sink.wait_for(2, timeout_s=30)[-1]
    text = brief.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = brief.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    artifacts = Path("test-artifacts/e2e")
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "hostile-brief.txt").write_text(text)
    (artifacts / "hostile-brief.html").write_text(html)
    (artifacts / "hostile-brief.eml").write_bytes(bytes(brief))

    # Headers: the brief goes to the reader alone, with no header the titles tried to add, and a clean Subject.
    assert smtp_sink.envelopes[-1][1] == [READER], smtp_sink.envelopes[-1]
    assert brief["To"] == READER and brief.get_all("Bcc") is None and brief.get_all("Cc") is None
    subject = str(brief["Subject"])
    assert_one_clean_line(subject, 200, "the Subject")
    assert not re.search(r"(?im)^(bcc|cc|unsubscribe):", str(brief).split("\n\n", 1)[0]), "a forged header line"

    # The plain text: the publisher's lines are folded into the show and title lines, so the one "Unsubscribe:"
    # line is delivery's own, and nothing hidden or controlling is left.
    assert_clean_text(text, "the plain-text email")
    unsubscribe = lines_starting(text, ["Unsubscribe"])
    assert len(unsubscribe) == 1 and unsubscribe[0].startswith(f"Unsubscribe: {delivery}/"), unsubscribe
    assert not lines_starting(text, ["Bcc:", f"https://{EVIL}"]), text
    assert "EvilFM [link=https://evil.example]Daily[/link]" in text  # shown as the text it is
    assert LONG_SPEAKER[:16] in text  # the long speaker is shown, cut to its bound

    # The HTML email and the brief's web page: the markup escaped, no link or hidden character of the publisher's.
    assert_escaped_html(html, "the HTML email")
    web = re.search(r"Read it on the web \(with feedback buttons\): (\S+)", text)
    assert web, text
    page = httpx.get(web.group(1), timeout=30)
    assert page.status_code == 200, page.text
    assert_escaped_html(page.text, "the brief's web page")

    # The JSON API gives the same brief with every display field folded and bounded.
    r = httpx.get(
        f"{delivery}/v1/subscribers/{confirmed['subscriber_id']}/briefs/latest",
        headers={"Authorization": f"Bearer {confirmed['api_key']}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items and str(spoken) in {i["episode_id"] for i in items}, items
    for item in items:
        assert_one_clean_line(item["show"], SHOW_MAX, "a brief item's show")
        assert_one_clean_line(item["episode_title"], TITLE_MAX, "a brief item's episode title")
        assert_one_clean_line(item["text"], limit(Insight, "text"), "a brief item's text")
        assert_one_clean_line(item["quote"], limit(Insight, "quote"), "a brief item's quote")
        if item["speaker"] is not None:
            assert_one_clean_line(item["speaker"], SPEAKER_MAX, "a brief item's speaker")
        for related in item["related"]:
            assert_one_clean_line(related["show"], SHOW_MAX, "a related item's show")
            assert_one_clean_line(related["episode_title"], TITLE_MAX, "a related item's title")
    pick = next(i for i in items if i["episode_id"] == str(spoken))
    assert pick["speaker"] and pick["speaker"].startswith("Dr. ") and pick["speaker"].endswith("…"), pick
    assert pick["show"].startswith("EvilFM [link=") and len(pick["show"]) > 900, pick["show"]

    # Nothing failed anywhere: no dead letter, no failure counted, no lag, in any of the five services.
    for name in SERVICES:
        dead = scrape_metric(procs[name].base_url, f"podbrief_{name}_dead_lettered_total")
        assert dead == 0, f"{name} dead-lettered a message:\n{procs[name].tail(5)}"
    found = asyncio.run(remote_status({name: p.base_url for name, p in procs.items()}, admin_key))
    by = {s.service: s for s in found if isinstance(s, ServiceStatus)}
    assert set(by) == set(SERVICES), found
    for s in by.values():
        assert s.stage.failures == {} and all(not reasons for reasons in s.dead_letters.values()), s
