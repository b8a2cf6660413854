"""Measure every option of a split set: mAP and bytes per frame on labelled frames, device and edge ms.

Accuracy runs the real path frame by frame: head ONNX → encode → wire message → decode →
tail ONNX → NMS (device-only runs the full model, edge-only sends a JPEG). Timings are
taken apart from it, as medians of repeated runs at the serving threshold, because one
timed pass per frame on a shared 2-core machine is mostly noise.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.evaluate import EVAL_CONF, EVAL_IOU, decode_image
from edge.map_metric import MeanAveragePrecision
from edge.split.profile import SplitProfile, median_ms, profile_pair
from edge.split.selection import DEVICE_KEY, EDGE_KEY, SplitOption
from edge.split.split_set import SplitSetManifest, pair_of
from edge.split.tail_runner import SplitTailRunner, detect_jpeg
from edge.yolo_dataset import LabelledImage
from endpoint.model.detections import Detections
from endpoint.model.letterbox import frame_to_jpeg
from endpoint.model.split_halves import SplitHeadRunner
from endpoint.wire.feature_codec import CodecSpec, decode_tensors, encode_tensors
from endpoint.wire.split_protocol import (JPEG_PAIR_ID, SplitRequestHeader, SplitResult, encode_message,
                                          encode_split_request)

log = logging.getLogger(__name__)

DEFAULT_CODECS = ("fp32", "fp16-zlib", "q8c-zlib", "q6c-zlib", "q4c-zlib", "q2c-zlib")
SERVE_CONF = 0.25  # replies and timings use what a live endpoint keeps, not the mAP sweep's 0.001
TIMING_THREADS = 1  # every option is timed on one core, so speed factors scale them alike


@dataclass(frozen=True)
class Measurement:
    """What ``measure_options`` found: a profile per cut and every option."""

    profiles: list[SplitProfile]
    options: list[SplitOption]


class _Tally:
    """mAP and mean bytes of one option over the labelled frames."""

    def __init__(self):
        self.metric = MeanAveragePrecision()
        self.request_bytes: list[int] = []
        self.reply_bytes: list[int] = []

    def add(self, dets: Detections, item: LabelledImage, image: np.ndarray, request_bytes: int) -> None:
        h, w = image.shape[:2]
        self.metric.update(dets.xyxy, dets.confidence, dets.class_id,
                           np.asarray(item.boxes, np.float64).reshape(-1, 4) * [w, h, w, h], item.classes)
        self.request_bytes.append(request_bytes)
        self.reply_bytes.append(_reply_bytes(dets, w, h) if request_bytes else 0)

    def option(self, split_key: str, codec: str, split_after: int, device_ms: float, edge_ms: float) -> SplitOption:
        result = self.metric.compute()
        return SplitOption(split_key=split_key, codec=codec, split_after=split_after, device_ms=device_ms,
                           edge_ms=edge_ms, request_bytes=float(np.mean(self.request_bytes)),
                           reply_bytes=float(np.mean(self.reply_bytes)), map50=result.map50,
                           map50_95=result.map50_95)


def _reply_bytes(dets: Detections, width: int, height: int) -> int:
    kept = dets.confidence >= SERVE_CONF
    served = Detections(dets.xyxy[kept], dets.confidence[kept], dets.class_id[kept])
    reply = SplitResult(endpoint_id="cam-1", request_id="cam-1-000000", detections=served.to_protocol(width, height),
                        edge_ms=12.345)
    return len(encode_message(reply))


def request_bytes(payload: bytes, pair_id: str, codec: str, image: np.ndarray) -> int:
    """Bytes of the MQTT payload that carries ``payload``: what the uplink really moves (topic aside)."""
    header = SplitRequestHeader(endpoint_id="cam-1", request_id="cam-1-000000", pair_id=pair_id, codec=codec,
                                source_width=image.shape[1], source_height=image.shape[0], sent_time=time.time(),
                                payload_bytes=len(payload), link_bytes_per_s=1234567.8)
    return len(encode_split_request(header, payload))


def codec_ms(features: Sequence[list[np.ndarray]], spec: CodecSpec, runs: int) -> tuple[float, float]:
    """Median encode and decode ms of ``spec`` over the frames' crossing tensors."""
    blobs = [encode_tensors(f, spec) for f in features]
    turn = iter(range(10**9))
    encode = median_ms(lambda: encode_tensors(features[next(turn) % len(features)], spec), runs, warmup=1)
    decode = median_ms(lambda: decode_tensors(blobs[next(turn) % len(blobs)]), runs, warmup=1)
    return encode, decode


