"""Counters of one endpoint run, bounded however long it runs."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

RECENT_SAMPLED_IDS = 1000  # enough to check a lab run frame by frame; a months-long run keeps only a count


@dataclass
class RunStats:
    frames_seen: int = 0
    frames_sampled: int = 0
    frames_dropped: int = 0  # a live camera outran the detector: the oldest waiting frame was dropped
    frames_skipped_spool_full: int = 0
    frames_skipped_errors: int = 0  # sampled but not spooled: the JPEG encode or the disk failed
    frames_failed: int = 0  # the detector raised on the frame; it was skipped and the stream went on
    inference_ms_total: float = 0.0
    sampled_ids: deque[str] = field(default_factory=lambda: deque(maxlen=RECENT_SAMPLED_IDS))

    def record_sampled(self, frame_id: str) -> None:
        self.frames_sampled += 1
        self.sampled_ids.append(frame_id)

    def as_dict(self) -> dict:
        """JSON-ready; ``sampled_ids`` holds the most recent ids only (``frames_sampled`` counts them all)."""
        return {"frames_seen": self.frames_seen, "frames_sampled": self.frames_sampled,
                "frames_dropped": self.frames_dropped, "frames_skipped_spool_full": self.frames_skipped_spool_full,
                "frames_skipped_errors": self.frames_skipped_errors, "frames_failed": self.frames_failed,
                "inference_ms_total": self.inference_ms_total,
                "sampled_ids": list(self.sampled_ids)}
