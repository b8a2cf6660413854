"""Checks on an uploaded frame message: topic, protocol decoding, identity, a complete JPEG of its stated size."""

from __future__ import annotations

import json
import struct

from edge.jpeg_layout import JpegLayoutError, jpeg_size
from endpoint.wire import protocol
from endpoint.wire.protocol import FEATURE_FRAME, Frame, ProtocolError

MAX_JPEG_PIXELS = 40_000_000  # far above any camera frame; refuses decompression bombs before training decodes
MAX_ECHOED_ID_CHARS = 1024  # a refusal names the frame id it refuses; longer ids are not echoed back
# Stable reason codes, documented in docs/protocol.md; acks and the rejected-frames counter carry them.
REJECT_REASONS = ("malformed", "wrong_version", "oversized", "truncated", "checksum_mismatch", "corrupt_jpeg",
                  "size_mismatch", "bad_id", "identity", "conflict", "bad_topic", "queue_full", "internal_error")
# Refusals that get no ok=false ack: the topic names nobody to answer, or the frame is worth re-sending later.
UNANSWERED_REASONS = frozenset({"bad_topic", "queue_full", "internal_error"})


class FrameRejected(Exception):
    """A message that ingest refuses; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def check_frame_message(topic: str, payload: bytes) -> Frame:
    """Decode and check one frame upload; raise FrameRejected with the reason."""
    topic_endpoint = topic_endpoint_level(topic)
    try:
        frame = protocol.decode_frame(payload)
    except ProtocolError as exc:
        raise FrameRejected(exc.reason, str(exc)) from None
    if frame.header.endpoint_id != topic_endpoint:
        # The broker's ACL ties the topic to the client's credentials; the header is only a claim.
        raise FrameRejected("identity", f"header says {frame.header.endpoint_id!r}, topic says {topic_endpoint!r}")
    width, height = check_jpeg(frame.jpeg)
    if (width, height) != (frame.header.width, frame.header.height):
        raise FrameRejected("size_mismatch", f"JPEG is {width}x{height}, header says "
                                             f"{frame.header.width}x{frame.header.height}")
    return frame


def topic_endpoint_level(topic: str) -> str:
    """The endpoint level of a frame topic; FrameRejected("bad_topic") when it is not one."""
    try:
        endpoint_level, feature = protocol.parse_topic(topic)
    except ProtocolError as exc:
        raise FrameRejected("bad_topic", str(exc)) from None
    if feature != FEATURE_FRAME:
        raise FrameRejected("bad_topic", f"feature {feature!r} is not {FEATURE_FRAME!r}")
    return endpoint_level


def check_jpeg(jpeg: bytes) -> tuple[int, int]:
    """Width and height of ``jpeg``; FrameRejected unless it is one complete JPEG of a bounded size."""
    try:
        width, height = jpeg_size(jpeg)
    except JpegLayoutError as exc:
        raise FrameRejected("corrupt_jpeg", str(exc)) from None
    if width * height > MAX_JPEG_PIXELS:
        raise FrameRejected("corrupt_jpeg", f"{width}x{height} exceeds {MAX_JPEG_PIXELS} pixels")
    return width, height


def peek_frame_id(payload: bytes) -> str | None:
    """The frame id a refused upload claims, valid or not, so a refusal can name it; None when none is readable."""
    if len(payload) < 8 or payload[:4] != protocol.FRAME_MAGIC:
        return None
    (head_len,) = struct.unpack(">I", payload[4:8])
    if head_len > protocol.MAX_HEADER_BYTES:
        return None
    try:
        raw = json.loads(payload[8 : 8 + head_len].decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, an int over 4300 digits; deep nesting
        return None
    frame_id = raw.get("frame_id") if isinstance(raw, dict) else None
    if isinstance(frame_id, str) and 0 < len(frame_id) <= MAX_ECHOED_ID_CHARS and _utf8(frame_id):
        return frame_id
    return None


def _utf8(text: str) -> bool:
    """Whether ``text`` can be sent back: a lone surrogate (JSON's \\ud800) cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