def measure_pair(folder: Path, manifest: SplitSetManifest, key: str, items: Sequence[LabelledImage],
                 codecs: Sequence[str], timing_runs: int = 10) -> tuple[SplitProfile, list[SplitOption]]:
    """The cut's profile and one option per codec for the pair ``key``."""
    pair = pair_of(manifest, folder, key)
    head, tail = SplitHeadRunner(pair.head_path, TIMING_THREADS), SplitTailRunner(pair.tail_path, TIMING_THREADS)
    specs = [CodecSpec.parse(c) for c in codecs]
    tallies = {spec.name: _Tally() for spec in specs}
    images = [decode_image(item.image) for item in items]
    features = []
    for item, image in zip(items, images):
        feats, geo = head.run(image)
        features.append(feats)
        for spec in specs:
            blob = encode_tensors(feats, spec)
            dets = tail.detect(decode_tensors(blob), geo.source_hw, EVAL_CONF, EVAL_IOU)
            tallies[spec.name].add(dets, item, image, request_bytes(blob, pair.pair_id, spec.name, image))
    timing_images = images[: max(1, min(4, len(images)))]
    profile = profile_pair(pair, manifest.layer_gflops, timing_images, timing_runs, TIMING_THREADS)
    options = []
    for spec in specs:
        encode, decode = codec_ms(features[: len(timing_images)], spec, timing_runs)
        options.append(tallies[spec.name].option(key, spec.name, pair.split_after, profile.head_ms + encode,
                                                 decode + profile.tail_ms))
    return profile, options


def measure_whole(folder: Path, manifest: SplitSetManifest, items: Sequence[LabelledImage], jpeg_quality: int = 90,
                  timing_runs: int = 10) -> list[SplitOption]:
    """Device-only (full model on the device) and edge-only (JPEG up, full model on the edge)."""
    from endpoint.model.detector import OnnxDetector

    detector = OnnxDetector(Path(folder) / manifest.full_onnx, conf_threshold=EVAL_CONF, iou_threshold=EVAL_IOU)
    device, edge = _Tally(), _Tally()
    images = [decode_image(item.image) for item in items]
    jpegs = []
    for item, image in zip(items, images):
        device.add(detector.detect(image), item, image, 0)
        jpeg = frame_to_jpeg(image, detector.input_size, jpeg_quality)
        jpegs.append(jpeg)
        edge.add(detect_jpeg(detector, jpeg, image.shape[:2]), item, image,
                 request_bytes(jpeg, JPEG_PAIR_ID, "jpeg", image))
    whole = OnnxDetector(Path(folder) / manifest.full_onnx, conf_threshold=SERVE_CONF, threads=TIMING_THREADS)
    n = max(1, min(4, len(images)))
    turn = iter(range(10**9))
    detect_ms = median_ms(lambda: whole.detect(images[next(turn) % n]), timing_runs)
    jpeg_ms = median_ms(lambda: frame_to_jpeg(images[next(turn) % n], detector.input_size, jpeg_quality), timing_runs)
    edge_ms = median_ms(lambda: detect_jpeg(whole, jpegs[next(turn) % n], images[0].shape[:2]),
                        timing_runs)
    return [device.option(DEVICE_KEY, "", manifest.layers - 1, detect_ms, 0.0),
            edge.option(EDGE_KEY, "jpeg", -1, jpeg_ms, edge_ms)]


def measure_options(folder: str | Path, manifest: SplitSetManifest, items: Sequence[LabelledImage],
                    codecs: Sequence[str] = DEFAULT_CODECS, jpeg_quality: int = 90,
                    timing_runs: int = 10) -> Measurement:
    """Every option of the split set: device-only, edge-only, and each pair with each codec."""
    folder = Path(folder)
    options = measure_whole(folder, manifest, items, jpeg_quality, timing_runs)
    profiles = []
    for info in manifest.pairs:
        profile, pair_options = measure_pair(folder, manifest, info.key, items, codecs, timing_runs)
        profiles.append(profile)
        options.extend(pair_options)
        log.info("measured %s with %d codecs", info.key, len(codecs))
    return Measurement(profiles, options)


def options_table(options: Sequence[SplitOption]) -> str:
    """A plain-text table of measured options."""
    rows = [f"{'option':<24}{'mAP50':>7}{'mAP50-95':>9}{'up B':>9}{'down B':>8}{'device ms':>10}{'edge ms':>9}"]
    for o in options:
        rows.append(f"{o.name:<24}{o.map50:>7.3f}{o.map50_95:>9.3f}{o.request_bytes:>9.0f}{o.reply_bytes:>8.0f}"
                    f"{o.device_ms:>10.2f}{o.edge_ms:>9.2f}")
    return "\n".join(rows)


__all__ = ["DEFAULT_CODECS", "Measurement", "codec_ms", "measure_options", "measure_pair", "measure_whole",
           "options_table", "request_bytes"]
