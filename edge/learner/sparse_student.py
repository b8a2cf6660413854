"""A sparsely trained student ships on its parent's INT8 grid: only the weights it trained change, so the push is a
small delta. The round copies the student it started from to ``SPARSE_BASE`` beside its run."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.learner.setup import STUDENT_NAME
from edge.learning_config import LearningConfig
from edge.registry import ModelRegistry

log = logging.getLogger(__name__)

SPARSE_BASE = "sparse-base.pt"  # the student a sparse round started from, beside the round's run


def sparse_int8_student(registry: ModelRegistry, cfg: LearningConfig, latest, fp32: Path, fresh: Path,
                        run_dir: Path) -> tuple[Path, float]:
    """A sparsely trained student keeps its parent's (``latest``) INT8 weights where they hold (``fresh``, the
    student quantized afresh, may lend activation scales); returns what to ship and the fraction trained (1.0:
    dense)."""
    from edge.export import export_onnx
    from edge.sparse_quantize import requantize_like

    base_pt = run_dir / SPARSE_BASE
    if cfg.sparse_fraction is None or not base_pt.exists() or cfg.student_precision != "int8":
        return fresh, 1.0
    if latest is None or latest.format != "onnx-int8":
        log.warning("no INT8 parent registered; the sparse student ships quantized afresh")
        return fresh, cfg.sparse_fraction
    base_int8 = run_dir / "sparse-base.int8.onnx"
    base_int8.write_bytes(registry.get(STUDENT_NAME, latest.version).model_bytes)
    base_fp32 = export_onnx(base_pt, run_dir / "sparse-base.onnx", cfg.imgsz)
    shipped = run_dir / "student-sparse.onnx"
    try:
        requantize_like(base_int8, base_fp32, fp32, shipped, cfg.sparse_overflow,
                        template_int8=fresh if cfg.sparse_activation_scales == "fresh" else None)
    except ValueError as exc:  # a parent of another shape
        log.warning("keeping %s's INT8 weights failed (%s); the student ships quantized afresh", latest.version, exc)
        return fresh, cfg.sparse_fraction
    return shipped, cfg.sparse_fraction


__all__ = ["SPARSE_BASE", "sparse_int8_student"]
