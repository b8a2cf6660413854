"""Frame sources: each kind yields the frames it should, limited, looped, offset and paced as configured."""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pytest

from endpoint.sources import streams as sources
from endpoint.sources.scenario import SyntheticScenario
from endpoint.sources.streams import SourceConfig, drops_when_behind, open_source


def _write_video(path, frames: int, size_wh=(64, 48)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size_wh)
    assert writer.isOpened()
    for i in range(frames):  # frame i is flat grey 40 * i, so its order survives JPEG
        writer.write(np.full((size_wh[1], size_wh[0], 3), 40 * i, np.uint8))
    writer.release()
    return path


def _write_images(root, names, size_wh=(40, 30)):
    """A YOLO folder: images/train/<name>.png with labels/train/<name>.txt; pixel value tells the image apart."""
    (root / "images" / "train").mkdir(parents=True)
    (root / "labels" / "train").mkdir(parents=True)
    for i, name in enumerate(names):
        image = np.full((size_wh[1], size_wh[0], 3), 10 * i, np.uint8)
        cv2.imwrite(str(root / "images" / "train" / f"{name}.png"), image)
        (root / "labels" / "train" / f"{name}.txt").write_text(f"{i % 3} 0.5 0.5 0.2 0.4\n")
    return root / "images" / "train"


def _grey(frame) -> int:
    return int(round(frame.image.mean()))


def _take(config: SourceConfig, limit: int = 50):
    frames = []
    for frame in open_source(config):
        frames.append(frame)
        if len(frames) >= limit:  # a looping source never ends by itself
            break
    return frames


@pytest.mark.parametrize("start_index, max_frames", [(0, 3), (5, 2), (100_000, 1)])
def test_scenario_streams_the_scenarios_frames_with_their_labels(start_index, max_frames):
    config = SourceConfig(kind="scenario", domain="dusk", seed=2, width=96, height=64, start_index=start_index,
                          max_frames=max_frames)
    frames = _take(config)
    assert len(frames) == max_frames
    scenario = SyntheticScenario(width=96, height=64, seed=2)
    for offset, frame in enumerate(frames):
        expected = scenario.frame("dusk", start_index + offset)
        assert frame.image.shape == (64, 96, 3) and frame.domain == "dusk"
        np.testing.assert_array_equal(frame.image, expected.image)
        assert [d.cls for d in frame.labels] == expected.classes.tolist()
        np.testing.assert_allclose([d.box for d in frame.labels], expected.boxes, atol=1e-6)


@pytest.mark.parametrize("loop, max_frames, greys", [
    (False, None, [0, 40, 80, 120]),  # to its end, once
    (False, 2, [0, 40]),
    (True, 10, [0, 40, 80, 120, 0, 40, 80, 120, 0, 40]),  # starts over at its end
])
def test_video_plays_in_order_limited_and_looped(tmp_path, loop, max_frames, greys):
    path = _write_video(tmp_path / "clip.avi", 4)
    frames = _take(SourceConfig(kind="video", path=str(path), loop=loop, max_frames=max_frames))
    assert [round(_grey(f) / 40) * 40 for f in frames] == greys
    assert all(f.image.shape == (48, 64, 3) and f.labels is None for f in frames)


def test_a_missing_video_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot open video source"):
        _take(SourceConfig(kind="video", path=str(tmp_path / "none.avi")))


@pytest.mark.parametrize("start_index, loop, max_frames, order", [
    (0, False, None, ["a", "b", "c"]),
    (1, False, None, ["b", "c", "a"]),  # start_index rotates the sorted folder
    (4, False, None, ["b", "c", "a"]),  # modulo its length
    (2, True, 7, ["c", "a", "b", "c", "a", "b", "c"]),
    (0, False, 2, ["a", "b"]),
])
def test_images_rotate_loop_and_stop_as_configured(tmp_path, start_index, loop, max_frames, order):
    folder = _write_images(tmp_path / "day", ["a", "b", "c"])
    frames = _take(SourceConfig(kind="images", path=str(folder), start_index=start_index, loop=loop,
                                max_frames=max_frames))
    by_grey = {0: "a", 10: "b", 20: "c"}
    assert [by_grey[_grey(f)] for f in frames] == order
    for f in frames:  # labels come from labels/train/<name>.txt beside images/train/<name>.png
        i = "abc".index(by_grey[_grey(f)])
        assert f.image.shape == (30, 40, 3) and f.domain == "train"
        assert [(d.cls, d.box) for d in f.labels] == [(i % 3, pytest.approx((0.4, 0.3, 0.6, 0.7)))]


def test_images_without_labels_and_unreadable_images(tmp_path):
    folder = _write_images(tmp_path / "day", ["a", "b"])
    (tmp_path / "day" / "labels" / "train" / "b.txt").unlink()
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    frames = _take(SourceConfig(kind="images", path=str(folder)))
    assert [_grey(f) for f in frames] == [0, 10]  # the unreadable one is skipped, the stream goes on
    assert frames[0].labels is not None and frames[1].labels is None  # None: unlabelled, not "no objects"


def test_an_empty_image_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no images under"):
        _take(SourceConfig(kind="images", path=str(tmp_path)))


def test_domain_paths_give_each_domain_its_own_folder(tmp_path):
    # the runtime streams a plan's domain from domain_paths[domain]; each folder yields its own images
    config = SourceConfig(kind="images", domain_paths={"day": str(_write_images(tmp_path / "day", ["a"])),
                                                       "dusk": str(_write_images(tmp_path / "dusk", ["x", "y"]))})
    counts = {d: len(_take(config.model_copy(update={"path": p}))) for d, p in config.domain_paths.items()}
    assert counts == {"day": 1, "dusk": 2}


class _FakeClock:
    """Stands in for the time module inside sources: sleeping moves the clock, nothing waits."""

    def __init__(self):
        self.now_s, self.sleeps = 1000.0, []

    def monotonic(self):
        return self.now_s

    def time(self):
        return self.now_s

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now_s += seconds


@pytest.mark.parametrize("fps, frames, slept_s", [(None, 5, 0.0), (10.0, 5, 0.4), (4.0, 3, 0.5)])
def test_fps_paces_the_frames(monkeypatch, fps, frames, slept_s):
    clock = _FakeClock()
    monkeypatch.setattr(sources, "time", clock)
    got = _take(SourceConfig(kind="scenario", width=32, height=32, fps=fps, max_frames=frames))
    assert len(got) == frames
    assert sum(clock.sleeps) == pytest.approx(slept_s)  # the first frame is due at once, then one per period


def test_picamera2_without_its_package_says_how_to_get_it():
    if importlib.util.find_spec("picamera2") is not None:
        pytest.skip("picamera2 is installed here")
    with pytest.raises(RuntimeError, match="python3-picamera2"):
        _take(SourceConfig(kind="picamera2"))


@pytest.mark.parametrize("kind, override, drops", [
    ("camera", None, True), ("picamera2", None, True), ("video", None, False), ("images", None, False),
    ("scenario", None, False), ("scenario", True, True), ("camera", False, False),
])
def test_only_live_cameras_drop_frames_unless_told(kind, override, drops):
    assert drops_when_behind(SourceConfig(kind=kind, drop_when_behind=override)) is drops


def test_unknown_fields_and_kinds_are_refused():
    with pytest.raises(ValueError):
        SourceConfig(kind="webcam")
    with pytest.raises(ValueError):
        SourceConfig(kind="video", pth="x.mp4")
