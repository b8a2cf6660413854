"""A token bucket that keeps the uplink inside its byte rate."""

from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    """``rate_bytes_per_s`` refills up to ``capacity_bytes``; a send larger than the capacity waits for a full bucket."""

    def __init__(self, rate_bytes_per_s: float, capacity_bytes: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate_bytes_per_s <= 0 or capacity_bytes <= 0:
            raise ValueError("rate and capacity must be positive")
        self._rate = float(rate_bytes_per_s)
        self._capacity = float(capacity_bytes)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(capacity_bytes)
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def rate_bytes_per_s(self) -> float:
        return self._rate

    def set_rate(self, rate_bytes_per_s: float, capacity_bytes: float | None = None) -> None:
        """Change the rate (a new round's plan); tokens already earned are kept up to the new capacity."""
        with self._lock:
            self._refill()
            self._rate = float(rate_bytes_per_s)
            if capacity_bytes is not None:
                self._capacity = float(capacity_bytes)
            self._tokens = min(self._tokens, self._capacity)

    def try_consume(self, n_bytes: int) -> float:
        """Take ``n_bytes`` if available and return 0; else return the seconds to wait first."""
        with self._lock:
            self._refill()
            need = min(float(n_bytes), self._capacity)
            if self._tokens >= need:
                self._tokens -= n_bytes  # may go negative: a large send is paid for afterwards
                return 0.0
            return (need - self._tokens) / self._rate

    def consume(self, n_bytes: int, timeout_s: float | None = None) -> bool:
        """Block until ``n_bytes`` may be sent; False if ``timeout_s`` passes first."""
        deadline = None if timeout_s is None else self._clock() + timeout_s
        while True:
            wait_s = self.try_consume(n_bytes)
            if wait_s == 0.0:
                return True
            if deadline is not None and self._clock() + wait_s > deadline:
                return False
            self._sleep(min(wait_s, 0.5))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
