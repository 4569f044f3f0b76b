"""The chat-completions client against a fake OpenAI server (httpx.MockTransport)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from podbrief.errors import PermanentError, RetryableError
from podbrief_extraction.adapters.llm import CircuitBreaker, InvalidOutputError, LLMClient, parse_json
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.settings import LLMSettings
from podbrief_testing.llm import FakeOpenAI, completion, yes_answer
from pydantic import BaseModel, SecretStr

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 20}},
    "required": ["answer"],
}


class Answer(BaseModel):
    answer: str


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client(
    fake: FakeOpenAI, sleeps: list[float] | None = None, clock: Clock | None = None, **overrides: object
) -> LLMClient:
    settings = LLMSettings(base_url="http://llm.test/v1", model="m", **overrides)  # type: ignore[arg-type]
    recorded = sleeps if sleeps is not None else []

    async def sleep(s: float) -> None:
        recorded.append(s)

    return LLMClient(
        settings,
        metrics=ExtractionMetrics.create(),
        transport=fake.transport(),
        sleep=sleep,
        clock=clock or Clock(),
    )


def sample(llm: LLMClient, name: str, labels: dict[str, str] | None = None) -> float:
    for metric in (llm.metrics.llm_requests, llm.metrics.tokens, llm.metrics.invalid_outputs):
        for fam in metric.collect():
            for s in fam.samples:
                if s.name == name and s.labels == (labels or {}):
                    return float(s.value)
    return 0.0


async def test_request_carries_schema_seed_temperature_and_key() -> None:
    fake = FakeOpenAI(['{"answer": "yes"}'])
    llm = client(fake, api_key=SecretStr("sk-test"), seed=7)
    out = await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer, schema_name="ans")
    assert out.value.answer == "yes" and not out.repaired
    body = fake.requests[0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ans", "strict": True, "schema": SCHEMA},
    }
    assert body["temperature"] == 0.0 and body["seed"] == 7 and body["model"] == "m"
    assert fake.headers[0]["authorization"] == "Bearer sk-test"
    assert out.usage.prompt_tokens == 100 and out.usage.completion_tokens == 20
    assert sample(llm, "podbrief_extraction_llm_tokens_total", {"direction": "in", "stage": "extract"}) == 100
    assert sample(llm, "podbrief_extraction_llm_tokens_total", {"direction": "out", "stage": "extract"}) == 20
    await llm.aclose()


async def test_yes_probability_comes_from_the_answer_tokens_log_probabilities() -> None:
    fake = FakeOpenAI([yes_answer(0.8), yes_answer(0.1)])
    llm = client(fake)
    question = [{"role": "system", "content": "judge"}, {"role": "user", "content": "Key point? Answer yes or no."}]
    high, usage = await llm.yes_probability(question, stage="rate")
    low, _ = await llm.yes_probability(question, stage="rate")
    # "Yes" and " yes" both count as yes; an alternative that is neither ("Maybe") counts for nothing.
    assert high == pytest.approx(0.8, abs=1e-6) and low == pytest.approx(0.1, abs=1e-6)
    body = fake.requests[0]
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] >= 5
    assert "response_format" not in body
    assert usage.prompt_tokens == 60 and usage.completion_tokens == 1
    assert sample(llm, "podbrief_extraction_llm_tokens_total", {"direction": "in", "stage": "rate"}) == 120
    await llm.aclose()


@pytest.mark.parametrize(("content", "expected"), [("Yes.", 1.0), ("no", 0.0), ("Perhaps", 0.5)])
async def test_yes_probability_without_log_probabilities_reads_the_answer(content: str, expected: float) -> None:
    # A server that ignores `logprobs` still answers: the text decides, and neither yes nor no is even odds.
    llm = client(FakeOpenAI([completion(content, completion_tokens=1)]))
    p, _ = await llm.yes_probability([{"role": "user", "content": "Key point?"}])
    assert p == expected
    await llm.aclose()


async def test_the_servers_own_prompt_and_generation_seconds_are_counted() -> None:
    # llama-server's `timings` (what it spent reading the prompt and writing the answer), summed per phase.
    timed = completion('{"answer": "yes"}') | {"timings": {"prompt_ms": 1500.0, "predicted_ms": 2500.0}}
    fake = FakeOpenAI([timed, timed, '{"answer": "no"}'])  # the last from a server that reports none
    llm = client(fake)
    for _ in range(3):
        await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    seconds = {s.labels["phase"]: s.value for s in llm.metrics.server_seconds.collect()[0].samples if "total" in s.name}
    assert seconds == {"prompt": 3.0, "generation": 5.0}
    await llm.aclose()


async def test_prompt_cache_is_off_for_the_embedded_server_and_not_sent_to_an_endpoint() -> None:
    async def body_of(settings: LLMSettings, base_url: str | None) -> dict[str, Any]:
        fake = FakeOpenAI(['{"answer": "yes"}'])
        async with LLMClient(settings, base_url=base_url, transport=fake.transport()) as llm:
            await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
        return fake.requests[0]

    # The embedded llama-server (its URL given to the client, none configured): an identical request must give
    # an identical answer, which a reused prompt cache does not guarantee.
    assert (await body_of(LLMSettings(), "http://127.0.0.1:9/v1"))["cache_prompt"] is False
    # An endpoint (vLLM, OpenAI): nothing it might reject, unless configured.
    assert "cache_prompt" not in await body_of(LLMSettings(base_url="http://vllm:8000/v1"), None)
    assert (await body_of(LLMSettings(base_url="http://l:1/v1", cache_prompt=True), None))["cache_prompt"] is True


async def test_dry_goes_with_answers_that_restate_on_the_embedded_server_and_where_configured() -> None:
    async def bodies(settings: LLMSettings, base_url: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        fake = FakeOpenAI(['{"answer": "yes"}', '{"answer": "yes"}'])
        async with LLMClient(settings, base_url=base_url, transport=fake.transport()) as llm:
            await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer, restate=True)
            await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
        return fake.requests[0], fake.requests[1]

    # The embedded llama-server: a writer's request carries the sampler, over the whole context; others do not.
    written, other = await bodies(LLMSettings(context_tokens=4096), "http://127.0.0.1:9/v1")
    assert written is not other
    assert written["dry_multiplier"] == 0.8 and written["dry_allowed_length"] == 3
    assert written["dry_penalty_last_n"] == 4096 and written["dry_base"] == 1.75
    # Digits break a run, so a number is copied as it stands.
    assert set("0123456789") <= set(written["dry_sequence_breakers"]) and "\n" in written["dry_sequence_breakers"]
    assert not any(k.startswith("dry_") for k in other)
    # An endpoint: nothing it might reject, unless configured; 0 turns it off everywhere.
    written, _ = await bodies(LLMSettings(base_url="http://vllm:8000/v1"), None)
    assert not any(k.startswith("dry_") for k in written)
    written, _ = await bodies(LLMSettings(base_url="http://l:1/v1", dry_multiplier=0.5, dry_allowed_length=5), None)
    assert (written["dry_multiplier"], written["dry_allowed_length"]) == (0.5, 5)
    written, _ = await bodies(LLMSettings(dry_multiplier=0), "http://127.0.0.1:9/v1")
    assert not any(k.startswith("dry_") for k in written)


async def test_a_repair_request_keeps_the_dry_sampler() -> None:
    fake = FakeOpenAI(["not json", '{"answer": "yes"}'])
    async with LLMClient(LLMSettings(), base_url="http://127.0.0.1:9/v1", transport=fake.transport()) as llm:
        out = await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer, restate=True)
    assert out.repaired and all(b["dry_multiplier"] == 0.8 for b in fake.requests)


class SlotServer:
    """A fake llama-server that records chat requests and slot actions, and can lose its slot files."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.files: set[str] = set()
        self.bodies: list[dict[str, Any]] = []

    def transport(self) -> httpx.MockTransport:
        def handler(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content)
            if request.url.path == "/slots/0":
                action, name = request.url.params["action"], body["filename"]
                self.log.append(f"{action} {name[:13]}")
                if action == "save":
                    self.files.add(name)
                elif name not in self.files:
                    return httpx.Response(400, json={"error": {"message": "failed to load slot"}})
                return httpx.Response(200, json={"id_slot": 0})
            assert request.url.path == "/v1/chat/completions"
            self.bodies.append(body)
            user = body["messages"][1]["content"]
            self.log.append("warm" if user == "" else f"chat {user}")
            return httpx.Response(200, json=completion('{"answer": "yes"}'))

        return httpx.MockTransport(handler)


