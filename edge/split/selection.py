"""Pick the split and codec with the lowest end-to-end latency that keeps accuracy above a floor.

Latency of an option = device compute / device speed + uplink and reply transfer at the
link's bandwidth (+ round trip) + edge compute / edge speed. Compute times are measured
on a reference CPU; a speed of 0.25 means four times slower than it. Device-only sends
nothing; edge-only sends a JPEG.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

DEVICE_KEY = "device"
EDGE_KEY = "edge"
MAX_OPTIONS_BYTES = 1 << 20  # a measured options.json holds tens of options: a few kB


@dataclass(frozen=True)
class SplitOption:
    """One way to run a frame: a cut and codec (or device-only / edge-only), measured on the reference CPU."""

    split_key: str  # a pair key (after4, after4-bn4), "device" or "edge"
    codec: str  # feature codec name; "jpeg" for edge-only, "" for device-only
    split_after: int  # -1 for edge-only, the last layer for device-only
    device_ms: float
    edge_ms: float
    request_bytes: float  # mean uplink bytes per frame, message header included
    reply_bytes: float  # mean downlink bytes per frame (the detections)
    map50: float
    map50_95: float

    @property
    def name(self) -> str:
        return self.split_key if not self.codec else f"{self.split_key}/{self.codec}"


@dataclass(frozen=True)
class SplitChoice:
    """An option with its predicted latency under given speeds and bandwidth."""

    option: SplitOption
    device_ms: float
    transfer_ms: float
    edge_ms: float
    bandwidth_bytes_per_s: float
    meets_floor: bool = True

    @property
    def total_ms(self) -> float:
        return self.device_ms + self.transfer_ms + self.edge_ms


def predict_latency(option: SplitOption, device_speed_factor: float, edge_speed_factor: float,
                    bandwidth_bytes_per_s: float, rtt_ms: float = 0.0) -> SplitChoice:
    """Latency of ``option`` on a device and edge this fast (1.0: the reference CPU) over this link."""
    if device_speed_factor <= 0 or edge_speed_factor <= 0 or bandwidth_bytes_per_s <= 0:
        raise ValueError("speeds and bandwidth must be positive")
    sent = option.request_bytes + option.reply_bytes
    transfer_ms = 0.0 if option.split_key == DEVICE_KEY else 1e3 * sent / bandwidth_bytes_per_s + rtt_ms
    return SplitChoice(option, option.device_ms / device_speed_factor, transfer_ms,
                       option.edge_ms / edge_speed_factor, bandwidth_bytes_per_s)


def choose_split(options: Sequence[SplitOption], device_speed_factor: float, edge_speed_factor: float,
                 bandwidth_bytes_per_s: float, accuracy_floor: float, rtt_ms: float = 0.0) -> SplitChoice:
    """The fastest option whose mAP50-95 is at least ``accuracy_floor``; the most accurate one if none is."""
    if not options:
        raise ValueError("no options to choose from")
    choices = [predict_latency(o, device_speed_factor, edge_speed_factor, bandwidth_bytes_per_s, rtt_ms)
               for o in options]
    allowed = [c for c in choices if c.option.map50_95 >= accuracy_floor]
    if allowed:
        # ties (equal latency) go to the more accurate option
        return min(allowed, key=lambda c: (c.total_ms, -c.option.map50_95))
    best = max(choices, key=lambda c: (c.option.map50_95, -c.total_ms))
    log.warning("no option reaches mAP50-95 %.3f; taking the most accurate, %s (%.3f)", accuracy_floor,
                best.option.name, best.option.map50_95)
    return SplitChoice(best.option, best.device_ms, best.transfer_ms, best.edge_ms, best.bandwidth_bytes_per_s,
                       meets_floor=False)


class SplitController:
    """Keeps a choice and re-decides when the measured bandwidth drifts past a hysteresis band.

    Bandwidth samples are smoothed (EWMA); a re-decision only switches when the new choice is
    faster by ``min_gain`` at the new bandwidth, so noise near a break-even point does not flap.
    """

    def __init__(self, options: Sequence[SplitOption], device_speed_factor: float, edge_speed_factor: float,
                 accuracy_floor: float, bandwidth_bytes_per_s: float, rtt_ms: float = 0.0,
                 hysteresis: float = 0.25, min_gain: float = 0.05, smoothing: float = 0.5):
        if not 0 < smoothing <= 1 or hysteresis < 0 or min_gain < 0:
            raise ValueError("smoothing must be in (0, 1], hysteresis and min_gain >= 0")
        self.options = list(options)
        self.device_speed_factor, self.edge_speed_factor = device_speed_factor, edge_speed_factor
        self.accuracy_floor, self.rtt_ms = accuracy_floor, rtt_ms
        self.hysteresis, self.min_gain, self.smoothing = hysteresis, min_gain, smoothing
        self.bandwidth_bytes_per_s = bandwidth_bytes_per_s
        self._decided_at = bandwidth_bytes_per_s
        self.choice = self._choose(bandwidth_bytes_per_s)
        self.switches = 0

    def observe_transfer(self, sent_bytes: float, transfer_s: float) -> SplitChoice | None:
        """Feed one measured upload; returns the new choice when it changed, else None."""
        if sent_bytes <= 0 or transfer_s <= 0:
            return None
        return self.observe_bandwidth(sent_bytes / transfer_s)

    def observe_bandwidth(self, bandwidth_bytes_per_s: float) -> SplitChoice | None:
        """Feed one bandwidth sample; returns the new choice when it changed, else None."""
        if bandwidth_bytes_per_s <= 0:
            return None
        a = self.smoothing
        self.bandwidth_bytes_per_s = a * bandwidth_bytes_per_s + (1 - a) * self.bandwidth_bytes_per_s
        drift = abs(self.bandwidth_bytes_per_s - self._decided_at) / self._decided_at
        if drift <= self.hysteresis:
            return None
        self._decided_at = self.bandwidth_bytes_per_s
        candidate = self._choose(self.bandwidth_bytes_per_s)
        current = predict_latency(self.choice.option, self.device_speed_factor, self.edge_speed_factor,
                                  self.bandwidth_bytes_per_s, self.rtt_ms)
        if candidate.option == self.choice.option or candidate.total_ms > current.total_ms * (1 - self.min_gain):
            self.choice = current  # same option, latency re-predicted at the new bandwidth
            return None
        log.info("bandwidth %.0f B/s: switching %s (%.1f ms) -> %s (%.1f ms)", self.bandwidth_bytes_per_s,
                 self.choice.option.name, current.total_ms, candidate.option.name, candidate.total_ms)
        self.choice = candidate
        self.switches += 1
        return candidate

    def _choose(self, bandwidth_bytes_per_s: float) -> SplitChoice:
        return choose_split(self.options, self.device_speed_factor, self.edge_speed_factor, bandwidth_bytes_per_s,
                            self.accuracy_floor, self.rtt_ms)


def save_options(options: Sequence[SplitOption], path: str | Path) -> Path:
    """Write measured options as JSON (``options.json`` next to a split set), for the edge's controller."""
    path = Path(path)
    path.write_text(json.dumps({"version": 1, "options": [asdict(o) for o in options]}, indent=2))
    return path


