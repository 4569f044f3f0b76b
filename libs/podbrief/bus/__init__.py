"""The bus: one interface, a Kafka transport for production and an in-process twin with the same semantics."""

from podbrief.bus import dlq
from podbrief.bus.base import ConsumerTransport, Record, Transport
from podbrief.bus.core import Bus, Consumer, Publish, Subscription, make_transport
from podbrief.bus.memory import MemoryTransport

__all__ = [
    "Bus",
    "Consumer",
    "ConsumerTransport",
    "MemoryTransport",
    "Publish",
    "Record",
    "Subscription",
    "Transport",
    "dlq",
    "make_transport",
]
