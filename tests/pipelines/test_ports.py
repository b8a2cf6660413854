"""Free loopback ports are drawn below the kernel's ephemeral range, where no outgoing connection can take them."""

from __future__ import annotations

import pytest

from pipelines.ports import ephemeral_port_start, free_port, port_is_free


def test_free_ports_and_their_offsets_stay_below_the_ephemeral_range():
    start = ephemeral_port_start()
    for _ in range(50):
        assert 10000 <= free_port() < start
        port = free_port(also_free=(10000,))
        assert port + 10000 < start and port_is_free(port) and port_is_free(port + 10000)


def test_a_range_that_leaves_nothing_below_the_ephemeral_ports_is_an_error():
    with pytest.raises(RuntimeError, match="below the ephemeral ports"):
        free_port(low=ephemeral_port_start())