def load_options(path: str | Path) -> list[SplitOption]:
    """The options ``save_options`` wrote; a file of another shape is a ValueError that says what is wrong."""
    path = Path(path)
    if path.stat().st_size > MAX_OPTIONS_BYTES:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is not an options file (at most {MAX_OPTIONS_BYTES})")
    raw = json.loads(path.read_text(encoding="utf-8"))  # not JSON, or not UTF-8: a ValueError already
    if not isinstance(raw, dict) or raw.get("version") != 1:
        found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(f"{path}: not a version 1 options file (found {found!r})")
    entries = raw.get("options")
    if not isinstance(entries, list) or not entries or not all(isinstance(o, dict) for o in entries):
        raise ValueError(f"{path}: 'options' must be a non-empty list of measured options")
    try:
        options = [SplitOption(**o) for o in entries]
    except TypeError as exc:  # a missing or unknown field
        raise ValueError(f"{path}: an option of another shape: {exc}") from None
    for o in options:
        numbers = (o.device_ms, o.edge_ms, o.request_bytes, o.reply_bytes, o.map50, o.map50_95)
        if not (isinstance(o.split_key, str) and isinstance(o.codec, str) and type(o.split_after) is int
                and all(type(n) in (int, float) and math.isfinite(n) and n >= 0 for n in numbers)):
            raise ValueError(f"{path}: option {o.name!r} holds a field of the wrong type, or a negative or "
                             f"non-finite number")
    return options


__all__ = ["DEVICE_KEY", "EDGE_KEY", "SplitChoice", "SplitController", "SplitOption", "choose_split",
           "load_options", "predict_latency", "save_options"]
