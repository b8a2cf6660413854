"""OnnxDetector against ultralytics' own predictions on the same ONNX files, FP32 and INT8."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from endpoint.model.detections import Detections
from endpoint.model.detector import ModelLoadError, OnnxDetector
from endpoint.sources.scenario import SyntheticScenario


def _frames() -> list[np.ndarray]:
    """Frames of both domains in shapes that need side, top-bottom, odd and no padding."""
    sc = SyntheticScenario()
    day = [sc.frame("day", 200_000 + i).image for i in range(4)]
    dusk = sc.frame("dusk", 200_100).image
    return [
        *day,  # 320x240: top/bottom padding
        dusk,
        np.ascontiguousarray(day[0].transpose(1, 0, 2)),  # portrait: left/right padding
        np.ascontiguousarray(day[1][:, :100]),  # 100x240: odd padding
        cv2.resize(day[2], (640, 480)),  # larger than the input: downscale
        np.ascontiguousarray(day[3][:200, :200]),  # square: no padding
    ]


def _ultralytics_predict(onnx_path, frames, imgsz: int, conf: float, iou: float) -> list[Detections]:
    from ultralytics import YOLO

    model = YOLO(str(onnx_path), task="detect")
    out = []
    for image in frames:
        boxes = model.predict(image, imgsz=imgsz, conf=conf, iou=iou, device="cpu", verbose=False)[0].boxes
        out.append(Detections(boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy()))
    return out


def _canonical(d: Detections) -> Detections:
    # INT8 scores come in steps, so equal confidences are common; their order is no part of the contract
    order = np.lexsort((d.xyxy[:, 1], d.xyxy[:, 0], d.class_id, -np.round(d.confidence, 4)))
    return Detections(d.xyxy[order], d.confidence[order], d.class_id[order])


def _assert_same(ours: Detections, theirs: Detections) -> None:
    assert len(ours) == len(theirs)
    ours, theirs = _canonical(ours), _canonical(theirs)
    np.testing.assert_array_equal(ours.class_id, theirs.class_id)
    np.testing.assert_allclose(ours.confidence, theirs.confidence, atol=1e-3)
    np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=1.0)


def _assert_agrees_with_ultralytics(onnx_path, conf: float, iou: float = 0.7) -> int:
    detector = OnnxDetector(onnx_path, conf_threshold=conf, iou_threshold=iou)
    frames = _frames()
    theirs = _ultralytics_predict(onnx_path, frames, detector.input_size[0], conf, iou)
    for image, expected in zip(frames, theirs):
        _assert_same(detector.detect(image), expected)
    return sum(len(d) for d in theirs)


@pytest.fixture(scope="module")
def tiny_yolo_int8(tiny_yolo_onnx, tmp_path_factory):
    from edge.quantize import quantize_int8

    sc = SyntheticScenario()
    calibration = [sc.frame("day", 300_000 + i).image for i in range(8)]
    return quantize_int8(tiny_yolo_onnx, tmp_path_factory.mktemp("int8") / "tiny_int8.onnx", calibration, 128)


@pytest.mark.integration
@pytest.mark.parametrize("conf", [0.25, 0.05])
def test_fp32_matches_ultralytics(tiny_yolo_onnx, conf):
    assert _assert_agrees_with_ultralytics(tiny_yolo_onnx, conf) >= 5  # real boxes were compared


@pytest.mark.integration
@pytest.mark.parametrize("conf", [0.25, 0.05])
def test_int8_matches_ultralytics(tiny_yolo_int8, conf):
    import onnx

    ops = {node.op_type for node in onnx.load(str(tiny_yolo_int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert _assert_agrees_with_ultralytics(tiny_yolo_int8, conf) >= 5


@pytest.fixture(scope="module")
def end2end_onnx(tmp_path_factory):
    """An untrained YOLO26-style export whose graph ends in top-k rows (1, 300, 6): no NMS outside."""
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils.checks import check_yaml

    folder = tmp_path_factory.mktemp("end2end")
    arch = yaml.safe_load(Path(check_yaml("yolo26.yaml")).read_text())
    arch.update(nc=3, scales={"n": [0.5, 0.125, 256]})
    (folder / "yolo26n-e2e.yaml").write_text(yaml.safe_dump(arch))
    # nms=False is what selects the one-to-one (end-to-end) branch at export in ultralytics 8.4.
    # A model built from YAML exports next to the working directory, so export from inside the folder.
    with contextlib.chdir(folder):
        return folder / YOLO(str(folder / "yolo26n-e2e.yaml")).export(format="onnx", imgsz=128, nms=False,
                                                                      device="cpu")


@pytest.mark.integration
def test_end2end_export_matches_ultralytics(end2end_onnx):
    detector = OnnxDetector(end2end_onnx)
    assert detector.end2end
    # untrained weights score every box near 0.004, so a threshold below that compares many rows
    assert _assert_agrees_with_ultralytics(end2end_onnx, conf=0.003) >= 5


@pytest.mark.integration
def test_fp32_and_int8_find_the_objects(tiny_yolo_onnx, tiny_yolo_int8):
    """The tiny model is a real detector and quantization keeps it one (the head decode stays float)."""
    sc = SyntheticScenario()
    for path in (tiny_yolo_onnx, tiny_yolo_int8):
        detector = OnnxDetector(path)
        hits = total = 0
        for i in range(12):
            frame = sc.frame("day", 200_000 + i)
            h, w = frame.image.shape[:2]
            found = detector.detect(frame.image)
            for box, cls in zip(frame.boxes * [w, h, w, h], frame.classes):
                total += 1
                ious = [_iou(box, b) for b, c in zip(found.xyxy, found.class_id) if c == cls]
                hits += max(ious, default=0.0) >= 0.5
        assert hits >= 0.4 * total, f"{path.name}: found {hits} of {total} objects"


def test_properties(tiny_yolo_onnx):
    import hashlib

    detector = OnnxDetector(tiny_yolo_onnx)
    assert detector.input_size == (128, 128)
    assert detector.class_names == ("square", "disc", "triangle")
    assert detector.path == tiny_yolo_onnx and not detector.end2end and detector.stride == 32
    assert detector.sha256 == hashlib.sha256(tiny_yolo_onnx.read_bytes()).hexdigest()
    assert detector.iou_threshold == 0.7 and detector.conf_threshold == 0.25  # ultralytics predict defaults


def _reshape_onnx(path, metadata: dict[str, str], out_shape: list[int]) -> None:
    """A valid ONNX graph with a YOLO-like image input that is no detector: it reshapes the input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 128, 128])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)
    shape = numpy_helper.from_array(np.array(out_shape, np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["images", "shape"], ["output0"])], "g", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in metadata.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.save(model, str(path))


