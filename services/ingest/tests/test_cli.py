"""`podbrief feeds ...` against files, a loopback server and a temp database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from podbrief_ingest.cli import register
from podbrief_testing import LoopbackServer
from typer.testing import CliRunner

from .conftest import item, rss, serve_pc20

pytestmark = pytest.mark.unit


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """podbrief"""

    register(app)
    return app


def test_parse_file(cli: typer.Typer, shared_dir: Path) -> None:
    path = shared_dir / "data/feeds/real-world/pc20rss.xml"
    res = CliRunner().invoke(
        cli, ["feeds", "parse", str(path), "--feed-url", "https://mp3s.nashownotes.com/pc20rss.xml"]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["title"] == "Podcasting 2.0" and doc["guid"] == "917393e3-1b1e-5cef-ace4-edaa54e1f810"
    assert len(doc["episodes"]) == 56
    assert sum(len(e["transcripts"]) for e in doc["episodes"]) == 47
    assert sum(1 for e in doc["episodes"] if e["chapters_url"]) == 48
    first = doc["episodes"][0]
    assert set(first) >= {
        "guid",
        "episode_id",
        "title",
        "published_at",
        "enclosure_url",
        "transcripts",
        "chapters_url",
    }
    assert first["guid"] == "PC2057" and first["transcripts"][0] == {
        "url": "https://mp3s.nashownotes.com/PC20-57-Captions.srt",
        "type": "application/srt",
        "language": "en",
    }


def test_parse_shows_drops_repairs_and_live_items(cli: typer.Typer, tmp_path: Path) -> None:
    live = (
        '<podcast:liveItem status="pending" start="2026-02-01T10:00:00Z">'
        "<guid>L</guid><title>Soon</title></podcast:liveItem>"
    )
    doc = rss([item(1), item(2, guid="ep-1"), "<item><title>nothing</title></item>", item(3)], live)
    # A feed that uses the itunes prefix without declaring it, and writes a date without a zone.
    doc = doc.replace('xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"', "")
    doc = doc.replace("</item>", "<itunes:duration>61</itunes:duration></item>", 1)
    doc = doc.replace(" +0000</pubDate>", "</pubDate>", 1).replace(" GMT</pubDate>", "</pubDate>", 1)
    path = tmp_path / "feed.xml"
    path.write_text(doc)
    res = CliRunner().invoke(cli, ["feeds", "parse", str(path), "--feed-url", "https://x.example/f.xml"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["dropped"] == {"duplicate_guid": 1, "no_guid_no_enclosure": 1}
    assert [r["repair"] for r in out["recovered"]] == ["undeclared_prefix"]
    assert out["live_items"][0]["guid"] == "L" and out["live_items"][0]["status"] == "pending"
    assert [e["guid"] for e in out["episodes"]] == ["ep-1", "ep-3"]
    assert out["episodes"][0]["duration_s"] == 61 and out["episodes"][0]["notes"] == ["date_assumed_utc"]


def test_parse_url_uses_the_ssrf_guard(
    cli: typer.Typer, loopback: LoopbackServer, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INGEST_NET__ALLOWED_NETWORKS", raising=False)
    url = serve_pc20(loopback, shared_dir)
    refused = CliRunner().invoke(cli, ["feeds", "parse", url])
    assert refused.exit_code == 1 and "ssrf_blocked" in refused.stderr and "Traceback" not in refused.output
    ok = CliRunner().invoke(cli, ["feeds", "parse", url, "--allow", "127.0.0.0/8"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["episodes"][0]["enclosure_url"].startswith(loopback.url("/pc20/"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<!DOCTYPE html><html><body>x</body></html>", "not_a_feed"),
        (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><rss>&a;</rss>', "xml_entities"),
        (b"no markup here, just text", "malformed_xml"),
    ],
)
def test_parse_failures_are_clear(cli: typer.Typer, tmp_path: Path, content: bytes, message: str) -> None:
    f = tmp_path / "bad.xml"
    f.write_bytes(content)
    res = CliRunner().invoke(cli, ["feeds", "parse", str(f)])
    assert res.exit_code == 1 and message in res.stderr and "Traceback" not in res.output
    missing = CliRunner().invoke(cli, ["feeds", "parse", str(tmp_path / "nope.xml")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


def test_registry_commands_on_the_local_database(
    cli: typer.Typer, loopback: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INGEST_DB__URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("INGEST_NET__ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    a = loopback.add("/a.xml", rss([item(n) for n in range(1, 6)], title="Show A"), "application/rss+xml")
    b = loopback.add("/b.xml", rss([item(1)], title="Show B"), "application/rss+xml")
    run = CliRunner()

    added = run.invoke(cli, ["feeds", "add", a])
    assert added.exit_code == 0, added.output
    out = json.loads(added.stdout)
    assert out["created"] and out["first_poll"]["emitted"] == 3 and out["feed"]["title"] == "Show A"

    opml = tmp_path / "feeds.opml"
    opml.write_text(f'<opml version="2.0"><body><outline xmlUrl="{a}"/><outline xmlUrl="{b}"/></body></opml>')
    imported = json.loads(run.invoke(cli, ["feeds", "import-opml", str(opml)]).stdout)
    assert len(imported["added"]) == 1 and len(imported["existing"]) == 1

    polled = json.loads(run.invoke(cli, ["feeds", "poll"]).stdout)
    assert polled["feeds"] == 2 and polled["episodes_emitted"] == 1  # Show B's one item; Show A unchanged

    listed = json.loads(run.invoke(cli, ["feeds", "list"]).stdout)
    assert {f["title"] for f in listed} == {"Show A", "Show B"}
    exported = run.invoke(cli, ["feeds", "export-opml"])
    assert exported.exit_code == 0 and a in exported.stdout and b in exported.stdout

    removed = run.invoke(cli, ["feeds", "remove", listed[0]["id"]])
    assert removed.exit_code == 0
    assert len(json.loads(run.invoke(cli, ["feeds", "list"]).stdout)) == 1
    assert run.invoke(cli, ["feeds", "remove", "not-a-uuid"]).exit_code == 2
    assert run.invoke(cli, ["feeds", "remove", listed[0]["id"]]).exit_code == 1

    bad = run.invoke(cli, ["feeds", "add", "http://169.254.169.254/latest/"])
    assert bad.exit_code == 1 and "ssrf_blocked" in bad.stderr


def test_migrations_upgrade_and_downgrade(tmp_path: Path) -> None:
    import asyncio

    import sqlalchemy as sa
    from podbrief.settings import DatabaseSettings
    from podbrief.storage.db import create_engine, migrate
    from podbrief_ingest.app import MIGRATIONS
    from pydantic import SecretStr

    async def go() -> tuple[set[str], set[str]]:
        engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/m.db")))
        try:
            await migrate(engine, MIGRATIONS, "ingest")
            async with engine.connect() as conn:
                up = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            await migrate(engine, MIGRATIONS, "ingest", "base")
            async with engine.connect() as conn:
                down = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            return up, down
        finally:
            await engine.dispose()

    up, down = asyncio.run(go())
    assert {"ingest_feeds", "ingest_episodes", "ingest_outbox"} <= up
    assert not {"ingest_feeds", "ingest_episodes", "ingest_outbox"} & down
