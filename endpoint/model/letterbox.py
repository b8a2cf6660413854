"""Letterbox resize exactly as ultralytics' ``LetterBox`` does it, the input tensor, and the way back."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PADDING_VALUE = 114  # ultralytics pads with this grey; a different value shifts the model's outputs
MAX_INPUT_SIDE_PX = 4096  # bounds the preallocated input tensor; detectors run far below this
_PIXEL_MAX = np.float32(255.0)
# every uint8 value over 255 in float32, the very quotients np.divide gives: cv2.LUT then converts a plane in one pass
PIXEL_TO_UNIT = np.arange(256, dtype=np.float32) / _PIXEL_MAX


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where a source image landed inside the model input; all sizes in pixels."""

    source_hw: tuple[int, int]
    input_hw: tuple[int, int]
    resized_wh: tuple[int, int]
    pad_left: int
    pad_top: int

    @property
    def gain_xy(self) -> tuple[float, float]:
        # per-axis gain from the rounded size, as ultralytics' scale_boxes computes it
        return self.resized_wh[0] / self.source_hw[1], self.resized_wh[1] / self.source_hw[0]


def letterbox_geometry(source_hw: tuple[int, int], input_hw: int | tuple[int, int],
                       scaleup: bool = True) -> LetterboxGeometry:
    """Scale, rounding and centred padding of ultralytics' LetterBox (auto=False, center=True)."""
    if isinstance(input_hw, int):
        input_hw = (input_hw, input_hw)
    h, w = int(source_hw[0]), int(source_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    r = min(input_hw[0] / h, input_hw[1] / w)
    if not scaleup:
        r = min(r, 1.0)
    # builtin round (banker's) on purpose: it is what ultralytics uses
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = (input_hw[1] - new_w) / 2, (input_hw[0] - new_h) / 2
    return LetterboxGeometry(source_hw=(h, w), input_hw=(int(input_hw[0]), int(input_hw[1])),
                             resized_wh=(new_w, new_h), pad_left=round(dw - 0.1), pad_top=round(dh - 0.1))


def letterbox(image: np.ndarray, input_hw: int | tuple[int, int], padding_value: int = PADDING_VALUE,
              interpolation: int = cv2.INTER_LINEAR) -> tuple[np.ndarray, LetterboxGeometry]:
    """Resize keeping the aspect ratio and pad to ``input_hw``; return the padded image and its geometry."""
    geo = letterbox_geometry(image.shape[:2], input_hw)
    image = np.ascontiguousarray(image)  # OpenCV rejects strided views such as a transposed frame
    if (image.shape[1], image.shape[0]) != geo.resized_wh:
        image = cv2.resize(image, geo.resized_wh, interpolation=interpolation)
    bottom = geo.input_hw[0] - geo.resized_wh[1] - geo.pad_top
    right = geo.input_hw[1] - geo.resized_wh[0] - geo.pad_left
    out = cv2.copyMakeBorder(image, geo.pad_top, bottom, geo.pad_left, right, cv2.BORDER_CONSTANT,
                             value=(padding_value,) * 3)
    return out, geo


@dataclass(frozen=True)
class PreparedFrame:
    """A frame letterboxed ahead of the detector (on the capture thread) into a model input tensor of its own."""

    image: np.ndarray  # the source frame, HxWx3 uint8 BGR
    tensor: np.ndarray  # 1x3xHxW, what ModelInputBuffer.write would have made of it
    geometry: LetterboxGeometry


def prepare_frame(image_bgr: np.ndarray, input_hw: int | tuple[int, int],
                  dtype: type = np.float32) -> PreparedFrame:
    """``ModelInputBuffer.write`` into a new tensor, so it can run on another thread while the model runs."""
    tensor, geo = ModelInputBuffer(input_hw, dtype).write(image_bgr)
    return PreparedFrame(image_bgr, tensor, geo)


def _check_bgr(image_bgr: np.ndarray) -> None:
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR image, got shape {image_bgr.shape} "
                         f"dtype {image_bgr.dtype}")


def to_model_input(image_bgr: np.ndarray, input_hw: int | tuple[int, int]) -> tuple[np.ndarray, LetterboxGeometry]:
    """A BGR uint8 image as a new 1x3xHxW float32 RGB 0..1 tensor, as an ultralytics export expects."""
    return ModelInputBuffer(input_hw).write(image_bgr)


