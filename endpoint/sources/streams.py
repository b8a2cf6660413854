"""Frame sources: a video file or camera (OpenCV), an image folder, or a synthetic scenario stream."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from endpoint.wire.protocol import Detection

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass(frozen=True)
class SourceFrame:
    image: np.ndarray  # HxWx3 uint8 BGR
    capture_time: float
    domain: str = ""
    labels: list[Detection] | None = None  # ground truth, when the source knows it


class SourceConfig(BaseModel):
    """Where frames come from."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["scenario", "video", "camera", "picamera2", "images"] = Field(
        "scenario", description="source backend (picamera2: the Raspberry Pi camera module)")
    path: str = Field("", description="video file or image folder")
    camera_index: int = Field(0, description="OpenCV camera index")
    domain: str = Field("day", description="scenario domain to stream")
    seed: int = Field(0, description="scenario seed")
    start_index: int = Field(0, description="first scenario frame index")
    width: int = Field(320, description="scenario frame width")
    height: int = Field(240, description="scenario frame height")
    max_frames: int | None = Field(None, description="stop after this many frames (None: until the source ends)")
    fps: float | None = Field(None, description="pace frames to this rate (None: as fast as they come)")
    loop: bool = Field(False, description="start a video or folder over at its end")
    follow_plan: bool = Field(False, description="lab testbed: stream each plan's `frames` from its `domain`, then idle")
    domain_paths: dict[str, str] = Field(default_factory=dict,
                                         description="image folder per domain name, for folder scenarios")
    queue_frames: int = Field(2, ge=1, le=64, description="captured frames waiting for the detector, at most")
    drop_when_behind: bool | None = Field(
        None, description="when the detector falls behind, drop the oldest waiting frame instead of pausing capture "
                          "(None: drop for live cameras only; files and scenarios never lose a frame)")


LIVE_KINDS = {"camera", "picamera2"}


def drops_when_behind(config: SourceConfig) -> bool:
    """A live camera cannot wait for the detector, so it drops; files and scenarios pause instead."""
    return config.kind in LIVE_KINDS if config.drop_when_behind is None else config.drop_when_behind


def open_source(config: SourceConfig) -> Iterator[SourceFrame]:
    """The configured source, limited and paced as configured."""
    backends = {"scenario": _scenario, "video": _video, "camera": _video, "picamera2": _picamera2, "images": _images}
    frames = backends[config.kind](config)
    period_s = 1.0 / config.fps if config.fps else 0.0
    next_due = time.monotonic()
    for count, frame in enumerate(frames):
        if config.max_frames is not None and count >= config.max_frames:
            return
        if period_s:
            delay = next_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_due = max(next_due + period_s, time.monotonic() - period_s)
        yield frame


def _scenario(config: SourceConfig) -> Iterator[SourceFrame]:
    from endpoint.sources.scenario import SyntheticScenario

    scenario = SyntheticScenario(width=config.width, height=config.height, seed=config.seed)
    index = config.start_index
    while True:
        f = scenario.frame(config.domain, index)
        labels = [Detection(cls=int(c), conf=1.0, box=tuple(float(v) for v in b)) for b, c in zip(f.boxes, f.classes)]
        yield SourceFrame(f.image, time.time(), f.domain, labels)
        index += 1


def _video(config: SourceConfig) -> Iterator[SourceFrame]:
    target = config.camera_index if config.kind == "camera" else config.path
    while True:
        cap = cv2.VideoCapture(target)
        if not cap.isOpened():
            raise FileNotFoundError(f"cannot open video source {target!r}")
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    break
                yield SourceFrame(image, time.time())
        finally:
            cap.release()
        if not config.loop or config.kind == "camera":
            return


def _picamera2(config: SourceConfig) -> Iterator[SourceFrame]:
    """The Pi camera module through picamera2 (Raspberry Pi OS: ``apt install python3-picamera2``)."""
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise RuntimeError("source kind 'picamera2' needs the picamera2 package (apt install python3-picamera2; "
                           "create the venv with --system-site-packages)") from None
    camera = Picamera2()
    camera.configure(camera.create_video_configuration(main={"size": (config.width, config.height),
                                                             "format": "RGB888"}))
    camera.start()
    try:
        while True:
            yield SourceFrame(camera.capture_array(), time.time())  # RGB888 is laid out B, G, R in memory
    finally:
        camera.stop()


def _images(config: SourceConfig) -> Iterator[SourceFrame]:
    from endpoint.wire.yolo_labels import read_label_file

    folder = Path(config.path)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images under {folder}")
    offset = config.start_index % len(files)
    files = files[offset:] + files[:offset]
    while True:
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("skipping unreadable image %s", path)
                continue
            labels = read_label_file(_label_path(path))
            yield SourceFrame(image, time.time(), folder.name, labels)
        if not config.loop:
            return


def _label_path(image_path: Path) -> Path:
    """YOLO layout: images/<split>/x.jpg has its labels in labels/<split>/x.txt."""
    parts = list(image_path.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        parts[i] = "labels"
    return Path(*parts).with_suffix(".txt")