async def test_pinned_prefix_reads_each_system_prompt_once_and_restores_it_before_every_request() -> None:
    server = SlotServer()
    async with LLMClient(
        LLMSettings(), base_url="http://127.0.0.1:9/v1", transport=server.transport(), pin_prefix=True
    ) as llm:
        for system, user in (("S1", "a"), ("S1", "b"), ("S2", "c"), ("S1", "d")):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            await llm.complete_json(messages, SCHEMA, Answer)
        s1, s2 = ("prefix-" + hashlib.sha256(s.encode()).hexdigest()[:6] for s in ("S1", "S2"))
        assert server.log == [
            f"restore {s1}", "warm", f"save {s1}", f"restore {s1}", "chat a",
            f"restore {s1}", "chat b",
            f"restore {s2}", "warm", f"save {s2}", f"restore {s2}", "chat c",
            f"restore {s1}", "chat d",
        ]  # fmt: skip
        # Every request uses the prompt cache, in the slot the prefix was restored into.
        assert all(b["cache_prompt"] is True and b["id_slot"] == 0 for b in server.bodies)
        # The server lost its files (restarted with another directory): the prefix is read and saved again.
        server.files.clear()
        server.log.clear()
        await llm.complete_json([{"role": "system", "content": "S1"}, {"role": "user", "content": "e"}], SCHEMA, Answer)
        assert server.log == [f"restore {s1}", "warm", f"save {s1}", f"restore {s1}", "chat e"]


