"""INT8 that stays sparse: requantize a sparsely updated student on its base's INT8 grid.

A fresh ``quantize_static`` recalibrates every activation scale (and with it every int32 bias scale) and
recomputes every per-channel weight scale, so even a 1 % float update rewrites most INT8 bytes. Here the
base's INT8 model is the template: activation scales and zero points stay; a weight or bias element whose
float value did not change keeps its INT8 value bit for bit; a changed one is rounded on the base's scale.
Only a weight channel that no longer fits its base scale gets a new scale (and its bias channel with it).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper

from edge.quantize import prepare_for_quantization

log = logging.getLogger(__name__)

QUANTIZED_SUFFIX = "_quantized"


@dataclass(frozen=True)
class RequantizeStats:
    """What the requantization touched, in elements."""

    changed_elements: int
    rescaled_channels: int


def _float_initializers(fp32_path: Path, tmp_dir: Path) -> tuple[dict[str, np.ndarray], onnx.ModelProto]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    prepared = onnx.load(str(prepare_for_quantization(fp32_path, tmp_dir)))
    return {t.name: numpy_helper.to_array(t) for t in prepared.graph.initializer}, prepared


def _channel_view(array: np.ndarray, axis: int, per_channel: bool) -> np.ndarray:
    """``array`` as (channels, rest) along ``axis`` (one channel for a per-tensor scale)."""
    if not per_channel:
        return array.reshape(1, -1)
    return np.moveaxis(array, axis, 0).reshape(array.shape[axis], -1)


def _from_channel_view(view: np.ndarray, like: np.ndarray, axis: int, per_channel: bool) -> np.ndarray:
    if not per_channel:
        return view.reshape(like.shape)
    moved = np.moveaxis(like, axis, 0).shape
    return np.moveaxis(view.reshape(moved), 0, axis)


def requantize_like(base_int8: str | Path, base_fp32: str | Path, new_fp32: str | Path,
                    out_path: str | Path, overflow: Literal["rescale", "clip"] = "rescale") -> RequantizeStats:
    """Write ``new_fp32`` quantized on ``base_int8``'s grid (``base_fp32`` is the float model it was made from).

    A weight past its channel's base range gets a new channel scale (``rescale``) or saturates (``clip``).
    """
    if overflow not in ("rescale", "clip"):
        raise ValueError(f"overflow must be 'rescale' or 'clip', got {overflow!r}")
    base_model = onnx.load(str(base_int8))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent) as tmp:
        base_float, _ = _float_initializers(Path(base_fp32), Path(tmp) / "base")
        new_float, _ = _float_initializers(Path(new_fp32), Path(tmp) / "new")
    if base_float.keys() != new_float.keys() or any(base_float[k].shape != new_float[k].shape for k in base_float):
        raise ValueError("the new student's graph differs from the base's; it cannot reuse the base's INT8 grid")
    inits = {t.name: t for t in base_model.graph.initializer}
    dq_nodes = [n for n in base_model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                and n.input[0].endswith(QUANTIZED_SUFFIX)]
    weight_of_bias = _bias_owners(base_model)
    changed = rescaled = 0
    old_scales: dict[str, np.ndarray] = {}  # weight initializer -> its base per-channel scale, when rescaled
    new_scales: dict[str, np.ndarray] = {}  # weight initializer -> its new per-channel scale
    rescaled_rows: dict[str, np.ndarray] = {}  # weight initializer -> bool per channel that got a new scale
    # weights before biases: a bias channel follows its weight channel's scale
    for node in sorted(dq_nodes, key=lambda n: n.input[0] in weight_of_bias):
        q_name, scale_name = node.input[0], node.input[1]
        zp_name = node.input[2] if len(node.input) > 2 else None
        source = q_name[: -len(QUANTIZED_SUFFIX)]
        if source not in new_float:
            raise ValueError(f"no float tensor {source!r} behind {q_name!r}")
        old_q = numpy_helper.to_array(inits[q_name])
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
        zero = numpy_helper.to_array(inits[zp_name]).astype(np.int64) if zp_name else np.zeros_like(scale, np.int64)
        per_channel = scale.ndim == 1 and scale.size > 1
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        moved = _channel_view(base_float[source] != new_float[source], axis, per_channel)
        owner = weight_of_bias.get(q_name)
        if owner is not None and owner in rescaled_rows:
            moved = moved | rescaled_rows[owner][:, None]
            # bias scale = activation scale x weight scale; the activation scale stays, so it follows the weight's
            scale = scale.copy()
            rows = rescaled_rows[owner]
            scale[rows] = (scale[rows] / old_scales[owner][rows] * new_scales[owner][rows]).astype(np.float32)
        if not moved.any():
            if owner is not None and owner in rescaled_rows:
                inits[scale_name].CopyFrom(numpy_helper.from_array(scale, scale_name))
            continue
        info = np.iinfo(old_q.dtype)
        values = _channel_view(new_float[source].astype(np.float64), axis, per_channel)
        q = _channel_view(old_q, axis, per_channel).astype(np.int64)
        scale_rows = scale.reshape(-1, 1).astype(np.float64)
        zero_rows = zero.reshape(-1, 1)
        fresh = _on_grid(values, scale_rows, zero_rows)
        if owner is None and old_q.dtype == np.int8 and overflow == "rescale":
            # a channel that outgrew its scale gets a symmetric one that fits (ORT's own rule: max|w| / 127)
            over = ((fresh > info.max) | (fresh < info.min)) & moved
            rows = over.any(axis=1)
            if rows.any():
                new_scale = scale.copy()
                new_scale[rows] = (np.abs(values[rows]).max(axis=1) / info.max).astype(np.float32)
                old_scales[q_name], new_scales[q_name] = scale, new_scale
                rescaled_rows[q_name] = rows
                rescaled += int(rows.sum())
                moved = moved | rows[:, None]
                scale = new_scale
                fresh = _on_grid(values, scale.reshape(-1, 1).astype(np.float64), zero_rows)
                inits[scale_name].CopyFrom(numpy_helper.from_array(scale, scale_name))
        elif owner is not None and owner in rescaled_rows:
            inits[scale_name].CopyFrom(numpy_helper.from_array(scale, scale_name))
        q = np.where(moved, np.clip(fresh, info.min, info.max), q).astype(old_q.dtype)
        changed += int((q != _channel_view(old_q, axis, per_channel)).sum())
        inits[q_name].CopyFrom(numpy_helper.from_array(_from_channel_view(q, old_q, axis, per_channel), q_name))
    del base_model.metadata_props[:]  # the new export's own metadata (imgsz, names, stride, date)
    base_model.metadata_props.extend(onnx.load(str(new_fp32), load_external_data=False).metadata_props)
    onnx.save(base_model, str(out_path))
    log.info("requantized %s on %s's grid: %d INT8 elements changed, %d channels rescaled", Path(new_fp32).name,
             Path(base_int8).name, changed, rescaled)
    return RequantizeStats(changed, rescaled)


def _on_grid(values: np.ndarray, scale_rows: np.ndarray, zero_rows: np.ndarray) -> np.ndarray:
    """round(value / scale) + zero point; a zero scale maps 0 to the zero point and anything else out of range."""
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.rint(values / scale_rows)
    return np.nan_to_num(steps, nan=0.0, posinf=np.inf, neginf=-np.inf) + zero_rows


def _bias_owners(model: onnx.ModelProto) -> dict[str, str]:
    """Quantized bias initializer -> the quantized weight initializer of the same Conv."""
    producer = {out: node for node in model.graph.node for out in node.output}
    owners = {}
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 3:
            continue
        weight_dq, bias_dq = producer.get(node.input[1]), producer.get(node.input[2])
        if weight_dq is not None and bias_dq is not None and bias_dq.op_type == "DequantizeLinear":
            owners[bias_dq.input[0]] = weight_dq.input[0]
    return owners


__all__ = ["RequantizeStats", "requantize_like"]
