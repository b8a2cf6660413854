"""The model slot: swaps load first and never drop or split a detection call."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from endpoint.model.slot import ModelSlot
from tests.push_fixtures import IMAGE, OrtDetector

def test_swap_under_load_drops_no_call(push_models):
    slot = ModelSlot(OrtDetector, push_models.base, "v0001")
    results, errors, stop = [], [], threading.Event()

    def detect_loop():
        while not stop.is_set():
            try:
                results.append(slot.detect(IMAGE))
            except Exception as exc:  # any exception is a dropped frame
                errors.append(exc)

    worker = threading.Thread(target=detect_loop)
    worker.start()
    paths = [push_models.few_changed, push_models.all_changed, push_models.base] * 2
    for i, path in enumerate(paths):
        time.sleep(0.05)
        slot.swap(path, f"v{i + 2:04d}")
    time.sleep(0.05)
    stop.set()
    worker.join(timeout=30)
    assert not errors
    assert len(results) > len(paths)
    assert all(out.shape == (1, 84, 84) and np.isfinite(out).all() for _, out in results)
    assert {name for name, _ in results} == {"base.onnx", "few_changed.onnx", "all_changed.onnx"}
    assert slot.version == "v0007" and slot.model_path == push_models.base


def test_a_model_that_fails_to_load_leaves_the_old_one(push_models, tmp_path):
    slot = ModelSlot(OrtDetector, push_models.base, "v0001")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(push_models.base.read_bytes()[:1000])
    with pytest.raises(Exception):
        slot.swap(broken, "v0002")
    assert slot.version == "v0001" and slot.model_path == push_models.base
    name, out = slot.detect(IMAGE)
    assert name == "base.onnx" and out.shape == (1, 84, 84)


class SlowDetector:
    def __init__(self, path: Path, load_s: float):
        time.sleep(load_s)
        self.path = path

    def detect(self, image):
        return self.path


def test_detection_is_served_by_the_old_model_while_the_new_one_loads():
    slot = ModelSlot(lambda p: SlowDetector(p, 0.0 if p.name == "old" else 1.0), Path("old"), "v1")
    swapper = threading.Thread(target=slot.swap, args=(Path("new"), "v2"))
    swapper.start()
    time.sleep(0.05)
    started = time.monotonic()
    during = [slot.detect(None) for _ in range(100)]
    assert time.monotonic() - started < 0.5  # nobody waited for the 1 s load
    assert set(during) == {Path("old")} and slot.version == "v1"
    swapper.join()
    assert slot.detect(None) == Path("new") and slot.current()[1] == "v2"


def test_the_signed_serial_travels_with_the_version():
    slot = ModelSlot(lambda p: SlowDetector(p, 0.0), Path("v1.onnx"), "v1")
    assert slot.serial == 0  # a starting model without a signed sidecar
    slot.swap(Path("v7.onnx"), "v7", 7)
    assert (slot.version, slot.serial, slot.model_path) == ("v7", 7, Path("v7.onnx"))
