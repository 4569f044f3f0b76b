"""Test support: real servers on loopback, services as processes, Kafka, PostgreSQL and metrics as a test
sees them, and fakes for each service's outside world (`podbrief_testing.transcription`, `.llm`, `.delivery`).

It sits above everything it supports: tests and benchmarks import it, production code (libs, services, apps)
never does (tests/unit/test_architecture.py checks that)."""

from podbrief_testing.kafka import group_offsets, publish_events, topic_records
from podbrief_testing.metrics import scrape_metric
from podbrief_testing.postgres import create_database
from podbrief_testing.processes import ServiceProcess
from podbrief_testing.servers import LoopbackServer, Route, SmtpSink, free_port

__all__ = [
    "LoopbackServer",
    "Route",
    "ServiceProcess",
    "SmtpSink",
    "create_database",
    "free_port",
    "group_offsets",
    "publish_events",
    "scrape_metric",
    "topic_records",
]
