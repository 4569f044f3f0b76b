"""The one vocabulary of reason codes: complete, enforced where errors are made, used by the bus, documented."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest
from podbrief import reasons
from podbrief.errors import (
    ConfigurationError,
    InvalidEventError,
    PermanentError,
    PipelineError,
    RetryableError,
    UnavailableError,
    reason_of,
)
from podbrief.generated import sections

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CODE = [ROOT / "libs", ROOT / "services", ROOT / "apps"]


def test_every_declared_code_has_a_meaning_and_a_group() -> None:
    declared = list(get_args(reasons.Reason))
    assert len(declared) == len(set(declared)), "a code is declared twice"
    assert set(declared) == set(reasons.REASONS)
    for code, info in reasons.REASONS.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), code
        assert info.meaning and info.group in reasons.GROUP_TITLES


def test_an_error_refuses_a_code_outside_the_vocabulary() -> None:
    with pytest.raises(ValueError, match=r"podbrief\.reasons"):
        PermanentError("boom", reason="not_a_reason")  # type: ignore[arg-type]
    assert PermanentError("x", reason="corrupt_audio").reason == "corrupt_audio"


def test_an_error_without_a_code_gets_its_class_generic_one() -> None:
    assert RetryableError("x").reason == "temporary"
    assert UnavailableError("x").reason == "unavailable"
    assert PermanentError("x").reason == "permanent"
    assert InvalidEventError("x").reason == "invalid_event"
    assert ConfigurationError("x").reason == "configuration"
    assert PipelineError("x").reason == "unexpected"


def test_reason_of_any_exception_is_a_code() -> None:
    assert reason_of(RetryableError("x", reason="dns")) == "dns"
    assert reason_of(TimeoutError()) == "timeout"
    assert reason_of(ConnectionRefusedError()) == "unavailable"
    assert reason_of(KeyError("bug")) == "unexpected"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "http_401"),
        (403, "http_403"),
        (404, "http_404"),
        (410, "http_410"),
        (429, "http_429"),
        (418, "http_4xx"),
        (400, "http_4xx"),
        (500, "http_5xx"),
        (503, "http_5xx"),
    ],
)
def test_http_status_codes(status: int, code: str) -> None:
    assert reasons.http_status(status) == code


def _reason_literals() -> list[tuple[str, int, str]]:
    """Every string literal passed as `reason=` (or as a conditional's branch of one) in production code."""
    out = []
    for base in CODE:
        for path in base.rglob("*.py"):
            if "/tests/" in str(path) or "/migrations/" in str(path):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                for kw in node.keywords:
                    if kw.arg != "reason":
                        continue
                    for sub in ast.walk(kw.value):
                        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                            out.append((str(path.relative_to(ROOT)), sub.lineno, sub.value))
    return out


def test_every_reason_literal_in_the_code_is_in_the_vocabulary() -> None:
    found = _reason_literals()
    assert len(found) > 50  # the scan sees the code
    unknown = [f for f in found if f[2] not in reasons.REASONS]
    assert not unknown, f"reason codes outside podbrief.reasons: {unknown}"


def test_the_readme_table_is_the_vocabulary() -> None:
    [section] = [s for s in sections((ROOT / "README.md").read_text(encoding="utf-8")) if s.name == "reasons"]
    assert section.body == reasons.markdown_table() + "\n", "README out of date: `podbrief reasons --write README.md`"


def test_split_detail_reads_stored_code_and_detail() -> None:
    assert reasons.split_detail("enclosure_not_audio (video/mp4)") == ("enclosure_not_audio", "video/mp4")
    assert reasons.split_detail("timeout: LLM request timed out") == ("timeout", "LLM request timed out")
    assert reasons.split_detail("something else") == (None, "something else")


async def test_the_bus_logs_and_dead_letters_with_the_same_code(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from podbrief.bus import Bus, MemoryTransport, Subscription, dlq
    from podbrief.events import BriefDelivered
    from podbrief.metrics import BusMetrics, new_registry
    from podbrief.settings import BusSettings
    from podbrief_testing.bus import numbered_event

    topic = "podbrief.test.reasons.v1"
    transport = MemoryTransport()
    metrics = BusMetrics.create("test", new_registry())
    bus = Bus(transport, BusSettings(max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.01), metrics)
    await bus.start()

    async def handler(_e: BriefDelivered) -> None:
        raise RetryableError("cannot resolve audio.example", reason="dns")

    await transport.ensure_topics([topic])
    await bus.publish(numbered_event("k", 0), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group="g")
    task = asyncio.create_task(consumer.run())
    deadline = asyncio.get_running_loop().time() + 10
    while not transport.records(topic + ".dlq"):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    consumer.stop()
    await task
    await bus.stop()
    logged = [getattr(r, "reason", None) for r in caplog.records if r.name == "podbrief.bus.core"]
    assert logged == ["dns", "dns"]  # the retry and the dead-letter
    [letter] = await dlq.dead_letters(transport, topic)
    assert letter.reason == "dns"
    assert metrics.dead_lettered.labels(topic, "retryable", "dns")._value.get() == 1
