"""Time the endpoint's full per-frame loop (capture, detect, sample, JPEG, spool) on a source and a detector."""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from endpoint.loop.frame_loop import FrameLoop
from endpoint.loop.frame_writer import FrameWriter
from endpoint.loop.run_stats import RunStats
from endpoint.sources.streams import SourceConfig, open_source
from endpoint.uplink.sampler import Sampler, SamplerParams
from endpoint.uplink.spool import Spool


@dataclass(frozen=True)
class LoopBenchResult:
    frames: int  # frames that went through the detector
    wall_s: float
    ms_per_frame: float
    frames_per_s: float
    inference_ms_mean: float  # the detector alone, as timed inside the loop
    frames_sampled: int
    frames_dropped: int


def bench_loop(source: SourceConfig, detector, frames: int, sample_rate: float = 0.2, jpeg_quality: int = 85,
               warmup_frames: int = 3, workdir: str | Path | None = None,
               prepare_ahead: bool = True) -> LoopBenchResult:
    """Run ``frames`` frames of ``source`` through the loop as the endpoint does; ``detector.detect(image)``
    returns ``endpoint.model.detections.Detections`` (an ``OnnxDetector``). Unpaced and lossless, so every frame counts;
    each spooled frame is removed at once, standing in for the edge's ack. ``prepare_ahead``: the capture thread
    letterboxes with ``detector.prepare``, as the endpoint's runtime does (False: detect() does it all)."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    source = source.model_copy(update={"max_frames": frames, "fps": None, "drop_when_behind": False,
                                       "loop": source.kind in ("video", "images")})

    def detect(image):  # a frame, or prepare()'s result for it, as ModelRunner.detect takes them
        h, w = getattr(image, "image", image).shape[:2]
        return detector.detect(image).to_protocol(w, h)

    first = next(iter(open_source(source.model_copy(update={"max_frames": 1}))))
    for _ in range(warmup_frames):  # session start-up and allocator growth are not the loop's cost
        detect(first.image)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        spool = Spool(Path(tmp) / "spool", max_frames=10_000)
        stats = RunStats()
        sampler = Sampler("uniform", SamplerParams(sample_rate=sample_rate), seed=0)
        writer = FrameWriter("bench", spool, sampler, stats, jpeg_quality,
                             on_spooled=lambda job, frame_id: spool.remove(frame_id)).start()
        prepare = getattr(detector, "prepare", None) if prepare_ahead else None
        loop = FrameLoop(detect, lambda: "bench", sampler, writer, stats, prepare=prepare)
        started = time.perf_counter()
        loop.run(open_source(source), source.queue_frames, False, threading.Event())
        wall_s = time.perf_counter() - started
        writer.stop()
    seen = max(1, stats.frames_seen)
    return LoopBenchResult(frames=stats.frames_seen, wall_s=wall_s, ms_per_frame=wall_s * 1000 / seen,
                           frames_per_s=stats.frames_seen / wall_s, inference_ms_mean=stats.inference_ms_total / seen,
                           frames_sampled=stats.frames_sampled, frames_dropped=stats.frames_dropped)
