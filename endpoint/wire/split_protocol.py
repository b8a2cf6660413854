"""Wire messages of co-inference: endpoint → edge feature requests, edge → endpoint results and directives.

Topics follow ``edgeloop/v1/<endpoint_id>/<feature>``. A request is binary like a frame
upload: ``ELS1``, a 4-byte big-endian header length, the JSON header, then the payload
(an ``endpoint.wire.feature_codec`` blob, or JPEG bytes when the whole frame goes to the edge).
Results and directives are JSON. Requests and results travel at QoS 0: a late answer is
worthless for live detection, so nothing is re-sent; the endpoint times a request out instead.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from endpoint.wire.protocol import (ENDPOINT_ID_PATTERN, FRAME_ID_PATTERN, Detection, Message, ProtocolError,
                                    pack_binary, read_json_object, unpack_binary, validate_message)

FEATURE_SPLIT_REQUEST = "split_request"
FEATURE_SPLIT_RESULT = "split_result"
FEATURE_SPLIT_DIRECTIVE = "split_directive"
SPLIT_MAGIC = b"ELS1"
MAX_SPLIT_PAYLOAD_BYTES = 8 * 1024 * 1024 - 64 * 1024  # inside Mosquitto's 8 MiB packet limit
JPEG_PAIR_ID = "jpeg"  # pair_id of a request that carries the whole frame as JPEG (edge-only)
SPLIT_KEY_DEVICE = "device"  # directive: run the whole detector on the endpoint
SPLIT_KEY_EDGE = "edge"  # directive: send JPEG frames, the edge runs the whole detector
MAX_SOURCE_SIDE = 65_535  # pixels; boxes are mapped back to the source frame, no camera is larger


class SplitRequestHeader(Message):
    """One frame's crossing features (or JPEG) for the edge to finish; the payload follows the header."""

    kind: Literal["split_request"] = "split_request"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    request_id: str = Field(pattern=FRAME_ID_PATTERN, description="correlation id, echoed in the result")
    pair_id: str = Field(pattern=r"^[0-9a-z]{1,32}$", description="which head made the features ('jpeg': none)")
    codec: str = Field(max_length=32, description="feature codec name, e.g. q8c-zlib; 'jpeg' for a frame")
    source_width: int = Field(gt=0, le=MAX_SOURCE_SIDE, description="frame width in pixels, to map boxes back")
    source_height: int = Field(gt=0, le=MAX_SOURCE_SIDE, description="frame height in pixels")
    sent_time: float = Field(allow_inf_nan=False, description="unix seconds when the endpoint sent the request")
    payload_bytes: int = Field(ge=0)
    # NaN or Infinity here would poison the edge's bandwidth estimate of this endpoint for good
    link_bytes_per_s: float = Field(0.0, ge=0, allow_inf_nan=False,
                                    description="the endpoint's latest uplink estimate (0: none yet)")


class SplitRequest(BaseModel):
    """A decoded request: header plus payload bytes."""

    model_config = ConfigDict(frozen=True)
    header: SplitRequestHeader
    payload: bytes


class SplitResult(Message):
    """The edge's answer to one request: detections normalized to the source frame."""

    kind: Literal["split_result"] = "split_result"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    request_id: str = Field(pattern=FRAME_ID_PATTERN)
    ok: bool = True
    reason: str = Field("", max_length=512, description="why the edge could not answer, when not ok")
    detections: list[Detection] = Field(default_factory=list)
    edge_ms: float = Field(0.0, ge=0, allow_inf_nan=False,
                           description="from the request's arrival to the reply, on the edge")


class SplitDirective(Message):
    """Edge → endpoint: run this split and codec from now on (retained, so a restart picks it up)."""

    kind: Literal["split_directive"] = "split_directive"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    split_key: str = Field(min_length=1, max_length=64, description="a pair key, 'device' or 'edge'")
    codec: str = Field("", max_length=32, description="feature codec for a pair key; '' otherwise")
    bandwidth_bytes_per_s: float = Field(0.0, ge=0, allow_inf_nan=False,
                                         description="the uplink estimate the choice was made for")
    expected_latency_ms: float = Field(0.0, ge=0, allow_inf_nan=False)
    reason: str = Field("", max_length=512, description="why the edge chose this split")


def encode_split_request(header: SplitRequestHeader, payload: bytes) -> bytes:
    """Serialize a request: magic, header length, JSON header, payload."""
    if len(payload) != header.payload_bytes:
        raise ValueError(f"header says {header.payload_bytes} payload bytes, got {len(payload)}")
    return pack_binary(SPLIT_MAGIC, header.model_dump_json().encode("utf-8"), payload, MAX_SPLIT_PAYLOAD_BYTES,
                       "split request")


def decode_split_request(message: bytes) -> SplitRequest:
    """Parse and check a request (magic, size, version, fields, payload length)."""
    raw, payload = unpack_binary(message, SPLIT_MAGIC, MAX_SPLIT_PAYLOAD_BYTES, "split request")
    header = validate_message(SplitRequestHeader, raw)
    if len(payload) != header.payload_bytes:
        raise ProtocolError(f"truncated: payload has {len(payload)} bytes, header says {header.payload_bytes}")
    return SplitRequest(header=header, payload=payload)


def encode_message(message: SplitResult | SplitDirective) -> bytes:
    """Serialize a result or directive to JSON bytes."""
    return message.model_dump_json().encode("utf-8")


def decode_result(payload: bytes) -> SplitResult:
    """Parse a SplitResult; raise ProtocolError with the reason when it is malformed."""
    return validate_message(SplitResult, read_json_object(payload))


def decode_directive(payload: bytes) -> SplitDirective:
    """Parse a SplitDirective; raise ProtocolError with the reason when it is malformed."""
    return validate_message(SplitDirective, read_json_object(payload))


__all__ = ["FEATURE_SPLIT_DIRECTIVE", "FEATURE_SPLIT_REQUEST", "FEATURE_SPLIT_RESULT", "JPEG_PAIR_ID",
           "SPLIT_KEY_DEVICE", "SPLIT_KEY_EDGE", "SplitDirective", "SplitRequest", "SplitRequestHeader",
           "SplitResult", "decode_directive", "decode_result", "decode_split_request", "encode_message",
           "encode_split_request"]
