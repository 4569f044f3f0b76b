"""Schemathesis against each service's OpenAPI document, in-process: every operation gets generated requests
(with the admin key, and a real subscriber's token on delivery's subscriber routes, so the handlers run), and
every answer must not be a 5xx, must use a documented status code, and must match its documented schema."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from podbrief_delivery.settings import RateLimitSettings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.unit

KEY = "security-suite-admin-key-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
# Requests that break the schema must be refused with a 4xx (input validation on every endpoint).
NEGATIVE_CHECKS = [*CHECKS, negative_data_rejection]
EXAMPLES = {GenerationMode.POSITIVE: 25, GenerationMode.NEGATIVE: 10}
# Operations that generated data cannot satisfy, and what they must answer instead: random strings are not
# feed URLs or OPML documents, and random tokens are not signed by us.
NO_SUCCESS_EXPECTED = {
    # A generated string is almost never an http(s) URL; one that is cannot be fetched here (no DNS).
    "POST /v1/feeds": {200, 201, 400, 422, 502, 504},
    "POST /v1/opml": {400, 422},
    "POST /v1/subscribers/confirm": {400, 422},
    # Generated addresses mostly belong to nobody: 404 (422 where email-validator is stricter than the format).
    # 400: a body that is not the documented object at all (negative generation).
    "POST /v1/admin/bounces": {200, 400, 404, 422},
}
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")
ROTATE = "POST /v1/subscribers/{subscriber_id}/api-key"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated feed URLs must not reach real DNS: every name fails to resolve at once."""

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "offline test")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def asgi_lifespans() -> Iterator[None]:
    yield
    # Schemathesis runs each app's lifespan on its own portal; stop them so databases and locks are released.
    asgi.shutdown_lifespans()


def prepare(service: str, app: FastAPI, session: Any) -> tuple[dict[str, Any], list[str]]:
    """Fixed values that let the handlers run past authentication, and the operations to run last."""
    fixed: dict[str, Any] = {}
    last: list[str] = []
    if service == "ingest":
        r = session.post(
            "/v1/feeds",
            json={"url": "https://feeds.example.com/show.xml", "validate": False},
            headers={"X-API-Key": KEY},
        )
        assert r.status_code == 201, r.text
        fixed["feed_id"] = r.json()["feed"]["id"]
        last = ["DELETE /v1/feeds/{feed_id}"]
    if service == "delivery":
        r = session.post("/v1/subscribers", json={"email": "fuzz@example.org", "interests": "fuzzing"})
        assert r.status_code == 202, r.text
        token = app.state.mailer.messages[-1].get_body(preferencelist=("plain",)).get_content()
        tok = token.split("/confirm?t=", 1)[1].split()[0]
        r = session.post("/v1/subscribers/confirm", json={"token": unquote(tok)})
        assert r.status_code == 200, r.text
        fixed["subscriber_id"] = r.json()["subscriber_id"]
        fixed["profile_token"] = r.json()["profile_token"]
        # The probe's replay (#21): the same confirmation token a second time issues nothing.
        again = session.post("/v1/subscribers/confirm", json={"token": unquote(tok)})
        assert again.status_code == 400 and "api_key" not in again.json(), again.text
        # Today's brief (a quiet-day one: there are no insights), so the brief routes have something to serve.
        r = session.post("/v1/admin/deliveries/run", json={"force": True}, headers={"X-API-Key": KEY})
        assert r.status_code == 200 and r.json()["sent"] == 1, r.text
        # Rotating the key revokes the profile token (the routes after it get a fresh one, see reissue).
        last = [ROTATE, "DELETE /v1/subscribers/{subscriber_id}"]
    return fixed, last


def reissue(app: FastAPI, fixed: dict[str, Any], *, rotations: int) -> None:
    """A profile token for the subscriber's current token version: confirming made it 1, each rotation of the
    API key moved it on and revoked the tokens before."""
    signer = app.state.deps.signer
    fixed["profile_token"] = signer.for_subscriber("profile", fixed["subscriber_id"], 3600, v=1 + rotations)


def run_operation(operation: Any, session: Any, fixed: dict[str, Any], mode: GenerationMode) -> list[int]:
    path_params = {k: fixed[k] for k in ("feed_id", "subscriber_id") if "{" + k + "}" in operation.path}
    headers = {"X-API-Key": KEY}
    if "profile_token" in fixed and "{subscriber_id}" in operation.path:
        headers["X-Subscriber-Token"] = fixed["profile_token"]
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_params or None, headers=headers)
    statuses: list[int] = []
    checks = NEGATIVE_CHECKS if mode == GenerationMode.NEGATIVE else CHECKS

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call_and_validate(session=session, checks=checks)
        statuses.append(response.status_code)

    try:
        check()
    except Unsatisfiable:
        # Every parameter of this operation is fixed above (the path id, the key): nothing invalid to send.
        assert mode == GenerationMode.NEGATIVE, operation.label
    return statuses


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_conformance(
    service: str, make_app: Callable[..., FastAPI], offline: None, asgi_lifespans: None
) -> None:
    # The fuzzer signs up far more often than a person would; the limits have their own tests.
    over = {"rate_limits": RateLimitSettings(signup_per_ip=10**6, signup_per_email=10**6, confirm_per_ip=10**6)}
    app = make_app(service, **(over if service == "delivery" else {}))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    with asgi.get_client(app) as session:
        fixed, last = prepare(service, app, session)
        operations = [op.ok() for op in schema.get_all_operations()]
        operations.sort(key=lambda op: last.index(op.label) + 1 if op.label in last else 0)
        assert operations
        seen: dict[str, list[int]] = {}
        for op in operations:
            for mode in (GenerationMode.NEGATIVE, GenerationMode.POSITIVE):
                seen.setdefault(op.label, []).extend(run_operation(op, session, fixed, mode))
            if op.label == ROTATE:
                reissue(app, fixed, rotations=seen[ROTATE].count(200))
    # The handlers ran: every operation answered at least one generated request with a 2xx, except lookups
    # of ids that were generated at random (a 404 there is the right answer).
    for label, statuses in seen.items():
        assert statuses, label
        if label in NO_SUCCESS_EXPECTED:
            assert set(statuses) <= NO_SUCCESS_EXPECTED[label], (label, sorted(set(statuses)))
        elif all(name in fixed for name in re.findall(r"{(\w+)}", label)):
            assert any(200 <= s < 300 for s in statuses), (label, sorted(set(statuses)))
