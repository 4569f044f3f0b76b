"""The one vocabulary of reason codes: why a feed failed, an episode was rejected or failed, an item or an
insight was dropped, a brief was not delivered.

Every reason the pipeline reports comes from here: `PipelineError(reason=...)`, the `reason` label of every
metric, the `reason` field of the JSON logs, the `x-error-reason` header of a dead letter, the `*_reason` fields
of the status APIs, `podbrief run`'s outcome table and `podbrief status`. `Reason` is a `Literal`, so mypy
refuses a code that is not listed here, and `PipelineError` refuses one at run time. The README's table of
reasons is `markdown_table()` (a test keeps them equal).

A code is short, stable and low-cardinality (a metric label); the message beside it says the specifics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard

Reason = Literal[
    # Fetching anything over HTTP: a feed, an enclosure, a transcript, chapters, the LLM.
    "dns",
    "connect",
    "timeout",
    "ssrf_blocked",
    "invalid_url",
    "bad_scheme",
    "redirect_loop",
    "too_many_redirects",
    "bad_redirect",
    "http_401",
    "http_403",
    "http_404",
    "http_410",
    "http_429",
    "http_4xx",
    "http_5xx",
    "too_large",
    "bad_encoding",
    "bad_content_type",
    # Reading a feed or an OPML file.
    "empty",
    "not_a_feed",
    "malformed_xml",
    "xml_entities",
    "no_items_or_title",
    "blocked",
    "not_opml",
    "too_many_outlines",
    # Items of a feed left out, and episodes ingest cannot send on.
    "duplicate_guid",
    "no_guid_no_enclosure",
    "no_enclosure",
    "enclosure_not_audio",
    "enclosure_url_not_a_url",
    "enclosure_url_not_absolute",
    "enclosure_url_too_long",
    # Publisher transcripts and chapters.
    "bad_transcript",
    "empty_transcript",
    "bad_chapters",
    # Audio and speech.
    "empty_file",
    "no_audio_stream",
    "corrupt_audio",
    "truncated_audio",
    "too_long",
    "silent_audio",
    "no_speech",
    "abandoned",
    # The LLM.
    "circuit_open",
    "invalid_output",
    "bad_response",
    "auth",
    # Candidate insights dropped by extraction's gates.
    "ungrounded",
    "quote_too_short",
    "too_short",
    "vague",
    "no_referent",
    "question",
    "repetitive",
    "unsupported_number",
    "unsupported_name",
    "unsupported_text",
    "misattributed",
    "duplicate",
    "episode_cap",
    "promotional",
    "truncated",
    "verdict_partly",
    "verdict_unsupported",
    # Sending email.
    "smtp_connect",
    "smtp_4xx",
    "smtp_5xx",
    "smtp_other",
    # Stores, the bus and configuration.
    "database",
    "qdrant_unreachable",
    "qdrant_4xx",
    "qdrant_5xx",
    "qdrant_edge_refused",
    "qdrant_edge_resources",
    "qdrant_edge_failed",
    "kafka_unreachable",
    "kafka_publish",
    "model_not_found",
    "model_download",
    "model_checksum",
    "model_load",
    "bad_compute_type",
    "no_binary",
    "no_model",
    "llama_start",
    # The generic reasons of an error raised without a specific one.
    "invalid_event",
    "configuration",
    "temporary",
    "unavailable",
    "permanent",
    "unexpected",
]

Group = Literal["fetch", "feed", "item", "transcript", "audio", "llm", "insight", "email", "infrastructure", "generic"]


@dataclass(frozen=True)
class ReasonInfo:
    code: Reason
    group: Group
    meaning: str


def _table(group: Group, rows: dict[Reason, str]) -> list[ReasonInfo]:
    return [ReasonInfo(code, group, meaning) for code, meaning in rows.items()]


_INFO = [
    *_table(
        "fetch",
        {
            "dns": "the host name does not resolve",
            "connect": "the connection was refused, reset or lost",
            "timeout": "the server did not answer, or the transfer did not finish, in time",
            "ssrf_blocked": "refused: the host is private, loopback, link-local or a cloud metadata address",
            "invalid_url": "not a valid URL",
            "bad_scheme": "not an http(s) URL",
            "redirect_loop": "the redirects lead back to a URL already visited",
            "too_many_redirects": "more redirects than allowed",
            "bad_redirect": "a redirect without a usable Location",
            "http_401": "HTTP 401: the server wants credentials",
            "http_403": "HTTP 403: the server refuses access",
            "http_404": "HTTP 404: not found",
            "http_410": "HTTP 410: gone for good",
            "http_429": "HTTP 429: rate limited by the server",
            "http_4xx": "another HTTP 4xx answer",
            "http_5xx": "an HTTP 5xx answer (the server failed)",
            "too_large": "larger than the configured limit",
            "bad_encoding": "the bytes cannot be decoded in the declared encoding",
            "bad_content_type": "the server says the enclosure is neither audio nor video",
        },
    ),
    *_table(
        "feed",
        {
            "empty": "the document is empty",
            "not_a_feed": "the document is not RSS or Atom (an HTML page, another XML format)",
            "malformed_xml": "the XML is broken beyond repair",
            "xml_entities": "the XML declares entities (refused: entity expansion attacks)",
            "no_items_or_title": "the document has neither a title nor any items",
            "blocked": "the publisher blocks aggregators (podcast:block)",
            "not_opml": "not an OPML document",
            "too_many_outlines": "more feeds in one OPML file than allowed",
        },
    ),
    *_table(
        "item",
        {
            "duplicate_guid": "an item repeats the guid of an earlier one",
            "no_guid_no_enclosure": "an item with neither a guid nor an enclosure cannot be identified",
            "no_enclosure": "the episode has no audio enclosure and no transcript",
            "enclosure_not_audio": "the enclosure's type is neither audio nor video",
            "enclosure_url_not_a_url": "the enclosure URL cannot be parsed",
            "enclosure_url_not_absolute": "the enclosure URL is not an absolute http(s) URL",
            "enclosure_url_too_long": "the enclosure URL is longer than allowed",
        },
    ),
    *_table(
        "transcript",
        {
            "bad_transcript": "the transcript (or the event carrying it) cannot be read",
            "empty_transcript": "the transcript has no text",
            "bad_chapters": "the chapters file cannot be read",
        },
    ),
    *_table(
        "audio",
        {
            "empty_file": "the audio file is empty",
            "no_audio_stream": "the file has no audio stream",
            "corrupt_audio": "the audio cannot be decoded (corrupt or an unsupported format)",
            "truncated_audio": "the audio stops well before its declared length",
            "too_long": "longer than the configured maximum duration",
            "silent_audio": "the audio is silent",
            "no_speech": "no speech was found in the audio",
            "abandoned": "the transcription was abandoned (shutdown or cancellation)",
        },
    ),
    *_table(
        "llm",
        {
            "circuit_open": "the LLM endpoint failed repeatedly; requests are paused",
            "invalid_output": "the model's answer is not valid JSON for the schema, even after a repair",
            "bad_response": "the LLM endpoint answered something that is not a chat completion",
            "auth": "the endpoint refused the credentials",
        },
    ),
    *_table(
        "insight",
        {
            "ungrounded": "the quote is not found in the transcript",
            "quote_too_short": "the matched quote is too short to stand as evidence",
            "too_short": "the insight's text is too short to be a claim",
            "vague": "the insight's text is a vague summary",
            "no_referent": "the text starts with a pronoun whose referent is missing",
            "question": "the text is a question, not a claim",
            "repetitive": "the text repeats itself, a sign of a degenerate generation",
            "unsupported_number": "the text has a number or date its passage does not",
            "unsupported_name": "the text names someone or something its passage does not",
            "unsupported_text": "the text shares too little with its passage",
            "misattributed": "the text credits its claim to a known person who did not say it",
            "duplicate": "a near-duplicate of a better insight of the same episode",
            "episode_cap": "not among the episode's top insights (beyond its cap)",
            "promotional": "from a sponsor read, an ad or show housekeeping",
            "truncated": "the written text has no complete sentence (cut off)",
            "verdict_partly": "the verifier found the text only partly supported by its passage",
            "verdict_unsupported": "the verifier found the text not supported by its passage",
        },
    ),
    *_table(
        "email",
        {
            "smtp_connect": "the SMTP server cannot be reached",
            "smtp_4xx": "the SMTP server refused temporarily",
            "smtp_5xx": "the SMTP server refused for good (a hard bounce)",
            "smtp_other": "another SMTP error",
        },
    ),
    *_table(
        "infrastructure",
        {
            "database": "the database is unavailable",
            "qdrant_unreachable": "Qdrant cannot be reached",
            "qdrant_4xx": "Qdrant refused the request",
            "qdrant_5xx": "Qdrant failed",
            "qdrant_edge_refused": "the embedded vector store refused the request (a wrong dimension, a bad filter)",
            "qdrant_edge_resources": "the embedded vector store is out of disk, memory or file handles",
            "qdrant_edge_failed": "the embedded vector store failed",
            "kafka_unreachable": "Kafka cannot be reached",
            "kafka_publish": "publishing to Kafka failed",
            "model_not_found": "the model files are not where the settings say",
            "model_download": "the model's packages could not be downloaded",
            "model_checksum": "the model files do not match their checksum",
            "model_load": "the model cannot be loaded",
            "bad_compute_type": "the compute type needs hardware this machine lacks",
            "no_binary": "the llama-server binary is missing",
            "no_model": "the LLM's model file is missing",
            "llama_start": "llama-server did not start",
        },
    ),
    *_table(
        "generic",
        {
            "invalid_event": "the message is not a valid event of its topic",
            "configuration": "settings that cannot work",
            "temporary": "a temporary failure with no more specific reason",
            "unavailable": "a dependency is down (the message is not at fault)",
            "permanent": "a permanent failure with no more specific reason",
            "unexpected": "an error the code does not classify (a bug): see the logs",
        },
    ),
]

REASONS: dict[str, ReasonInfo] = {info.code: info for info in _INFO}
GROUP_TITLES: dict[Group, str] = {
    "fetch": "fetching (feeds, enclosures, transcripts, the LLM)",
    "feed": "reading a feed or OPML file",
    "item": "feed items left out, episodes rejected by ingest",
    "transcript": "publisher transcripts and chapters",
    "audio": "audio and speech",
    "llm": "the LLM",
    "insight": "candidate insights dropped by extraction",
    "email": "sending the brief",
    "infrastructure": "stores, the bus, models",
    "generic": "generic",
}


def is_reason(value: object) -> TypeGuard[Reason]:
    return isinstance(value, str) and value in REASONS


def check(value: str) -> Reason:
    """`value` as a Reason; ValueError naming the vocabulary when it is not one."""
    if not is_reason(value):
        raise ValueError(f"{value!r} is not a reason code; add it to podbrief.reasons")
    return value


def meaning(code: str) -> str:
    info = REASONS.get(code)
    return info.meaning if info else code


_HTTP: dict[int, Reason] = {401: "http_401", 403: "http_403", 404: "http_404", 410: "http_410", 429: "http_429"}


def http_status(status: int) -> Reason:
    """The reason for an HTTP error status."""
    if status in _HTTP:
        return _HTTP[status]
    return "http_5xx" if status >= 500 else "http_4xx"


def split_detail(text: str) -> tuple[Reason | None, str]:
    """(code, detail) of a stored "code (detail)" or "code: detail" string, as ingest and extraction write
    them; (None, text) when it does not start with a code."""
    head = text.split(" ", 1)[0].rstrip(":")
    if is_reason(head):
        return head, text[len(head) :].lstrip(" :").removeprefix("(").removesuffix(")").strip()
    return None, text


def markdown_table() -> str:
    """The README's table of reason codes."""
    lines = ["| reason | meaning |", "| --- | --- |"]
    for group, title in GROUP_TITLES.items():
        lines.append(f"| **{title}** | |")
        lines.extend(f"| `{i.code}` | {i.meaning} |" for i in _INFO if i.group == group)
    return "\n".join(lines)


__all__ = ["REASONS", "Reason", "ReasonInfo", "check", "http_status", "is_reason", "meaning"]
