"""Fixtures for the security suite: each of the five services as its real FastAPI app (the chassis, its
routers, its problem handlers and middleware), built in-process on the in-memory bus and SQLite, with fakes
only where a model would load (whisper, MiniLM, the LLM) and an SMTP mailer that records messages."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from podbrief.service import ServiceContext
from podbrief.service import create_app as chassis_create_app
from podbrief.settings import BusSettings, DatabaseSettings, HttpSettings, NetSettings, QdrantSettings
from pydantic import SecretStr

ADMIN_KEY = "security-suite-admin-key-0123456789"
SIGNING_SECRET = "security-suite-signing-secret-0123456789"
SERVICES = ("ingest", "transcription", "extraction", "clustering", "delivery")


class HashEmbedder:
    """Deterministic bag-of-words vectors in MiniLM's dimension: enough for code paths that embed text."""

    def __init__(self, dim: int = 384, name: str = "all-MiniLM-L6-v2-onnx-int8") -> None:
        self._dim, self._name = dim, name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z]+", t.lower()) or ["empty"]:
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self._dim] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


class RecordingMailer:
    """Keeps what delivery would send; the real renderer builds every message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> str:
        self.messages.append(message)
        return str(message.get("Message-ID", ""))


def _http(admin_key: str | None, max_body: int, port: int) -> HttpSettings:
    return HttpSettings(port=port, admin_api_key=SecretStr(admin_key) if admin_key else None, max_body_bytes=max_body)


def _db(tmp: Path, name: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp}/{name}.db"))


BUS = BusSettings(kind="memory", max_attempts=1, backoff_base_s=0.0)


def ingest_app(tmp: Path, admin_key: str | None, max_body: int, **over: Any) -> FastAPI:
    from podbrief_ingest.app import create_app
    from podbrief_ingest.settings import IngestSettings

    settings = IngestSettings(
        _env_file=None,  # type: ignore[call-arg]
        db=_db(tmp, "ingest"),
        net=over.pop("net", NetSettings(connect_timeout_s=2, read_timeout_s=2)),
        poll_enabled=False,
        bus=BUS,
        http=_http(admin_key, max_body, 8001),
        data_dir=tmp,
        fetch_deadline_s=5,
        **over,
    )
    return create_app(settings)


def transcription_app(tmp: Path, admin_key: str | None, max_body: int, **over: Any) -> FastAPI:
    import podbrief_transcription.app as transcription_module
    from podbrief.netguard import make_http_client
    from podbrief.storage.db import create_engine, migrate
    from podbrief_testing.transcription import FakeEngine
    from podbrief_transcription.adapters.download import EnclosureFetcher
    from podbrief_transcription.adapters.repo import TranscriptRepo
    from podbrief_transcription.deps import Deps
    from podbrief_transcription.metrics import TranscriptionMetrics
    from podbrief_transcription.settings import TranscriptionSettings

    class ReadyEngine(FakeEngine):
        ready = True

    @contextlib.asynccontextmanager
    async def build_deps(ctx: ServiceContext[TranscriptionSettings]) -> AsyncIterator[Deps]:
        s = ctx.settings
        engine = create_engine(s.db)
        http = make_http_client(s.net)
        try:
            await migrate(engine, Path(transcription_module.__file__).parent / "migrations", "transcription")
            yield Deps(
                settings=s,
                repo=TranscriptRepo(engine),
                engine=ReadyEngine(),  # type: ignore[arg-type]
                fetcher=EnclosureFetcher(
                    http, max_bytes=s.max_audio_bytes, timeout_s=10, allowed_content_types=s.allowed_content_types
                ),
                publish=ctx.bus.publish,
                metrics=TranscriptionMetrics.create(ctx.registry),
                http=http,
            )
        finally:
            await http.aclose()
            await engine.dispose()

    settings = TranscriptionSettings(
        _env_file=None,  # type: ignore[call-arg]
        db=_db(tmp, "transcription"),
        bus=BUS,
        http=_http(admin_key, max_body, 8002),
        data_dir=tmp,
        **over,
    )
    return chassis_create_app(dataclasses.replace(transcription_module.SPEC, build_deps=build_deps), settings)


def extraction_app(tmp: Path, admin_key: str | None, max_body: int, **over: Any) -> FastAPI:
    from podbrief_extraction.app import create_app
    from podbrief_extraction.settings import ExtractionSettings, LLMSettings
    from podbrief_testing.llm import FakeOpenAI

    settings = ExtractionSettings(
        _env_file=None,  # type: ignore[call-arg]
        db=_db(tmp, "extraction"),
        bus=BUS,
        http=_http(admin_key, max_body, 8003),
        llm=LLMSettings(base_url="http://llm.test/v1", model="fake", max_retries=0),
        data_dir=tmp,
        **over,
    )
    return create_app(settings, llm_transport=FakeOpenAI(responder=lambda _b: '{"insights": []}').transport())


def clustering_app(tmp: Path, admin_key: str | None, max_body: int, **over: Any) -> FastAPI:
    from podbrief_clustering.app import SPEC, open_clusterer
    from podbrief_clustering.deps import Deps
    from podbrief_clustering.metrics import ClusteringMetrics
    from podbrief_clustering.settings import ClusteringSettings

    @contextlib.asynccontextmanager
    async def build_deps(ctx: ServiceContext[ClusteringSettings]) -> AsyncIterator[Deps]:
        metrics = ClusteringMetrics.create(ctx.registry)
        async with open_clusterer(ctx.settings, metrics=metrics, embedder=HashEmbedder()) as clusterer:
            yield Deps(settings=ctx.settings, clusterer=clusterer, metrics=metrics, publish=ctx.bus.publish)

    settings = ClusteringSettings(
        _env_file=None,  # type: ignore[call-arg]
        qdrant=QdrantSettings(path=tmp / "qdrant"),
        db=_db(tmp, "clustering"),
        recluster_interval_s=0,
        bus=BUS,
        http=_http(admin_key, max_body, 8004),
        data_dir=tmp,
        **over,
    )
    return chassis_create_app(dataclasses.replace(SPEC, build_deps=build_deps), settings)


def delivery_settings(tmp: Path, admin_key: str | None = ADMIN_KEY, max_body: int = 1_000_000, **over: Any) -> Any:
    from podbrief_delivery.settings import DeliverySettings

    values: dict[str, Any] = {
        "db": _db(tmp, "delivery"),
        "signing_secret": SecretStr(SIGNING_SECRET),
        "public_base_url": "http://testserver",
        "http": _http(admin_key, max_body, 8005),
        "bus": BUS,
        "scheduler_enabled": False,
        "data_dir": tmp,
    }
    values.update(over)
    return DeliverySettings(_env_file=None, **values)  # type: ignore[call-arg]


def delivery_app(
    tmp: Path, admin_key: str | None, max_body: int, mailer: RecordingMailer | None = None, **over: Any
) -> FastAPI:
    from podbrief_delivery.app import SPEC, make_deps
    from podbrief_delivery.deps import Deps
    from podbrief_delivery.settings import DeliverySettings

    sent = mailer or RecordingMailer()

    @contextlib.asynccontextmanager
    async def build_deps(ctx: ServiceContext[DeliverySettings]) -> AsyncIterator[Deps]:
        async with make_deps(
            ctx.settings, publish=ctx.bus.publish, registry=ctx.registry, embedder=HashEmbedder(), mailer=sent
        ) as deps:
            yield deps

    app = chassis_create_app(
        dataclasses.replace(SPEC, build_deps=build_deps), delivery_settings(tmp, admin_key, max_body, **over)
    )
    app.state.mailer = sent
    return app


BUILDERS: dict[str, Callable[..., FastAPI]] = {
    "ingest": ingest_app,
    "transcription": transcription_app,
    "extraction": extraction_app,
    "clustering": clustering_app,
    "delivery": delivery_app,
}


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., FastAPI]:
    """make_app(service, admin_key=ADMIN_KEY, max_body=1_000_000, **settings overrides) -> an unstarted app."""
    counter = iter(range(1_000))

    def make(service: str, *, admin_key: str | None = ADMIN_KEY, max_body: int = 1_000_000, **over: Any) -> FastAPI:
        tmp = tmp_path / f"{service}-{next(counter)}"
        tmp.mkdir()
        return BUILDERS[service](tmp, admin_key, max_body, **over)

    return make


@pytest.fixture
def started(make_app: Callable[..., FastAPI]) -> Iterator[Callable[..., TestClient]]:
    """started(service, peer=(host, port), ...) -> a TestClient whose app's lifespan runs until teardown."""
    stack = contextlib.ExitStack()

    def start(service: str, *, peer: tuple[str, int] = ("testclient", 50000), **kw: Any) -> TestClient:
        client = TestClient(make_app(service, **kw), raise_server_exceptions=False, client=peer)
        return stack.enter_context(client)

    with stack:
        yield start


