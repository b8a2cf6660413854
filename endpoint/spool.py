"""An on-disk spool of sampled frames: a frame leaves it only when the edge acks it.

A broker outage or a reboot loses nothing: frames are written atomically (temp
file, fsync, rename) before they are sent, and frame ids come from a persisted
counter, so ids stay unique across restarts.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".frame"
_COUNTER = "next_seq"
_ID_BLOCK = 64  # ids are reserved on disk in blocks: one fsync per block, a crash skips at most a block


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    frame_id: str
    path: Path

    def read(self) -> bytes:
        return self.path.read_bytes()


def frame_id_for(seq: int) -> str:
    return f"f{seq:010d}"


class Spool:
    """Frames waiting for the edge's ack, oldest first."""

    def __init__(self, directory: str | Path, max_frames: int = 100_000):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_frames = max_frames
        self._lock = threading.Lock()
        self._entries: dict[str, SpoolEntry] = {}
        for stale in self.directory.glob(".tmp-*"):  # a write cut short by a crash
            stale.unlink(missing_ok=True)
        for path in self.directory.glob(f"*{_SUFFIX}"):
            seq = int(path.stem)
            self._entries[frame_id_for(seq)] = SpoolEntry(seq, frame_id_for(seq), path)
        self._next_seq = max(self._read_counter(), max((e.seq for e in self._entries.values()), default=-1) + 1)
        self._reserved_until = self._next_seq
        if self._entries:
            log.info("spool %s holds %d unacked frames from before", self.directory, len(self._entries))

    def next_frame_id(self) -> tuple[int, str]:
        """Reserve the next sequence number (persisted before use, so it never repeats)."""
        with self._lock:
            seq = self._next_seq
            self._next_seq += 1
            if self._next_seq > self._reserved_until:
                self._reserved_until = seq + _ID_BLOCK
                self._write_atomic(self.directory / _COUNTER, str(self._reserved_until).encode())
            return seq, frame_id_for(seq)

    def put(self, seq: int, payload: bytes) -> SpoolEntry:
        """Store one encoded frame; raise ``SpoolFull`` when the spool is at capacity."""
        with self._lock:
            if len(self._entries) >= self.max_frames:
                raise SpoolFull(f"spool {self.directory} holds {len(self._entries)} frames, its limit")
            path = self.directory / f"{seq:012d}{_SUFFIX}"
            self._write_atomic(path, payload)
            entry = SpoolEntry(seq, frame_id_for(seq), path)
            self._entries[entry.frame_id] = entry
            return entry

    def remove(self, frame_id: str) -> bool:
        """Drop an acked frame; False if it was not (or no longer) spooled."""
        with self._lock:
            entry = self._entries.pop(frame_id, None)
        if entry is None:
            return False
        entry.path.unlink(missing_ok=True)
        return True

    def pending(self) -> list[SpoolEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.seq)

    def __contains__(self, frame_id: str) -> bool:
        with self._lock:
            return frame_id in self._entries

    def depth(self) -> int:
        with self._lock:
            return len(self._entries)

    def _read_counter(self) -> int:
        try:
            return int((self.directory / _COUNTER).read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self.directory / f".tmp-{path.name}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


class SpoolFull(RuntimeError):
    """The spool reached its frame limit; the sampler should skip frames until acks drain it."""
