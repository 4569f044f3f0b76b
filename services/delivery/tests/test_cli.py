"""The CLI against a real SQLite file and the SMTP sink: subscribers add/list/pause/remove and brief."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from podbrief.embeddings import Embedder
from podbrief_delivery import composing, subscribers
from podbrief_delivery.app import make_deps
from podbrief_delivery.cli import register
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import SECRET, day_events, make_settings
from typer.testing import CliRunner

pytestmark = pytest.mark.unit


def test_subscribers_and_brief_commands(tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder) -> None:
    settings = make_settings(tmp_path, smtp_sink.port)

    async def seed() -> None:
        async with make_deps(settings, embedder=embedder) as deps:
            for ev in day_events(embedder):
                await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)

    asyncio.run(seed())
    app = typer.Typer()
    register(app)
    env = {
        "DELIVERY_DB__URL": settings.db.url.get_secret_value(),
        "DELIVERY_SIGNING_SECRET": SECRET,
        "DELIVERY_SMTP__PORT": str(smtp_sink.port),
        "DELIVERY_SMTP__RETRY_BACKOFF_S": "0",
    }
    run = CliRunner().invoke

    r = run(
        app,
        [
            "subscribers",
            "add",
            "cli@example.com",
            "--interests",
            "home batteries, nuclear power",
            "--timezone",
            "Europe/Paris",
            "--hour",
            "6",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "cli@example.com" in r.output and "active" in r.output
    dup = run(app, ["subscribers", "add", "cli@example.com"], env=env)
    assert dup.exit_code == 2 and "already subscribed" in dup.output
    bad = run(app, ["subscribers", "add", "nope", "--interests", "x"], env=env)
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    listed = run(app, ["subscribers", "list"], env=env)
    assert "cli@example.com" in listed.output and "Europe/Paris" in listed.output

    preview = run(
        app, ["brief", "--subscriber", "cli@example.com", "--date", "2026-11-29", "--format", "json"], env=env
    )
    assert preview.exit_code == 0, preview.output
    body = json.loads(preview.output)
    assert body["brief_date"] == "2026-11-29" and 1 <= len(body["items"]) <= 5
    text = run(app, ["brief", "-s", "cli@example.com", "--date", "2026-11-29"], env=env)
    assert text.output.startswith("YOUR PODCAST BRIEF") and "Listen: https://" in text.output
    assert smtp_sink.messages == [], "a preview sends nothing"

    sent = run(app, ["brief", "-s", "cli@example.com", "--date", "2026-11-29", "--send"], env=env)
    assert sent.exit_code == 0 and "sent" in sent.output, sent.output
    again = run(app, ["brief", "-s", "cli@example.com", "--date", "2026-11-29", "--send"], env=env)
    assert again.exit_code == 1 and "already delivered" in again.output
    assert len(smtp_sink.messages) == 1

    assert run(app, ["subscribers", "pause", "cli@example.com"], env=env).exit_code == 0
    assert "paused" in run(app, ["subscribers", "list", "--status", "paused"], env=env).output
    assert run(app, ["subscribers", "remove", "cli@example.com"], env=env).exit_code == 0
    assert "cli@example.com" not in run(app, ["subscribers", "list"], env=env).output
    missing = run(app, ["brief", "-s", "cli@example.com"], env=env)
    assert missing.exit_code == 1 and "no subscriber" in missing.output


def test_settings_errors_are_reported_without_a_traceback(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(
        app,
        ["subscribers", "list"],
        env={"DELIVERY_SIGNING_SECRET": "changethis", "DELIVERY_ALLOW_INSECURE_DEV_SECRET": "false"},
    )
    assert r.exit_code == 1 and "DELIVERY_SIGNING_SECRET" in r.output and "Traceback" not in r.output


async def test_embedded_helpers_write_page_and_eml(tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder) -> None:
    from email import message_from_bytes, policy

    from podbrief_testing.delivery import NOW

    async with make_deps(make_settings(tmp_path, smtp_sink.port), embedder=embedder) as deps:
        for ev in day_events(embedder):
            await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
        sub = await subscribers.add_active_subscriber(
            "emb@example.com",
            subscribers.SignupProfile(interests="batteries"),
            repo=deps.repo,
            embedder=deps.embedder,
            settings=deps.settings,
            metrics=deps.metrics,
        )
        assert smtp_sink.messages == []
        assert (await deps.deliver(now=NOW, force=True)).sent == 1
        files = await composing.brief_files(
            sub,
            NOW.date(),
            repo=deps.repo,
            links=deps.links,
            renderer=deps.renderer,
            sender=deps.settings.smtp.from_address,
        )
        assert files is not None
        page, eml = files
        assert '<main id="picks">' in page
        msg = message_from_bytes(eml, policy=policy.default)
        assert msg["To"] == "emb@example.com" and msg.get_content_type() == "multipart/alternative"
