"""The frozen teacher's class logits per anchor on onnxruntime: the cheap teacher pass of logit-only distillation.

Class-score distillation without the feature or box term needs nothing of the teacher but its class logits. The
teacher's ONNX export (``edge.export.export_onnx``), cut at the input of the head's sigmoid, gives exactly those,
without the box branch and its decoding. Measured (bench distill's fine-tuned teacher, 16 images at 256 px, one
thread, shared 2-core machine): 79 CPU ms a batch against 227 for the torch teacher (216 fused), 115 for the whole
export; a 7-epoch distilled student's training CPU fell from 42 s to 31 s (labels alone: 19 s).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)

STRIDES = (8, 16, 32)  # the Detect levels' strides: each level's grid is the input size over its stride
LOGITS_FILE = "logits.onnx"


def logits_graph(model):
    """The export cut to its class logits (B, nc, anchors): the input of the sigmoid whose scores it concatenates."""
    from onnx.utils import Extractor

    producers = {name: node for node in model.graph.node for name in node.output}
    concat = producers.get(model.graph.output[0].name)
    sigmoid = producers.get(concat.input[-1]) if concat is not None and concat.op_type == "Concat" else None
    if sigmoid is None or sigmoid.op_type != "Sigmoid":
        raise ValueError("not a YOLO Detect export: its output is not the concatenation of boxes and sigmoid scores")
    return Extractor(model).extract_model([model.graph.input[0].name], [sigmoid.input[0]])


def teacher_logits_onnx(teacher_pt: str | Path, imgsz: int, cache_dir: str | Path) -> Path:
    """The teacher's class-logit graph at ``imgsz`` px, exported once per weights file and size under ``cache_dir``."""
    import onnx

    from edge.export import export_onnx
    from edge.training import cache_key, cached_build

    digest = hashlib.sha256(Path(teacher_pt).read_bytes()).hexdigest()
    key = cache_key({"teacher_logits": digest, "imgsz": imgsz})

    def build(folder: Path, work: Path) -> dict[str, Path]:
        full = export_onnx(teacher_pt, work / "teacher.onnx", imgsz)
        cut = work / LOGITS_FILE
        onnx.save(logits_graph(onnx.load(str(full))), str(cut))
        return {LOGITS_FILE: cut}

    return cached_build(Path(cache_dir) / "teacher-logits" / key, [LOGITS_FILE], build)[LOGITS_FILE]


class TeacherLogits:
    """The cut teacher on onnxruntime: (B, 3, H, W) float images in 0..1 to (B, nc, anchors) class logits."""

    def __init__(self, path: str | Path, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        # one thread: the trainer's torch threads share the same cores, and a single thread costs the least CPU
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        source, target = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input, self.output = source.name, target.name
        batch, channels, height, width = source.shape
        if not all(isinstance(side, int) for side in (channels, height, width)) or height % 32 or width % 32:
            raise ValueError(f"{path}: the teacher's input must have a fixed size, a multiple of 32, not {source.shape}")
        self.batch = batch if isinstance(batch, int) else None  # None: any batch size in one call
        self.shape = (channels, height, width)
        self.grids = [(height // stride, width // stride) for stride in STRIDES]
        if target.shape[-1] != sum(h * w for h, w in self.grids):
            raise ValueError(f"{path}: {target.shape[-1]} anchors, not the {self.grids} grids of strides {STRIDES}")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits of each image of the batch, on the batch's device; any batch size."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.shape:
            raise ValueError(f"the teacher takes (B, {', '.join(map(str, self.shape))}) images, not "
                             f"{tuple(images.shape)}")
        batch = images.detach().to("cpu", torch.float32).contiguous().numpy()
        step = len(batch) if self.batch is None else self.batch
        if len(batch) % step:
            raise ValueError(f"a fixed batch of {step} cannot take {len(batch)} images")
        # a batch-1 export runs image by image: measured, the same CPU as one batched call
        out = [self.session.run([self.output], {self.input: batch[i:i + step]})[0] for i in range(0, len(batch), step)]
        return torch.from_numpy(np.concatenate(out)).to(images.device)


@functools.lru_cache(maxsize=4)
def teacher_logits(path: str) -> TeacherLogits:
    """One session per graph and process: the distillation loss calls it every batch."""
    log.info("teacher class logits on onnxruntime from %s", path)
    return TeacherLogits(path)


__all__ = ["STRIDES", "TeacherLogits", "logits_graph", "teacher_logits", "teacher_logits_onnx"]
