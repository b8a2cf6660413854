"""The overlapped loop: capture reads ahead, the detector never waits on disk, a live camera drops its oldest."""

import threading

import numpy as np
import pytest

from endpoint.loop.frame_loop import FrameLoop
from endpoint.loop.frame_writer import FrameWriter
from endpoint.loop.run_stats import RECENT_SAMPLED_IDS, RunStats
from endpoint.sources.streams import SourceConfig, SourceFrame, drops_when_behind
from endpoint.uplink.sampler import Sampler, SamplerParams
from endpoint.uplink.spool import Spool
from endpoint.wire.protocol import Detection

WAIT_S = 10.0


def _frame(i: int) -> SourceFrame:
    image = np.full((24, 32, 3), i % 256, np.uint8)  # the pixel value names the frame
    return SourceFrame(image, 1_795_000_000.0 + i, "day")


def _loop(tmp_path, detect, spool=None, sample_rate=1.0, prepare=None):
    stats = RunStats()
    spool = spool or Spool(tmp_path / "spool")
    sampler = Sampler("uniform", SamplerParams(sample_rate=sample_rate))
    writer = FrameWriter("cam-1", spool, sampler, stats).start()
    return FrameLoop(detect, lambda: "v0001", sampler, writer, stats, prepare=prepare), stats, spool


def _no_boxes(image) -> list[Detection]:
    return []


def test_a_live_source_drops_the_oldest_frames_while_the_detector_is_behind(tmp_path):
    n = 12
    in_detector, exhausted = threading.Event(), threading.Event()
    seen: list[int] = []

    def camera():
        yield _frame(0)
        assert in_detector.wait(WAIT_S)
        for i in range(1, n):
            yield _frame(i)
        exhausted.set()

    def slow_detect(image):
        seen.append(int(image[0, 0, 0]))
        if len(seen) == 1:
            in_detector.set()
            assert exhausted.wait(WAIT_S)  # the camera ran on while the first frame was in the detector
        return []

    loop, stats, spool = _loop(tmp_path, slow_detect)
    loop.run(camera(), queue_frames=2, drop_oldest=True, stop=threading.Event())
    assert seen == [0, n - 2, n - 1]  # the newest frames, not the stale ones
    assert stats.frames_dropped == n - 3 and stats.frames_seen == 3
    assert spool.depth() == 3


