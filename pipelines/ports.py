"""Free loopback ports for the services the lab and the tests start."""

from __future__ import annotations

import random
import socket
from pathlib import Path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", low: int = 10000, high: int | None = None,
              also_free: tuple[int, ...] = ()) -> int:
    """A port that is free now, and so is ``port + offset`` for each offset in ``also_free``.

    Ports are drawn below the kernel's ephemeral range, so that none can be taken, between the choice and the
    bind, by one of the many outgoing connections the services open (a learner lost its metrics port that way).
    """
    top = ephemeral_port_start() - 1 - max(also_free, default=0)
    high = top if high is None else min(high, top)
    if high < low:
        raise RuntimeError(f"no loopback port range left below the ephemeral ports ({low}..{high})")
    for _ in range(500):
        port = random.randint(low, high)
        if port_is_free(port, host) and all(port_is_free(port + off, host) for off in also_free):
            return port
    raise RuntimeError("no free loopback port found")


def ephemeral_port_start() -> int:
    """The first port the kernel gives outgoing connections (Linux: ip_local_port_range; 32768 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def wait_for_port(port: int, host: str = "127.0.0.1", timeout_s: float = 20.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")
