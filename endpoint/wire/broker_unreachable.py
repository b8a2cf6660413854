"""A warning while the MQTT broker cannot be reached: paho retries the connection silently otherwise."""

from __future__ import annotations

import logging
import time


class UnreachableWarning:
    """Logs the first failed connection attempt of an outage, then one line every ``every_s`` while it lasts."""

    def __init__(self, log: logging.Logger, host: str, port: int, every_s: float = 60.0):
        self.log, self.host, self.port, self.every_s = log, host, port, every_s
        self._since: float | None = None
        self._last = 0.0

    def failed(self, *_callback_args) -> None:
        """paho's ``on_connect_fail``: the TCP or TLS connection to the broker failed; paho will retry."""
        now = time.monotonic()
        if self._since is None:
            self._since = self._last = now
            self.log.warning("cannot reach the MQTT broker %s:%d (refused, unreachable or TLS failed); retrying",
                             self.host, self.port)
        elif now - self._last >= self.every_s:
            self._last = now
            self.log.warning("still cannot reach the MQTT broker %s:%d after %.0f s; retrying", self.host,
                             self.port, now - self._since)

    def connected(self) -> None:
        self._since = None
