"""A split set: one detector exported whole and cut at several layers (some with a learned bottleneck).

On disk: ``split_set.json`` (the manifest), ``full.onnx``, and ``<key>.head.onnx`` /
``<key>.tail.onnx`` per pair. The endpoint needs the heads (and ``full.onnx`` for
device-only); the edge needs the tails (and ``full.onnx`` for edge-only).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from edge.split.profile import layer_gflops
from edge.split.split_model import SplitPair, export_split, file_sha256, load_fused_model

log = logging.getLogger(__name__)

MANIFEST_NAME = "split_set.json"
FULL_ONNX_NAME = "full.onnx"


class PairInfo(BaseModel):
    """One exported cut, with file names relative to the split set folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(description="e.g. after4, or after4-bn4 with a bottleneck that divides channels by 4")
    split_after: int = Field(ge=0, description="the last layer the head runs")
    crossing: list[int] = Field(description="layers whose outputs cross the cut")
    crossing_shapes: list[list[int]] = Field(description="shapes of the tensors the head sends")
    head: str
    tail: str
    pair_id: str
    bottleneck_reduction: int = Field(1, ge=1, description="channel reduction of the learned bottleneck (1: none)")


class SplitSetManifest(BaseModel):
    """What a split set holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    source_sha256: str = Field(description="sha256 of the .pt the set was cut from")
    imgsz: int = Field(gt=0)
    layers: int = Field(gt=0, description="top-level layers of the detector, the detect head included")
    class_names: list[str]
    layer_gflops: list[float] = Field(description="GFLOPs of each top-level layer at imgsz")
    full_onnx: str = FULL_ONNX_NAME
    pairs: list[PairInfo]

    def pair(self, key: str) -> PairInfo:
        for p in self.pairs:
            if p.key == key:
                return p
        raise KeyError(f"no pair {key!r}; the set has {[p.key for p in self.pairs]}")


def build_split_set(pt_path: str | Path, out_dir: str | Path, imgsz: int, split_afters: Sequence[int],
                    bottlenecks: Sequence[tuple[int, int]] = (), train_images: np.ndarray | None = None,
                    training=None) -> SplitSetManifest:
    """Export ``full.onnx`` and a pair per cut; ``bottlenecks`` are (split_after, reduction) trained on ``train_images``."""
    from edge.export import export_onnx
    from edge.split.bottleneck import BottleneckTraining, train_bottleneck

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    source_sha = file_sha256(pt_path)
    with tempfile.TemporaryDirectory() as tmp:
        # ultralytics writes the .onnx next to the .pt: export a copy, so a shared model cache keeps its own export
        staged = Path(tmp) / "source.pt"
        shutil.copyfile(pt_path, staged)
        export_onnx(staged, out_dir / FULL_ONNX_NAME, imgsz)
    model = load_fused_model(pt_path, imgsz)
    pairs = [_info(export_split(model, k, out_dir, imgsz, source_sha), 1) for k in split_afters]
    if bottlenecks and train_images is None:
        raise ValueError("a learned bottleneck needs train_images")
    for split_after, reduction in bottlenecks:
        images = torch.as_tensor(np.asarray(train_images, dtype=np.float32))
        bn = train_bottleneck(model, split_after, images, reduction, training or BottleneckTraining())
        pair = export_split(model, split_after, out_dir, imgsz, source_sha, key=f"after{split_after}-bn{reduction}",
                            wrap_head=bn.wrap_head, wrap_tail=bn.wrap_tail, variant=f"bn{reduction}-{bn.digest()}")
        pairs.append(_info(pair, reduction))
    manifest = SplitSetManifest(source_sha256=source_sha, imgsz=imgsz, layers=len(model.model),
                                layer_gflops=layer_gflops(model, imgsz),
                                class_names=[str(model.names[i]) for i in range(len(model.names))], pairs=pairs)
    (out_dir / MANIFEST_NAME).write_text(manifest.model_dump_json(indent=2))
    log.info("split set in %s: full model and %d pairs", out_dir, len(pairs))
    return manifest


def _info(pair: SplitPair, reduction: int) -> PairInfo:
    return PairInfo(key=pair.key, split_after=pair.split_after, crossing=list(pair.crossing),
                    crossing_shapes=[list(s) for s in pair.crossing_shapes], head=pair.head_path.name,
                    tail=pair.tail_path.name, pair_id=pair.pair_id, bottleneck_reduction=reduction)


def load_split_set(folder: str | Path) -> SplitSetManifest:
    """Read ``split_set.json`` of a folder made by ``build_split_set``."""
    return SplitSetManifest.model_validate_json((Path(folder) / MANIFEST_NAME).read_text())


def pair_of(manifest: SplitSetManifest, folder: str | Path, key: str) -> SplitPair:
    """The SplitPair (absolute paths) of ``key`` in a split set folder."""
    info = manifest.pair(key)
    folder = Path(folder)
    return SplitPair(info.key, info.split_after, tuple(info.crossing), tuple(tuple(s) for s in info.crossing_shapes),
                     folder / info.head, folder / info.tail, info.pair_id, (manifest.imgsz, manifest.imgsz))


__all__ = ["FULL_ONNX_NAME", "MANIFEST_NAME", "PairInfo", "SplitSetManifest", "build_split_set", "load_split_set",
           "pair_of"]
