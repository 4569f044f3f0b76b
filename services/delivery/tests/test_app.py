"""The app on the in-memory bus: InsightClustered events in, a subscriber signs up and confirms through the
API (the link is taken from the email the real SMTP sink received), the admin trigger sends the brief, and the
JSON, web page, feedback and one-click unsubscribe all work from the links in that email."""

from __future__ import annotations

import asyncio
import html as htmlmod
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx
import pytest
from podbrief.bus import Bus, MemoryTransport
from podbrief.embeddings import Embedder
from podbrief.settings import BusSettings
from podbrief_delivery.app import create_app
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import ADMIN_KEY, DAY, day_events, make_settings

pytestmark = pytest.mark.unit


def path_of(url: str) -> str:
    parts = urlsplit(htmlmod.unescape(url))
    return parts.path + ("?" + parts.query if parts.query else "")


async def test_signup_confirm_deliver_and_unsubscribe(tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder) -> None:
    settings = make_settings(tmp_path, smtp_sink.port)
    transport = MemoryTransport()
    await transport.start()
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        bus = Bus(transport, BusSettings(kind="memory"))
        for ev in day_events(embedder):
            await bus.publish(ev)
        deps = app.state.deps
        for _ in range(200):
            if await deps.repo.count_insights() == len(DAY):
                break
            await asyncio.sleep(0.05)
        assert await deps.repo.count_insights() == len(DAY)

        page = await client.get("/")
        assert page.status_code == 200 and '<form method="post" action="/signup"' in page.text

        r = await client.post(
            "/v1/subscribers",
            json={
                "email": "Listener@Example.org",
                "interests": "home batteries and nuclear power, AI on phones",
                "timezone": "Europe/Berlin",
                "delivery_hour": 6,
            },
        )
        assert r.status_code == 202, r.text
        bad = await client.post("/v1/subscribers", json={"email": "not-an-email", "interests": "x"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")

        [confirm_mail] = smtp_sink.wait_for(1)
        link = re.search(r"http://testserver/confirm\?t=(\S+)", confirm_mail.get_body(("plain",)).get_content())
        assert link
        confirmed = await client.post("/v1/subscribers/confirm", json={"token": unquote(link.group(1))})
        assert confirmed.status_code == 200, confirmed.text
        sub_id, key = confirmed.json()["subscriber_id"], confirmed.json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        again = await client.post("/v1/subscribers/confirm", json={"token": unquote(link.group(1))})
        # A confirmation link works once: a replay issues no key and no profile token.
        assert again.status_code == 400 and "already used" in again.json()["detail"]

        prof = await client.get(f"/v1/subscribers/{sub_id}", headers=auth)
        assert prof.status_code == 200 and prof.json()["email"] == "listener@example.org"
        assert prof.json()["status"] == "active" and prof.json()["timezone"] == "Europe/Berlin"
        assert (await client.get(f"/v1/subscribers/{sub_id}")).status_code == 401
        assert (
            await client.get(f"/v1/subscribers/{sub_id}", headers={"Authorization": "Bearer pbk_forged"})
        ).status_code == 404

        # A second subscriber cannot read or change the first one's data.
        await client.post("/v1/subscribers", json={"email": "other@example.org", "interests": "sleep"})
        other_mail = smtp_sink.wait_for(2)[1]
        other_link = re.search(r"confirm\?t=(\S+)", other_mail.get_body(("plain",)).get_content())
        assert other_link
        other = (await client.post("/v1/subscribers/confirm", json={"token": unquote(other_link.group(1))})).json()
        other_auth = {"Authorization": f"Bearer {other['api_key']}"}
        assert (await client.get(f"/v1/subscribers/{sub_id}", headers=other_auth)).status_code == 404
        assert (
            await client.patch(f"/v1/subscribers/{sub_id}", headers=other_auth, json={"interests": "x"})
        ).status_code == 404
        assert (
            await client.patch(
                f"/v1/subscribers/{other['subscriber_id']}", headers=other_auth, json={"status": "paused"}
            )
        ).json()["status"] == "paused"

        assert (await client.post("/v1/admin/deliveries/run?force=true")).status_code == 401
        run = await client.post("/v1/admin/deliveries/run", json={"force": True}, headers={"X-API-Key": ADMIN_KEY})
        assert run.status_code == 200, run.text
        report = run.json()
        assert report["sent"] == 1 and report["candidates"] == len(DAY)

        [mail] = [m for m in smtp_sink.wait_for(3) if m["X-Podbrief-Brief-Id"]]
        assert mail["To"] == "listener@example.org"
        html = mail.get_body(("html",)).get_content()
        picks = html.count('class="card pick"')
        assert 1 <= picks <= 5
        assert "That is what we found." in html and "#t=" in html and re.search(r"▶ \d\d:\d\d", html)

        latest = await client.get(f"/v1/subscribers/{sub_id}/briefs/latest", headers=auth)
        assert latest.status_code == 200 and len(latest.json()["items"]) == picks
        by_date = await client.get(f"/v1/subscribers/{sub_id}/briefs/{latest.json()['brief_date']}", headers=auth)
        assert by_date.json() == latest.json()
        assert (await client.get(f"/v1/subscribers/{sub_id}/briefs/latest", headers=other_auth)).status_code == 404
        first = latest.json()["items"][0]
        assert first["quote"] in html or htmlmod.escape(first["quote"]) in html
        assert first["timestamp_url"].endswith(f"#t={int(first['timestamp_s'])}")

        web = re.search(r'href="([^"]+)"[^>]*>Read this brief on the web', html)
        assert web
        page = await client.get(path_of(web.group(1)))
        assert page.status_code == 200 and page.text.count('class="card pick"') == picks
        stolen = path_of(web.group(1)).split("?")[0] + "?t=" + other["profile_token"]
        assert (await client.get(stolen)).status_code == 404
        archive = re.search(r'href="([^"]+)"[^>]*>Your past briefs', html)
        assert archive and (await client.get(path_of(archive.group(1)))).status_code == 200

        fb = re.search(r'href="([^"]+)"[^>]*>👍 Useful', html)
        assert fb
        assert (await client.get(path_of(fb.group(1)))).status_code == 200

        metrics = (await client.get("/metrics/")).text
        assert "podbrief_delivery_briefs_sent_total 1.0" in metrics
        assert 'podbrief_delivery_subscribers{state="active"} 1.0' in metrics

        # RFC 8058 one-click unsubscribe: the mail client POSTs to the header's URL.
        unsub_url = mail["List-Unsubscribe"].strip("<>")
        r = await client.post(
            path_of(unsub_url),
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert (await client.get(f"/v1/subscribers/{sub_id}", headers=auth)).status_code == 404
        tomorrow = await client.post(
            "/v1/admin/deliveries/run",
            json={"force": True, "date": "2030-01-01"},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert tomorrow.json()["due"] == 0

        resumed = await client.patch(
            f"/v1/subscribers/{other['subscriber_id']}", headers=other_auth, json={"status": "active"}
        )
        assert resumed.json()["status"] == "active"
        bounced = await client.post(
            "/v1/admin/bounces",
            json={"email": "OTHER@example.org", "reason": "550 gone"},
            headers={"X-API-Key": ADMIN_KEY},
        )
        assert bounced.status_code == 200 and bounced.json()["status"] == "paused"
        after = (await client.get(f"/v1/subscribers/{other['subscriber_id']}", headers=other_auth)).json()
        assert after["status"] == "paused" and after["paused_reason"] == "bounce: 550 gone"
        exported = await client.get(f"/v1/subscribers/{other['subscriber_id']}/export", headers=other_auth)
        assert exported.status_code == 200 and exported.json()["subscriber"]["email"] == "other@example.org"
        gone = await client.delete(f"/v1/subscribers/{other['subscriber_id']}", headers=other_auth)
        assert gone.status_code == 204
        await client.aclose()
    await transport.stop()


async def test_signup_form_and_confirm_page(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    settings = make_settings(tmp_path, smtp_sink.port)
    transport = MemoryTransport()
    await transport.start()
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        r = await client.post(
            "/signup",
            data={
                "email": "form@example.com",
                "interests": "solar power",
                "topics": "energy, climate",
                "shows": "Grid Talk",
                "timezone": "Asia/Kolkata",
                "delivery_hour": "8",
            },
        )
        assert r.status_code == 200 and "Check your inbox" in r.text
        bad = await client.post(
            "/signup",
            data={
                "email": "form@example.com",
                "interests": "x",
                "timezone": "Mars/Olympus",
                "delivery_hour": "8",
            },
        )
        assert bad.status_code == 422 and "unknown time zone" in bad.text
        [mail] = smtp_sink.wait_for(1)
        url = re.search(r'href="([^"]+)"[^>]*>Confirm my subscription', mail.get_body(("html",)).get_content())
        assert url
        page = await client.get(path_of(url.group(1)))
        assert page.status_code == 200 and 'action="/confirm"' in page.text
        token = re.search(r'name="t" value="([^"]+)"', page.text)
        assert token
        done = await client.post("/confirm", data={"t": htmlmod.unescape(token.group(1))})
        assert done.status_code == 200 and "You&#39;re subscribed" in done.text
        assert re.search(r'<code id="secret">pbk_', done.text)
        assert (await client.post("/confirm", data={"t": "forged.token"})).status_code == 400
        await client.aclose()
    await transport.stop()


async def test_open_and_click_tracking_counts_only_when_enabled(
    tmp_path: Path, smtp_sink: SmtpSink, embedder: Embedder
) -> None:
    from podbrief_delivery import subscribers

    settings = make_settings(tmp_path, smtp_sink.port, tracking=True)
    transport = MemoryTransport()
    await transport.start()
    app = create_app(settings, transport=transport)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        deps = app.state.deps
        from podbrief_delivery.handlers import on_insight_clustered

        for ev in day_events(embedder):
            await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
        sub = await deps.sign_up("t@example.com", subscribers.SignupProfile(interests="batteries"))
        await subscribers.confirm(sub.id, sub.token_version, repo=deps.repo, metrics=deps.metrics)
        assert (await deps.deliver(force=True)).sent == 1
        [mail] = [m for m in smtp_sink.messages if m["X-Podbrief-Brief-Id"]]
        html = mail.get_body(("html",)).get_content()
        pixel = re.search(r'<img src="([^"]+/o/[^"]+\.gif)"', html)
        assert pixel
        img = await client.get(path_of(pixel.group(1)))
        assert img.status_code == 200 and img.headers["content-type"] == "image/gif"
        assert (await client.get("/o/forged.gif")).status_code == 200
        web = re.search(r'href="([^"]+)"[^>]*>Read this brief on the web', html)
        assert web and (await client.get(path_of(web.group(1)))).status_code == 200
        metrics = (await client.get("/metrics/")).text
        assert "podbrief_delivery_opens_total 1.0" in metrics
        assert 'podbrief_delivery_clicks_total{kind="web"} 1.0' in metrics
        await client.aclose()
    await transport.stop()