# --- the route table -------------------------------------------------------------------------------------
# Every HTTP route of the five services, classified. A route the apps serve that is not listed here fails
# test_admin_auth: a new endpoint has to be placed in one of these sets (and so be protected) on purpose.
# (method, path template) that need X-API-Key.
ADMIN: dict[str, frozenset[tuple[str, str]]] = {
    "ingest": frozenset(
        {
            ("POST", "/v1/feeds"),
            ("GET", "/v1/feeds"),
            ("GET", "/v1/feeds/{feed_id}"),
            ("DELETE", "/v1/feeds/{feed_id}"),
            ("GET", "/v1/feeds/{feed_id}/episodes"),
            ("POST", "/v1/feeds/{feed_id}/poll"),
            ("POST", "/v1/opml"),
            ("GET", "/v1/opml"),
            ("GET", "/v1/status"),
        }
    ),
    # Every service: its stage's status, failures and dead letters (the chassis serves it).
    "transcription": frozenset({("GET", "/v1/status")}),
    "extraction": frozenset({("GET", "/v1/status")}),
    "clustering": frozenset({("POST", "/v1/admin/recluster"), ("GET", "/v1/status")}),
    "delivery": frozenset({("POST", "/v1/admin/deliveries/run"), ("POST", "/v1/admin/bounces"), ("GET", "/v1/status")}),
}

