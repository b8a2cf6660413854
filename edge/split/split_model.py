"""Cut an ultralytics detector after layer k into a head and a tail, and export both to ONNX.

YOLO has skip connections (Concat layers read outputs of much earlier layers), so a cut
carries every tensor produced at or before k that a layer after k reads, not only layer k.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

SPLIT_FORMAT_VERSION = 1
Wrapper = Callable[[nn.Module], nn.Module]


def load_fused_model(pt_path: str | Path, imgsz: int) -> nn.Module:
    """The DetectionModel of ``pt_path`` prepared as ultralytics' ONNX exporter prepares it (fused, export mode)."""
    from ultralytics.nn.modules import C2f, Detect

    from edge.training import ultralytics_yolo

    model = copy.deepcopy(ultralytics_yolo()(str(pt_path)).model).cpu().float().eval()
    for p in model.parameters():
        p.requires_grad = False
    model = model.fuse(verbose=False)
    for m in model.modules():
        if isinstance(m, Detect):
            m.dynamic, m.export, m.format, m.shape = False, True, "onnx", None
            m.xyxy = False
        elif isinstance(m, C2f):
            m.forward = m.forward_split  # the exporter does this too; same graph, same numerics
    with torch.no_grad():
        model(torch.zeros(1, 3, imgsz, imgsz))  # dry run: Detect caches its anchors for this size
    return model


def layer_sources(layers: nn.Sequential) -> list[list[int]]:
    """Absolute indices of the layers each layer reads (``-1`` is the previous layer; -1 for the image)."""
    out = []
    for i, m in enumerate(layers):
        froms = [m.f] if isinstance(m.f, int) else list(m.f)
        out.append([j if j >= 0 else i + j for j in froms])
    return out


def crossing_layers(layers: nn.Sequential, split_after: int) -> list[int]:
    """Layers at or before ``split_after`` whose output a later layer reads: the tensors that cross the cut."""
    if not 0 <= split_after < len(layers) - 1:
        raise ValueError(f"split_after must be in 0..{len(layers) - 2}, got {split_after}")
    sources = layer_sources(layers)
    used = {j for i in range(split_after + 1, len(layers)) for j in sources[i] if j <= split_after}
    if -1 in used:
        raise ValueError(f"a layer after {split_after} reads the raw image; no head can be cut there")
    return sorted(used)


def split_points(layers: nn.Sequential) -> list[int]:
    """Every layer a cut may follow (all but the detect head)."""
    return list(range(len(layers) - 1))


class SplitHead(nn.Module):
    """Layers ``0..split_after``: image in, the crossing tensors out (in ``crossing`` order)."""

    def __init__(self, layers: nn.Sequential, split_after: int):
        super().__init__()
        self.crossing = crossing_layers(layers, split_after)
        self.layers = nn.ModuleList(layers[: split_after + 1])
        self.sources = layer_sources(layers)[: split_after + 1]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs: dict[int, torch.Tensor] = {-1: image}
        for i, m in enumerate(self.layers):
            outputs[i] = m(_gather(outputs, self.sources[i], m.f))
        return tuple(outputs[i] for i in self.crossing)


