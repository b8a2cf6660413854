"""Profile each cut: head and tail FLOPs, measured head and tail ms on this CPU, and bytes that cross it.

The crossing bytes are float32 and compared with the model's input image as uint8: early
feature maps are larger than the image (data amplification), so an early cut sends more
than the frame itself unless the features are compressed.
"""

from __future__ import annotations

import copy
import logging
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from edge.split.split_model import SplitPair, layer_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitProfile:
    """Cost of one cut (``split_after``): compute on each side and the raw size of what crosses."""

    key: str
    split_after: int
    head_gflops: float
    tail_gflops: float
    head_ms: float  # median on this CPU: letterbox + head ONNX
    tail_ms: float  # median on this CPU: tail ONNX + NMS
    crossing_shapes: tuple[tuple[int, ...], ...]
    crossing_bytes_fp32: int
    input_bytes_uint8: int  # the letterboxed model input, 3 x H x W bytes

    @property
    def amplification(self) -> float:
        """Crossing float32 bytes per byte of the uint8 input image (> 1: the cut sends more than the frame)."""
        return self.crossing_bytes_fp32 / self.input_bytes_uint8


def layer_gflops(model: nn.Module, imgsz: int) -> list[float]:
    """GFLOPs of each top-level layer at ``imgsz`` (thop MACs x 2, as ultralytics reports them)."""
    import thop

    layers = copy.deepcopy(model.model)  # thop hooks and buffers stay off the model that gets exported
    sources = layer_sources(layers)
    outputs: dict[int, torch.Tensor] = {-1: torch.zeros(1, 3, imgsz, imgsz)}
    gflops = []
    with torch.no_grad():
        for i, m in enumerate(layers):
            x = outputs[sources[i][0]] if isinstance(m.f, int) else [outputs[j] for j in sources[i]]
            # Detect edits its input list in place; profile a copy so the real run below sees clean inputs
            probe = list(x) if isinstance(x, list) else x
            macs = thop.profile(m, inputs=[probe], verbose=False)[0]
            gflops.append(2.0 * macs / 1e9)
            outputs[i] = m(x)
    return gflops


def median_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def profile_pair(pair: SplitPair, gflops: Sequence[float], images: Sequence[np.ndarray], runs: int = 20,
                 threads: int = 1) -> SplitProfile:
    """Measure one exported pair on this CPU with onnxruntime (``threads`` per session), over ``images`` in turn."""
    from edge.split.tail_runner import SplitTailRunner
    from endpoint.model.split_halves import SplitHeadRunner

    head, tail = SplitHeadRunner(pair.head_path, threads), SplitTailRunner(pair.tail_path, threads)
    feats = [head.run(im) for im in images]
    counter = iter(range(10**9))

    def run_head():
        head.run(images[next(counter) % len(images)])

    def run_tail():
        tensors, geo = feats[next(counter) % len(feats)]
        tail.detect(tensors, geo.source_hw)

    h, w = pair.input_hw
    return SplitProfile(
        key=pair.key, split_after=pair.split_after,
        head_gflops=float(sum(gflops[: pair.split_after + 1])), tail_gflops=float(sum(gflops[pair.split_after + 1 :])),
        head_ms=median_ms(run_head, runs), tail_ms=median_ms(run_tail, runs),
        crossing_shapes=pair.crossing_shapes,
        crossing_bytes_fp32=int(sum(4 * np.prod(s) for s in pair.crossing_shapes)),
        input_bytes_uint8=3 * h * w)


def profile_table(profiles: Sequence[SplitProfile]) -> str:
    """A plain-text table of cut profiles, for logs and the docs."""
    rows = [f"{'split':<14}{'head GFLOPs':>12}{'tail GFLOPs':>12}{'head ms':>9}{'tail ms':>9}{'crossing B':>12}"
            f"{'ampl.':>7}  shapes"]
    for p in profiles:
        shapes = " ".join("x".join(str(d) for d in s[1:]) for s in p.crossing_shapes)
        rows.append(f"{p.key:<14}{p.head_gflops:>12.4f}{p.tail_gflops:>12.4f}{p.head_ms:>9.2f}{p.tail_ms:>9.2f}"
                    f"{p.crossing_bytes_fp32:>12}{p.amplification:>7.2f}  {shapes}")
    return "\n".join(rows)


__all__ = ["SplitProfile", "layer_gflops", "median_ms", "profile_pair", "profile_table"]
