"""Encodes sampled frames as JPEG and spools them on a worker thread, so the detector never waits on disk."""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Callable

import cv2

from endpoint.loop.run_stats import RunStats
from endpoint.sources.streams import SourceFrame
from endpoint.uplink.sampler import Sampler
from endpoint.uplink.spool import Spool, SpoolFull
from endpoint.wire import protocol
from endpoint.wire.protocol import Detection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteJob:
    """A sampled frame and what the detector said about it, as of inference time."""

    frame: SourceFrame
    index: int
    detections: list[Detection]
    round: int
    model_version: str


class FrameWriter:
    """One worker thread; ``submit`` waits only when ``capacity`` frames are already waiting for the disk."""

    def __init__(self, endpoint_id: str, spool: Spool, sampler: Sampler, stats: RunStats, jpeg_quality: int = 85,
                 on_spooled: Callable[[WriteJob, str], None] = lambda job, frame_id: None, capacity: int = 8):
        self.endpoint_id, self.spool, self.sampler, self.stats = endpoint_id, spool, sampler, stats
        self.jpeg_quality = jpeg_quality
        self.on_spooled = on_spooled
        self._jobs: queue.Queue[WriteJob | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)

    def start(self) -> FrameWriter:
        self._thread.start()
        return self

    def submit(self, job: WriteJob) -> None:
        self._jobs.put(job)

    def flush(self) -> None:
        """Wait until every submitted frame is spooled (or skipped with a reason)."""
        if self._thread.is_alive():
            self._jobs.join()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Spool what was submitted, then end the thread."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self._write(job)
            except Exception:  # a dead writer would block the detector for good: log and keep going
                self.stats.frames_skipped_errors += 1
                log.exception("could not spool frame %d; skipped", job.index if job else -1)
            finally:
                self._jobs.task_done()

    def _write(self, job: WriteJob) -> None:
        image = job.frame.image
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            self.stats.frames_skipped_errors += 1
            log.warning("could not encode frame %d as JPEG; skipped", job.index)
            return
        jpeg = jpeg.tobytes()
        if not self.sampler.admit(len(jpeg)):
            return
        h, w = image.shape[:2]
        seq, frame_id = self.spool.next_frame_id()
        header = protocol.make_frame_header(
            jpeg, endpoint_id=self.endpoint_id, frame_id=frame_id, capture_time=job.frame.capture_time,
            round=job.round, model_version=job.model_version, width=w, height=h, domain=job.frame.domain,
            detections=job.detections, labels=job.frame.labels)
        try:
            self.spool.put(seq, protocol.encode_frame(header, jpeg))
        except SpoolFull as exc:
            self.stats.frames_skipped_spool_full += 1
            log.warning("%s; frame skipped", exc)
            return
        self.stats.record_sampled(frame_id)
        self.on_spooled(job, frame_id)
