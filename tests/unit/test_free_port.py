"""The test support's free_port: a port nothing holds, never handed out twice in a process, and out of the way of
servers that bind port 0 and of outgoing connections."""

from __future__ import annotations

import socket

import pytest
from podbrief_testing import LoopbackServer, free_port, servers

pytestmark = pytest.mark.unit


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    low = servers.ephemeral_low()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(servers._LOWEST <= p < low for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))  # nothing holds it


def test_a_server_that_binds_port_0_after_the_choice_cannot_take_the_chosen_port() -> None:
    # The fault suite chose its broker's port, then started the feed server (port 0), then the broker.
    chosen = [free_port() for _ in range(20)]
    feed = LoopbackServer().start()
    try:
        assert feed.port not in chosen
    finally:
        feed.stop()


def test_a_kernel_range_that_leaves_no_room_below_falls_back_to_kernel_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    kernel_low = servers.ephemeral_low()
    monkeypatch.setattr(servers, "ephemeral_low", lambda: servers._LOWEST + 10)
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == len(ports) and all(p >= kernel_low for p in ports)
