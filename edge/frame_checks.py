"""Checks on an uploaded frame message: topic, protocol decoding, endpoint id, a JPEG that decodes."""

from __future__ import annotations

import io

from PIL import Image

from endpoint import protocol
from endpoint.protocol import FEATURE_FRAME, Frame, ProtocolError

MAX_JPEG_PIXELS = 40_000_000  # far above any camera frame; refuses decompression bombs before decoding
REJECT_REASONS = ("malformed", "wrong_version", "oversized", "truncated", "checksum_mismatch", "corrupt_jpeg",
                  "endpoint_mismatch", "bad_topic", "queue_full", "internal_error")
# decode_frame() says why in its message; these prefixes map it to a reason code.
_PROTOCOL_REASONS = (("oversized", "oversized"), ("unsupported protocol version", "wrong_version"),
                     ("truncated", "truncated"), ("corrupt", "checksum_mismatch"))


class FrameRejected(Exception):
    """A message that ingest refuses; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def check_frame_message(topic: str, payload: bytes) -> Frame:
    """Decode and check one frame upload; raise FrameRejected with the reason."""
    try:
        topic_endpoint, feature = protocol.parse_topic(topic)
    except ProtocolError as exc:
        raise FrameRejected("bad_topic", str(exc)) from None
    if feature != FEATURE_FRAME:
        raise FrameRejected("bad_topic", f"feature {feature!r} is not {FEATURE_FRAME!r}")
    try:
        frame = protocol.decode_frame(payload)
    except ProtocolError as exc:
        text = str(exc)
        reason = next((code for prefix, code in _PROTOCOL_REASONS if text.startswith(prefix)), "malformed")
        raise FrameRejected(reason, text) from None
    if frame.header.endpoint_id != topic_endpoint:
        raise FrameRejected("endpoint_mismatch",
                            f"header says {frame.header.endpoint_id!r}, topic says {topic_endpoint!r}")
    check_jpeg(frame.jpeg)
    return frame


def check_jpeg(jpeg: bytes) -> None:
    """Raise FrameRejected unless ``jpeg`` is a complete JPEG that decodes (a matching sha proves nothing)."""
    if not (jpeg.startswith(b"\xff\xd8") and jpeg.endswith(b"\xff\xd9")):
        raise FrameRejected("corrupt_jpeg", "missing JPEG start or end marker")
    try:
        with Image.open(io.BytesIO(jpeg), formats=["JPEG"]) as image:
            if image.width * image.height > MAX_JPEG_PIXELS:
                raise FrameRejected("corrupt_jpeg", f"{image.width}x{image.height} exceeds {MAX_JPEG_PIXELS} pixels")
            image.load()
    except FrameRejected:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise FrameRejected("corrupt_jpeg", f"does not decode: {exc}") from None


def peek_frame_id(payload: bytes) -> str | None:
    """The frame id of a rejected upload, when its header is readable enough to name one."""
    import json
    import re
    import struct

    if len(payload) < 8 or payload[:4] != protocol.FRAME_MAGIC:
        return None
    (head_len,) = struct.unpack(">I", payload[4:8])
    try:
        raw = json.loads(payload[8 : 8 + head_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    frame_id = raw.get("frame_id") if isinstance(raw, dict) else None
    if isinstance(frame_id, str) and re.fullmatch(protocol.FRAME_ID_PATTERN, frame_id):
        return frame_id
    return None
