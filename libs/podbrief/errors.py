"""The pipeline's error tree: adapters map third-party failures onto it, the consumer runner acts on it.

- RetryableError: worth trying again (a timeout, a 5xx, a lock); retried with backoff, then dead-lettered.
- UnavailableError: a dependency is down for every message (an open circuit breaker); retried with capped
  backoff until it is back, never dead-lettered, since the message is not at fault. So is a raw
  ConnectionError (the database refusing connections): see `is_unavailable`.
- PermanentError: trying again cannot help (a corrupt file, a 404); dead-lettered at once.
- InvalidEventError: the message itself is malformed; dead-lettered at once.

Each error carries a reason code from `podbrief.reasons` (the one vocabulary of logs, metrics, dead letters and
status APIs); without one it gets its class's generic reason.
"""

from __future__ import annotations

from podbrief.reasons import Reason, check


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""

    retryable: bool = False
    kind: str = "pipeline"
    default_reason: Reason = "unexpected"

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        # A short, low-cardinality code from podbrief.reasons ("timeout", "http_5xx", "corrupt_audio").
        self.reason: Reason = check(reason) if reason is not None else self.default_reason


class RetryableError(PipelineError):
    retryable = True
    kind = "retryable"
    default_reason: Reason = "temporary"


class UnavailableError(RetryableError):
    """Raised without trying the message at all, because its dependency is known to be down. Counting these as
    attempts would dead-letter every message that arrives during an outage longer than the bus's backoff."""

    kind = "unavailable"
    default_reason: Reason = "unavailable"


class PermanentError(PipelineError):
    kind = "permanent"
    default_reason: Reason = "permanent"


class InvalidEventError(PermanentError):
    kind = "invalid_event"
    default_reason: Reason = "invalid_event"


class ConfigurationError(PipelineError):
    """Settings that cannot work; raised at start-up so a bad deploy fails fast."""

    kind = "configuration"
    default_reason: Reason = "configuration"


def classify(exc: BaseException) -> str:
    """The error class name used in DLQ headers and metrics labels."""
    if isinstance(exc, PipelineError):
        return exc.kind
    # Unknown failures are treated as retryable: a bug shows up in the DLQ after bounded retries
    # rather than silently dropping the message.
    return "retryable"


def reason_of(exc: BaseException) -> Reason:
    """The reason code of any exception: a PipelineError's own, else what its type says."""
    if isinstance(exc, PipelineError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionError):
        return "unavailable"
    return "unexpected"


def is_unavailable(exc: BaseException) -> bool:
    """A dependency is down, not this message at fault: an UnavailableError, or a connection refused or reset
    reaching the consumer unmapped (the database pool's connect while PostgreSQL restarts). Adapters map the
    failures of per-message fetches (a dead podcast host) onto RetryableError/PermanentError, never this."""
    return isinstance(exc, UnavailableError | ConnectionError)


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, PipelineError):
        return exc.retryable
    return True
