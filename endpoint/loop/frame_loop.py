"""The per-frame loop: a capture thread reads ahead, the calling thread detects, a writer thread spools."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from endpoint.loop.frame_writer import FrameWriter, WriteJob
from endpoint.loop.run_stats import RunStats
from endpoint.sources.capture import CaptureThread
from endpoint.sources.streams import SourceFrame
from endpoint.uplink.sampler import Candidate, Sampler
from endpoint.wire.protocol import Detection

log = logging.getLogger(__name__)

FrameHook = Callable[[SourceFrame, list[Detection], str, float], None]  # frame, detections, version, inference ms


class FrameLoop:
    """Capture, inference and spooling overlap; only inference runs on the caller's thread.

    With ``prepare`` (a detector's letterbox resize), the capture thread runs it on each frame as it reads, and
    ``detect`` gets its result: the resize of one frame overlaps the inference of the one before.
    """

    def __init__(self, detect: Callable[[Any], list[Detection]], model_version: Callable[[], str],
                 sampler: Sampler, writer: FrameWriter, stats: RunStats, round_now: Callable[[], int] = lambda: 0,
                 on_frame: FrameHook | None = None, prepare: Callable[[np.ndarray], Any] | None = None):
        self.detect, self.model_version, self.prepare = detect, model_version, prepare
        self.sampler, self.writer, self.stats = sampler, writer, stats
        self.round_now = round_now
        self.on_frame = on_frame

    def run(self, frames: Iterable[SourceFrame], queue_frames: int, drop_oldest: bool, stop: threading.Event,
            tick: Callable[[], None] = lambda: None, tick_s: float = 0.5) -> None:
        """Stream ``frames`` to their end or until ``stop``; return once every sampled frame is spooled."""
        capture = CaptureThread(self._prepared(frames), queue_frames, drop_oldest).start()
        dropped_before = self.stats.frames_dropped
        try:
            while not stop.is_set():
                more, frame = capture.get(timeout_s=tick_s)
                self.stats.frames_dropped = dropped_before + capture.dropped
                if not more:
                    break
                if frame is not None:
                    self._step(*frame)
                tick()
        finally:
            capture.stop()
            self.stats.frames_dropped = dropped_before + capture.dropped
            self.writer.flush()

    def _prepared(self, frames: Iterable[SourceFrame]) -> Iterator[tuple[SourceFrame, Any]]:
        """(frame, what ``detect`` takes), made on the capture thread; closing it closes the source there too."""
        source = iter(frames)
        try:
            for frame in source:
                detect_input = frame.image
                if self.prepare is not None:
                    try:
                        detect_input = self.prepare(frame.image)
                    except Exception:  # detect() gets the raw frame, fails on it again and counts it as failed
                        log.debug("could not prepare a frame; the detector gets it as is", exc_info=True)
                yield frame, detect_input
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _step(self, frame: SourceFrame, detect_input: Any) -> None:
        index = self.stats.frames_seen
        self.stats.frames_seen += 1
        version = self.model_version()  # before detecting: a swap during detect() leaves the frame on this one
        started = time.perf_counter()
        try:
            detections = self.detect(detect_input)
        except Exception:  # one bad frame (a corrupt camera read) must not end the stream
            self.stats.frames_failed += 1
            log.exception("detection failed on frame %d; skipped", index)
            return
        inference_ms = (time.perf_counter() - started) * 1000
        self.stats.inference_ms_total += inference_ms
        if self.on_frame is not None:
            self.on_frame(frame, detections, version, inference_ms)
        if self.sampler.wants(Candidate(index, [float(d.conf) for d in detections])):
            self.writer.submit(WriteJob(frame, index, detections, self.round_now(), version))
