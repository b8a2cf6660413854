"""Shared parts of ``edgeloop bench fuzz``: the result row, a paced MQTT sender, RSS and escaped-exception meters."""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)

# Valid traffic rides between the mutants: one valid message after this many mutated ones.
MUTANTS_PER_VALID = 20


@dataclass
class FuzzRow:
    """What one receiver did with the fuzz: counts taken from its own counters, acks and logs."""

    receiver: str
    mutated_sent: int = 0
    refused: int = 0  # refused with a reason the receiver counted, logged or acked
    reasons: dict[str, int] = field(default_factory=dict)
    crashes: int = 0  # process exit, dead thread, or an exception that escaped a handler
    crash_notes: list[str] = field(default_factory=list)
    valid_sent: int = 0
    valid_kept: int = 0
    rss_start_mib: float = 0.0  # after the receiver started, before the fuzz
    rss_peak_mib: float = 0.0
    rss_note: str = ""
    wall_s: float = 0.0

    def refuse(self, reason: str, n: int = 1) -> None:
        self.refused += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n

    def crash(self, note: str, n: int = 1) -> None:
        self.crashes += n
        self.crash_notes.append(note)

    @property
    def passed(self) -> bool:
        return self.crashes == 0 and self.valid_kept == self.valid_sent and self.valid_sent > 0


class Sender:
    """One MQTT client that publishes at most ``rate_per_s`` messages, with a window of unacked QoS 1 sends."""

    def __init__(self, host: str, port: int, client_id: str, rate_per_s: float, window: int = 32):
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(window)
        self.window = window
        self._unacked: collections.deque[mqtt.MQTTMessageInfo] = collections.deque()
        self.interval_s = 1.0 / rate_per_s
        self._next = time.monotonic()
        self._handlers: list[tuple[str, Callable[[str, bytes], None]]] = []
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self.connected.wait(10):
            raise ConnectionError(f"fuzz sender: no broker at {host}:{port}")

    def listen(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        """Deliver messages on ``topic_filter`` to ``handler(topic, payload)``, subscribed before this returns."""
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self._handlers.append((topic_filter, handler))
        self.client.subscribe(topic_filter, qos=1)
        if not done.wait(10):
            raise TimeoutError(f"no SUBACK for {topic_filter}")

    def send(self, topic: str, payload: bytes, qos: int = 1) -> None:
        now = time.monotonic()
        if self._next > now:
            time.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval_s
        info = self.client.publish(topic, payload, qos=qos)
        if qos and info.rc == mqtt.MQTT_ERR_SUCCESS:
            self._unacked.append(info)
        while len(self._unacked) > self.window:  # back-pressure: a broker that is behind slows us down
            self._unacked.popleft().wait_for_publish(30)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker has every QoS 1 message sent so far."""
        while self._unacked:
            self._unacked.popleft().wait_for_publish(timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client, userdata, message) -> None:
        for topic_filter, handler in self._handlers:
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                handler(message.topic, message.payload)


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.02) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes (the bench's own waits, never a test's)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def rss_mib(pid: int | str = "self", field_name: str = "VmRSS") -> float:
    """A /proc/<pid>/status memory figure in MiB (VmRSS now, or VmHWM: the peak)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssMeter:
    """Samples this process's RSS in the background; ``growth_mib`` is the peak above the start."""

    def __init__(self, interval_s: float = 0.05):
        self.base_mib = rss_mib()
        self.peak_mib = self.base_mib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), name="fuzz-rss", daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self.peak_mib = max(self.peak_mib, rss_mib())

    def restart(self) -> None:
        """Take the start from now (after the receiver started)."""
        self.base_mib = self.peak_mib = rss_mib()

    def stop(self, row: FuzzRow) -> None:
        self._stop.set()
        self._thread.join()
        row.rss_start_mib, row.rss_peak_mib = self.base_mib, max(self.peak_mib, rss_mib())


class EscapedExceptions(logging.Handler):
    """Counts log records that carry a traceback: a handler exception that escaped to a last-resort catch."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(f"{record.name}: {record.getMessage()} ({record.exc_info[0].__name__})")

    def __enter__(self) -> "EscapedExceptions":
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)


def end_process(row, process, what: str, log_path) -> bool:
    """After a receiver process's fuzz: its peak RSS (while alive), then stop it; a dead one is a crash."""
    alive = process.poll() is None
    row.rss_peak_mib = rss_mib(process.pid, "VmHWM") if alive else 0.0
    row.rss_note = f"VmHWM of {what}"
    if alive:
        process.terminate()
        process.wait(30)
    else:
        row.crash(f"{what} exited with {process.returncode}; see {log_path}")
    return alive


def count_log_lines(path: str | os.PathLike, needles: dict[str, str]) -> dict[str, int]:
    """How many lines of a process's log contain each needle (name -> needle)."""
    counts = {name: 0 for name in needles}
    with open(path, errors="replace") as fh:
        for line in fh:
            for name, needle in needles.items():
                if needle in line:
                    counts[name] += 1
    return counts
