"""Sends spooled frames over MQTT QoS 1 inside a byte budget; frames leave the spool on the edge's ack."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from endpoint.uplink.link import MqttLink
from endpoint.uplink.spool import CorruptFrame, Spool, SpoolEntry
from endpoint.uplink.token_bucket import TokenBucket
from endpoint.wire import protocol
from endpoint.wire.protocol import Ack, ProtocolError

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.5  # the longest the sender sleeps without a notify, ack or timeout to look at
_READ_BACKOFF_S = (0.1, 5.0)  # first and longest pause after a spool file could not be read
_PUBLISH_RETRY_S = 0.2


@dataclass
class UplinkStats:
    frames_sent: int = 0
    frames_resent: int = 0
    frames_acked: int = 0
    frames_refused: int = 0
    frames_quarantined: int = 0
    bytes_sent: int = 0


class Uplink:
    """A sender thread: oldest spooled frame first, at most ``window`` unacked, re-sent after ``ack_timeout_s``."""

    def __init__(self, link: MqttLink, spool: Spool, bucket: TokenBucket, window: int = 32,
                 ack_timeout_s: float = 10.0):
        self.link, self.spool, self.bucket = link, spool, bucket
        self.window, self.ack_timeout_s = window, ack_timeout_s
        self.stats = UplinkStats()
        # frame id -> when last sent, oldest send first; at most ``window`` entries, so memory stays bounded
        self._in_flight: OrderedDict[str, float] = OrderedDict()
        self._cursor_seq = -1  # every spooled frame up to this seq went out on the current connection
        self._highest_sent_seq = -1  # anything at or below was sent before: a re-send
        self._epoch: int | None = None  # the link's connection number the window belongs to
        self._lock = threading.Lock()
        self._acked = threading.Condition()  # notified when frames leave the spool
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._read_backoff_s = 0.0
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        link.on(protocol.FEATURE_ACK, self._on_ack_payload)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.bucket.wake()
        self._thread.join(timeout=5)

    def notify(self) -> None:
        """A new frame was spooled."""
        self._wake.set()

    def drained(self) -> bool:
        return self.spool.depth() == 0

    def wait_drained(self, timeout_s: float) -> bool:
        with self._acked:
            return self._acked.wait_for(self.drained, timeout=timeout_s)

    def in_flight(self) -> int:
        """Frames sent and not yet acked on this connection."""
        with self._lock:
            return len(self._in_flight)

    # --- choosing what to send: O(log depth) -------------------------------------------------------

    def next_to_send(self) -> SpoolEntry | None:
        """A timed-out frame first, else the oldest not yet sent on this connection; None if the window is full."""
        now = time.monotonic()
        with self._lock:
            self._follow_connection()
            while self._in_flight:
                frame_id, sent_at = next(iter(self._in_flight.items()))
                entry = self.spool.get(frame_id)
                if entry is None:  # acked or quarantined meanwhile
                    del self._in_flight[frame_id]
                    continue
                if now - sent_at >= self.ack_timeout_s:
                    return entry
                break
            if len(self._in_flight) >= self.window:
                return None
            return self.spool.next_after(self._cursor_seq)

    def mark_sent(self, entry: SpoolEntry, size_bytes: int) -> None:
        """Record a publish: the frame counts against the window until acked or timed out."""
        with self._lock:
            resend = entry.seq <= self._highest_sent_seq
            self._in_flight[entry.frame_id] = time.monotonic()
            self._in_flight.move_to_end(entry.frame_id)
            self._cursor_seq = max(self._cursor_seq, entry.seq)
            self._highest_sent_seq = max(self._highest_sent_seq, entry.seq)
        self.stats.bytes_sent += size_bytes
        self.stats.frames_sent += 1
        self.stats.frames_resent += int(resend)

    def _defer(self, entry: SpoolEntry) -> None:
        """Hold a frame back for one ack timeout, as if it had been sent, without counting a send."""
        with self._lock:
            self._in_flight[entry.frame_id] = time.monotonic()
            self._in_flight.move_to_end(entry.frame_id)
            self._cursor_seq = max(self._cursor_seq, entry.seq)

    def handle_ack(self, frame_ids: list[str], ok: bool) -> int:
        """Drop acked (or refused) frames from the window and the spool; the number that were spooled."""
        removed = 0
        for frame_id in frame_ids:
            with self._lock:
                self._in_flight.pop(frame_id, None)
            if self.spool.remove(frame_id):
                removed += 1
        if ok:
            self.stats.frames_acked += removed
        else:
            self.stats.frames_refused += removed
        self._frames_left()
        return removed

    def _follow_connection(self) -> None:
        """A new connection may have lost every unacked send: start again from the oldest frame."""
        epoch = self.link.connection_count
        if epoch != self._epoch:
            self._epoch = epoch
            self._in_flight.clear()
            self._cursor_seq = -1

    # --- the sender thread -------------------------------------------------------------------------

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
        self.handle_ack(list(ack.frame_ids), ack.ok)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the sender must outlive any one bad frame or fault; the spool keeps the frames
                log.exception("uplink step failed; retrying in 1 s")
                self._stop.wait(1.0)

    def _step(self) -> None:
        self._wake.clear()
        if not self.link.connected.is_set():
            self.link.connected.wait(timeout=_IDLE_WAIT_S)
            return
        entry = self.next_to_send()
        if entry is None:
            self._wake.wait(timeout=self._idle_wait_s())
            return
        payload = self._load(entry)
        if payload is None:
            return
        # wait for the tokens without re-reading: a zero rate or a frame larger than the bucket just waits
        if not self.bucket.consume(len(payload), cancel=self._stop):
            return
        if entry.frame_id not in self.spool:  # acked while waiting
            return
        info = self.link.publish(protocol.FEATURE_FRAME, payload, qos=1)
        if info.rc != 0:
            log.debug("publish of %s failed (rc=%s); will retry", entry.frame_id, info.rc)
            self._stop.wait(_PUBLISH_RETRY_S)
            return
        self.mark_sent(entry, len(payload))

    def _load(self, entry: SpoolEntry) -> bytes | None:
        """The frame's bytes if they form a frame with this id; a bad file is quarantined, a read error backs off."""
        try:
            payload = self.spool.read(entry)
            frame = protocol.decode_frame(payload)
        except FileNotFoundError:
            if entry.frame_id in self.spool:  # not acked, yet gone from the disk: nothing left to send
                log.warning("spooled frame %s vanished from %s; dropping it", entry.frame_id, entry.path)
                self.spool.remove(entry.frame_id)
                self._frames_left()
            return None
        except (CorruptFrame, ProtocolError, ValueError) as exc:
            self._quarantine(entry, str(exc))
            return None
        except OSError as exc:  # maybe passing (EIO, EMFILE): try the next frames, this one after its ack timeout
            self._read_backoff_s = min(_READ_BACKOFF_S[1], max(_READ_BACKOFF_S[0], self._read_backoff_s * 2))
            log.warning("could not read spooled frame %s (%s); retrying it in %.0f s", entry.path, exc,
                        self.ack_timeout_s)
            self._defer(entry)
            self._stop.wait(self._read_backoff_s)
            return None
        self._read_backoff_s = 0.0
        if frame.header.frame_id != entry.frame_id:  # its ack would never match this file: it would loop forever
            self._quarantine(entry, f"its header names frame {frame.header.frame_id}")
            return None
        return payload

    def _quarantine(self, entry: SpoolEntry, reason: str) -> None:
        if self.spool.quarantine(entry.frame_id, reason):
            self.stats.frames_quarantined += 1
        with self._lock:
            self._in_flight.pop(entry.frame_id, None)
        self._frames_left()

    def _frames_left(self) -> None:
        with self._acked:
            self._acked.notify_all()

    def _idle_wait_s(self) -> float:
        with self._lock:
            if not self._in_flight:
                return _IDLE_WAIT_S
            oldest_sent_at = next(iter(self._in_flight.values()))
        return min(_IDLE_WAIT_S, max(0.01, oldest_sent_at + self.ack_timeout_s - time.monotonic()))
