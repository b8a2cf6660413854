"""Export a student .pt to ONNX for the endpoint, quantize it to INT8, and compare the two."""

from __future__ import annotations

import logging
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import onnx

from edge.dfl_rewrite import rewrite_dfl_softmax
from edge.evaluate import decode_image, evaluate_onnx
from edge.map_metric import MapResult
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)


def export_onnx(student_pt: str | Path, out_path: str | Path, imgsz: int) -> Path:
    """A fixed-size, simplified ONNX of the student (raw head output; NMS runs on the endpoint)."""
    from edge.training import ultralytics_yolo

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # ultralytics writes the .onnx beside the .pt; export a private copy so nothing beside the
    # caller's .pt (a cache shared with others, say) is overwritten or moved away.
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export-") as tmp:
        private_pt = Path(tmp) / Path(student_pt).name
        shutil.copyfile(student_pt, private_pt)
        model = ultralytics_yolo()(str(private_pt))
        written = model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, half=False, nms=False,
                               device="cpu", verbose=False)
        shutil.move(str(written), out_path)
    model = onnx.load(str(out_path))
    if rewrite_dfl_softmax(model):  # exact, and faster on onnxruntime; see edge.dfl_rewrite
        onnx.save(model, str(out_path))
    log.info("exported %s -> %s (%d bytes)", Path(student_pt).name, out_path, out_path.stat().st_size)
    return out_path


def quantize_student(fp32_onnx: str | Path, out_path: str | Path, calibration_images: Sequence[np.ndarray | bytes],
                     imgsz: int) -> Path:
    """INT8 QDQ copy of ``fp32_onnx`` calibrated on uploaded frames (arrays or JPEG bytes)."""
    from edge.quantize import quantize_int8

    images = [decode_image(im) for im in calibration_images]
    return quantize_int8(fp32_onnx, out_path, images, imgsz)


def student_for_endpoint(fp32_onnx: str | Path, out_path: str | Path, calibration_images: Sequence[np.ndarray | bytes],
                         imgsz: int, precision: str = "int8") -> tuple[Path, Literal["onnx-int8", "onnx-fp32"]]:
    """Write what an endpoint runs to ``out_path`` (the INT8 copy, or the FP32 export for 'fp32'); return it and its
    registry format."""
    if precision == "fp32":
        shutil.copyfile(fp32_onnx, out_path)
        return Path(out_path), "onnx-fp32"
    if precision != "int8":
        raise ValueError(f"precision must be 'int8' or 'fp32', got {precision!r}")
    return quantize_student(fp32_onnx, out_path, calibration_images, imgsz), "onnx-int8"


@dataclass(frozen=True)
class ModelMeasurement:
    """Size, CPU latency (median of ``runs`` full detect calls) and mAP of one ONNX file."""

    path: Path
    size_bytes: int
    latency_ms_median: float
    runs: int
    map: MapResult | None


@dataclass(frozen=True)
class Fp32Int8Comparison:
    fp32: ModelMeasurement
    int8: ModelMeasurement

    def table(self) -> str:
        """A small text table for logs and reports."""
        rows = [f"{'model':<6}{'bytes':>12}{'latency_ms':>12}{'mAP50':>8}{'mAP50-95':>10}"]
        for name, m in (("fp32", self.fp32), ("int8", self.int8)):
            map50 = f"{m.map.map50:.3f}" if m.map else "-"
            map50_95 = f"{m.map.map50_95:.3f}" if m.map else "-"
            rows.append(f"{name:<6}{m.size_bytes:>12}{m.latency_ms_median:>12.2f}{map50:>8}{map50_95:>10}")
        return "\n".join(rows)


def measure_latency_ms(onnx_path: str | Path, image: np.ndarray, runs: int = 50, warmup: int = 5) -> float:
    """Median wall time of ``OnnxDetector.detect`` (letterbox, inference, NMS) on this CPU, in milliseconds."""
    from endpoint.model.detector import OnnxDetector

    detector = OnnxDetector(onnx_path)
    for _ in range(warmup):
        detector.detect(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        detector.detect(image)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def measure(onnx_path: str | Path, items: Sequence[LabelledImage], runs: int = 50) -> ModelMeasurement:
    """Bytes, latency on the first item's image, and mAP on ``items`` (no mAP when there are none)."""
    path = Path(onnx_path)
    if not items:
        raise ValueError("measure needs at least one image for the latency run")
    latency = measure_latency_ms(path, decode_image(items[0].image), runs)
    result = evaluate_onnx(path, items) if any(len(i.classes) for i in items) else None
    return ModelMeasurement(path, path.stat().st_size, latency, runs, result)


def compare_fp32_int8(fp32_onnx: str | Path, int8_onnx: str | Path, items: Sequence[LabelledImage],
                      runs: int = 50) -> Fp32Int8Comparison:
    """FP32 vs INT8 of the same student: bytes, median latency over ``runs``, mAP on ``items``."""
    comparison = Fp32Int8Comparison(measure(fp32_onnx, items, runs), measure(int8_onnx, items, runs))
    log.info("fp32 vs int8:\n%s", comparison.table())
    return comparison


__all__ = ["Fp32Int8Comparison", "ModelMeasurement", "compare_fp32_int8", "export_onnx", "measure",
           "measure_latency_ms", "quantize_student", "student_for_endpoint"]
