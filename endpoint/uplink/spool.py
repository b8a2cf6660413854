"""An on-disk spool of sampled frames: a frame leaves it only when the edge acks it.

A broker outage or a reboot loses nothing: frames are written atomically (temp
file, fsync, rename) before they are sent. Frame ids come from
a counter persisted in blocks, and a frame is only written under an id whose
block is already on disk, so no id that ever reached the edge is issued again.
A new spool (a first boot, a reflashed card) starts its counter at the clock in
microseconds, so its ids do not repeat those of an earlier spool of the same
endpoint, which the store would refuse as conflicts.
An in-memory index, built by one directory scan at start, picks the next frame
in O(log n) whatever the depth. Files that are not frames are quarantined.
"""

from __future__ import annotations

import bisect
import errno
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from endpoint.wire.durable_file import TMP_PREFIX, write_durably
from endpoint.wire.protocol import MAX_FRAME_PAYLOAD_BYTES

log = logging.getLogger(__name__)

_SUFFIX = ".frame"
_FRAME_NAME = re.compile(r"^([0-9]{12,19})\.frame$")
_COUNTER = "next_seq"
QUARANTINE_DIR = "quarantine"
_ID_BLOCK = 64  # ids are reserved on disk in blocks: one fsync per block, a crash skips at most a block
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_COMPACT_MIN = 1024  # acked seqs leave the order list in batches of at least this many


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    frame_id: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


def frame_id_for(seq: int) -> str:
    return f"f{seq:010d}"


def fresh_counter() -> int:
    """Where a spool with no counter starts: the clock in microseconds. An earlier spool of the endpoint issued
    fewer ids than microseconds have passed since it started (it samples far below a million frames a second)."""
    return time.time_ns() // 1000


def seq_of(frame_id: str) -> int | None:
    """The sequence number behind one of our frame ids; None for any other string."""
    digits = frame_id[1:]
    if frame_id[:1] != "f" or not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    seq = int(digits)
    return seq if frame_id_for(seq) == frame_id else None