# Routes that need the subscriber's own credential (API key or profile token) and only ever serve that
# subscriber (test_subscriber_isolation).
SUBSCRIBER: dict[str, frozenset[tuple[str, str]]] = {
    "delivery": frozenset(
        {
            ("GET", "/v1/subscribers/{subscriber_id}"),
            ("PATCH", "/v1/subscribers/{subscriber_id}"),
            ("DELETE", "/v1/subscribers/{subscriber_id}"),
            ("POST", "/v1/subscribers/{subscriber_id}/api-key"),
            ("GET", "/v1/subscribers/{subscriber_id}/export"),
            ("GET", "/v1/subscribers/{subscriber_id}/briefs"),
            ("GET", "/v1/subscribers/{subscriber_id}/briefs/latest"),
            ("GET", "/v1/subscribers/{subscriber_id}/briefs/{day}"),
        }
    ),
}

OPS = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)

# Open to anyone. The read APIs of transcription, extraction and clustering serve pipeline output that the
# briefs publish anyway, inside the cluster network; the delivery pages either start the double opt-in
# (rate-limited) or act only through a signed, purpose-bound, expiring token in `?t=`.
PUBLIC: dict[str, frozenset[tuple[str, str]]] = {
    "ingest": OPS,
    "transcription": OPS | {("GET", "/v1/episodes/{episode_id}"), ("GET", "/v1/episodes/{episode_id}/transcript")},
    "extraction": OPS | {("GET", "/v1/episodes/{episode_id}"), ("GET", "/v1/episodes/{episode_id}/insights")},
    "clustering": OPS | {("GET", "/v1/insights/{insight_id}/related"), ("GET", "/v1/clusters"), ("GET", "/v1/search")},
    "delivery": OPS
    | {
        ("POST", "/v1/subscribers"),
        ("POST", "/v1/subscribers/confirm"),
        ("GET", "/"),
        ("GET", "/signup"),
        ("POST", "/signup"),
        ("GET", "/confirm"),
        ("POST", "/confirm"),
        ("GET", "/unsubscribe"),
        ("POST", "/unsubscribe"),
        ("GET", "/feedback"),
        ("GET", "/briefs/{brief_id}"),
        ("GET", "/archive"),
        ("GET", "/o/{token}.gif"),
        # The public insight pages: what the briefs already publish, search rate-limited.
        ("GET", "/insights/{insight_id}"),
        ("GET", "/topics"),
        ("GET", "/topics/{cluster_id}"),
        ("GET", "/search"),
        ("GET", "/robots.txt"),
        ("GET", "/sitemap.xml"),
    },
}


