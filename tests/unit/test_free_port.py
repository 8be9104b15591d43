"""Ports for the test servers come from below the range of outgoing connections' ports."""

import socket

from shared.natsserver import FREE_PORTS_FROM, _ephemeral_low, free_port


def test_a_free_port_is_bindable_and_outside_the_outgoing_range() -> None:
    ports = {free_port() for _ in range(20)}
    assert all(FREE_PORTS_FROM <= port < _ephemeral_low() for port in ports)
    assert len(ports) > 1  # chosen at random: two workers rarely pick the same
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