class Spool:
    """Frames waiting for the edge's ack, oldest first."""

    def __init__(self, directory: str | Path, max_frames: int = 100_000, quarantine_max_files: int = 100,
                 max_payload_bytes: int = MAX_FRAME_PAYLOAD_BYTES):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_frames = max_frames
        self.quarantine_max_files = quarantine_max_files
        self.max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()
        # only ints are kept per frame (a few dozen bytes): 100,000 spooled frames stay a few MB
        self._live: set[int] = set()  # seqs of the spooled frames
        self._order: list[int] = []  # seqs ascending; acked ones linger until compacted (lazy deletion)
        self._head = 0  # every seq in _order[:_head] is gone from _live
        self._quarantined = self._count_quarantined()
        self._counter_failing = False
        self._scan()
        self._next_seq = max(self._read_counter(), (self._order[-1] + 1) if self._order else 0)
        self._reserved_until = self._next_seq  # ids below this are reserved on disk
        if self._live:
            log.info("spool %s holds %d unacked frames from before", self.directory, len(self._live))

    # --- ids ------------------------------------------------------------------------------------

    def next_frame_id(self) -> tuple[int, str]:
        """Reserve the next sequence number; never raises (``put`` refuses an id whose block is not on disk)."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            if seq >= self._reserved_until:
                try:
                    self._reserve_through(seq)
                except OSError as exc:
                    self._log_counter_failure(exc)
            return seq, frame_id_for(seq)

    # --- frames ---------------------------------------------------------------------------------

    def put(self, seq: int, payload: bytes) -> SpoolEntry:
        """Store one encoded frame; raise ``SpoolFull`` (or its disk-full subclass) when it cannot be kept."""
        with self._lock:
            if len(self._live) >= self.max_frames:
                raise SpoolFull(f"spool {self.directory} holds {len(self._live)} frames, its limit")
            if seq >= self._reserved_until:  # the block write failed earlier; without it this id could recur
                try:
                    self._reserve_through(seq)
                except OSError as exc:
                    self._log_counter_failure(exc)
                    raise _write_error(exc, f"could not reserve frame id {seq} in {self.directory}") from exc
        entry = self._entry(seq)
        try:  # outside the lock: the uplink keeps choosing and acking frames during the fsync
            self._write_atomic(entry.path, payload)
        except OSError as exc:
            raise _write_error(exc, f"could not spool frame {frame_id_for(seq)} in {self.directory}") from exc
        with self._lock:
            if seq not in self._live:
                self._insert_seq(seq)
                self._live.add(seq)
        return entry

    def read(self, entry: SpoolEntry) -> bytes:
        """The bytes of a spooled frame, bounded before reading; ``CorruptFrame`` if empty or oversized."""
        with open(entry.path, "rb") as fh:
            size_bytes = os.fstat(fh.fileno()).st_size
            if size_bytes == 0 or size_bytes > self.max_payload_bytes:
                raise CorruptFrame(f"{entry.path.name} has {size_bytes} bytes (limit {self.max_payload_bytes})")
            return fh.read(size_bytes)

    def remove(self, frame_id: str) -> bool:
        """Drop an acked frame; False if it was not (or no longer) spooled."""
        entry = self._take(frame_id)
        if entry is None:
            return False
        try:
            entry.path.unlink(missing_ok=True)
        except OSError as exc:  # the ack stands; the file is re-sent after a restart and the edge dedups it
            log.warning("could not delete acked frame %s: %s", entry.path, exc)
        return True

    def quarantine(self, frame_id: str, reason: str) -> bool:
        """Take a frame that can never be sent out of the spool, keeping its file for a look; False if not spooled."""
        entry = self._take(frame_id)
        if entry is None:
            return False
        with self._lock:  # the count of quarantined files is shared with other calls
            self._quarantine_file(entry.path, reason)
        return True

    def next_after(self, seq: int) -> SpoolEntry | None:
        """The oldest spooled frame with a sequence number above ``seq`` (-1: the oldest of all)."""
        with self._lock:
            i = bisect.bisect_right(self._order, seq, lo=self._head)
            while i < len(self._order):
                if self._order[i] in self._live:
                    return self._entry(self._order[i])
                i += 1
            return None

    def get(self, frame_id: str) -> SpoolEntry | None:
        seq = seq_of(frame_id)
        with self._lock:
            return self._entry(seq) if seq in self._live else None

    def pending(self) -> list[SpoolEntry]:
        """Every spooled frame, oldest first (a copy: O(depth), for tools and tests, not the send path)."""
        with self._lock:
            return [self._entry(s) for s in self._order[self._head:] if s in self._live]

    def __contains__(self, frame_id: str) -> bool:
        seq = seq_of(frame_id)
        with self._lock:
            return seq in self._live

    def depth(self) -> int:
        with self._lock:
            return len(self._live)

    # --- the index --------------------------------------------------------------------------------

    def _scan(self) -> None:
        """One pass over the directory (names only, no stat): index frames, drop temp files, quarantine bad names.

        Empty, truncated or garbage frames are found when the uplink reads them, not here: a start
        after a long outage stays one readdir however deep the spool is.
        """
        seqs: list[int] = []
        strays: list[str] = []
        with os.scandir(self.directory) as it:
            for item in it:
                name = item.name
                match = _FRAME_NAME.match(name)
                if match is not None and len(name) == 18 and item.is_file(follow_symlinks=False):
                    seqs.append(int(match.group(1)))  # the usual case: a canonical 12-digit name
                elif name == _COUNTER or name == QUARANTINE_DIR:
                    continue
                elif name.startswith(TMP_PREFIX):  # a write cut short by a crash
                    (self.directory / name).unlink(missing_ok=True)
                elif not name.endswith(_SUFFIX) or not item.is_file(follow_symlinks=False):
                    strays.append(name)  # not ours: never read nor sent, so left alone
                elif match is None or f"{int(match.group(1)):012d}{_SUFFIX}" != name:
                    self._quarantine_file(self.directory / name, "not a spool frame name")
                else:
                    seqs.append(int(match.group(1)))  # a seq past 12 digits
        seqs.sort()
        self._order = seqs
        self._live = set(seqs)
        if strays:
            log.warning("spool %s holds %d entries that are not frames (ignored): %s", self.directory, len(strays),
                        ", ".join(sorted(strays)[:5]))

    def _entry(self, seq: int) -> SpoolEntry:
        return SpoolEntry(seq, frame_id_for(seq), self.directory / f"{seq:012d}{_SUFFIX}")

    def _take(self, frame_id: str) -> SpoolEntry | None:
        """Take a frame out of the index; its file is the caller's to delete or move."""
        seq = seq_of(frame_id)
        with self._lock:
            if seq not in self._live:
                return None
            self._live.discard(seq)
            self._trim_head()
            return self._entry(seq)

    def _insert_seq(self, seq: int) -> None:
        if not self._order or seq > self._order[-1]:
            self._order.append(seq)  # the usual case: ids are handed out in order
        else:
            bisect.insort(self._order, seq, lo=self._head)

    def _trim_head(self) -> None:
        order, live = self._order, self._live
        while self._head < len(order) and order[self._head] not in live:
            self._head += 1
        dead = len(order) - self._head - len(live)  # acked behind a frame that stays (a read error, say)
        if dead >= _COMPACT_MIN and dead >= len(live):
            self._order = [s for s in order[self._head:] if s in live]
            self._head = 0
        elif self._head >= _COMPACT_MIN and self._head * 2 >= len(order):
            del order[: self._head]
            self._head = 0

    # --- files ------------------------------------------------------------------------------------

    def _count_quarantined(self) -> int:
        try:
            return sum(1 for _ in os.scandir(self.directory / QUARANTINE_DIR))
        except FileNotFoundError:
            return 0

    def _quarantine_file(self, path: Path, reason: str) -> None:
        """Move a bad file aside (bounded: past the limit it is deleted) and say which and why."""
        try:
            if self._quarantined < self.quarantine_max_files:
                target = self.directory / QUARANTINE_DIR
                target.mkdir(exist_ok=True)
                os.replace(path, target / path.name)
                self._quarantined += 1
                log.warning("quarantined spool file %s (%s) to %s", path, reason, target)
            else:
                path.unlink(missing_ok=True)
                log.warning("deleted spool file %s (%s): the quarantine already holds %d files", path, reason,
                            self._quarantined)
        except OSError as exc:  # it is out of the index either way; a restart looks at it again
            log.error("could not quarantine spool file %s (%s): %s", path, reason, exc)

    def _read_counter(self) -> int:
        try:
            return int((self.directory / _COUNTER).read_text().strip() or 0)
        except FileNotFoundError:
            return fresh_counter()
        except (ValueError, OSError) as exc:
            log.error("spool counter %s is unreadable (%s); ids restart from the clock, after any spooled frame",
                      self.directory / _COUNTER, exc)
            return fresh_counter()

    def _reserve_through(self, seq: int) -> None:
        """Persist a reservation covering ``seq`` and the block after it; raises OSError."""
        until = max(seq + 1, self._next_seq) + _ID_BLOCK
        self._write_atomic(self.directory / _COUNTER, str(until).encode(), sync_dir=True)
        self._reserved_until = until
        if self._counter_failing:
            log.info("spool counter %s written again", self.directory / _COUNTER)
        self._counter_failing = False

    def _log_counter_failure(self, exc: OSError) -> None:
        if not self._counter_failing:
            log.warning("could not persist the spool's id counter (%s); frames are refused until it is", exc)
        self._counter_failing = True

    def _write_atomic(self, path: Path, data: bytes, sync_dir: bool = False) -> None:
        # sync_dir: the rename itself survives a power cut (a few ms: worth it per id block, not per frame)
        write_durably(path, data, sync_dir=sync_dir)


def _write_error(exc: OSError, what: str) -> SpoolFull:
    if exc.errno in _DISK_FULL_ERRNOS:
        return SpoolDiskFull(f"{what}: disk full ({exc.strerror})")
    return SpoolWriteError(f"{what}: {exc}")


class SpoolFull(RuntimeError):
    """The spool cannot take this frame; the sampler should skip frames until acks drain it."""


class SpoolDiskFull(SpoolFull):
    """The filesystem under the spool is full (ENOSPC or EDQUOT); the frame was skipped, nothing half-written kept."""


class SpoolWriteError(SpoolFull):
    """Writing the spool failed for another OS reason (I/O error, read-only disk); the frame was skipped."""


class CorruptFrame(ValueError):
    """A spooled file is empty, oversized or not a frame: it can never be sent."""