class ModelInputBuffer:
    """One reused input tensor: frames are letterboxed straight into it, one pass per channel.

    ``write`` returns the same array every call, so a caller must finish with it (``session.run``) before the
    next ``write``; the padding is written only when the letterbox geometry changes.
    """

    def __init__(self, input_hw: int | tuple[int, int], dtype: type = np.float32):
        h, w = (input_hw, input_hw) if isinstance(input_hw, int) else input_hw
        if not (0 < h <= MAX_INPUT_SIDE_PX and 0 < w <= MAX_INPUT_SIDE_PX):
            raise ValueError(f"model input must be 1..{MAX_INPUT_SIDE_PX} px a side, got {h}x{w}")
        self.input_hw = (int(h), int(w))
        self.tensor = np.empty((1, 3, h, w), dtype=dtype)
        self._geometry: LetterboxGeometry | None = None
        self._source_hw: tuple[int, int] | None = None  # frames of one stream share a size: skip the geometry
        # resize and split write into these, so a frame allocates nothing (fresh pages fault, and cost)
        self._resized = np.empty((0, 0, 3), np.uint8)
        self._planes: list[np.ndarray] = []
        self._channels: list[np.ndarray] = []  # the tensor's RGB planes inside the padding
        # OpenCV has no float16 tables, so a float16 input divides in numpy as before
        self._to_unit = PIXEL_TO_UNIT if self.tensor.dtype == np.float32 else None

    def write(self, image_bgr: np.ndarray) -> tuple[np.ndarray, LetterboxGeometry]:
        """Letterbox ``image_bgr`` (HxWx3 uint8 BGR) into the tensor as RGB 0..1; return it and the geometry."""
        _check_bgr(image_bgr)
        if image_bgr.shape[:2] != self._source_hw:
            self._set_geometry(letterbox_geometry(image_bgr.shape[:2], self.input_hw))
        geo = self._geometry
        # OpenCV rejects strided views such as a transposed frame; a camera's frame is contiguous already
        image = image_bgr if image_bgr.flags.c_contiguous else np.ascontiguousarray(image_bgr)
        if (image.shape[1], image.shape[0]) != geo.resized_wh:
            image = cv2.resize(image, geo.resized_wh, dst=self._resized, interpolation=cv2.INTER_LINEAR)
        cv2.split(image, self._planes)
        for plane, channel in zip(self._planes, self._channels):
            if self._to_unit is not None:
                cv2.LUT(plane, self._to_unit, dst=channel)  # in place: OpenCV writes through the strided view
            else:
                np.divide(plane, _PIXEL_MAX, out=channel)
        return self.tensor, geo

    def _set_geometry(self, geo: LetterboxGeometry) -> None:
        """A new frame size: scratch buffers and padding follow its letterbox (written here, not every frame)."""
        self._source_hw = geo.source_hw
        w, h = geo.resized_wh
        # the same float32 arithmetic as ultralytics (pad with 114, then divide by 255)
        self.tensor[...] = np.float32(PADDING_VALUE) / _PIXEL_MAX
        self._resized = np.empty((h, w, 3), np.uint8)
        self._planes = [np.empty((h, w), np.uint8) for _ in range(3)]
        region = self.tensor[0, :, geo.pad_top:geo.pad_top + h, geo.pad_left:geo.pad_left + w]
        self._channels = [region[2], region[1], region[0]]  # BGR planes into RGB channels
        self._geometry = geo


def boxes_to_source(xyxy: np.ndarray, geo: LetterboxGeometry) -> np.ndarray:
    """Map xyxy boxes from model-input pixels back to source-image pixels, clipped to the image."""
    out = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
    gain_x, gain_y = geo.gain_xy
    out[:, [0, 2]] = (out[:, [0, 2]] - geo.pad_left) / gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - geo.pad_top) / gain_y
    h, w = geo.source_hw
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
    return out


def boxes_to_input(xyxy: np.ndarray, geo: LetterboxGeometry) -> np.ndarray:
    """Map xyxy boxes from source-image pixels into model-input pixels (the inverse of boxes_to_source)."""
    out = np.array(xyxy, dtype=np.float32).reshape(-1, 4)
    gain_x, gain_y = geo.gain_xy
    out[:, [0, 2]] = out[:, [0, 2]] * gain_x + geo.pad_left
    out[:, [1, 3]] = out[:, [1, 3]] * gain_y + geo.pad_top
    return out


def frame_to_jpeg(image_bgr: np.ndarray, input_hw: tuple[int, int], quality: int = 90) -> bytes:
    """Edge-only upload: the frame shrunk to the size the model letterboxes it to, as JPEG (no pixel is wasted)."""
    geo = letterbox_geometry(image_bgr.shape[:2], input_hw)
    if (image_bgr.shape[1], image_bgr.shape[0]) != geo.resized_wh:
        image_bgr = cv2.resize(image_bgr, geo.resized_wh, interpolation=cv2.INTER_LINEAR)
    ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return jpeg.tobytes()
