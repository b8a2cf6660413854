"""The loop benchmark runs the endpoint's loop as the runtime does: letterboxed on the capture thread."""

from __future__ import annotations

import threading

import pytest

from endpoint.loop.loop_bench import bench_loop
from endpoint.model.detector import OnnxDetector
from endpoint.sources.streams import SourceConfig


class _Watched(OnnxDetector):
    """The real detector, noting which thread prepares frames and what detect() is given."""

    def __init__(self, path):
        super().__init__(path, threads=1)
        self.prepared_on: set[str] = set()
        self.given: set[str] = set()

    def prepare(self, image_bgr):
        self.prepared_on.add(threading.current_thread().name)
        return super().prepare(image_bgr)

    def detect(self, image_bgr):
        self.given.add(type(image_bgr).__name__)
        return super().detect(image_bgr)


@pytest.mark.parametrize("prepare_ahead", [True, False])
def test_bench_loop_letterboxes_on_the_capture_thread_unless_told_not_to(tiny_yolo_onnx, tmp_path, prepare_ahead):
    detector = _Watched(tiny_yolo_onnx)
    result = bench_loop(SourceConfig(kind="scenario"), detector, frames=12, warmup_frames=1, workdir=tmp_path,
                        prepare_ahead=prepare_ahead)
    assert result.frames == 12 and result.frames_dropped == 0 and result.frames_per_s > 0
    if prepare_ahead:
        assert detector.prepared_on == {"capture"} and detector.given == {"PreparedFrame", "ndarray"}  # warm-up: raw
    else:
        assert detector.prepared_on == set() and detector.given == {"ndarray"}
