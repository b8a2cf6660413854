"""Run an ultralytics YOLO detector exported to ONNX (FP32 or INT8 QDQ) with onnxruntime alone."""

from __future__ import annotations

import ast
import hashlib
import logging
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from endpoint.model.detections import Detections
from endpoint.model.letterbox import ModelInputBuffer, PreparedFrame, boxes_to_source, prepare_frame
from endpoint.model.nms import end2end_filter, non_max_suppression

log = logging.getLogger(__name__)

# ultralytics' predict defaults (cfg/default.yaml: conf 0.25 for predict, iou 0.7, max_det 300)
DEFAULT_CONF_THRESHOLD = 0.25
DEFAULT_IOU_THRESHOLD = 0.7
DEFAULT_MAX_DET = 300
_FLOAT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_MAX_BOUND_OUTPUT_ELEMENTS = 1 << 26  # a larger declared output is left to onnxruntime to allocate, if it can


class ModelLoadError(ValueError):
    """The file is not an ONNX YOLO detector this endpoint can run; the text says why."""


class OnnxDetector:
    """Letterbox, run the ONNX graph, NMS, map boxes back: the same steps as ``YOLO(onnx).predict``.

    ``threads`` caps onnxruntime's intra-op threads (None: its default, one per physical core).
    """

    def __init__(self, path: str | Path, conf_threshold: float = DEFAULT_CONF_THRESHOLD,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD, max_det: int = DEFAULT_MAX_DET,
                 providers: Sequence[str] | None = None, threads: int | None = None):
        self._path = Path(path)
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.max_det = max_det
        try:
            model_bytes = self._path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model file {self._path}: {exc}") from None
        # hash the very bytes the session is built from, so the hash names what runs
        self._sha256 = hashlib.sha256(model_bytes).hexdigest()
        self._session = _open_session(self._path, model_bytes, providers, threads)
        meta = read_yolo_metadata(self._path, self._session)
        self._class_names: tuple[str, ...] = meta["names"]
        self._input_hw: tuple[int, int] = meta["imgsz"]
        self._stride: int = meta["stride"]
        self._end2end: bool = meta["end2end"]
        self._input_name, self._input_dtype = _check_input(self._path, self._session, self._input_hw)
        self._output_name = _check_output(self._path, self._session, len(self._class_names), self._end2end)
        self._input = ModelInputBuffer(self._input_hw, self._input_dtype)
        self._output, self._binding = _bind_buffers(self._session, self._input_name, self._input.tensor,
                                                    self._output_name)
        self._bound_input = self._input.tensor  # what the binding reads; held so that it outlives the binding
        self._lock = threading.Lock()  # input and output tensors are reused: one frame in them at a time
        log.info("loaded %s (sha256 %s…, input %s, %d classes, end2end=%s)", self._path.name, self._sha256[:12],
                 self._input_hw, len(self._class_names), self._end2end)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session detect() runs (benchmarks time it bare)."""
        return self._session

    @property
    def input_name(self) -> str:
        return self._input_name

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input (height, width) in pixels."""
        return self._input_hw

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names indexed by class id."""
        return self._class_names

    @property
    def stride(self) -> int:
        return self._stride

    @property
    def end2end(self) -> bool:
        return self._end2end

    def prepare(self, image_bgr: np.ndarray) -> PreparedFrame:
        """``image_bgr`` letterboxed into a new input tensor; thread-safe, so a capture thread can run it while
        ``detect`` works on the previous frame."""
        return prepare_frame(image_bgr, self._input_hw, self._input_dtype)

    def detect(self, image_bgr: np.ndarray | PreparedFrame) -> Detections:
        """Detections in ``image_bgr`` (HxWx3 uint8, or ``prepare``'s result), boxes in its pixels."""
        with self._lock:
            if not isinstance(image_bgr, PreparedFrame):
                tensor, geo = self._input.write(image_bgr)
            elif image_bgr.tensor.shape == self._input.tensor.shape and image_bgr.tensor.dtype == self._input_dtype:
                tensor, geo = image_bgr.tensor, image_bgr.geometry
            else:  # prepared for a model of another input, swapped out since
                tensor, geo = self._input.write(image_bgr.image)
            raw = np.asarray(self._run(tensor), dtype=np.float32)
            # both filters copy what they keep, so the reused output may be overwritten by the next frame
            if self._end2end:
                xyxy, conf, cls = end2end_filter(raw[0], self.conf_threshold, self.max_det)
            else:
                xyxy, conf, cls = non_max_suppression(raw[0], self.conf_threshold, self.iou_threshold, self.max_det,
                                                      nc=len(self._class_names))
        if not len(conf):
            return Detections.empty()
        return Detections(boxes_to_source(xyxy, geo), conf, cls)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        """The raw head output for ``tensor``; the caller holds the lock (the output buffer is reused)."""
        if self._binding is None:
            (raw,) = self._session.run([self._output_name], {self._input_name: tensor})
            return raw
        if tensor is not self._bound_input:  # a prepared frame's own tensor, or back to ours after one
            self._binding.bind_cpu_input(self._input_name, tensor)
            self._bound_input = tensor
        self._session.run_with_iobinding(self._binding)
        return self._output


def session_options(threads: int | None = None) -> ort.SessionOptions:
    """CPU session options: every graph optimization (it fuses INT8 QDQ pairs into QLinear kernels)."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # onnxruntime warns about QDQ fusions on every load; keep our logs readable
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def _bind_buffers(session: ort.InferenceSession, input_name: str, tensor: np.ndarray,
                  output_name: str) -> tuple[np.ndarray | None, ort.IOBinding | None]:
    """Bind the reused input tensor and a preallocated output, so a frame allocates nothing in onnxruntime.

    (None, None) when the output shape is not fixed; detect() then lets session.run allocate it.
    """
    out = next(o for o in session.get_outputs() if o.name == output_name)
    dtype = _FLOAT_DTYPES.get(out.type)
    if dtype is None or not all(isinstance(d, int) and d > 0 for d in out.shape):
        return None, None
    if int(np.prod(out.shape, dtype=np.int64)) > _MAX_BOUND_OUTPUT_ELEMENTS:
        return None, None
    output = np.empty(out.shape, dtype=dtype)
    binding = session.io_binding()
    binding.bind_cpu_input(input_name, tensor)
    binding.bind_output(output_name, "cpu", 0, dtype, list(out.shape), output.ctypes.data)
    return output, binding


def _open_session(path: Path, model_bytes: bytes, providers: Sequence[str] | None,
                  threads: int | None) -> ort.InferenceSession:
    options = session_options(threads)
    try:
        return ort.InferenceSession(model_bytes, sess_options=options,
                                    providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad protobufs and graphs
        raise ModelLoadError(f"{path} is not a loadable ONNX model: {str(exc).strip()[:300]}") from None


def read_yolo_metadata(path: Path, session: ort.InferenceSession) -> dict:
    """Parse the metadata ultralytics writes into ``metadata_props`` (values are Python literals)."""
    props = session.get_modelmeta().custom_metadata_map
    missing = [k for k in ("imgsz", "names") if k not in props]
    if missing:
        raise ModelLoadError(f"{path} is ONNX but not an ultralytics YOLO export: metadata lacks {missing} "
                             f"(has {sorted(props)})")
    task = props.get("task", "detect")
    if task != "detect":
        raise ModelLoadError(f"{path} is an ultralytics {task!r} model; only 'detect' models are supported")
    try:
        names = ast.literal_eval(props["names"])
        imgsz = ast.literal_eval(props["imgsz"])
        stride = int(props.get("stride", "32"))
        end2end = ast.literal_eval(props.get("end2end", "False"))
        args = ast.literal_eval(props.get("args", "{}"))
    except (ValueError, SyntaxError) as exc:
        raise ModelLoadError(f"{path} has unreadable ultralytics metadata: {exc}") from None
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))) or not names:
        raise ModelLoadError(f"{path}: metadata 'names' must map class ids 0..n-1 to names, got {names!r}")
    if isinstance(imgsz, int):
        imgsz = [imgsz, imgsz]
    if not (isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) and v > 0 for v in imgsz)):
        raise ModelLoadError(f"{path}: metadata 'imgsz' must be [height, width], got {imgsz!r}")
    # an export with nms=True carries its NMS inside the graph and so behaves like an end-to-end head
    end2end = bool(end2end) or bool(isinstance(args, dict) and args.get("nms"))
    return {"names": tuple(str(names[i]) for i in range(len(names))), "imgsz": (imgsz[0], imgsz[1]),
            "stride": stride, "end2end": end2end}


def _check_input(path: Path, session: ort.InferenceSession, input_hw: tuple[int, int]) -> tuple[str, type]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(f"{path}: expected one image input, found {[i.name for i in inputs]}")
    inp = inputs[0]
    if inp.type not in _FLOAT_DTYPES:
        raise ModelLoadError(f"{path}: input {inp.name!r} is {inp.type}; a float image tensor was expected")
    shape = inp.shape
    if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
        raise ModelLoadError(f"{path}: input {inp.name!r} has shape {shape}; expected (1, 3, H, W)")
    fixed_hw = [d for d in shape[2:] if isinstance(d, int)]
    if len(fixed_hw) == 2 and tuple(fixed_hw) != input_hw:
        raise ModelLoadError(f"{path}: input is {tuple(fixed_hw)} but metadata imgsz says {input_hw}")
    return inp.name, _FLOAT_DTYPES[inp.type]


def _check_output(path: Path, session: ort.InferenceSession, nc: int, end2end: bool) -> str:
    out = session.get_outputs()[0]
    shape = out.shape
    if len(shape) != 3:
        raise ModelLoadError(f"{path}: output {out.name!r} has shape {shape}; a detect head gives 3 dims")
    if end2end and isinstance(shape[2], int) and shape[2] < 6:
        raise ModelLoadError(f"{path}: end-to-end output {shape} needs (1, N, 6) rows of x1 y1 x2 y2 conf cls")
    if not end2end and isinstance(shape[1], int) and shape[1] != 4 + nc:
        raise ModelLoadError(f"{path}: output {shape} does not fit {nc} classes; a detect head gives "
                             f"(1, {4 + nc}, N) (segment/pose exports are not supported)")
    return out.name