@pytest.mark.parametrize("case, message", [
    ("missing", "cannot read model file"),
    ("garbage", "not a loadable ONNX model"),
    ("truncated", "not a loadable ONNX model"),
    ("no_metadata", "not an ultralytics YOLO export"),
    ("segment_task", "only 'detect' models"),
    ("wrong_output_rank", "a detect head gives 3 dims"),
    ("wrong_output_channels", "does not fit 3 classes"),
])
def test_bad_files_raise_model_load_error(tmp_path, tiny_yolo_onnx, case, message):
    path = tmp_path / "model.onnx"
    yolo_meta = {"imgsz": "[128, 128]", "names": "{0: 'square', 1: 'disc', 2: 'triangle'}", "stride": "32"}
    if case == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "truncated":
        path.write_bytes(tiny_yolo_onnx.read_bytes()[:20_000])
    elif case == "no_metadata":
        _reshape_onnx(path, {}, [1, 7, 6144])
    elif case == "segment_task":
        _reshape_onnx(path, {**yolo_meta, "task": "segment"}, [1, 7, 6144])
    elif case == "wrong_output_rank":
        _reshape_onnx(path, yolo_meta, [1, 3, 128, 128])
    elif case == "wrong_output_channels":
        _reshape_onnx(path, yolo_meta, [1, 3, 16384])
    with pytest.raises(ModelLoadError, match=message) as info:
        OnnxDetector(path)
    assert isinstance(info.value, ValueError) and str(path) in str(info.value)


