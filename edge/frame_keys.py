"""Object-store key layout of ingested frames: ``frames/<endpoint>/r<round:05d>/<frame_id>.{jpg,json}``.

Keys depend only on the frame's identity, so a redelivered frame lands on the same
keys (idempotent), whichever ingest worker handles it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from endpoint.wire.protocol import ENDPOINT_ID_PATTERN, FRAME_ID_PATTERN

FRAMES_ROOT = "frames"
JPEG_SUFFIX = ".jpg"
META_SUFFIX = ".json"
ROUND_DIGITS = 5

_ENDPOINT_RE = re.compile(ENDPOINT_ID_PATTERN)
_FRAME_RE = re.compile(FRAME_ID_PATTERN)
_ROUND_RE = re.compile(r"^r([0-9]{5,})$")


@dataclass(frozen=True)
class FrameKey:
    """The identity a frame key encodes."""

    endpoint_id: str
    round: int
    frame_id: str
    is_meta: bool


def endpoint_prefix(endpoint_id: str) -> str:
    """Prefix of every object of one endpoint (ends with ``/``)."""
    _check_endpoint(endpoint_id)
    return f"{FRAMES_ROOT}/{endpoint_id}/"


def round_dir(round_index: int) -> str:
    """The round folder name, zero-padded so keys sort by round."""
    if round_index < 0:
        raise ValueError(f"round must be >= 0, got {round_index}")
    return f"r{round_index:0{ROUND_DIGITS}d}"


def round_prefix(endpoint_id: str, round_index: int) -> str:
    """Prefix of every object of one endpoint in one round (ends with ``/``)."""
    return f"{endpoint_prefix(endpoint_id)}{round_dir(round_index)}/"


def jpeg_key(endpoint_id: str, round_index: int, frame_id: str) -> str:
    """Key of the frame's JPEG bytes; written first."""
    _check_frame(frame_id)
    return f"{round_prefix(endpoint_id, round_index)}{frame_id}{JPEG_SUFFIX}"


def meta_key(endpoint_id: str, round_index: int, frame_id: str) -> str:
    """Key of the frame's JSON metadata; written last, so it marks the frame as committed."""
    _check_frame(frame_id)
    return f"{round_prefix(endpoint_id, round_index)}{frame_id}{META_SUFFIX}"


def parse_frame_key(key: str) -> FrameKey | None:
    """The identity behind a frame key, or None for any other key (temp files, other layouts)."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != FRAMES_ROOT:
        return None
    _, endpoint_id, round_name, name = parts
    match = _ROUND_RE.fullmatch(round_name)
    if not match or not _ENDPOINT_RE.fullmatch(endpoint_id):
        return None
    for suffix, is_meta in ((META_SUFFIX, True), (JPEG_SUFFIX, False)):
        if name.endswith(suffix):
            frame_id = name[: -len(suffix)]
            if _FRAME_RE.fullmatch(frame_id):
                return FrameKey(endpoint_id, int(match.group(1)), frame_id, is_meta)
    return None


def _check_endpoint(endpoint_id: str) -> None:
    # Ids arrive from the network; refuse anything that could bend the key layout.
    if not _ENDPOINT_RE.fullmatch(endpoint_id):
        raise ValueError(f"invalid endpoint id {endpoint_id!r}")


def _check_frame(frame_id: str) -> None:
    if not _FRAME_RE.fullmatch(frame_id):
        raise ValueError(f"invalid frame id {frame_id!r}")