def test_a_file_source_loses_no_frame_when_the_detector_is_behind(tmp_path):
    n = 12
    seen: list[int] = []

    def slow_detect(image):
        seen.append(int(image[0, 0, 0]))
        return []

    loop, stats, spool = _loop(tmp_path, slow_detect)
    loop.run((_frame(i) for i in range(n)), queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert seen == list(range(n)) and stats.frames_dropped == 0
    assert spool.depth() == n  # every sampled frame is spooled when run() returns


def test_capture_reads_ahead_while_the_detector_runs(tmp_path):
    second_captured = threading.Event()
    overlapped: list[bool] = []

    def source():
        yield _frame(0)
        second_captured.set()
        yield _frame(1)

    def detect(image):
        if int(image[0, 0, 0]) == 0:
            overlapped.append(second_captured.wait(WAIT_S))
        return []

    loop, stats, _ = _loop(tmp_path, detect)
    loop.run(source(), queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert overlapped == [True] and stats.frames_seen == 2


class _SlowDisk(Spool):
    """A spool whose first write waits until the detector has moved on to a later frame."""

    def __init__(self, directory, later_detect: threading.Event):
        super().__init__(directory)
        self.later_detect = later_detect
        self.waited: list[bool] = []

    def put(self, seq, payload):
        if not self.waited:
            self.waited.append(self.later_detect.wait(WAIT_S))
        return super().put(seq, payload)


def test_the_detector_never_waits_for_the_disk(tmp_path):
    later_detect = threading.Event()

    def detect(image):
        if int(image[0, 0, 0]) >= 3:
            later_detect.set()
        return []

    spool = _SlowDisk(tmp_path / "spool", later_detect)
    loop, stats, _ = _loop(tmp_path, detect, spool=spool)
    loop.run((_frame(i) for i in range(6)), queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert spool.waited == [True]  # frame 3 was detected while frame 0 was still being written
    assert stats.frames_sampled == 6 and spool.depth() == 6


def test_a_failing_source_ends_the_loop_with_its_error_after_its_frames(tmp_path):
    def broken_camera():
        yield _frame(0)
        yield _frame(1)
        raise OSError("camera unplugged")

    loop, stats, spool = _loop(tmp_path, _no_boxes)
    with pytest.raises(OSError, match="unplugged"):
        loop.run(broken_camera(), queue_frames=2, drop_oldest=True, stop=threading.Event())
    assert stats.frames_seen == 2 and spool.depth() == 2


def test_stop_ends_an_endless_source_and_releases_it(tmp_path):
    stop = threading.Event()
    released = threading.Event()

    def endless_camera():
        try:
            i = 0
            while True:
                yield _frame(i)
                i += 1
        finally:
            released.set()  # where a camera would be released

    def detect(image):
        if int(image[0, 0, 0]) == 5:
            stop.set()
        return []

    loop, stats, _ = _loop(tmp_path, detect)
    loop.run(endless_camera(), queue_frames=2, drop_oldest=False, stop=stop)
    assert released.wait(WAIT_S)
    assert stats.frames_seen == 6


def test_sampled_ids_stay_bounded_however_long_the_run():
    stats = RunStats()
    for i in range(RECENT_SAMPLED_IDS * 5):
        stats.record_sampled(f"f{i:010d}")
    summary = stats.as_dict()
    assert summary["frames_sampled"] == RECENT_SAMPLED_IDS * 5
    assert len(summary["sampled_ids"]) == RECENT_SAMPLED_IDS
    assert summary["sampled_ids"][-1] == f"f{RECENT_SAMPLED_IDS * 5 - 1:010d}"


@pytest.mark.parametrize("kind, flag, drops", [("camera", None, True), ("picamera2", None, True),
                                               ("video", None, False), ("scenario", None, False),
                                               ("images", None, False), ("scenario", True, True),
                                               ("camera", False, False)])
def test_only_live_sources_drop_unless_the_config_says(kind, flag, drops):
    assert drops_when_behind(SourceConfig(kind=kind, drop_when_behind=flag)) is drops


def test_a_frame_the_detector_fails_on_is_skipped_and_the_stream_goes_on(tmp_path):
    calls = []

    def detect(image):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("corrupt frame")
        return []

    loop, stats, spool = _loop(tmp_path, detect)
    loop.run([_frame(i) for i in range(5)], queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert stats.frames_seen == 5 and stats.frames_failed == 1 and len(calls) == 5
    assert stats.frames_sampled == 4  # every frame but the failed one went on to the spool


def test_prepare_runs_on_the_capture_thread_and_detect_gets_its_result(tmp_path):
    prepared_on: list[str] = []
    detected: list[tuple[str, int]] = []

    def prepare(image):
        prepared_on.append(threading.current_thread().name)
        return ("prepared", int(image[0, 0, 0]))

    def detect(prepared):
        detected.append(prepared)
        return []

    loop, stats, spool = _loop(tmp_path, detect, prepare=prepare)
    loop.run((_frame(i) for i in range(6)), queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert prepared_on == ["capture"] * 6 and threading.current_thread().name not in prepared_on
    assert detected == [("prepared", i) for i in range(6)]
    assert stats.frames_seen == 6 and spool.depth() == 6  # the spool still gets the frames themselves


def test_a_frame_prepare_fails_on_reaches_detect_as_is_and_only_it_fails(tmp_path):
    def prepare(image):
        if int(image[0, 0, 0]) == 2:
            raise ValueError("corrupt frame")
        return "prepared"

    def detect(prepared):
        if not isinstance(prepared, str):
            raise ValueError("corrupt frame")  # the detector fails on the raw frame again
        return []

    loop, stats, spool = _loop(tmp_path, detect, prepare=prepare)
    loop.run((_frame(i) for i in range(5)), queue_frames=2, drop_oldest=False, stop=threading.Event())
    assert stats.frames_seen == 5 and stats.frames_failed == 1 and spool.depth() == 4


def test_stop_with_prepare_still_releases_the_source_on_the_capture_thread(tmp_path):
    stop = threading.Event()
    released_on: list[str] = []

    def endless_camera():
        try:
            i = 0
            while True:
                yield _frame(i)
                i += 1
        finally:
            released_on.append(threading.current_thread().name)

    def detect(prepared):
        if prepared == 5:
            stop.set()
        return []

    loop, stats, _ = _loop(tmp_path, detect, prepare=lambda image: int(image[0, 0, 0]))
    loop.run(endless_camera(), queue_frames=2, drop_oldest=False, stop=stop)
    assert released_on == ["capture"] and stats.frames_seen == 6