class SplitTail(nn.Module):
    """Layers ``split_after+1..end`` (detect head included): crossing tensors in, the full model's output out."""

    def __init__(self, layers: nn.Sequential, split_after: int):
        super().__init__()
        self.crossing = crossing_layers(layers, split_after)
        self.first = split_after + 1
        self.layers = nn.ModuleList(layers[self.first :])
        self.sources = layer_sources(layers)[self.first :]

    def forward(self, *crossing: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = dict(zip(self.crossing, crossing))
        x = crossing[-1]
        for offset, m in enumerate(self.layers):
            x = m(_gather(outputs, self.sources[offset], m.f))
            outputs[self.first + offset] = x
        return x


def _gather(outputs: dict[int, torch.Tensor], sources: list[int], f) -> torch.Tensor | list[torch.Tensor]:
    # a layer with an int ``f`` takes one tensor, one with a list takes a list (Concat, Detect)
    return outputs[sources[0]] if isinstance(f, int) else [outputs[j] for j in sources]


@dataclass(frozen=True)
class SplitPair:
    """One exported cut: head and tail ONNX files and what crosses between them."""

    key: str
    split_after: int
    crossing: tuple[int, ...]
    crossing_shapes: tuple[tuple[int, ...], ...]
    head_path: Path
    tail_path: Path
    pair_id: str
    input_hw: tuple[int, int]


def tensor_names(prefix: str, crossing: tuple[int, ...] | list[int]) -> list[str]:
    """ONNX names of the crossing tensors, one per crossing layer (``feat4``, ``feat6``, ...)."""
    return [f"{prefix}{i}" for i in crossing]


def export_split(model: nn.Module, split_after: int, out_dir: str | Path, imgsz: int, source_sha256: str,
                 key: str = "", wrap_head: Wrapper | None = None, wrap_tail: Wrapper | None = None,
                 variant: str = "") -> SplitPair:
    """Write ``<key>.head.onnx`` and ``<key>.tail.onnx``; wrappers add an encoder/decoder (learned bottleneck)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = key or f"after{split_after}"
    head = SplitHead(model.model, split_after).eval()
    tail = SplitTail(model.model, split_after).eval()
    if wrap_head is not None:
        head = wrap_head(head).eval()
    if wrap_tail is not None:
        tail = wrap_tail(tail).eval()
    crossing = tuple(crossing_layers(model.model, split_after))
    image = torch.zeros(1, 3, imgsz, imgsz)
    with torch.no_grad():
        feats = head(image)
    names = tensor_names("feat", crossing)
    pair_id = hashlib.sha256(f"{source_sha256}:{split_after}:{variant}:{SPLIT_FORMAT_VERSION}".encode()).hexdigest()[:16]
    meta = {**_ultralytics_metadata(model, imgsz), "split_after": str(split_after), "crossing": str(list(crossing)),
            "pair_id": pair_id, "split_key": key, "split_format": str(SPLIT_FORMAT_VERSION)}
    head_path, tail_path = out_dir / f"{key}.head.onnx", out_dir / f"{key}.tail.onnx"
    _export(head, (image,), head_path, ["images"], names, {**meta, "role": "head"})
    _export(tail, tuple(feats), tail_path, names, ["output0"], {**meta, "role": "tail"})
    shapes = tuple(tuple(int(d) for d in f.shape) for f in feats)
    log.info("split %s: %d crossing tensors %s -> %s, %s", key, len(feats), shapes, head_path.name, tail_path.name)
    return SplitPair(key, split_after, crossing, shapes, head_path, tail_path, pair_id, (imgsz, imgsz))


def _ultralytics_metadata(model: nn.Module, imgsz: int) -> dict[str, str]:
    """The metadata keys ``endpoint.model.detector`` reads from an ultralytics export."""
    return {"task": "detect", "stride": str(int(max(model.stride))), "imgsz": str([imgsz, imgsz]),
            "names": str(dict(model.names)), "end2end": "False", "batch": "1"}


def _export(module: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
            output_names: list[str], metadata: dict[str, str]) -> None:
    import onnx
    import onnxslim
    from ultralytics.utils.export.engine import best_onnx_opset

    # the same opset choice, exporter and simplifier as ultralytics' ONNX export, so the numerics match it
    torch.onnx.export(module, inputs, str(path), opset_version=best_onnx_opset(onnx), input_names=input_names,
                      output_names=output_names, dynamo=False)
    proto = onnxslim.slim(onnx.load(str(path)))
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    if getattr(proto, "ir_version", 0) > 10:
        proto.ir_version = 10  # as ultralytics does, for onnxruntime compatibility
    onnx.save(proto, str(path))


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, hex."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


__all__ = ["SplitHead", "SplitPair", "SplitTail", "crossing_layers", "export_split", "file_sha256",
           "layer_sources", "load_fused_model", "split_points", "tensor_names"]
