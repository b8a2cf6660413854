"""The halves of a split detector: their metadata, and the head (letterbox, ONNX head, the crossing tensors out).

In ``model`` because both sides open these files: the endpoint runs the head, the edge runs the tail and
measures the head it ships.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from endpoint.model.detector import ModelLoadError, read_yolo_metadata, session_options
from endpoint.model.letterbox import LetterboxGeometry, to_model_input

log = logging.getLogger(__name__)


class SplitModelError(ModelLoadError):
    """The file is not a head or tail written by ``edge.split``; the text says why."""


@dataclass(frozen=True)
class SplitMetadata:
    """What ``edge.split.split_model.export_split`` writes into both halves of a pair."""

    role: str  # "head" or "tail"
    pair_id: str  # the same in a head and the tail it belongs to
    split_key: str
    split_after: int
    input_hw: tuple[int, int]
    class_names: tuple[str, ...]


def open_session(path: str | Path, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session with the detector's options (``threads`` 0: onnxruntime's default)."""
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(threads or None),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises untyped errors for unreadable files
        raise SplitModelError(f"{path} is not a loadable ONNX model: {str(exc).strip()[:300]}") from None


def read_split_metadata(path: str | Path, session: ort.InferenceSession) -> SplitMetadata:
    """Parse the split metadata of a session; raise SplitModelError when the file is no split half."""
    props = session.get_modelmeta().custom_metadata_map
    missing = [k for k in ("role", "pair_id", "split_key", "split_after", "imgsz", "names") if k not in props]
    if missing:
        raise SplitModelError(f"{path} is not a split model half: metadata lacks {missing}")
    try:
        split_after = int(props["split_after"])
        yolo = read_yolo_metadata(Path(path), session)  # input size and names, read as the detector reads them
    except (ValueError, ModelLoadError) as exc:
        raise SplitModelError(f"{path} has unreadable split metadata: {exc}") from None
    return SplitMetadata(role=props["role"], pair_id=props["pair_id"], split_key=props["split_key"],
                         split_after=split_after, input_hw=yolo["imgsz"], class_names=yolo["names"])


def open_split_half(path: Path, role: str, threads: int = 0):
    """An onnxruntime session of one half of a split model and its metadata; refuses the other half."""
    session = open_session(path, threads)
    meta = read_split_metadata(path, session)
    if meta.role != role:
        raise SplitModelError(f"{path} is a split {meta.role}, not a {role}")
    return session, meta


class SplitHeadRunner:
    """The endpoint half: a BGR frame in, the tensors that cross the cut out (float32, NCHW)."""

    def __init__(self, path: str | Path, threads: int = 0):
        self.path = Path(path)
        self._session, self.meta = open_split_half(self.path, "head", threads)
        self._input_name = self._session.get_inputs()[0].name
        self.output_names = [o.name for o in self._session.get_outputs()]
        log.info("split head %s (pair %s, after layer %d, %d crossing tensors)", self.path.name, self.meta.pair_id,
                 self.meta.split_after, len(self.output_names))

    def run(self, image_bgr: np.ndarray) -> tuple[list[np.ndarray], LetterboxGeometry]:
        """The crossing tensors of one frame, and where the frame landed in the model input."""
        tensor, geo = to_model_input(image_bgr, self.meta.input_hw)
        return self.run_tensor(tensor), geo

    def run_tensor(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The crossing tensors of an already letterboxed 1x3xHxW input."""
        return [np.asarray(t, dtype=np.float32) for t in self._session.run(None, {self._input_name: tensor})]


__all__ = ["SplitHeadRunner", "SplitMetadata", "SplitModelError", "open_session", "open_split_half",
           "read_split_metadata"]