@dataclasses.dataclass(frozen=True)
class RouteTable:
    admin: dict[str, frozenset[tuple[str, str]]]
    subscriber: dict[str, frozenset[tuple[str, str]]]
    public: dict[str, frozenset[tuple[str, str]]]


@pytest.fixture(scope="session")
def routes() -> RouteTable:
    return RouteTable(ADMIN, SUBSCRIBER, PUBLIC)


# --- delivery helpers --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    """A confirmed subscriber as the API hands them out."""

    id: uuid.UUID
    email: str
    api_key: str
    profile_token: str


def confirmation_token(mailer: RecordingMailer, email: str) -> str:
    for msg in reversed(mailer.messages):
        if msg["To"] == email:
            body = msg.get_body(preferencelist=("plain",))
            assert body is not None
            found = re.search(r"/confirm\?t=(\S+)", body.get_content())
            assert found, body.get_content()
            return unquote(found.group(1))
    raise AssertionError(f"no confirmation email to {email}")


def join(client: TestClient, email: str, interests: str = "solar power and batteries") -> Member:
    r = client.post("/v1/subscribers", json={"email": email, "interests": interests})
    assert r.status_code == 202, r.text
    r = client.post("/v1/subscribers/confirm", json={"token": confirmation_token(client.app.state.mailer, email)})
    assert r.status_code == 200, r.text
    body = r.json()
    return Member(uuid.UUID(body["subscriber_id"]), email, body["api_key"], body["profile_token"])


def brief_body(
    sub_id: uuid.UUID,
    day: date,
    *,
    text: str = "Home batteries pay for themselves",
    show: str = "Energy Hour",
    episode_title: str = "Batteries at home",
    episode_url: str | None = "https://example.com/ep",
    timestamp_url: str | None = "https://cdn.example.com/ep.mp3#t=61",
    quote: str = "they pay for themselves",
    note: str | None = None,
) -> dict[str, Any]:
    from podbrief_delivery.brief import Brief, BriefItem, RelatedItem

    item = BriefItem(
        insight_id=uuid.uuid5(sub_id, text),
        rank=1,
        text=text,
        quote=quote,
        speaker=show,
        show=show,
        episode_title=episode_title,
        episode_id=uuid.uuid5(sub_id, episode_title),
        episode_url=episode_url,
        timestamp_s=61.0,
        timestamp_label="01:01",
        timestamp_url=timestamp_url,
        importance=0.5,
        cluster_size=2,
        cluster_shows=2,
        score=0.9,
        explanation="Close to your interests",
        related=[
            RelatedItem(
                insight_id=uuid.uuid5(sub_id, "related"),
                text=text,
                show=show,
                episode_title=episode_title,
                timestamp_label="02:02",
                timestamp_url=timestamp_url,
            )
        ],
    )
    brief = Brief(
        brief_id=uuid.uuid5(sub_id, day.isoformat()),
        subscriber_id=sub_id,
        brief_date=day,
        generated_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="full",
        note=note,
        items=[item],
    )
    return brief.model_dump(mode="json")


@dataclasses.dataclass
class DeliveryKit:
    confirmation_token: Callable[[RecordingMailer, str], str]
    join: Callable[..., Member]
    brief_body: Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def kit() -> DeliveryKit:
    return DeliveryKit(confirmation_token, join, brief_body)
