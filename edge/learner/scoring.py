"""mAP of the exact files endpoints run, on each endpoint's held-out frames, cached per (endpoint, domain, file)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from edge.map_metric import MapResult
from edge.registry import ModelRegistry
from edge.yolo_dataset import LabelledImage

log = logging.getLogger(__name__)

AGREEMENT_FRAMES = 16


class Scorer:
    """Scores registry versions and files on held-out sets; results are cached, files never change."""

    def __init__(self, registry: ModelRegistry, student_name: str, work_dir: Path, imgsz: int,
                 teacher_label_conf: float):
        self.registry, self.student_name = registry, student_name
        self.work_dir, self.imgsz, self.teacher_label_conf = work_dir, imgsz, teacher_label_conf
        self._files: dict[tuple[str, str, str], MapResult] = {}
        self._teacher: dict[tuple[str, str, str], float] = {}

    def deployed_file(self, version: str) -> Path:
        """The registry's bytes of ``version`` as a local file (what the endpoint runs, byte for byte)."""
        path = self.work_dir / "deployed" / f"{version}.onnx"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(self.registry.get(self.student_name, version).model_bytes)
            tmp.replace(path)
        return path

    def forget(self, keep_versions: set[str], teacher_pt: Path) -> None:
        """Drop the local copies and scores of versions outside ``keep_versions``, and the scores of earlier
        teachers: a version scored again is fetched again, and one no endpoint runs or is due is seldom scored."""
        dropped = {path for path in (self.work_dir / "deployed").glob("*.onnx") if path.stem not in keep_versions}
        for path in dropped:
            path.unlink(missing_ok=True)
        dropped_names = {str(path) for path in dropped}
        self._files = {key: value for key, value in self._files.items() if key[2] not in dropped_names}
        self._teacher = {key: value for key, value in self._teacher.items() if key[2] == str(teacher_pt)}

    def version(self, endpoint_id: str, domain: str, items: Sequence[LabelledImage], version: str) -> MapResult:
        return self.file(endpoint_id, domain, items, self.deployed_file(version))

    def file(self, endpoint_id: str, domain: str, items: Sequence[LabelledImage], path: Path) -> MapResult:
        from edge.evaluate import evaluate_onnx

        key = (endpoint_id, domain, str(path))
        if key not in self._files:
            self._files[key] = evaluate_onnx(path, items)
        return self._files[key]

    def teacher(self, endpoint_id: str, val_sets: dict[str, list[LabelledImage]], teacher_pt: Path) -> dict[str, float]:
        """The teacher on each domain the endpoint has held-out frames of."""
        from edge.evaluate import evaluate_pt

        out = {}
        for domain, items in val_sets.items():
            key = (endpoint_id, domain, str(teacher_pt))
            if key not in self._teacher:
                self._teacher[key] = evaluate_pt(teacher_pt, items, self.imgsz).map50_95
            out[domain] = self._teacher[key]
        return out

    def agreement(self, version: str, teacher_pt: Path, images: Sequence[bytes]) -> float | None:
        """Label-free: the deployed student against the teacher's pseudo-labels on uploaded frames."""
        from edge.evaluate import agreement

        if not images or not version:
            return None
        result = agreement(self.deployed_file(version), teacher_pt, list(images[:AGREEMENT_FRAMES]), self.imgsz,
                           self.teacher_label_conf)
        return None if result is None else result.map50_95
