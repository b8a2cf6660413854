"""Delta size and decode time for a real INT8 student with k % of its INT8 weight values moved.

``python -m pipelines.bench_delta``: for each fraction, the delta with patches, the delta that sends every
changed tensor whole (patches off), the full file, and the endpoint's decode time (median of a few applies).
The student is the tests' tiny YOLO quantized as the edge quantizes students (cached), or ``--model``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CACHE_DIR = Path("edgeloop-data/cache/bench-delta")
FRACTIONS_PCT = (1, 5, 10, 20, 100)
DECODES = 5


@dataclass(frozen=True)
class DeltaRow:
    """One fraction's measurement."""

    changed_pct: float
    changed_values: int
    whole_tensor_delta_bytes: int
    delta_bytes: int
    full_bytes: int
    decode_ms: float
    encode_s: float


def int8_weights(model) -> list:
    """The model's INT8 weight initializers, largest first."""
    import onnx

    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.raw_data) >= 64]
    return sorted(weights, key=lambda t: len(t.raw_data), reverse=True)


def sparse_int8_child(src: Path, dst: Path, fraction: float, tensor_count: int | None = 1, seed: int = 0,
                      random_values: bool = False) -> int:
    """Move ``fraction`` of the INT8 values of the ``tensor_count`` largest weights (all if None) by a few steps, as
    a small update requantized on the parent's scales does (or to random values); return how many changed."""
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    model = onnx.load(str(src))
    changed = 0
    for tensor in int8_weights(model)[:tensor_count]:
        values = numpy_helper.to_array(tensor).copy()
        flat = values.reshape(-1)
        picked = np.flatnonzero(rng.random(flat.size) < fraction)
        if random_values:
            moved = rng.integers(-127, 128, picked.size).astype(np.int8)
        else:
            steps = np.rint(rng.normal(0.0, 1.5, picked.size)).astype(np.int16)
            steps[steps == 0] = 1
            moved = np.clip(flat[picked].astype(np.int16) + steps, -127, 127).astype(np.int8)
        changed += int((moved != flat[picked]).sum())
        flat[picked] = moved
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(dst))
    return changed


def measure(parent_path: Path, fractions_pct=FRACTIONS_PCT, random_values: bool = False) -> list[DeltaRow]:
    """One row per fraction of every INT8 weight changed; each delta is checked to rebuild the file."""
    from edge.delta_encode import encode_delta_with_stats
    from endpoint.wire.delta import apply_delta

    parent = Path(parent_path).read_bytes()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pct in fractions_pct:
            child = Path(tmp) / f"child-{pct}.onnx"
            changed = sparse_int8_child(parent_path, child, pct / 100, tensor_count=None, random_values=random_values)
            new = child.read_bytes()
            started = time.perf_counter()
            delta, _ = encode_delta_with_stats(parent, new)
            encode_s = time.perf_counter() - started
            whole, _ = encode_delta_with_stats(parent, new, patches=False)
            times_ms = []
            for _ in range(DECODES):
                started = time.perf_counter()
                rebuilt = apply_delta(parent, delta, len(new))
                times_ms.append((time.perf_counter() - started) * 1e3)
            if hashlib.sha256(rebuilt).digest() != hashlib.sha256(new).digest():
                raise AssertionError(f"the {pct} % delta does not rebuild the file")
            rows.append(DeltaRow(pct, changed, len(whole), len(delta), len(new), statistics.median(times_ms), encode_s))
    return rows


def student_int8(cache_dir: Path = CACHE_DIR) -> Path:
    """The tests' tiny YOLO quantized to INT8 as students are (built once, then read from the cache)."""
    from edge.quantize import quantize_int8
    from endpoint.sources.scenario import SyntheticScenario
    from pipelines.fuzz_models import tiny_yolo

    tiny = tiny_yolo()
    out = Path(cache_dir) / f"tiny-{tiny.settings.key()}.int8.onnx"
    if not out.exists():
        calibration = [SyntheticScenario().frame("day", 300_000 + i).image for i in range(8)]
        staged = quantize_int8(tiny.onnx, out.with_name(f"{out.stem}.{os.getpid()}.tmp.onnx"), calibration, tiny.imgsz)
        staged.replace(out)  # whole or absent, if two runs race
    return out


def rows_table(rows: list[DeltaRow], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("changed %", "changed values", "whole-tensor delta B", "delta B", "delta / whole", "full B",
                "delta / full", "decode ms", "encode s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r.changed_pct:g}", f"{r.changed_values:,}", f"{r.whole_tensor_delta_bytes:,}",
                      f"{r.delta_bytes:,}", f"{r.delta_bytes / r.whole_tensor_delta_bytes:.3f}", f"{r.full_bytes:,}",
                      f"{r.delta_bytes / r.full_bytes:.3f}", f"{r.decode_ms:.1f}", f"{r.encode_s:.2f}")
    return table


def add_delta_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="delta: an INT8 ONNX student (default: the tests' tiny YOLO)")
    parser.add_argument("--random-values", action="store_true",
                        help="delta: changed values are random, not a few steps")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_delta_arguments(parser)
    logging.basicConfig(level=logging.WARNING)
    return run_bench_delta(parser.parse_args(argv))


def run_bench_delta(args: argparse.Namespace) -> int:
    from rich.console import Console

    model = Path(args.model) if args.model else student_int8()
    rows = measure(model, random_values=args.random_values)
    kind = "random values" if args.random_values else "moved a few steps"
    Console(width=160).print(rows_table(rows, f"deltas for {model.name}: k % of every INT8 weight {kind}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