@pytest.mark.integration
def test_dynamic_shape_export_detects_like_the_fixed_one(tiny_yolo_pt, tiny_yolo_onnx, tmp_path):
    """A dynamic output shape cannot be preallocated; detect() then lets onnxruntime allocate it, same results."""
    import shutil

    from ultralytics import YOLO

    pt = tmp_path / "tiny.pt"
    shutil.copyfile(tiny_yolo_pt, pt)
    dynamic = OnnxDetector(YOLO(str(pt)).export(format="onnx", imgsz=128, dynamic=True, device="cpu"))
    assert not all(isinstance(d, int) for d in dynamic.session.get_outputs()[0].shape)
    fixed = OnnxDetector(tiny_yolo_onnx)
    found = 0
    for image in _frames():
        ours, expected = dynamic.detect(image), fixed.detect(image)
        _assert_same(ours, expected)
        found += len(expected)
    assert found >= 5


def test_threads_cap_onnxruntime_and_zero_is_refused(tiny_yolo_onnx):
    detector = OnnxDetector(tiny_yolo_onnx, threads=1)
    assert detector.session.get_session_options().intra_op_num_threads == 1
    assert detector.input_name == detector.session.get_inputs()[0].name
    with pytest.raises(ValueError, match="threads must be at least 1"):
        OnnxDetector(tiny_yolo_onnx, threads=0)


def test_detections_to_protocol_normalizes_and_clips():
    dets = Detections(np.array([[32, 24, 160, 120], [-2, 0, 330, 240]]), np.array([0.9, 0.5]), np.array([1, 0]))
    wire = dets.to_protocol(width=320, height=240)
    assert [d.cls for d in wire] == [1, 0]
    assert wire[0].box == pytest.approx((0.1, 0.1, 0.5, 0.5)) and wire[0].conf == pytest.approx(0.9)
    assert wire[1].box == pytest.approx((0.0, 0.0, 1.0, 1.0))
    assert Detections.empty().to_protocol(320, 240) == [] and len(Detections.empty()) == 0
    with pytest.raises(ValueError, match="lengths differ"):
        Detections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


def _assert_identical(a: Detections, b: Detections) -> None:
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.confidence, b.confidence)
    np.testing.assert_array_equal(a.class_id, b.class_id)


def test_a_prepared_frame_detects_exactly_like_the_frame(tiny_yolo_onnx):
    """prepare() on another thread, detect() of its result: the same boxes, as frame sizes change in between."""
    from endpoint.model.letterbox import prepare_frame

    detector = OnnxDetector(tiny_yolo_onnx, conf_threshold=0.05)
    frames = _frames()
    expected = [OnnxDetector(tiny_yolo_onnx, conf_threshold=0.05).detect(image) for image in frames]
    assert sum(len(d) for d in expected) >= 5
    for image, want in zip(frames + frames[::-1], expected + expected[::-1]):
        _assert_identical(detector.detect(detector.prepare(image)), want)
        _assert_identical(detector.detect(image), want)  # raw and prepared frames share one input buffer
        # prepared for another input size (a model swapped out since): letterboxed again from the frame
        _assert_identical(detector.detect(prepare_frame(image, 96)), want)


def test_the_runner_prepares_with_its_current_model_and_detects_either_form(tiny_yolo_onnx):
    from endpoint.config import EndpointConfig
    from endpoint.model.letterbox import PreparedFrame
    from endpoint.model.runner import ModelRunner

    image = _frames()[5]
    runner = ModelRunner(EndpointConfig.model_validate(
        {"endpoint_id": "cam-1", "model": {"path": str(tiny_yolo_onnx), "version": "v1", "conf_threshold": 0.05}}))
    prepared = runner.prepare(image)
    assert isinstance(prepared, PreparedFrame) and prepared.image is image
    assert runner.detect(prepared) == runner.detect(image) and runner.detect(image)
    no_model = ModelRunner(EndpointConfig.model_validate({"endpoint_id": "cam-1"}))
    assert no_model.prepare(image) is image and no_model.detect(image) == []


def test_no_detections_is_one_shared_read_only_value():
    empty = Detections.empty()
    assert empty is Detections.empty() and len(empty) == 0
    for array in (empty.xyxy, empty.confidence, empty.class_id):
        with pytest.raises(ValueError, match="read-only"):
            array[...] = 1


def test_detector_module_imports_no_torch_ultralytics_or_edge():
    code = ("import sys, endpoint.model.detector; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ultralytics', 'edge')); "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
