"""INT8 quantization on a trained detector: the fast x86 layout, an exact DFL rewrite, and detections kept."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from edge.dfl_rewrite import rewrite_dfl_softmax
from endpoint.model.detector import OnnxDetector
from endpoint.sources.scenario import SyntheticScenario


@pytest.fixture(scope="module")
def int8_onnx(tiny_yolo_onnx, tmp_path_factory):
    from edge.quantize import quantize_int8

    sc = SyntheticScenario()
    calibration = [sc.frame("day", 300_000 + i).image for i in range(8)]
    return quantize_int8(tiny_yolo_onnx, tmp_path_factory.mktemp("q") / "int8.onnx", calibration, 128)


def _run(model: onnx.ModelProto | str, x: np.ndarray) -> np.ndarray:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_dfl_rewrite_gives_the_same_outputs_and_runs_once(tiny_yolo_onnx):
    model = onnx.load(str(tiny_yolo_onnx))
    assert rewrite_dfl_softmax(model) == 1
    onnx.checker.check_model(model)
    softmax = [n for n in model.graph.node if n.op_type == "Softmax" and "dfl" in n.name]
    assert [a.i for a in softmax[0].attribute if a.name == "axis"] == [-1]
    assert not [n for n in model.graph.node if n.op_type == "Conv" and "dfl" in n.name]
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    np.testing.assert_allclose(_run(model, x), _run(str(tiny_yolo_onnx), x), rtol=1e-5, atol=1e-4)
    assert rewrite_dfl_softmax(model) == 0  # idempotent: the rewritten block no longer matches


def test_dfl_rewrite_leaves_other_graphs_alone():
    from onnx import TensorProto, helper

    # a middle-axis softmax that feeds no 1x1 projection is not a DFL block
    graph = helper.make_graph(
        [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]),
         helper.make_node("Softmax", ["t"], ["y"], axis=1)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 4, 8])])
    model = helper.make_model(graph)
    before = model.SerializeToString()
    assert rewrite_dfl_softmax(model) == 0 and model.SerializeToString() == before


def test_int8_uses_the_vnni_layout_and_keeps_the_decode_float(int8_onnx):
    """U8 activations x S8 per-channel weights (the x86 VNNI kernels); the DFL/box decode stays float."""
    model = onnx.load(str(int8_onnx))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    conv_weights = [producer[n.input[1]] for n in model.graph.node if n.op_type == "Conv" and n.input[1] in producer]
    assert conv_weights and all(dq.op_type == "DequantizeLinear" for dq in conv_weights)
    assert {inits[dq.input[0]].dtype for dq in conv_weights} == {np.dtype(np.int8)}
    assert any(inits[dq.input[1]].size > 1 for dq in conv_weights)  # per-channel scales
    activation_q = [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]
    assert {inits[q.input[2]].dtype for q in activation_q} == {np.dtype(np.uint8)}
    decode = [n for n in model.graph.node if "dfl" in n.name]
    assert decode and all(producer.get(i, n).op_type != "DequantizeLinear" for n in decode for i in n.input)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter)


@pytest.mark.integration
def test_int8_detections_match_fp32_on_a_trained_model(tiny_yolo_onnx, int8_onnx):
    """Every confident FP32 box has an INT8 twin: same class, IoU >= 0.8, confidence within 0.1."""
    sc = SyntheticScenario()
    fp32, int8 = OnnxDetector(tiny_yolo_onnx, threads=1), OnnxDetector(int8_onnx, threads=1)
    compared = matched = 0
    for i in range(16):
        image = sc.frame("day", 150_000 + i).image
        ours, reference = int8.detect(image), fp32.detect(image)
        for box, conf, cls in zip(reference.xyxy, reference.confidence, reference.class_id):
            if conf < 0.4:
                continue  # near the threshold a box may fall either side; that is not a mismatch
            compared += 1
            same = ours.class_id == cls
            if same.any():
                iou = _iou(box, ours.xyxy[same])
                best = int(iou.argmax())
                matched += iou[best] >= 0.8 and abs(ours.confidence[same][best] - conf) <= 0.1
        assert abs(len(ours) - len(reference)) <= max(2, len(reference) // 4)
    assert compared >= 10, "the trained model should find objects in the scenario"
    assert matched >= 0.9 * compared, f"{matched} of {compared} FP32 detections have an INT8 twin"


def test_student_precision_chooses_what_endpoints_get(tiny_yolo_onnx, tmp_path):
    from pydantic import ValidationError

    from edge.export import student_for_endpoint
    from edge.learning_config import LearningConfig

    frames = [SyntheticScenario().frame("day", 300_000).image]
    path, fmt = student_for_endpoint(tiny_yolo_onnx, tmp_path / "fp32.onnx", frames, 128, "fp32")
    assert fmt == "onnx-fp32" and path.read_bytes() == tiny_yolo_onnx.read_bytes()
    path, fmt = student_for_endpoint(tiny_yolo_onnx, tmp_path / "int8.onnx", frames, 128, "int8")
    assert fmt == "onnx-int8" and "QuantizeLinear" in {n.op_type for n in onnx.load(str(path)).graph.node}
    with pytest.raises(ValueError, match="precision must be"):
        student_for_endpoint(tiny_yolo_onnx, tmp_path / "x.onnx", frames, 128, "fp16")
    assert LearningConfig().student_precision == "int8"
    assert LearningConfig(student_precision="fp32").student_precision == "fp32"
    with pytest.raises(ValidationError):
        LearningConfig(student_precision="fp16")


@pytest.mark.integration
def test_calibrating_on_the_replay_mix_keeps_the_old_domain(tiny_yolo_onnx, tmp_path):
    """INT8 calibrated on a new domain alone loses the old one (the lab's dusk round cost day 9-10 pts);
    the replay buffer's calibration draw keeps it near FP32."""
    from edge.evaluate import evaluate_onnx
    from edge.quantize import quantize_int8
    from edge.replay import ReplayBuffer
    from edge.yolo_dataset import scenario_items

    sc = SyntheticScenario()  # the tiny model learnt day frames of this scenario
    replay = ReplayBuffer(capacity_per_domain=16)
    replay.add(scenario_items(sc, "day", 300_000, 16, "old-"), "day")
    replay.add(scenario_items(sc, "dusk", 300_000, 16, "new-"), "dusk")
    day_val = scenario_items(sc, "day", 200_000, 40, "val-")

    def day_map(calibration) -> float:
        int8 = quantize_int8(tiny_yolo_onnx, tmp_path / f"{len(calibration)}-{calibration[0].name}.onnx",
                             [i.image for i in calibration], 128)
        return evaluate_onnx(int8, day_val).map50_95

    fp32 = evaluate_onnx(tiny_yolo_onnx, day_val).map50_95
    new_only, mixed = day_map(replay.items("dusk")), day_map(replay.calibration("dusk", 16, 0.5))
    assert fp32 - mixed < 0.03, (fp32, mixed)
    assert mixed - new_only > 0.03, (new_only, mixed)
