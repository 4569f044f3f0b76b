"""No configured secret ever reaches a log or an HTTP answer. The five services run as OS processes on the real
broker and PostgreSQL, each with distinctive secrets (database password of a role made for this test, admin key,
SMTP password, signing secret, LLM and Qdrant API keys, Kafka SASL password), some given as files; the test
drives their admin, validation and failure paths (wrong keys, a failing SMTP login, an LLM that refuses, a wrong
database password, invalid settings), then searches every captured log and every response for each secret:
raw, URL-encoded and base64."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from podbrief.events.ids import episode_id
from podbrief_testing import LoopbackServer, ServiceProcess, SmtpSink, free_port

sys.path.insert(0, str(Path(__file__).parent))
from dbtools import SERVICES

pytestmark = pytest.mark.integration

ARTIFACTS = Path("test-artifacts/secrets")
SRT = "1\n00:00:00,000 --> 00:00:06,000\nHome batteries are getting cheaper every single year, says the host.\n"


@dataclass
class Run:
    procs: dict[str, ServiceProcess]
    secrets: dict[str, str]
    admin_key: str
    db_url: str
    log_dir: Path
    responses: list[httpx.Response] = field(default_factory=list)

    def call(self, method: str, url: str, **kw: object) -> httpx.Response:
        r = httpx.request(method, url, timeout=30, **kw)  # type: ignore[arg-type]
        self.responses.append(r)
        return r


def forms(secret: str) -> set[str]:
    """The ways a secret could be written down: as is, URL-encoded (a DSN, a query string), base64 (HTTP Basic
    auth, SASL PLAIN), and base64 of "user:secret"-style pairs (any prefix shifts the base64 alignment, so each of
    the three alignments of the secret itself, trimmed to whole characters)."""
    out = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
    for pad in range(3):
        encoded = base64.b64encode(b"x" * pad + secret.encode()).decode()
        # Drop the characters that mix in the prefix or the padding; what is left is specific to the secret.
        start = (pad * 4 + 2) // 3
        core = encoded[start : len(encoded) - 4]
        if len(core) >= 8:
            out.add(core)
    return out


def superuser_psql(sql: str) -> None:
    """Roles need a superuser: scripts/postgres.sh's cluster trusts its local socket for `postgres`."""
    pg_bin = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    psql = str(pg_bin[-1]) if pg_bin else shutil.which("psql")
    assert psql, "psql not found (scripts/postgres.sh installs PostgreSQL)"
    port = os.environ.get("PODBRIEF_PG_PORT", "54329")
    sock = os.environ.get("PODBRIEF_PG_SOCKDIR", "/tmp")
    cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", port, "-U", "postgres", "-d", "postgres"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"superuser psql failed (is the cluster from scripts/postgres.sh?): {done.stderr}"


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float, procs: dict[str, ServiceProcess]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        for p in procs.values():
            assert p.proc.poll() is None, f"{p.name} died:\n{p.tail()}"
        time.sleep(0.5)
    logs = "\n".join(f"--- {p.name}\n{p.tail(15)}" for p in procs.values())
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def run_to_exit(name: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """A service that must refuse to start: it exits non-zero and its log says why."""
    p = ServiceProcess(name, env, free_port(), log_dir).start()
    try:
        code = p.proc.wait(timeout=120)
    finally:
        p.kill()
    assert code != 0, p.tail()
    return p


@pytest.fixture
def run(
    tmp_path: Path,
    kafka_bootstrap: str,
    pg_url: str,
    smtp_sink: SmtpSink,
    loopback: LoopbackServer,
    unique: str,
) -> Iterator[Run]:
    role, db = f"sec_{unique}", f"sec_{unique}"
    # Characters that a DSN must URL-encode, so both spellings are searched for.
    secrets = {
        "db_password": f"DbPw-{unique}/+=@x",
        "admin_key": f"AdminKey-{unique}-q9",
        "smtp_password": f"SmtpPw-{unique}-z3",
        "signing_secret": f"Signing-{unique}-0123456789abcdef",
        "llm_api_key": f"sk-llm-{unique}-7h",
        "qdrant_api_key": f"QdrantKey-{unique}-5c",
        "kafka_sasl_password": f"SaslPw-{unique}-2w",
        "wrong_db_password": f"WrongDbPw-{unique}-8k",
    }
    quoted = urllib.parse.quote(secrets["db_password"], safe="")
    superuser_psql(
        f'CREATE ROLE "{role}" LOGIN PASSWORD \'{secrets["db_password"]}\';\nCREATE DATABASE "{db}" OWNER "{role}";\n'
    )
    host = pg_url.rsplit("@", 1)[1].rsplit("/", 1)[0]
    db_url = f"postgresql+asyncpg://{role}:{quoted}@{host}/{db}"
    secret_dir = tmp_path / "run-secrets"
    secret_dir.mkdir()
    shutil.rmtree(ARTIFACTS / unique, ignore_errors=True)
    log_dir = ARTIFACTS / unique
    ports = {name: free_port() for name in SERVICES}
    common = {
        "BUS__KIND": "kafka",
        "BUS__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BUS__KAFKA__NAMESPACE": f"t{unique}.",
        "BUS__KAFKA__PARTITIONS": "1",
        # No SASL on the test broker: the password is configured (and must stay out of the logs) but not sent,
        # since aiokafka only uses it with a SASL mechanism.
        "BUS__KAFKA__SASL_USERNAME": "podbrief",
        "BUS__KAFKA__SASL_PASSWORD": secrets["kafka_sasl_password"],
        "HTTP__ADMIN_API_KEY": secrets["admin_key"],
        # DEBUG: whatever the services log at any level is searched.
        "LOG_LEVEL": "DEBUG",
    }
    extra: dict[str, dict[str, str]] = {
        "ingest": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]', "BACKFILL_LIMIT": "1"},
        "transcription": {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]'},
        "extraction": {
            # An OpenAI-compatible endpoint that refuses every completion, so the failure path runs.
            "LLM__BASE_URL": loopback.url("/v1"),
            "LLM__MAX_RETRIES": "0",
            "BUS__MAX_ATTEMPTS": "2",
            "BUS__BACKOFF_BASE_S": "0.1",
        },
        "clustering": {"QDRANT__PATH": str(tmp_path / "qdrant"), "QDRANT__API_KEY": secrets["qdrant_api_key"]},
        "delivery": {
            "SMTP__HOST": "127.0.0.1",
            "SMTP__PORT": str(smtp_sink.port),
            "SMTP__USERNAME": "mailer",
            "SMTP__MAX_ATTEMPTS": "1",
            "SCHEDULER_ENABLED": "false",
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{ports['delivery']}",
        },
    }
    procs: dict[str, ServiceProcess] = {}
    try:
        for name in SERVICES:
            prefix = name.upper()
            env = {f"{prefix}_{k}": v for k, v in {**common, **extra[name], "DATA_DIR": str(tmp_path / name)}.items()}
            # The database URL comes from a file named by <VAR>_FILE, as a Docker or Kubernetes secret would.
            (tmp_path / f"{name}-db-url").write_text(db_url + "\n")
            env[f"{prefix}_DB__URL_FILE"] = str(tmp_path / f"{name}-db-url")
            if name == "delivery":
                # ...and delivery's own secrets from a secrets directory.
                (secret_dir / "DELIVERY_SMTP__PASSWORD").write_text(secrets["smtp_password"])
                (secret_dir / "DELIVERY_SIGNING_SECRET").write_text(secrets["signing_secret"] + "\n")
                env["PODBRIEF_SECRETS_DIR"] = str(secret_dir)
            if name == "extraction":
                (tmp_path / "llm-key").write_text(secrets["llm_api_key"])
                env["EXTRACTION_LLM__API_KEY_FILE"] = str(tmp_path / "llm-key")
            procs[name] = ServiceProcess(name, env, ports[name], log_dir).start()
        for p in procs.values():
            p.wait_ready(timeout_s=300)
        yield Run(procs, secrets, secrets["admin_key"], db_url, log_dir)
    finally:
        for p in procs.values():
            p.stop()
        superuser_psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE);\nDROP ROLE IF EXISTS "{role}";\n')