async def test_a_new_client_restores_the_states_an_earlier_run_saved_without_reading_the_prompts_again() -> None:
    server = SlotServer()
    s1 = "prefix-" + hashlib.sha256(b"S1").hexdigest()[:6]
    for run in range(2):  # two runs of the service against servers sharing the slot directory
        server.log.clear()
        async with LLMClient(
            LLMSettings(), base_url="http://127.0.0.1:9/v1", transport=server.transport(), pin_prefix=True
        ) as llm:
            await llm.pin(["S1"])
            await llm.complete_json(
                [{"role": "system", "content": "S1"}, {"role": "user", "content": "a"}], SCHEMA, Answer
            )
        if run == 0:
            assert server.log == [f"restore {s1}", "warm", f"save {s1}", f"restore {s1}", f"restore {s1}", "chat a"]
        else:
            assert server.log == [f"restore {s1}", f"restore {s1}", "chat a"]
            assert sample(llm, "podbrief_extraction_llm_tokens_total", {"direction": "in", "stage": "prefix"}) == 0


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_retries_on_5xx_and_429_with_growing_backoff(status: int) -> None:
    fake = FakeOpenAI([httpx.Response(status, text="busy"), httpx.Response(status, text="busy"), '{"answer": "ok"}'])
    sleeps: list[float] = []
    llm = client(fake, sleeps, max_retries=3, backoff_base_s=1.0)
    out = await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert out.value.answer == "ok"
    assert len(fake.requests) == 3
    # Exponential with jitter in [0.5, 1.0] of the nominal delay: 1 s, then 2 s.
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    label = "http_429" if status == 429 else "http_5xx"
    assert sample(llm, "podbrief_extraction_llm_requests_total", {"status": label}) == 2


async def test_retry_after_header_is_honoured() -> None:
    fake = FakeOpenAI([httpx.Response(429, headers={"Retry-After": "8"}), '{"answer": "ok"}'])
    sleeps: list[float] = []
    llm = client(fake, sleeps, backoff_base_s=0.1)
    await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert 4.0 <= sleeps[0] <= 8.0


async def test_retries_exhausted_raise_retryable() -> None:
    fake = FakeOpenAI(responder=lambda _b: httpx.Response(503, text="down"))
    llm = client(fake, max_retries=2, breaker_failures=100)
    with pytest.raises(RetryableError) as info:
        await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert info.value.reason == "http_5xx"
    assert len(fake.requests) == 3


async def test_timeout_is_retried_then_retryable() -> None:
    fake = FakeOpenAI([httpx.ReadTimeout("slow"), '{"answer": "ok"}'])
    llm = client(fake)
    assert (await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)).value.answer == "ok"
    fake = FakeOpenAI(responder=lambda _b: httpx.ReadTimeout("slow"))
    llm = client(fake, max_retries=1, breaker_failures=100)
    with pytest.raises(RetryableError) as info:
        await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert info.value.reason == "timeout"
    assert sample(llm, "podbrief_extraction_llm_requests_total", {"status": "timeout"}) == 2


async def test_connection_refused_is_retryable() -> None:
    fake = FakeOpenAI(responder=lambda _b: httpx.ConnectError("refused"))
    llm = client(fake, max_retries=0)
    with pytest.raises(RetryableError) as info:
        await llm.chat([{"role": "user", "content": "q"}])
    assert info.value.reason == "connect"


async def test_bad_request_is_permanent_and_not_retried() -> None:
    fake = FakeOpenAI(responder=lambda _b: httpx.Response(400, json={"error": "context length exceeded"}))
    llm = client(fake)
    with pytest.raises(PermanentError) as info:
        await llm.chat([{"role": "user", "content": "q"}])
    assert info.value.reason == "http_4xx" and not isinstance(info.value, RetryableError)
    assert len(fake.requests) == 1


