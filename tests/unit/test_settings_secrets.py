"""Secrets come from the environment or from files (`<VARIABLE>_FILE`, PODBRIEF_SECRETS_DIR), and no settings
object or settings error ever shows one."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest
from podbrief.logging import JsonFormatter
from podbrief.settings import ServiceSettings
from podbrief_testing.settings import SERVICES, clean_service_env, settings_cls
from pydantic import ValidationError

pytestmark = pytest.mark.unit

SIGNING = "sIgNiNg-from-file-7f3a9c2e11d4"
SMTP = "smtp-pw-from-dir-5b8e"
DB_PASSWORD = "db-pw-Zq81xK/+@"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_service_env(monkeypatch, tmp_path)


def shown(settings: ServiceSettings) -> str:
    return "\n".join([repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())])


def test_a_variable_file_and_a_secrets_dir_provide_nested_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "signing").write_text(SIGNING + "\n")
    secrets_dir = tmp_path / "run-secrets"
    secrets_dir.mkdir()
    (secrets_dir / "DELIVERY_SMTP__PASSWORD").write_text(SMTP)
    dsn = f"postgresql+asyncpg://app:{quote(DB_PASSWORD, safe='')}@db:5432/podbrief"
    (secrets_dir / "DELIVERY_DB__URL").write_text(dsn + "\n")
    # Kubernetes' own entries in a mounted secret, and a file for another service, are left alone.
    (secrets_dir / "..data").mkdir()
    (secrets_dir / "INGEST_HTTP__ADMIN_API_KEY").write_text("not-for-delivery")
    monkeypatch.setenv("DELIVERY_SIGNING_SECRET_FILE", str(tmp_path / "signing"))
    monkeypatch.setenv("PODBRIEF_SECRETS_DIR", str(secrets_dir))

    settings = settings_cls("delivery")()

    assert settings.signing_secret.get_secret_value() == SIGNING  # type: ignore[attr-defined]
    assert settings.smtp.password.get_secret_value() == SMTP  # type: ignore[attr-defined]
    assert settings.db.url.get_secret_value() == dsn  # type: ignore[attr-defined]
    assert settings.http.admin_api_key is None
    # The log formatter masks every one of them, the DSN's password on its own too, encoded and decoded.
    assert {SIGNING, SMTP, DB_PASSWORD, quote(DB_PASSWORD, safe="")} <= set(settings.secrets())
    text = shown(settings)
    for secret in (SIGNING, SMTP, DB_PASSWORD, quote(DB_PASSWORD, safe="")):
        assert secret not in text


def test_the_environment_wins_over_the_secrets_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "INGEST_HTTP__ADMIN_API_KEY").write_text("from-the-dir-1234")
    monkeypatch.setenv("PODBRIEF_SECRETS_DIR", str(tmp_path))
    assert settings_cls("ingest")().http.admin_api_key.get_secret_value() == "from-the-dir-1234"  # type: ignore[union-attr]
    monkeypatch.setenv("INGEST_HTTP__ADMIN_API_KEY", "from-the-env-5678")
    assert settings_cls("ingest")().http.admin_api_key.get_secret_value() == "from-the-env-5678"  # type: ignore[union-attr]


def test_a_variable_set_twice_or_an_unreadable_file_is_refused_without_showing_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("file-key-0a9b8c7d")
    monkeypatch.setenv("EXTRACTION_LLM__API_KEY", "env-key-1f2e3d4c")
    monkeypatch.setenv("EXTRACTION_LLM__API_KEY_FILE", str(tmp_path / "key"))
    with pytest.raises(ValueError, match="EXTRACTION_LLM__API_KEY and EXTRACTION_LLM__API_KEY_FILE") as both:
        settings_cls("extraction")()
    assert "file-key-0a9b8c7d" not in str(both.value) and "env-key-1f2e3d4c" not in str(both.value)

    monkeypatch.delenv("EXTRACTION_LLM__API_KEY")
    monkeypatch.setenv("EXTRACTION_LLM__API_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"cannot read secret file .*missing"):
        settings_cls("extraction")()


def test_another_programs_file_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_TOOL_CONFIG_FILE", "/nonexistent/anything")
    assert settings_cls("clustering")().log_level == "INFO"


@pytest.mark.parametrize("service", SERVICES)
def test_a_validation_error_never_echoes_the_value(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = service.upper()
    monkeypatch.setenv(f"{prefix}_DB__URL", f"mysql://app:{DB_PASSWORD}@db/podbrief")
    monkeypatch.setenv(f"{prefix}_HTTP__ADMIN_API_KEY", "admin-key-9c8b7a65")
    monkeypatch.setenv(f"{prefix}_HTTP__PORT", "admin-key-9c8b7a65")
    with pytest.raises(ValidationError) as err:
        settings_cls(service)()
    # What a crashing process prints: the traceback with the error's message.
    text = "".join(traceback.format_exception(err.value))
    assert "db.url" in text and "http.port" in text
    assert DB_PASSWORD not in text and "admin-key-9c8b7a65" not in text


def test_the_log_formatter_masks_file_secrets_in_every_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last line of defence, for a secret that reached a log call anyway."""
    (tmp_path / "db").write_text(f"postgresql+asyncpg://app:{quote(DB_PASSWORD, safe='')}@db/podbrief")
    monkeypatch.setenv("INGEST_DB__URL_FILE", str(tmp_path / "db"))
    formatter = JsonFormatter(service="ingest", redact=settings_cls("ingest")().secrets())
    record = logging.makeLogRecord(
        {"msg": "connect failed", "args": (), "levelno": logging.ERROR, "levelname": "ERROR"}
    )
    record.dsn = f"postgresql://app:{quote(DB_PASSWORD, safe='')}@db/podbrief"
    record.password = DB_PASSWORD
    line = formatter.format(record)
    assert DB_PASSWORD not in line and quote(DB_PASSWORD, safe="") not in line
    assert json.loads(line)["password"] == "***"


def test_a_secret_with_quotes_or_backslashes_is_masked_too() -> None:
    secret = 'pa"ss\\word-9x'
    formatter = JsonFormatter(redact=(secret,))
    record = logging.makeLogRecord({"msg": "oops", "args": (), "levelno": logging.ERROR, "levelname": "ERROR"})
    record.detail = f"login with {secret} refused"
    line = formatter.format(record)
    assert json.loads(line)["detail"] == "login with *** refused"