def test_no_secret_in_any_log_or_response(
    run: Run, loopback: LoopbackServer, smtp_sink: SmtpSink, unique: str, kafka_bootstrap: str
) -> None:
    procs, admin = run.procs, run.admin_key
    wrong = {"X-API-Key": f"wrong-{unique}"}

    # Admin endpoints: no key, a wrong key, the right key.
    for headers in ({}, wrong, {"X-API-Key": admin}):
        run.call("GET", procs["ingest"].base_url + "/v1/feeds", headers=headers)
        run.call("POST", procs["clustering"].base_url + "/v1/admin/recluster", headers=headers)
        run.call("POST", procs["delivery"].base_url + "/v1/admin/deliveries/run", headers=headers, json={})
    assert [r.status_code for r in run.responses[:3]] == [401, 401, 401]  # a wrong key: 401 in every service
    assert run.responses[-3].status_code == 200 and run.responses[-1].status_code == 200

    # Validation errors (RFC 9457 problems) with secrets nowhere near them.
    assert run.call("POST", procs["ingest"].base_url + "/v1/feeds", headers={"X-API-Key": admin}, json={}).is_error
    assert run.call("POST", procs["delivery"].base_url + "/v1/subscribers", json={"email": "x"}).status_code == 422

    # A sign-up: the confirmation mail fails at the SMTP login (the sink offers no AUTH on a plain connection).
    r = run.call(
        "POST",
        procs["delivery"].base_url + "/v1/subscribers",
        json={"email": "reader@example.org", "interests": "home batteries"},
    )
    assert r.status_code == 503 and r.json()["title"] == "Email unavailable", r.text
    assert not smtp_sink.messages

    # A feed whose episode carries a publisher transcript: ingest -> transcription -> extraction over Kafka,
    # where the LLM refuses the request with the API key on it.
    srt = loopback.add("/t/ep1.srt", SRT, "application/srt")
    audio = loopback.add("/a/ep1.mp3", b"ID3" + bytes(64), "audio/mpeg")
    feed = loopback.add(
        "/feed.xml",
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel><title>Secrets Show</title>'
        f"<item><title>Ep 1</title><guid>ep-1</guid><pubDate>{format_datetime(datetime.now(UTC))}</pubDate>"
        f'<enclosure url="{audio}" length="67" type="audio/mpeg"/>'
        f'<podcast:transcript url="{srt}" type="application/srt" language="en"/></item></channel></rss>',
        "application/rss+xml",
    )
    r = run.call("POST", procs["ingest"].base_url + "/v1/feeds", headers={"X-API-Key": admin}, json={"url": feed})
    assert r.status_code == 201, r.text
    episode = episode_id(feed, "ep-1", audio)
    extraction = procs["extraction"].base_url + f"/v1/episodes/{episode}"

    def llm_failed() -> bool:
        r = httpx.get(extraction, timeout=10)
        return r.status_code == 200 and bool(r.json().get("error_reason"))

    wait_until(llm_failed, "extraction to fail on the refusing LLM", 240, procs)
    run.responses.append(httpx.get(extraction, timeout=10))

    # Everything else a client or a scraper can read.
    for p in procs.values():
        for path in ("/healthz", "/readyz", "/metrics/", "/openapi.json"):
            run.call("GET", p.base_url + path)

    for p in procs.values():
        p.stop()

    # Failures at start-up, in processes of their own: a wrong database password, and settings that do not
    # validate (a DSN with its password in a field that fails).
    good = urllib.parse.quote(run.secrets["db_password"], safe="")
    wrong_url = run.db_url.replace(good, urllib.parse.quote(run.secrets["wrong_db_password"], safe=""))
    # The test broker, wherever it listens: with no broker the service would stop at the bus before the database.
    wrong_db = {
        "INGEST_DB__URL": wrong_url,
        "INGEST_LOG_LEVEL": "DEBUG",
        "INGEST_BUS__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INGEST_BUS__KAFKA__NAMESPACE": f"t{unique}.",
    }
    run_to_exit("ingest", wrong_db, run.log_dir / "ingest-wrong-db-password")
    invalid = {"INGEST_DB__URL": wrong_url.replace("postgresql+asyncpg://", "mysql://"), "INGEST_HTTP__PORT": "x"}
    run_to_exit("ingest", invalid, run.log_dir / "ingest-invalid-settings")

    logs = {
        str(path.relative_to(run.log_dir).with_suffix("")).replace("/ingest", ""): path.read_text(errors="replace")
        for path in run.log_dir.rglob("*.log")
    }
    assert set(logs) == {*SERVICES, "ingest-wrong-db-password", "ingest-invalid-settings"}
    # The failure paths really ran, and their logs say what failed.
    assert "InvalidPasswordError" in logs["ingest-wrong-db-password"], logs["ingest-wrong-db-password"][-2000:]
    assert "validation error" in logs["ingest-invalid-settings"] and "db.url" in logs["ingest-invalid-settings"]
    everything = dict(logs)
    for i, r in enumerate(run.responses):
        everything[f"response {i} {r.request.method} {r.request.url}"] = (
            "\n".join(f"{k}: {v}" for k, v in r.headers.items()) + "\n" + r.text
        )

    def leaks(texts: dict[str, str]) -> list[tuple[str, str, str]]:
        """(secret, the form found, where) for every secret found in any form anywhere."""
        return [
            (name, form, where)
            for name, secret in run.secrets.items()
            for form in forms(secret)
            for where, text in texts.items()
            if form in text
        ]

    # The search finds a secret where there is one (URL-encoded in the DSN, base64 in a Basic auth header)...
    basic = base64.b64encode(f"mailer:{run.secrets['smtp_password']}".encode()).decode()
    found = {(name, where) for name, _, where in leaks({"dsn": run.db_url, "basic": basic})}
    assert found == {("db_password", "dsn"), ("smtp_password", "basic")}
    # ...finds none anywhere else...
    assert leaks(everything) == []
    # ...and the formatter's masking (the last line of defence) never had to act: no secret reached a log line.
    assert [name for name, text in logs.items() if "***" in text] == []
