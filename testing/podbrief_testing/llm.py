"""Extraction's test support: fake OpenAI-compatible servers (in-process through httpx.MockTransport, or on
loopback for services run as processes), one embedded llama-server per session for real-model tests, and
transcripts written as (speaker, sentence) turns (`said`).

    # conftest.py
    from podbrief_testing.llm import llama_server  # noqa: F401  (the session fixture)

    def test_something(llama_server):  # an EmbeddedLlamaServer, already healthy
        settings = ExtractionSettings(llm=LLMSettings(base_url=llama_server.base_url))

For a different scope or name: `make_llama_fixture(name="llm", scope="module")`.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from podbrief.events import Segment, Transcript
from podbrief_extraction.llama_server import REPO_ROOT, EmbeddedLlamaServer, resolve
from podbrief_extraction.settings import EmbeddedLlamaSettings

BUILD_TIMEOUT_S = 3600


def said(*turns: tuple[str | None, str], every_s: float = 10.0) -> Transcript:
    """(speaker, sentence) turns, one every `every_s` seconds, each lasting a second less."""
    segs = tuple(
        Segment(start_s=i * every_s, end_s=(i + 1) * every_s - 1.0, text=text, speaker=who)
        for i, (who, text) in enumerate(turns)
    )
    return Transcript(text=" ".join(s.text for s in segs), language="en", duration_s=every_s * len(segs), segments=segs)


def ensure_llama_binary(settings: EmbeddedLlamaSettings | None = None) -> None:
    """Build llama-server with the repo's script when it is missing (idempotent and locked), or fail the test
    run with a message that says how to build it."""
    settings = settings or EmbeddedLlamaSettings()
    binary = resolve(settings.binary)
    if binary.is_file() and os.access(binary, os.X_OK):
        return
    script = resolve(settings.build_script)
    if os.environ.get("PODBRIEF_NO_LLAMA_BUILD") == "1" or not script.is_file():
        pytest.fail(
            f"llama-server is missing at {binary}; build it with `{REPO_ROOT / 'scripts/build-llama.sh'}` "
            "(a cold build takes ~10-15 min on 2 cores)",
            pytrace=False,
        )
    proc = subprocess.run(
        ["bash", str(script)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0 or not resolve(settings.binary).is_file():
        tail = "\n".join((proc.stderr or proc.stdout).splitlines()[-20:])
        pytest.fail(
            f"scripts/build-llama.sh failed (exit {proc.returncode}); run it by hand to see why:\n{tail}",
            pytrace=False,
        )


def start_llama(settings: EmbeddedLlamaSettings | None = None) -> EmbeddedLlamaServer:
    settings = settings or EmbeddedLlamaSettings()
    ensure_llama_binary(settings)
    return EmbeddedLlamaServer(settings).start_blocking()


# One server per settings per process, however many fixtures ask for it (the root conftest and this
# service's conftest may both register one).
_shared: dict[str, tuple[EmbeddedLlamaServer, int]] = {}


def acquire_llama(settings: EmbeddedLlamaSettings | None = None) -> EmbeddedLlamaServer:
    settings = settings or EmbeddedLlamaSettings()
    key = settings.model_dump_json()
    server, refs = _shared.get(key, (None, 0))
    if server is None or not server.running:
        server, refs = start_llama(settings), 0
    _shared[key] = (server, refs + 1)
    return server


def release_llama(server: EmbeddedLlamaServer) -> None:
    for key, (shared, refs) in list(_shared.items()):
        if shared is server:
            if refs <= 1:
                del _shared[key]
                server.stop()
            else:
                _shared[key] = (shared, refs - 1)
            return
    server.stop()


def make_llama_fixture(
    name: str = "llama_server",
    scope: Any = "session",
    settings: EmbeddedLlamaSettings | None = None,
    preset: str | None = None,
) -> Callable[..., Any]:
    """A pytest fixture that starts llama-server once per `scope` and stops it afterwards: with `settings`, or
    the embedded settings of an extraction model preset (built when the fixture runs, not at import)."""

    @pytest.fixture(scope=scope, name=name)
    def _fixture() -> Iterator[EmbeddedLlamaServer]:
        chosen = settings
        if chosen is None and preset is not None:
            from podbrief_extraction.settings import ExtractionSettings

            chosen = ExtractionSettings(model_preset=preset).llama  # type: ignore[arg-type]
        server = acquire_llama(chosen)
        try:
            yield server
        finally:
            release_llama(server)

    return _fixture


# The default model (Qwen2.5-Coder-1.5B-Instruct, installed on first use) and the small packaged one.
llama_server = make_llama_fixture()
tiny_llama_server = make_llama_fixture("tiny_llama_server", preset="tiny")


Scripted = httpx.Response | dict[str, Any] | str | Exception


def completion(
    content: str, *, prompt_tokens: int = 100, completion_tokens: int = 20, finish_reason: str = "stop"
) -> dict[str, Any]:
    """An OpenAI chat-completion body carrying `content`."""
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def yes_answer(p_yes: float, *, prompt_tokens: int = 60) -> dict[str, Any]:
    """A one-token completion of a yes/no question whose top log-probabilities give yes the probability
    `p_yes` (spread over "Yes" and "yes", as a real model's are), "no" the rest."""
    tiny = 1e-9
    alternatives = [
        {"token": "Yes", "logprob": math.log(max(tiny, 0.7 * p_yes))},
        {"token": " yes", "logprob": math.log(max(tiny, 0.3 * p_yes))},
        {"token": "No", "logprob": math.log(max(tiny, 1.0 - p_yes))},
        {"token": "Maybe", "logprob": math.log(tiny)},
    ]
    body = completion("Yes" if p_yes >= 0.5 else "No", prompt_tokens=prompt_tokens, completion_tokens=1)
    body["choices"][0]["finish_reason"] = "length"
    body["choices"][0]["logprobs"] = {
        "content": [{"token": body["choices"][0]["message"]["content"], "logprob": 0.0, "top_logprobs": alternatives}]
    }
    return body


class FakeOpenAI:
    """A fake OpenAI-compatible server for `httpx.MockTransport`. Answers come from `script` in order (an
    httpx.Response, a completion body, a content string, or an exception to raise, such as httpx.ReadTimeout),
    then from `responder(request_body)` when the script runs out."""

    def __init__(
        self,
        script: list[Scripted] | None = None,
        responder: Callable[[dict[str, Any]], Scripted] | None = None,
    ) -> None:
        self.script = list(script or [])
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json={"error": "not found"})
        if self.script:
            answer = self.script.pop(0)
        elif self.responder is not None:
            answer = self.responder(body)
        else:
            return httpx.Response(500, json={"error": "script exhausted"})
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        if isinstance(answer, str):
            answer = completion(answer)
        return httpx.Response(200, json=answer)

    @staticmethod
    def user_prompt(body: dict[str, Any]) -> str:
        return str(next((m["content"] for m in body["messages"] if m["role"] == "user"), ""))