async def test_invalid_json_gets_one_repair_then_succeeds() -> None:
    fake = FakeOpenAI(['{"answer": "unterminated', '{"answer": "fixed"}'])
    llm = client(fake)
    out = await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert out.value.answer == "fixed" and out.repaired
    repair = fake.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"answer": "unterminated'}
    assert "not valid JSON" in repair[-1]["content"]
    assert repair[-1]["role"] == "user"
    assert out.usage.requests == 2 and out.usage.prompt_tokens == 200
    assert sample(llm, "podbrief_extraction_invalid_outputs_total", {"stage": "first"}) == 1


async def test_schema_violation_is_repaired_like_invalid_json() -> None:
    fake = FakeOpenAI(['{"wrong": 1}', '{"answer": "ok"}'])
    llm = client(fake)
    out = await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert out.value.answer == "ok" and out.repaired
    assert "answer" in fake.requests[1]["messages"][-1]["content"]  # the validation error is explained


async def test_repair_that_fails_raises_invalid_output() -> None:
    fake = FakeOpenAI(["not json at all", "still not json"])
    llm = client(fake)
    with pytest.raises(InvalidOutputError) as info:
        await llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer)
    assert isinstance(info.value, PermanentError) and info.value.reason == "invalid_output"
    assert len(fake.requests) == 2
    assert sample(llm, "podbrief_extraction_invalid_outputs_total", {"stage": "repair"}) == 1


def test_tolerant_parse_accepts_fences_and_preamble() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json('Sure! Here it is: {"a": [1, 2]} Hope that helps.') == {"a": [1, 2]}
    with pytest.raises(json.JSONDecodeError):
        parse_json("no braces here")


async def test_circuit_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    clock = Clock()
    fake = FakeOpenAI(responder=lambda _b: httpx.Response(500))
    llm = client(fake, clock=clock, max_retries=0, breaker_failures=3, breaker_cooldown_s=30)
    for _ in range(3):
        with pytest.raises(RetryableError):
            await llm.chat([{"role": "user", "content": "q"}])
    assert len(fake.requests) == 3
    with pytest.raises(RetryableError) as info:
        await llm.chat([{"role": "user", "content": "q"}])
    assert info.value.reason == "circuit_open"
    assert len(fake.requests) == 3  # refused without a request
    assert not await llm.healthy()
    clock.now += 31
    fake.responder = lambda _b: completion("hi")
    content, _ = await llm.chat([{"role": "user", "content": "q"}])
    assert content == "hi" and not llm.breaker.is_open and await llm.healthy()


def test_breaker_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    b = CircuitBreaker(1, 10, clock)
    b.failure()
    with pytest.raises(RetryableError):
        b.before()
    clock.now += 11
    b.before()  # the trial
    with pytest.raises(RetryableError):
        b.before()  # a second caller while the trial is out
    b.failure()
    with pytest.raises(RetryableError):
        b.before()


async def test_concurrency_is_bounded_by_the_semaphore() -> None:
    import asyncio

    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json=completion('{"answer": "x"}'))

    settings = LLMSettings(base_url="http://llm.test/v1", concurrency=3)
    llm = LLMClient(settings, transport=httpx.MockTransport(handler))
    await asyncio.gather(*(llm.complete_json([{"role": "user", "content": "q"}], SCHEMA, Answer) for _ in range(10)))
    assert peak == 3


async def test_pin_reads_the_system_prompts_at_startup_so_no_request_reads_them() -> None:
    server = SlotServer()
    async with LLMClient(
        LLMSettings(), base_url="http://127.0.0.1:9/v1", transport=server.transport(), pin_prefix=True
    ) as llm:
        await llm.pin(["S1", "S2", "S1"])
        s1, s2 = ("prefix-" + hashlib.sha256(s.encode()).hexdigest()[:6] for s in ("S1", "S2"))
        assert server.log == [
            f"restore {s1}", "warm", f"save {s1}", f"restore {s1}",
            f"restore {s2}", "warm", f"save {s2}", f"restore {s2}",
        ]  # fmt: skip
        server.log.clear()
        await llm.complete_json([{"role": "system", "content": "S2"}, {"role": "user", "content": "a"}], SCHEMA, Answer)
        assert server.log == [f"restore {s2}", "chat a"]
    # Without a pinned prefix (an endpoint, not the embedded server) there is nothing to read ahead.
    fake = FakeOpenAI()
    async with LLMClient(LLMSettings(base_url="http://vllm:8000/v1"), transport=fake.transport()) as llm:
        await llm.pin(["S1"])
    assert fake.requests == []
