"""Sends spooled frames over MQTT QoS 1 inside a byte budget; frames leave the spool on the edge's ack."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from endpoint import protocol
from endpoint.mqtt_link import MqttLink
from endpoint.protocol import Ack, ProtocolError
from endpoint.spool import Spool
from endpoint.token_bucket import TokenBucket

log = logging.getLogger(__name__)


@dataclass
class UplinkStats:
    frames_sent: int = 0
    frames_resent: int = 0
    frames_acked: int = 0
    frames_refused: int = 0
    bytes_sent: int = 0


class Uplink:
    """A sender thread: oldest spooled frame first, at most ``window`` unacked, re-sent after ``ack_timeout_s``."""

    def __init__(self, link: MqttLink, spool: Spool, bucket: TokenBucket, window: int = 32,
                 ack_timeout_s: float = 10.0):
        self.link, self.spool, self.bucket = link, spool, bucket
        self.window, self.ack_timeout_s = window, ack_timeout_s
        self.stats = UplinkStats()
        self._sent_at: dict[str, tuple[float, int]] = {}  # frame id -> (when last sent, connection number)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        link.on(protocol.FEATURE_ACK, self._on_ack_payload)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def notify(self) -> None:
        """A new frame was spooled."""
        self._wake.set()

    def drained(self) -> bool:
        return self.spool.depth() == 0

    def wait_drained(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.drained():
                return True
            time.sleep(0.05)
        return self.drained()

    def _on_ack_payload(self, payload: bytes) -> None:
        try:
            ack = protocol.decode(payload)
        except ProtocolError as exc:
            log.warning("ignoring a malformed ack: %s", exc)
            return
        if not isinstance(ack, Ack) or not ack.frame_ids:
            return
        if not ack.ok:  # the edge can never store these (corrupt on disk, say): re-sending would loop forever
            log.warning("edge refused frames %s: %s; dropping them from the spool", ack.frame_ids, ack.reason)
        acked = 0
        for frame_id in ack.frame_ids:
            with self._lock:
                self._sent_at.pop(frame_id, None)
            if self.spool.remove(frame_id):
                acked += 1
        if ack.ok:
            self.stats.frames_acked += acked
        else:
            self.stats.frames_refused += acked
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if not self.link.connected.is_set():
                with self._lock:
                    self._sent_at.clear()  # unacked sends are re-sent after the reconnect
                self.link.connected.wait(timeout=0.5)
                continue
            entry = self._next_to_send()
            if entry is None:
                self._wake.wait(timeout=0.5)
                continue
            try:
                payload = entry.read()
            except FileNotFoundError:  # acked meanwhile
                continue
            if not self.bucket.consume(len(payload), timeout_s=1.0):
                continue
            info = self.link.publish(protocol.FEATURE_FRAME, payload, qos=1)
            if info.rc != 0:
                log.debug("publish of %s failed (rc=%s); will retry", entry.frame_id, info.rc)
                time.sleep(0.2)
                continue
            with self._lock:
                resend = entry.frame_id in self._sent_at
                self._sent_at[entry.frame_id] = (time.monotonic(), self.link.connection_count)
            self.stats.bytes_sent += len(payload)
            self.stats.frames_sent += 1
            self.stats.frames_resent += int(resend)

    def _next_to_send(self):
        now = time.monotonic()
        with self._lock:
            # a send counts as in flight until its ack timeout, and only on the connection it went out on
            epoch = self.link.connection_count
            in_flight = {fid for fid, (t, e) in self._sent_at.items() if now - t < self.ack_timeout_s and e == epoch}
        if len(in_flight) >= self.window:
            return None
        for entry in self.spool.pending():
            if entry.frame_id not in in_flight:
                return entry
        return None
