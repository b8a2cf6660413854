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
import warnings
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


def requantize_like(base_int8: str | Path, base_fp32: str | Path, new_fp32: str | Path, out_path: str | Path,
                    overflow: Literal["clip", "rescale"] = "clip",
                    template_int8: str | Path | None = None) -> RequantizeStats:
    """Write ``new_fp32`` with ``base_int8``'s INT8 weights wherever they still hold (``base_fp32`` made the base).

    A weight channel that only moved by one factor (a BN change folded in) keeps its INT8 values under a scaled
    channel scale. A changed weight past its channel's range gets a new channel scale (``rescale``) or saturates
    (``clip``). ``template_int8`` (the new student quantized afresh) lends its activation scales; without it the
    base's are kept.
    """
    if overflow not in ("rescale", "clip"):
        raise ValueError(f"overflow must be 'rescale' or 'clip', got {overflow!r}")
    base_model = onnx.load(str(base_int8))
    out_model = onnx.load(str(template_int8)) if template_int8 is not None else onnx.load(str(base_int8))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent) as tmp:
        base_float, _ = _float_initializers(Path(base_fp32), Path(tmp) / "base")
        new_float, _ = _float_initializers(Path(new_fp32), Path(tmp) / "new")
    if base_float.keys() != new_float.keys() or any(base_float[k].shape != new_float[k].shape for k in base_float):
        raise ValueError("the new student's graph differs from the base's; it cannot reuse the base's INT8 weights")
    base_inits = {t.name: t for t in base_model.graph.initializer}
    inits = {t.name: t for t in out_model.graph.initializer}
    if base_inits.keys() != inits.keys():
        raise ValueError("the template's quantized graph differs from the base's")
    template_scales = {name: numpy_helper.to_array(t).astype(np.float32) for name, t in inits.items()}
    dq_nodes = [n for n in out_model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                and n.input[0].endswith(QUANTIZED_SUFFIX)]
    weight_of_bias = _bias_owners(out_model)
    changed = rescaled = 0
    weight_scales: dict[str, tuple[str, np.ndarray]] = {}  # weight initializer -> (scale name, its final scale)
    # weights before biases: a bias scale is the activation scale times its weight channel's scale
    for node in sorted(dq_nodes, key=lambda n: n.input[0] in weight_of_bias):
        q_name, scale_name = node.input[0], node.input[1]
        source = q_name[: -len(QUANTIZED_SUFFIX)]
        if source not in new_float:
            raise ValueError(f"no float tensor {source!r} behind {q_name!r}")
        base_q = numpy_helper.to_array(base_inits[q_name])
        scale = numpy_helper.to_array(base_inits[scale_name]).astype(np.float32)
        zp_name = node.input[2] if len(node.input) > 2 else None
        zero = (numpy_helper.to_array(base_inits[zp_name]).astype(np.int64) if zp_name
                else np.zeros(scale.shape, np.int64))
        per_channel = scale.ndim == 1 and scale.size > 1
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        view = lambda a: _channel_view(a, axis, per_channel)  # noqa: E731
        info = np.iinfo(base_q.dtype)
        old_f, new_f = view(base_float[source].astype(np.float64)), view(new_float[source].astype(np.float64))
        owner = weight_of_bias.get(q_name)
        if owner is not None:  # an int32 bias on its weight's final scale
            w_scale_name, w_scale = weight_scales[owner]
            w_scale = np.atleast_1d(w_scale)
            out_scale = np.atleast_1d(template_scales[scale_name])
            same = w_scale == np.atleast_1d(template_scales[w_scale_name])
            scale = np.where(same, out_scale, out_scale / np.atleast_1d(template_scales[w_scale_name]) * w_scale
                             ).astype(np.float32)
            keep = same[:, None] & ((old_f == new_f) | (template_int8 is not None))
            out_q = view(numpy_helper.to_array(inits[q_name]).astype(np.int64))
            q = np.where(keep, out_q, np.clip(_on_grid(new_f, scale.reshape(-1, 1).astype(np.float64),
                                                       zero.reshape(-1, 1)), info.min, info.max))
        elif base_q.dtype == np.int8 and per_channel:
            ratio = _channel_ratio(old_f, new_f)
            scale = (scale * ratio).astype(np.float32)
            kept = np.isclose(new_f, old_f * ratio[:, None], rtol=1e-4, atol=0.0) | (new_f == old_f)
            fresh = _on_grid(new_f, scale.reshape(-1, 1).astype(np.float64), zero.reshape(-1, 1))
            if overflow == "rescale":
                # a channel that outgrew its scale gets a symmetric one that fits (ORT's own rule: max|w| / 127)
                rows = (((fresh > info.max) | (fresh < info.min)) & ~kept).any(axis=1)
                if rows.any():
                    scale[rows] = (np.abs(new_f[rows]).max(axis=1) / info.max).astype(np.float32)
                    kept[rows] = False
                    rescaled += int(rows.sum())
                    fresh = _on_grid(new_f, scale.reshape(-1, 1).astype(np.float64), zero.reshape(-1, 1))
            q = np.where(kept, view(base_q), np.clip(fresh, info.min, info.max))
            weight_scales[q_name] = (scale_name, scale)
        elif template_int8 is not None:
            continue  # a per-tensor constant: the template quantized the new value on its own scale
        else:
            moved = old_f != new_f
            q = np.where(moved, np.clip(_on_grid(new_f, scale.reshape(-1, 1).astype(np.float64),
                                                 zero.reshape(-1, 1)), info.min, info.max), view(base_q))
            weight_scales[q_name] = (scale_name, scale)
        q = q.astype(base_q.dtype)
        changed += int((q != view(base_q)).sum())
        inits[q_name].CopyFrom(numpy_helper.from_array(_from_channel_view(q, base_q, axis, per_channel), q_name))
        if not np.array_equal(scale, template_scales[scale_name].reshape(scale.shape)):
            inits[scale_name].CopyFrom(numpy_helper.from_array(scale.reshape(template_scales[scale_name].shape),
                                                               scale_name))
    del out_model.metadata_props[:]  # the new export's own metadata (imgsz, names, stride, date)
    out_model.metadata_props.extend(onnx.load(str(new_fp32), load_external_data=False).metadata_props)
    onnx.save(out_model, str(out_path))
    log.info("requantized %s on %s's INT8 weights: %d INT8 elements changed, %d channels rescaled",
             Path(new_fp32).name, Path(base_int8).name, changed, rescaled)
    return RequantizeStats(changed, rescaled)


def _channel_ratio(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Per channel, the factor most elements moved by (1 when unchanged): a folded BN change scales a channel."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-zero channel has no ratio: it stays 1
        ratios = np.where(old != 0, new / old, np.nan)
        ratio = np.nanmedian(np.where(np.isfinite(ratios), ratios, np.nan), axis=1)
    return np.where(np.isfinite(ratio) & (ratio > 0), ratio, 1.0)


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