_NUMBERED = re.compile(r"^\[(\d+)\] (.*)$")


def numbered_sentences(body: dict[str, Any]) -> dict[int, str]:
    """The numbered sentences of a select request's prompt: {number: sentence}."""
    out: dict[int, str] = {}
    for line in FakeOpenAI.user_prompt(body).splitlines():
        m = _NUMBERED.match(line)
        if m:
            out[int(m.group(1))] = m.group(2)
    return out


def rated_passage(body: dict[str, Any]) -> str:
    """The passage a rate request asks about (its "Passage: " line)."""
    lines = FakeOpenAI.user_prompt(body).splitlines()
    return next((line[len("Passage: ") :] for line in lines if line.startswith("Passage: ")), "")


def marked_sentences(body: dict[str, Any]) -> list[str]:
    """The sentences a write request marks with >> (the quote)."""
    return [line[3:] for line in FakeOpenAI.user_prompt(body).splitlines() if line.startswith(">> ")]


def speaker_of(body: dict[str, Any], first: str | None = None) -> str:
    """The speaker line before a write request's first marked sentence (or, in a pick request, before the
    numbered sentence `first`), else the podcast's name."""
    speaker = ""
    for line in FakeOpenAI.user_prompt(body).splitlines():
        if line.startswith("Podcast: ") and not speaker:
            speaker = line[len("Podcast: ") :]
        elif line.endswith(":") and not line.startswith((">>", "[")) and line != "Passage:":
            speaker = line[:-1]
        elif line.startswith(">> ") or (first is not None and _NUMBERED.match(line) and line.endswith(first)):
            break
    return speaker or "The show"


