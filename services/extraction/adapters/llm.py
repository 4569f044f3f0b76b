"""An OpenAI-compatible chat-completions client on httpx: vLLM in production, llama.cpp's llama-server on CPU.

Structured output goes through `response_format: {"type": "json_schema", ...}`, which both servers
enforce with a grammar. Around it: bounded concurrency (so vLLM's continuous batching sees parallel
requests), timeouts, retries with exponential backoff and jitter on 429/5xx/timeouts, a circuit
breaker, one repair round for invalid output, and token accounting. Errors map onto podbrief.errors."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from podbrief.errors import PermanentError, RetryableError, UnavailableError
from podbrief.reasons import http_status
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.settings import LLMSettings
from pydantic import BaseModel, ValidationError

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


# Alternatives asked for with a yes/no question's answer token: enough that "Yes", "yes", " yes" and the noes
# are all among them.
_TOP_LOGPROBS = 10
# The DRY strength the embedded server's writer gets when LLMSettings.dry_multiplier is unset.
DEFAULT_DRY_MULTIPLIER = 0.8
# llama.cpp's default breakers, and the digits.
DRY_SEQUENCE_BREAKERS = ["\n", ":", '"', "*", *"0123456789"]


class InvalidOutputError(PermanentError):
    """The model's answer was not valid JSON for the schema, even after one repair round."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    # Prompt tokens the server took from its prompt cache instead of computing (llama-server and vLLM report
    # them as usage.prompt_tokens_details.cached_tokens).
    cached_tokens: int = 0
    # The server's own time for the prompt and for generation (llama-server's `timings`; 0 when not reported).
    prompt_ms: float = 0.0
    generation_ms: float = 0.0

    @classmethod
    def of(cls, data: dict[str, Any]) -> Usage:
        """One chat completion's usage: the OpenAI `usage` block (llama-server and vLLM), and llama-server's own
        `timings` where it sends them."""
        raw_usage = data.get("usage") or {}
        cached = (raw_usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        raw_timings = data.get("timings")
        timings: dict[str, Any] = raw_timings if isinstance(raw_timings, dict) else {}
        return cls(
            int(raw_usage.get("prompt_tokens") or 0),
            int(raw_usage.get("completion_tokens") or 0),
            1,
            int(cached or 0),
            float(timings.get("prompt_ms") or 0.0),
            float(timings.get("predicted_ms") or 0.0),
        )

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests
        self.cached_tokens += other.cached_tokens
        self.prompt_ms += other.prompt_ms
        self.generation_ms += other.generation_ms


@dataclass(frozen=True)
class Structured(Generic[T]):
    value: T
    usage: Usage
    repaired: bool


class CircuitBreaker:
    """Opens after `threshold` consecutive failed requests; while open, calls fail at once. After the
    cool-down one trial call is let through (half-open): success closes it, failure opens it again."""

    def __init__(self, threshold: int, cooldown_s: float, clock: Clock = time.monotonic) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.clock() - self.opened_at < self.cooldown_s

    def before(self) -> None:
        if self.opened_at is None:
            return
        if self.is_open or self._trial:
            raise UnavailableError("LLM endpoint circuit is open after repeated failures", reason="circuit_open")
        self._trial = True

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial = False

    def failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


def parse_json(content: str) -> Any:
    """Tolerant parse: accepts code fences and prose around one JSON object (servers without grammar
    support, or models that add a preamble)."""
    text = _FENCE.sub("", content.strip()).strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        if start >= 0 and end > start:
            return json.loads(text[start : end + 1])
        raise


class LLMClient:
    def __init__(
        self,
        settings: LLMSettings,
        *,
        base_url: str | None = None,
        metrics: ExtractionMetrics | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        pin_prefix: bool = False,
    ) -> None:
        url = base_url or settings.base_url
        if not url:
            raise ValueError("LLMClient needs a base URL (settings.llm.base_url or the embedded server's)")
        self.settings = settings
        self.base_url = url.rstrip("/")
        # A base URL given here, not in the settings, is the embedded llama-server's.
        embedded = base_url is not None and settings.base_url is None
        self.cache_prompt = settings.cache_prompt
        if self.cache_prompt is None and embedded:
            self.cache_prompt = False
        # The embedded llama-server, started with --slot-save-path: each system prompt is read once, saved as a
        # slot file, and restored before every request that starts with it. The prompt cache then saves the
        # system prompt's tokens on every call, while the rest of each request is always computed from the same
        # position in the same batch shapes, so an identical request gives the identical answer.
        self.pin_prefix = pin_prefix
        if pin_prefix:
            self.cache_prompt = True
        # DRY for answers that restate (see LLMSettings.dry_multiplier): on by default for the embedded server.
        dry = settings.dry_multiplier
        self.dry_multiplier = dry if dry is not None else DEFAULT_DRY_MULTIPLIER if embedded else 0.0
        self._root = self.base_url.removesuffix("/v1")
        self._pin_lock = asyncio.Lock()
        self.model = settings.model
        self.metrics = metrics or ExtractionMetrics.create()
        self._sleep = sleep
        self._sem = asyncio.Semaphore(settings.concurrency)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s, clock)
        headers = {"Accept": "application/json"}
        if settings.api_key is not None:
            headers["Authorization"] = "Bearer " + settings.api_key.get_secret_value()
        timeout = httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    @property
    def restates(self) -> bool:
        """Whether `restate=True` requests are sampled with DRY (a multiplier above 0)."""
        return self.dry_multiplier > 0

    async def complete_json(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        model: type[T],
        *,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        stage: str = "extract",
        restate: bool = False,
    ) -> Structured[T]:
        """Ask for JSON conforming to `schema`, validated by `model`. Invalid output gets one repair request;
        if that fails too, InvalidOutputError (permanent for this input). `stage` labels the token metrics.
        `restate`: the answer must say the prompt's content in its own words (DRY, where the server has it)."""
        usage = Usage()
        content, u = await self.chat(
            messages, schema=schema, schema_name=schema_name, max_tokens=max_tokens, stage=stage, restate=restate
        )
        usage.add(u)
        try:
            return Structured(self._validate(content, model), usage, repaired=False)
        except (ValueError, ValidationError) as exc:
            self.metrics.invalid_outputs.labels("first").inc()
            problem = _describe(exc)
            log.info("invalid model output; asking for a repair", extra={"error": problem[:300]})
        repair = [
            *messages,
            {"role": "assistant", "content": content[:4000]},
            {
                "role": "user",
                "content": "Your answer was not valid JSON for the required schema ("
                + problem[:300]
                + "). Reply again with only the corrected JSON object.",
            },
        ]
        content, u = await self.chat(
            repair, schema=schema, schema_name=schema_name, max_tokens=max_tokens, stage=stage, restate=restate
        )
        usage.add(u)
        try:
            return Structured(self._validate(content, model), usage, repaired=True)
        except (ValueError, ValidationError) as exc:
            self.metrics.invalid_outputs.labels("repair").inc()
            err = InvalidOutputError(
                "model output invalid after one repair: " + _describe(exc)[:300], reason="invalid_output"
            )
            err.usage = usage  # type: ignore[attr-defined]
            raise err from exc

    @staticmethod
    def _validate(content: str, model: type[T]) -> T:
        return model.model_validate(parse_json(content))

    async def chat(
        self,
        messages: list[dict[str, str]],
        *,
        schema: dict[str, Any] | None = None,
        schema_name: str = "answer",
        max_tokens: int | None = None,
        stage: str = "extract",
        restate: bool = False,
    ) -> tuple[str, Usage]:
        body = self._body(messages, max_tokens)
        if restate and self.restates:
            # The whole prompt is the context DRY looks back over (the passage sits in it). Digits break a run,
            # as a newline or a quotation mark does by default: a number is copied as it stands.
            body |= {
                "dry_multiplier": self.dry_multiplier,
                "dry_base": 1.75,
                "dry_allowed_length": self.settings.dry_allowed_length,
                "dry_penalty_last_n": self.settings.context_tokens,
                "dry_sequence_breakers": DRY_SEQUENCE_BREAKERS,
            }
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "strict": True, "schema": schema},
            }
        choice, usage = await self._send(body, stage)
        if choice.get("finish_reason") == "length":
            log.info("completion hit max_tokens", extra={"completion_tokens": usage.completion_tokens})
        return str(choice["message"].get("content") or ""), usage

    async def yes_probability(self, messages: list[dict[str, str]], *, stage: str = "rate") -> tuple[float, Usage]:
        """The model's probability that the answer to a yes/no question is yes, from the first answer token's
        top log-probabilities (OpenAI's `logprobs`, which llama-server and vLLM both return): a graded answer
        where an asked-for rating comes back nearly constant. A server that returns no log-probabilities gives
        1.0 or 0.0 from the answer's text, 0.5 when it is neither."""
        body = self._body(messages, 1)
        body["logprobs"], body["top_logprobs"] = True, _TOP_LOGPROBS
        choice, usage = await self._send(body, stage)
        yes = no = 0.0
        content = (choice.get("logprobs") or {}).get("content") or []
        for alt in (content[0].get("top_logprobs") or []) if content else []:
            try:
                token, p = str(alt["token"]).strip().lower(), math.exp(float(alt["logprob"]))
            except (KeyError, TypeError, ValueError, OverflowError):
                continue
            if token == "yes":
                yes += p
            elif token == "no":
                no += p
        if yes + no > 0:
            return yes / (yes + no), usage
        said = str(choice["message"].get("content") or "").strip().lower()
        return (1.0 if said.startswith("yes") else 0.0 if said.startswith("no") else 0.5), usage

    def _body(self, messages: list[dict[str, str]], max_tokens: int | None) -> dict[str, Any]:
        """A chat-completion request's body with this client's model, sampling and cache settings."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": max_tokens or self.settings.max_tokens,
            "stream": False,
        }
        if self.settings.seed is not None:
            body["seed"] = self.settings.seed
        if self.cache_prompt is not None:
            body["cache_prompt"] = self.cache_prompt
        return body

    async def _send(self, body: dict[str, Any], stage: str) -> tuple[dict[str, Any], Usage]:
        """One chat completion (its system prompt restored first where pinned): its first choice, which has a
        message, and its usage, counted in the metrics under `stage`."""
        messages = body["messages"]
        if self.pin_prefix and messages and messages[0].get("role") == "system":
            system = messages[0]["content"]
            body["id_slot"] = 0
            async with self._pin_lock:  # restore and request back to back: nothing else may use the slot between
                data = await self._post_with_retries(
                    "/chat/completions", body, before=lambda: self._restore_prefix(system)
                )
        else:
            data = await self._post_with_retries("/chat/completions", body)
        try:
            choice = data["choices"][0]
            if not isinstance(choice["message"], dict):
                raise TypeError("message is not an object")
        except (KeyError, IndexError, TypeError) as exc:
            raise RetryableError("chat completion without choices", reason="bad_response") from exc
        usage = Usage.of(data)
        self.metrics.tokens.labels("in", stage).inc(usage.prompt_tokens)
        self.metrics.tokens.labels("out", stage).inc(usage.completion_tokens)
        self._count_server_seconds(usage)
        return choice, usage

    async def pin(self, systems: Iterable[str]) -> None:
        """Read and save each system prompt now (the embedded server only; elsewhere nothing), so that no
        episode's first request pays for it: what the service does at startup, before it says it is ready."""
        if not self.pin_prefix:
            return
        for system in dict.fromkeys(systems):
            async with self._pin_lock:
                await self._restore_prefix(system)

    async def _restore_prefix(self, system: str) -> None:
        """Put the system prompt's saved state into slot 0. The server's slot directory usually holds it: saved by
        this client earlier, or by an earlier run of the same server build, model and settings (see
        EmbeddedLlamaServer). When it does not (never saved, or the server lost its files), the prompt is read,
        saved and restored."""
        name = "prefix-" + hashlib.sha256(system.encode()).hexdigest()[:24] + ".bin"
        if await self._restored(name):
            return
        warm = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": ""}],
            "temperature": 0.0,
            "max_tokens": 1,
            "stream": False,
            "cache_prompt": True,
            "id_slot": 0,
        }
        usage = Usage.of(await self._post_once("/chat/completions", warm))
        self.metrics.tokens.labels("in", "prefix").inc(usage.prompt_tokens)
        self._count_server_seconds(usage)
        await self._slot("save", name)
        await self._slot("restore", name)

    def _count_server_seconds(self, usage: Usage) -> None:
        self.metrics.server_seconds.labels("prompt").inc(usage.prompt_ms / 1000.0)
        self.metrics.server_seconds.labels("generation").inc(usage.generation_ms / 1000.0)

    async def _restored(self, name: str) -> bool:
        """Whether the server restored the saved state (no such file, or one it cannot load: no)."""
        try:
            await self._slot("restore", name)
        except RetryableError as exc:
            if exc.reason != "bad_response":
                raise
            return False
        return True

    async def _slot(self, action: str, name: str) -> None:
        try:
            resp = await self._http.post(self._root + "/slots/0", params={"action": action}, json={"filename": name})
        except httpx.HTTPError as exc:
            raise RetryableError(f"llama-server slot {action} failed: {type(exc).__name__}", reason="connect") from exc
        if resp.status_code >= 400:
            raise RetryableError(
                f"llama-server slot {action} answered {resp.status_code}: {resp.text[:200]}", reason="bad_response"
            )

    async def _post_with_retries(
        self, path: str, body: dict[str, Any], before: Callable[[], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                if before is not None:
                    await before()
                return await self._post_once(path, body)
            except RetryableError as exc:
                if exc.reason == "circuit_open" or attempt >= self.settings.max_retries:
                    raise
                delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is not None:
                    delay = min(self.settings.backoff_max_s, max(delay, retry_after))
                delay *= 0.5 + random.random() / 2
                attempt += 1
                log.warning(
                    "LLM request failed; retrying",
                    extra={"reason": exc.reason, "attempt": attempt, "delay_s": round(delay, 3)},
                )
                await self._sleep(delay)

    async def _post_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            self.breaker.before()
        except RetryableError:
            self.metrics.llm_requests.labels("circuit_open").inc()
            self.metrics.breaker_open.set(1)
            raise
        async with self._sem:
            started = time.perf_counter()
            status = "ok"
            try:
                resp = await self._http.post(path, json=body)
            except httpx.TimeoutException as exc:
                status = "timeout"
                raise RetryableError("LLM request timed out", reason="timeout") from exc
            except httpx.TransportError as exc:
                status = "connect"
                raise RetryableError("LLM endpoint unreachable: " + type(exc).__name__, reason="connect") from exc
            finally:
                elapsed = time.perf_counter() - started
                self.metrics.llm_seconds.labels("ok" if status == "ok" else "error").observe(elapsed)
                if status != "ok":
                    self._failed(status)
        code = resp.status_code
        if code == 429 or code >= 500:
            label = http_status(code)
            self._failed(label)
            err = RetryableError(f"LLM endpoint answered {code}: {resp.text[:200]}", reason=label)
            err.retry_after = _retry_after(resp)  # type: ignore[attr-defined]
            raise err
        if code in (401, 403):
            self._failed("http_4xx")
            # A wrong key is a deploy problem, not a property of this message: retry later, then DLQ.
            raise RetryableError(f"LLM endpoint refused credentials ({code})", reason="auth")
        if code >= 400:
            self.metrics.llm_requests.labels("http_4xx").inc()
            self.breaker.success()  # the endpoint works; this request is bad
            raise PermanentError(f"LLM endpoint rejected the request ({code}): {resp.text[:300]}", reason="http_4xx")
        try:
            data = resp.json()
        except ValueError as exc:
            self._failed("http_5xx")
            raise RetryableError("LLM endpoint answered with non-JSON", reason="bad_response") from exc
        if not isinstance(data, dict):
            self._failed("http_5xx")
            raise RetryableError("LLM endpoint answered with unexpected JSON", reason="bad_response")
        self.metrics.llm_requests.labels("ok").inc()
        self.breaker.success()
        self.metrics.breaker_open.set(0)
        return data

    def _failed(self, label: str) -> None:
        self.metrics.llm_requests.labels(label).inc()
        self.breaker.failure()
        if self.breaker.opened_at is not None:
            self.metrics.breaker_open.set(1)

    async def healthy(self) -> bool:
        return not self.breaker.is_open


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value and value.replace(".", "", 1).isdigit():
        return float(value)
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
    return f"{type(exc).__name__}: {exc}"
