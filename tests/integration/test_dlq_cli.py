"""`podbrief dlq` on a real Kafka broker, as an operator runs it against a deployment: the dead letter a service
wrote is listed with its reason, replayed into its topic once, and a second replay sends nothing."""

from __future__ import annotations

import asyncio
import json

import pytest
from podbrief.bus import Bus, Subscription, dlq
from podbrief.bus.kafka import KafkaTransport
from podbrief.errors import PermanentError
from podbrief.events import BriefDelivered
from podbrief.settings import BusSettings, KafkaSettings
from podbrief_cli.cli import app
from podbrief_cli.dlq import register
from podbrief_testing.bus import numbered_event
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

TOPIC = "podbrief.episode.discovered.v1"


async def dead_letter(bootstrap: str, namespace: str) -> None:
    settings = BusSettings(kafka=KafkaSettings(bootstrap_servers=bootstrap, namespace=namespace, partitions=2))
    bus = Bus(KafkaTransport(settings.kafka), settings)
    await bus.start()
    try:

        async def handler(_e: BriefDelivered) -> None:
            raise PermanentError("the enclosure is an HTML page", reason="bad_content_type")

        await bus.transport.ensure_topics([TOPIC])
        await bus.publish(numbered_event("episode-1", 1), topic=TOPIC)
        consumer = bus.consumer([Subscription(TOPIC, BriefDelivered, handler)], group="transcription")
        task = asyncio.create_task(consumer.run())
        deadline = asyncio.get_running_loop().time() + 60
        while not await dlq.dead_letters(bus.transport, TOPIC):
            assert asyncio.get_running_loop().time() < deadline, "not dead-lettered in time"
            await asyncio.sleep(0.5)
        consumer.stop()
        await asyncio.wait_for(task, 30)
    finally:
        await bus.stop()


def test_dlq_list_and_replay_on_kafka(kafka_bootstrap: str, unique: str) -> None:
    namespace = f"dlqcli.{unique}."
    asyncio.run(dead_letter(kafka_bootstrap, namespace))
    register(app)
    where = ["--kafka", kafka_bootstrap, "--namespace", namespace]
    cli = CliRunner()

    listed = cli.invoke(app, ["dlq", "list", "episode.discovered", "--json", *where])
    assert listed.exit_code == 0, listed.output
    [letter] = [json.loads(line) for line in listed.output.splitlines()]
    assert (letter["reason"], letter["error_class"], letter["key"]) == ("bad_content_type", "permanent", "episode-1")
    assert letter["consumer_group"] == "transcription" and letter["replayed_at"] is None

    shown = cli.invoke(app, ["dlq", "show", TOPIC, letter["id"], *where])
    assert shown.exit_code == 0 and "the enclosure is an HTML page" in shown.output, shown.output

    first = cli.invoke(app, ["dlq", "replay", TOPIC + ".dlq", "--reason", "bad_content_type", *where])
    assert first.exit_code == 0 and "replayed 1 dead letter(s)" in first.output, first.output
    again = cli.invoke(app, ["dlq", "replay", TOPIC, "--all", *where])
    assert "replayed 0 dead letter(s)" in again.output and "1 replayed before" in again.output, again.output

    async def replayed() -> list[str | None]:
        transport = KafkaTransport(KafkaSettings(bootstrap_servers=kafka_bootstrap, namespace=namespace))
        await transport.start()
        try:
            return [r.header(dlq.REPLAYED_FROM) for r in await transport.read(TOPIC)]
        finally:
            await transport.stop()

    assert asyncio.run(replayed()) == [None, f"{TOPIC}.dlq:{letter['id']}"]  # the original, and one copy


def test_dlq_says_when_kafka_cannot_be_reached() -> None:
    register(app)
    out = CliRunner().invoke(app, ["dlq", "list", "--kafka", "127.0.0.1:9"])
    assert out.exit_code == 2 and "cannot reach Kafka" in out.output, out.output