def picks(body: dict[str, Any]) -> bool:
    """Whether a select request also asks for each point's insight (the pick stage)."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
    item = ((schema.get("properties") or {}).get("p") or {}).get("items") or {}
    return "t" in (item.get("properties") or {})


def stage_of(body: dict[str, Any]) -> str:
    """Which extraction call a request is: select, write or verify (from its response schema's name), or rate
    (the yes/no question asked for log-probabilities)."""
    if body.get("logprobs") and "response_format" not in body:
        return "rate"
    name = str(((body.get("response_format") or {}).get("json_schema") or {}).get("name") or "")
    return {"points": "select", "insight": "write", "verdict": "verify"}.get(name, name)


class ScriptedModel:
    """A fake extraction model for `FakeOpenAI(responder=...)`, one rule per stage, each replaceable:

    - select(sentences) -> points: by default the first sentence of the chunk, importance 4;
    - write(quote_sentences, body) -> text: by default "<the quote's speaker, or the show> says that <quote>";
      a pick request (select and write in one) gets each point's text from this rule too;
    - verify(summary, body) -> (verdict, reason): by default supported;
    - weigh(quote_sentences) -> importance 1-5, answered when a write request's schema asks for it ("w"):
      by default 3;
    - rate(passage) -> the probability of yes to a rate request's question on a passage: by default 0.5.

    Every call is recorded in `calls` by stage."""

    def __init__(
        self,
        select: Callable[[dict[int, str]], list[dict[str, Any]]] | None = None,
        write: Callable[[list[str], dict[str, Any]], str] | None = None,
        verify: Callable[[str, dict[str, Any]], tuple[str, str]] | None = None,
        weigh: Callable[[list[str]], int] | None = None,
        rate: Callable[[str], float] | None = None,
    ) -> None:
        self.select = select or (
            lambda sentences: [{"s": min(sentences), "e": min(sentences), "h": "the first point", "w": 4}]
        )
        self.write = write or (
            lambda quote, body: f"{speaker_of(body, quote[0] if quote else None)} says that " + " ".join(quote)
        )
        self.verify = verify or (lambda _summary, _body: ("supported", "the passage says so"))
        self.weigh = weigh or (lambda _quote: 3)
        self.rate = rate or (lambda _passage: 0.5)
        self.calls: dict[str, list[dict[str, Any]]] = {"select": [], "write": [], "verify": [], "rate": []}

    def __call__(self, body: dict[str, Any]) -> Scripted:
        stage = stage_of(body)
        self.calls.setdefault(stage, []).append(body)
        if stage == "select":
            points = self.select(numbered_sentences(body))
            if picks(body):
                numbered = numbered_sentences(body)
                for p in points:
                    quote = [numbered[n] for n in range(p["s"], p["e"] + 1) if n in numbered]
                    p.update({"t": self.write(quote, body), "k": "claim", "tp": ["testing"]})
                    p.pop("h", None)
            return json.dumps({"p": points})
        if stage == "write":
            quote = marked_sentences(body)
            answer: dict[str, Any] = {"t": self.write(quote, body), "k": "claim", "tp": ["testing"]}
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema") or {}
            if "w" in (schema.get("properties") or {}):
                answer["w"] = self.weigh(quote)
            return json.dumps(answer)
        if stage == "rate":
            return yes_answer(self.rate(rated_passage(body)))
        if stage == "verify":
            summary = FakeOpenAI.user_prompt(body).rsplit("Summary: ", 1)[-1]
            verdict, reason = self.verify(summary, body)
            return json.dumps({"r": reason, "v": verdict})
        return httpx.Response(400, json={"error": f"unexpected request {stage!r}"})


class LoopbackOpenAI:
    """A real OpenAI-compatible HTTP server on loopback (for services run as processes): every chat completion
    answers `content` after `delay_s`, so a test can hold the extraction service mid-request; or, with
    `responder` (e.g. a ScriptedModel), what it answers to the request's body."""

    def __init__(
        self,
        content: str = "",
        *,
        delay_s: float = 0.0,
        responder: Callable[[dict[str, Any]], Scripted] | None = None,
    ) -> None:
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.content = content
        self.delay_s = delay_s
        self.responder = responder
        self.completions = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if not self.path.endswith("/chat/completions"):
                    self._send(404, {"error": "not found"})
                    return
                outer.completions += 1
                time.sleep(outer.delay_s)
                answer: Scripted = outer.content if outer.responder is None else outer.responder(json.loads(raw))
                if isinstance(answer, httpx.Response):
                    self._send(answer.status_code, answer.json())
                elif isinstance(answer, Exception):
                    self._send(500, {"error": str(answer)})
                else:
                    self._send(200, completion(answer) if isinstance(answer, str) else answer)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-openai", daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
