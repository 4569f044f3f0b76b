"""Setting one field of a nested settings block keeps the rest of that block as the service declares it.

Compose and Kubernetes set only `<SVC>_HTTP__HOST=0.0.0.0`; before the fix that rebuilt the whole `http` block
from `HttpSettings`' own defaults, so every service listened on 8000 instead of its own port, and the port
mappings, Prometheus targets, the image's health check and the k8s probes all pointed at nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from podbrief_testing.settings import clean_service_env, settings_cls
from pydantic import BaseModel, SecretStr

pytestmark = pytest.mark.unit

# The documented ports (README, compose, k8s, deploy/docker/healthcheck.py).
PORTS = {"ingest": 8001, "transcription": 8002, "extraction": 8003, "clustering": 8004, "delivery": 8005}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_service_env(monkeypatch, tmp_path)
    # Delivery refuses the placeholder signing secret; a top-level field, so it does not touch any block.
    monkeypatch.setenv("DELIVERY_ALLOW_INSECURE_DEV_SECRET", "true")


@pytest.mark.parametrize(("service", "port"), PORTS.items())
def test_setting_only_the_http_host_keeps_the_services_own_port(
    service: str, port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{service.upper()}_HTTP__HOST", "0.0.0.0")
    settings = settings_cls(service)()
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", port)


@pytest.mark.parametrize(("service", "port"), PORTS.items())
def test_the_same_holds_for_a_dotenv_file_and_a_secret_file(
    service: str, port: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prefix = service.upper()
    (tmp_path / ".env").write_text(f"{prefix}_HTTP__HOST=0.0.0.0\n")
    (tmp_path / "key").write_text("admin-key-from-a-file")
    monkeypatch.setenv(f"{prefix}_HTTP__ADMIN_API_KEY_FILE", str(tmp_path / "key"))
    settings = settings_cls(service)()
    assert (settings.http.host, settings.http.port) == ("0.0.0.0", port)
    assert settings.http.admin_api_key is not None
    assert settings.http.admin_api_key.get_secret_value() == "admin-key-from-a-file"


def _env_text(value: Any) -> str | None:
    """`value` as an environment variable spells it, or None for values that are not plain scalars."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str | Path):
        return str(value)
    return None


def _blocks(model: type[BaseModel], default: BaseModel, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every nested block (path of field names) under a settings class, nested blocks of blocks included."""
    for name in type(default).model_fields:
        value = getattr(default, name)
        if isinstance(value, BaseModel) and not isinstance(value, SecretStr):
            yield (*path, name)
            yield from _blocks(type(value), value, (*path, name))


def _cases() -> Iterator[tuple[str, tuple[str, ...], str]]:
    for service in PORTS:
        cls = settings_cls(service)
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if not isinstance(default, BaseModel):
                continue
            for block in ((name,), *_blocks(type(default), default, (name,))):
                value: Any = default
                for part in block[1:]:
                    value = getattr(value, part)
                for sub in type(value).model_fields:
                    if _env_text(getattr(value, sub)) is not None:
                        yield service, block, sub
                        break


CASES = list(_cases())


def test_the_walk_covers_every_service_and_the_blocks_that_matter() -> None:
    covered = {(service, block) for service, block, _ in CASES}
    for service in PORTS:
        assert (service, ("http",)) in covered and (service, ("db",)) in covered
        assert (service, ("bus",)) in covered and (service, ("bus", "kafka")) in covered
    assert ("extraction", ("llm",)) in covered and ("delivery", ("smtp",)) in covered
    assert ("clustering", ("qdrant",)) in covered and ("clustering", ("embedding",)) in covered


def _case_id(value: object) -> str:
    return "__".join(value) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize(("service", "block", "field"), CASES, ids=_case_id)
def test_one_field_of_any_block_leaves_the_rest_of_that_block_at_its_declared_defaults(
    service: str, block: tuple[str, ...], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sets one field of the block to the value it already has: the whole block must come out unchanged. With
    the bug, the block was rebuilt from its model's own defaults and lost what the service declared (its port,
    its database file, ...)."""
    cls = settings_cls(service)
    expected: Any = cls()
    for part in block:
        expected = getattr(expected, part)
    text = _env_text(getattr(expected, field))
    assert text is not None
    monkeypatch.setenv(f"{service.upper()}_{'__'.join((*block, field)).upper()}", text)
    got: Any = cls()
    for part in block:
        got = getattr(got, part)
    assert got == expected
