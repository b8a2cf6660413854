"""Rewrite the detect head's DFL softmax onto the last axis: the same float math, several times faster on a CPU.

ultralytics exports DFL as Transpose(0,2,1,3) -> Softmax(axis=1) -> 1x1 Conv over 16 bins. onnxruntime runs a
softmax over a middle axis through an internal transpose; at 320 px that costs about a tenth of an INT8
yolo11n forward pass. Transpose(0,1,3,2) -> Softmax(axis=-1) -> MatMul with the same weights gives the same
numbers in the same order of elements, so the Reshape after it is unchanged.
"""

from __future__ import annotations

import logging

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger(__name__)

_MIDDLE_AXIS_PERM = [0, 2, 1, 3]
_LAST_AXIS_PERM = [0, 1, 3, 2]


def rewrite_dfl_softmax(model: onnx.ModelProto) -> int:
    """Rewrite every DFL block of ``model`` in place; return how many were rewritten (0 when none matches)."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    producer = {out: node for node in model.graph.node for out in node.output}
    initializers = {init.name: init for init in model.graph.initializer}
    rewritten = 0
    for softmax in [n for n in model.graph.node if n.op_type == "Softmax"]:
        block = _match(softmax, producer, consumers, initializers)
        if block is None:
            continue
        transpose, conv, weight = block
        _set_ints(transpose, "perm", _LAST_AXIS_PERM)
        _set_ints(softmax, "axis", -1)
        matrix_name = f"{conv.input[1]}_as_matrix"
        model.graph.initializer.append(numpy_helper.from_array(weight.reshape(-1, 1), matrix_name))
        matmul = helper.make_node("MatMul", [softmax.output[0], matrix_name], list(conv.output),
                                  name=f"{conv.name}_as_matmul")  # keeps "dfl" in the name: quantize skips it
        index = list(model.graph.node).index(conv)
        model.graph.node.remove(conv)
        model.graph.node.insert(index, matmul)
        if not any(conv.input[1] in node.input for node in model.graph.node):
            model.graph.initializer.remove(initializers[conv.input[1]])
        stale = {transpose.output[0], softmax.output[0], conv.output[0]}
        for info in [v for v in model.graph.value_info if v.name in stale]:
            model.graph.value_info.remove(info)  # shapes changed; onnxruntime infers them again
        rewritten += 1
    if rewritten:
        log.info("moved %d DFL softmax(es) onto the last axis", rewritten)
    return rewritten


def _match(softmax: onnx.NodeProto, producer: dict, consumers: dict,
           initializers: dict) -> tuple[onnx.NodeProto, onnx.NodeProto, np.ndarray] | None:
    """(transpose, conv, conv weight) when ``softmax`` is the middle of a DFL block this rewrite understands."""
    transpose = producer.get(softmax.input[0])
    users = consumers.get(softmax.output[0], [])
    if transpose is None or transpose.op_type != "Transpose" or _ints(transpose, "perm") != _MIDDLE_AXIS_PERM:
        return None
    if _int(softmax, "axis", -1) != 1 or len(consumers.get(transpose.output[0], [])) != 1 or len(users) != 1:
        return None
    conv = users[0]
    if conv.op_type != "Conv" or len(conv.input) != 2 or conv.input[1] not in initializers:
        return None  # a bias or a computed weight: not the plain bins-to-distance projection
    weight = numpy_helper.to_array(initializers[conv.input[1]])
    plain = _int(conv, "group", 1) == 1 and all(set(_ints(conv, key) or [1]) == {1} for key in ("strides", "dilations"))
    unpadded = set(_ints(conv, "pads") or [0]) == {0} and _str(conv, "auto_pad", "NOTSET") in ("NOTSET", "VALID")
    if weight.ndim != 4 or weight.shape[0] != 1 or weight.shape[2:] != (1, 1) or not (plain and unpadded):
        return None
    # the Conv output (1, 1, 4, A) becomes (1, 4, A, 1): only a Reshape may read it, which sees the same order
    if any(user.op_type != "Reshape" for user in consumers.get(conv.output[0], [])):
        return None
    return transpose, conv, weight


def _attribute(node: onnx.NodeProto, name: str):
    return next((a for a in node.attribute if a.name == name), None)


def _ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    attr = _attribute(node, name)
    return list(attr.ints) if attr is not None else None


def _int(node: onnx.NodeProto, name: str, default: int) -> int:
    attr = _attribute(node, name)
    return attr.i if attr is not None else default


def _str(node: onnx.NodeProto, name: str, default: str) -> str:
    attr = _attribute(node, name)
    return attr.s.decode() if attr is not None else default


def _set_ints(node: onnx.NodeProto, name: str, values: list[int] | int) -> None:
    attr = _attribute(node, name)
    if attr is not None:
        node.attribute.remove(attr)
    node.attribute.append(helper.make_attribute(name, values))
