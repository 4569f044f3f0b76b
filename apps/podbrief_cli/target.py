"""Which pipeline an operator's command looks at: the embedded one of `podbrief run` (a data directory), or a
deployment (its Kafka cluster; its services' APIs). `podbrief dlq` and `podbrief status` share this."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from podbrief.bus import MemoryTransport, Transport, make_transport
from podbrief.bus.memory_store import MemoryStore
from podbrief.settings import BusSettings, HttpSettings, KafkaSettings, ServiceSettings
from podbrief_run.layout import SERVICES, DataDir
from pydantic_settings import SettingsConfigDict

DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="the data directory of `podbrief run` (default .data, unless --kafka or --service is given)"),
]
KafkaOpt = Annotated[str | None, typer.Option("--kafka", help="a deployment's Kafka bootstrap servers (host:port)")]
NamespaceOpt = Annotated[str, typer.Option(help="the deployment's topic namespace (<P>_BUS__KAFKA__NAMESPACE)")]
ServiceOpt = Annotated[
    str | None,
    typer.Option(
        "--service",
        help="use this service's bus settings from its environment (<SERVICE>_BUS__*, .env), as inside its pod",
    ),
]


class TargetError(Exception):
    """The command cannot reach what it was pointed at; the message says what to do."""


def service_settings(service: str) -> ServiceSettings:
    """The settings every service shares (bus, HTTP, data directory), read from `service`'s environment and .env
    with its prefix, without the service's own required fields."""
    if service not in SERVICES:
        raise TargetError(f"unknown service {service!r}; choose one of {', '.join(SERVICES)}")
    own = getattr(importlib.import_module(f"podbrief_{service}.settings"), f"{service.title()}Settings")
    cls = type(
        f"{service.title()}SharedSettings",
        (ServiceSettings,),
        {
            "model_config": SettingsConfigDict(env_prefix=f"{service.upper()}_"),
            # The service's own HTTP defaults (its port), which the shared class does not know.
            "__annotations__": {"http": HttpSettings},
            "http": own.model_fields["http"].default,
        },
    )
    settings: ServiceSettings = cls()
    return settings


@dataclass(frozen=True)
class BusTarget:
    """Where the bus is: an embedded data directory, or Kafka."""

    data_dir: DataDir | None
    kafka: BusSettings | None

    @classmethod
    def choose(cls, *, data_dir: Path | None, kafka: str | None, namespace: str, service: str | None) -> BusTarget:
        given = [name for name, v in (("--data-dir", data_dir), ("--kafka", kafka), ("--service", service)) if v]
        if len(given) > 1:
            raise TargetError(f"give one of --data-dir, --kafka and --service, not {' and '.join(given)}")
        if kafka:
            cluster = KafkaSettings(bootstrap_servers=kafka, namespace=namespace)
            return cls(None, BusSettings(kind="kafka", kafka=cluster))
        if service:
            bus = service_settings(service).bus
            if bus.kind == "kafka":
                return cls(None, bus)
            return cls(DataDir(service_settings(service).data_dir.resolve()), None)
        return cls(DataDir((data_dir or Path(".data")).resolve()), None)

    def describe(self) -> str:
        if self.data_dir is not None:
            return f"the embedded bus of `podbrief run` in {self.data_dir.root}"
        assert self.kafka is not None
        ns = f" (namespace {self.kafka.kafka.namespace!r})" if self.kafka.kafka.namespace else ""
        return f"Kafka at {self.kafka.kafka.bootstrap_servers}{ns}"

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[Transport]:
        transport: Transport
        if self.data_dir is not None:
            if not self.data_dir.bus.exists():
                raise TargetError(
                    f"no embedded bus in {self.data_dir.root} (nothing has run there yet); run `podbrief run`, or "
                    "point at a deployment with --kafka or --service"
                )
            transport = MemoryTransport(store=MemoryStore(self.data_dir.bus))
        else:
            assert self.kafka is not None
            transport = make_transport(self.kafka)
        await transport.start()
        try:
            yield transport
        finally:
            await transport.stop()
