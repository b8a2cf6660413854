"""Free loopback ports for the services the lab and the tests start."""

from __future__ import annotations

import random
import socket


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", low: int = 20000, high: int = 50000, also_free: tuple[int, ...] = ()) -> int:
    """A port that is free now, and so is ``port + offset`` for each offset in ``also_free``."""
    for _ in range(500):
        port = random.randint(low, high)
        if port_is_free(port, host) and all(port_is_free(port + off, host) for off in also_free):
            return port
    raise RuntimeError("no free loopback port found")


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
