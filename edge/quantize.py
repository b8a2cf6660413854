"""Quantize an ultralytics ONNX detector to INT8 QDQ with onnxruntime, calibrated on letterboxed frames."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from edge.dfl_rewrite import rewrite_dfl_softmax
from endpoint.model.letterbox import to_model_input

log = logging.getLogger(__name__)


class LetterboxedFrames(CalibrationDataReader):
    """Feeds calibration frames through the endpoint's own preprocessing, one frame per batch."""

    def __init__(self, input_name: str, images: Sequence[np.ndarray], input_hw: tuple[int, int]):
        self._feeds = [{input_name: to_model_input(img, input_hw)[0]} for img in images]
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._feeds):
            return None
        self._next += 1
        return self._feeds[self._next - 1]

    def rewind(self) -> None:
        self._next = 0


def head_decode_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes after the detect head's last convolutions: DFL, box decode, sigmoid and the output concat.

    They mix pixel coordinates and 0..1 scores in one tensor, which one 8-bit scale cannot hold.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    tail: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv" and "dfl" not in node.name.lower():
            continue  # a head convolution: quantize it and everything before it
        tail.append(node.name)
        if node.op_type != "Shape":  # a Shape only reads dimensions; walking through it would reach the backbone
            stack.extend(node.input)
    return tail


def prepare_for_quantization(fp32_path: str | Path, tmp_dir: Path) -> Path:
    """The graph quantization works on, written under ``tmp_dir``: DFL softmax rewritten, then shape-inferred."""
    model = onnx.load(str(fp32_path))
    source = Path(fp32_path)
    if rewrite_dfl_softmax(model):
        source = Path(tmp_dir) / "rewritten.onnx"
        onnx.save(model, str(source))
    prepared = Path(tmp_dir) / "prepared.onnx"
    quant_pre_process(str(source), str(prepared))
    return prepared


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration_images: list[np.ndarray],
                  input_size: int | tuple[int, int]) -> Path:
    """Write an INT8 QDQ copy of ``fp32_path`` (per-channel weights) that keeps float I/O and the metadata.

    The DFL softmax is moved onto the last axis first (``edge.dfl_rewrite``): the same float numbers, faster.
    """
    if not calibration_images:
        raise ValueError("quantize_int8 needs at least one calibration image")
    input_hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fp32 = onnx.load(str(fp32_path))
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        prepared = prepare_for_quantization(fp32_path, Path(tmp))
        prepared_model = onnx.load(str(prepared))
        excluded = head_decode_nodes(prepared_model)
        reader = LetterboxedFrames(prepared_model.graph.input[0].name, calibration_images, input_hw)
        # U8 activations x S8 weights is the x86 VNNI kernel (vpdpbusd); S8S8 measured 1.5x slower than U8S8 on
        # this AMD EPYC. QDQ around every op (SiLU's Sigmoid and Mul too) lets onnxruntime fuse whole chains into
        # QLinear kernels; leaving SiLU in float measured slower (an extra DQ and Q per activation).
        # reduce_range only matters on x86 without VNNI, where it costs accuracy for nothing here.
        quantize_static(str(prepared), str(out_path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        reduce_range=False)
    quantized = onnx.load(str(out_path))
    # the detector and ultralytics read imgsz, names and stride from these props; quantization drops them
    if {p.key for p in quantized.metadata_props} != {p.key for p in fp32.metadata_props}:
        del quantized.metadata_props[:]
        quantized.metadata_props.extend(fp32.metadata_props)
        onnx.save(quantized, str(out_path))
    log.info("quantized %s -> %s (%d calibration frames, %d head-decode nodes kept in float)",
             fp32_path.name, out_path.name, len(calibration_images), len(excluded))
    return out_path
