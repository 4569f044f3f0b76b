"""Structured JSON logs. Configured once by the entry point; event and correlation ids ride on contextvars."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("podbrief_log_context", default=None)

# Attributes every LogRecord has; anything else passed through `extra=` is emitted as a field.
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Attach fields (event_id, correlation_id, ...) to every log line emitted inside the block."""
    current = _context.get() or {}
    token = _context.set({**current, **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None, redact: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.service = service
        # Masking runs on the serialised line, where a quote or backslash in a secret appears escaped.
        escaped = (json.dumps(s, ensure_ascii=False)[1:-1] for s in redact if s)
        self.redact = tuple(dict.fromkeys([*(s for s in redact if s), *escaped]))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        entry.update(current_context())
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        line = json.dumps(entry, default=str, ensure_ascii=False)
        for secret in self.redact:
            line = line.replace(secret, "***")
        return line


def configure(level: str = "INFO", *, service: str | None = None, secrets: tuple[str, ...] = ()) -> None:
    """Route every logger to one JSON stream on stdout. Secrets are masked as a last line of defence."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service=service, redact=secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party clients are chatty at INFO; their warnings still come through.
    for noisy in ("aiokafka", "httpx", "httpcore", "faster_whisper", "sqlalchemy.engine", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
