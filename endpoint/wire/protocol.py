"""The wire protocol between endpoints and the edge: topics and typed, versioned messages.

MQTT 3.1.1 compatible: all metadata travels inside the payload, never in MQTT 5
properties. JSON messages are UTF-8 JSON objects with a ``v`` (protocol version)
and a ``kind`` field. A frame upload is binary: a 4-byte magic, a 4-byte
big-endian header length, the JSON header, then the JPEG bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

PROTOCOL_VERSION = 1
TOPIC_ROOT = f"edgeloop/v{PROTOCOL_VERSION}"
FRAME_MAGIC = b"ELF1"
MAX_FRAME_PAYLOAD_BYTES = 4 * 1024 * 1024
MAX_HEADER_BYTES = 256 * 1024
MAX_JSON_PAYLOAD_BYTES = 1024 * 1024
ENDPOINT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
FRAME_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
MAX_CLASS_ID = 65535  # far above any detector's class count; bounds what a header can claim
MAX_BOXES_PER_FRAME = 10_000
MAX_ROUND_INDEX = 999_999_999  # a round index goes into object keys (r00042): bounded, so a key stays short
MAX_COUNTER = 2**53  # a float holds every count up to here; 10**400 bytes_sent broke the metrics and the curve fit
MAX_VERSION_CHARS = 64  # as a manifest's version; 5000 digits broke int() in version_number

FEATURE_FRAME = "frame"
FEATURE_STATUS = "status"
FEATURE_TELEMETRY = "telemetry"
FEATURE_PLAN = "plan"
FEATURE_MODEL = "model"
FEATURE_ACK = "ack"
FEATURE_DETECTIONS = "detections"
MAX_DETECTIONS_PER_MESSAGE = 300  # the detector keeps at most 300 boxes (ultralytics max_det)


class ProtocolError(ValueError):
    """A payload that is not a valid edgeloop message; the text says why, ``reason`` is a stable code."""

    def __init__(self, message: str, reason: str = "malformed"):
        super().__init__(message)
        self.reason = reason  # receivers answer with it and count by it; never parse the text


def topic(endpoint_id: str, feature: str) -> str:
    """Topic grammar: ``edgeloop/v1/<endpoint_id>/<feature>``."""
    return f"{TOPIC_ROOT}/{endpoint_id}/{feature}"


def parse_topic(name: str) -> tuple[str, str]:
    """Split a topic into (endpoint_id, feature); raise ProtocolError if it is not ours."""
    parts = name.split("/")
    if len(parts) != 4 or "/".join(parts[:2]) != TOPIC_ROOT or not parts[2] or not parts[3]:
        raise ProtocolError(f"topic {name!r} is not of the form {TOPIC_ROOT}/<endpoint_id>/<feature>")
    return parts[2], parts[3]


def shared_subscription(group: str, feature: str) -> str:
    """An MQTT shared subscription so several workers split one feature's messages."""
    return f"$share/{group}/{TOPIC_ROOT}/+/{feature}"


class Message(BaseModel):
    """The base of every JSON message and binary header: strict, frozen, versioned."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = Field(PROTOCOL_VERSION, description="protocol version")

    @field_validator("*", mode="after")
    @classmethod
    def _utf8_text(cls, value):
        """JSON may escape a lone surrogate (\\ud800) that no UTF-8 text holds: refused here, not when the message
        is written on (a stored frame's marker, an echo) after part of it already was."""
        for text in value if isinstance(value, list) else (value,):
            if type(text) is str:
                text.encode("utf-8")  # UnicodeEncodeError is a ValueError: a validation error naming the field
        return value


_Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class Detection(BaseModel):
    """One box in normalized image coordinates (0..1), with class id and confidence."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    cls: int = Field(ge=0, le=MAX_CLASS_ID, description="class id")
    # A default, so ground-truth labels may leave it out; payloads that send it stay valid.
    conf: float = Field(1.0, ge=0.0, le=1.0, description="confidence; 1.0 (the default) for ground truth")
    box: tuple[_Unit, _Unit, _Unit, _Unit] = Field(description="x1, y1, x2, y2 normalized to 0..1")


class FrameHeader(Message):
    """Metadata of one uploaded frame; the JPEG bytes follow it in the payload."""

    kind: Literal["frame"] = "frame"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    frame_id: str = Field(pattern=FRAME_ID_PATTERN, description="unique per endpoint, stable across restarts")
    capture_time: float = Field(allow_inf_nan=False, description="unix seconds when the frame was captured")
    round: int = Field(ge=0, le=MAX_ROUND_INDEX, description="learning round the frame was sampled in")
    model_version: str = Field(max_length=MAX_VERSION_CHARS, description="student version that ran on the frame")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    jpeg_bytes: int = Field(gt=0)
    jpeg_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    domain: str = Field("", description="scenario domain the frame came from, if known")
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_BOXES_PER_FRAME,
                                        description="the student's detections")
    labels: list[Detection] | None = Field(None, max_length=MAX_BOXES_PER_FRAME,
                                           description="ground truth carried by a scenario (oracle)")


class Frame(BaseModel):
    """A decoded frame upload: header plus JPEG bytes."""

    model_config = ConfigDict(frozen=True)
    header: FrameHeader
    jpeg: bytes


class Status(Message):
    """Retained endpoint state; the broker publishes ``offline`` as the last will."""

    kind: Literal["status"] = "status"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    state: Literal["online", "offline"]
    model_version: str = Field("", max_length=MAX_VERSION_CHARS)
    time: float = 0.0


class Telemetry(Message):
    """Periodic endpoint counters."""

    kind: Literal["telemetry"] = "telemetry"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    time: float
    round: int = Field(ge=0, le=MAX_ROUND_INDEX)
    model_version: str = Field(max_length=MAX_VERSION_CHARS)
    frames_seen: int = Field(ge=0, le=MAX_COUNTER)
    frames_sampled: int = Field(ge=0, le=MAX_COUNTER)
    frames_acked: int = Field(ge=0, le=MAX_COUNTER)
    spool_depth: int = Field(ge=0, le=MAX_COUNTER)
    bytes_sent: int = Field(ge=0, le=MAX_COUNTER)
    inference_ms: float = Field(ge=0.0, allow_inf_nan=False)
    round_frames_sampled: int = Field(0, ge=0, le=MAX_COUNTER, description="frames sampled in the current round")
    round_done: bool = Field(False, description="the round's frames are streamed and every sampled one is acked")
    frames_dropped: int = Field(0, ge=0, le=MAX_COUNTER,
                               description="frames a live camera dropped while the detector was behind")


class Plan(Message):
    """The round's upload budget and sampling for one endpoint (edge → endpoint)."""

    kind: Literal["plan"] = "plan"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    round: int = Field(ge=0, le=MAX_ROUND_INDEX)
    upload_budget_bytes: int = Field(ge=0, description="bytes of frames the endpoint may upload this round")
    upload_rate_bytes_per_s: float = Field(gt=0, description="token-bucket rate of the uplink")
    sampler: str = Field("uniform", description="sampling strategy name")
    sample_rate: float = Field(1.0, ge=0.0, le=1.0, description="fraction of frames offered to the sampler")
    domain: str = Field("", description="lab testbed: the scenario domain to stream this round ('' keeps the source)")
    frames: int = Field(0, ge=0, description="lab testbed: frames to stream this round, then idle (0: continuous)")


class ModelAnnouncement(Message):
    """A new student is available (edge → endpoint); the endpoint fetches, verifies and swaps."""

    kind: Literal["model"] = "model"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    version: str
    parent_version: str = ""
    encoding: Literal["full", "delta"] = "full"
    url: str = Field(description="where the model bytes are fetched from")
    size_bytes: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the rebuilt model file")
    signature: str = Field("", description="Ed25519 signature of the manifest, hex")
    manifest: str = Field("", description="canonical JSON manifest that was signed")


class Ack(Message):
    """Edge → endpoint: these frames are stored; or endpoint → edge: this model runs."""

    kind: Literal["ack"] = "ack"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    frame_ids: list[str] = Field(default_factory=list)
    model_version: str = Field("", max_length=MAX_VERSION_CHARS)
    ok: bool = True
    reason: str = ""


class FrameDetections(Message):
    """What the student saw in one frame, for applications (endpoint → anyone); QoS 0, rate-limited."""

    kind: Literal["detections"] = "detections"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    frame_time: float = Field(gt=0, allow_inf_nan=False, description="unix seconds when the frame was captured")
    model_version: str = Field(max_length=MAX_VERSION_CHARS,
                               description="student version that ran on the frame ('' before the first model)")
    width: int = Field(gt=0, description="image width in pixels; boxes are normalized by it")
    height: int = Field(gt=0, description="image height in pixels; boxes are normalized by it")
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS_PER_MESSAGE,
                                        description="boxes above the detector's threshold, best first")


JsonMessage = Annotated[Union[Status, Telemetry, Plan, ModelAnnouncement, Ack, FrameDetections],
                        Field(discriminator="kind")]
_json_adapter: TypeAdapter[JsonMessage] = TypeAdapter(JsonMessage)


def encode(message: Message) -> bytes:
    """Serialize a JSON message to its payload bytes."""
    if isinstance(message, FrameHeader):
        raise TypeError("frames are encoded with encode_frame()")
    return message.model_dump_json().encode("utf-8")


def decode(payload: bytes) -> Status | Telemetry | Plan | ModelAnnouncement | Ack | FrameDetections:
    """Parse a JSON message; raise ProtocolError with the reason when it is malformed."""
    raw = read_json_object(payload)
    try:
        return _json_adapter.validate_python(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid message: {first_error(exc)}") from None


def read_json_object(payload: bytes) -> dict:
    """The versioned JSON object in a bounded payload; raise ProtocolError with the reason otherwise."""
    if len(payload) > MAX_JSON_PAYLOAD_BYTES:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_JSON_PAYLOAD_BYTES}")
    try:
        raw = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an int over 4300 digits; deep nesting
        raise ProtocolError(f"payload is not UTF-8 JSON: {exc}") from None
    check_version(raw)
    return raw


def validate_message(cls: type[Message], raw: dict) -> Message:
    """``cls`` validated from ``raw``; raise ProtocolError naming the first bad field otherwise."""
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid {cls.__name__}: {first_error(exc)}") from None


class PayloadTooLarge(ValueError):
    """A message this side would send is over the protocol's size limit for its kind."""


def pack_binary(magic: bytes, head: bytes, body: bytes, limit: int, what: str) -> bytes:
    """A binary message: 4-byte magic, uint32 big-endian header length, the JSON header, the body."""
    message = magic + struct.pack(">I", len(head)) + head + body
    if len(message) > limit:
        raise PayloadTooLarge(f"{what} of {len(message):,} bytes exceeds {limit:,}")
    return message


def unpack_binary(message: bytes, magic: bytes, limit: int, what: str) -> tuple[dict, bytes]:
    """The versioned JSON header (a dict) and the body of a binary message, after checking its framing."""
    if len(message) > limit:
        raise ProtocolError(f"oversized: {len(message)} bytes exceeds {limit}", "oversized")
    if len(message) < 8 or message[:4] != magic:
        raise ProtocolError(f"not a {what}: bad magic")
    (head_len,) = struct.unpack(">I", message[4:8])
    if head_len > MAX_HEADER_BYTES or 8 + head_len > len(message):
        raise ProtocolError(f"header length {head_len} does not fit the {len(message)}-byte {what}")
    try:
        raw = json.loads(message[8 : 8 + head_len].decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an int over 4300 digits; deep nesting
        raise ProtocolError(f"{what} header is not UTF-8 JSON: {exc}") from None
    check_version(raw)
    return raw, message[8 + head_len :]


def encode_frame(header: FrameHeader, jpeg: bytes) -> bytes:
    """Serialize a frame upload: magic, header length, JSON header, JPEG."""
    if len(jpeg) != header.jpeg_bytes or hashlib.sha256(jpeg).hexdigest() != header.jpeg_sha256:
        raise ValueError("header does not describe these JPEG bytes")
    head = header.model_dump_json(exclude_none=True).encode("utf-8")
    return pack_binary(FRAME_MAGIC, head, jpeg, MAX_FRAME_PAYLOAD_BYTES, "frame payload")


def decode_frame(payload: bytes) -> Frame:
    """Parse and check a frame upload (size, version, fields, JPEG length and sha256)."""
    raw, jpeg = unpack_binary(payload, FRAME_MAGIC, MAX_FRAME_PAYLOAD_BYTES, "frame payload")
    try:
        header = FrameHeader.model_validate(raw)
    except ValidationError as exc:
        bad_id = any(e["loc"][:1] in (("endpoint_id",), ("frame_id",)) and e["type"] != "missing" for e in exc.errors())
        raise ProtocolError(f"invalid frame header: {first_error(exc)}", "bad_id" if bad_id else "malformed") from None
    if len(jpeg) != header.jpeg_bytes:
        raise ProtocolError(f"truncated: JPEG has {len(jpeg)} bytes, header says {header.jpeg_bytes}", "truncated")
    if hashlib.sha256(jpeg).hexdigest() != header.jpeg_sha256:
        raise ProtocolError("corrupt: JPEG sha256 does not match the header", "checksum_mismatch")
    return Frame(header=header, jpeg=jpeg)


def make_frame_header(jpeg: bytes, **fields) -> FrameHeader:
    """Build a header whose size and hash describe ``jpeg``."""
    return FrameHeader(jpeg_bytes=len(jpeg), jpeg_sha256=hashlib.sha256(jpeg).hexdigest(), **fields)


def check_version(raw: object) -> None:
    """Raise ProtocolError unless ``raw`` is a JSON object of this protocol version."""
    if not isinstance(raw, dict):
        raise ProtocolError("message is not a JSON object")
    if raw.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {raw.get('v')!r}; this side speaks {PROTOCOL_VERSION}",
                            "wrong_version")


def first_error(exc: ValidationError) -> str:
    """Where and why validation failed, for the refusal text."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "message"
    return f"{where}: {err['msg']}"


# --- Model bytes over MQTT (edge → endpoint) -------------------------------------------------
# The announcement on ``model`` carries the signed manifest; the bytes follow on ``model_data``
# as one binary message: "ELM1", uint32 big-endian header length, JSON header, payload.

FEATURE_MODEL_DATA = "model_data"
MODEL_DATA_MAGIC = b"ELM1"
MODEL_DATA_URL = "mqtt:model_data"
# Mosquitto in tests and compose allows 8 MiB packets; 64 KiB are left for the MQTT header and topic.
MAX_MODEL_PAYLOAD_BYTES = 8 * 1024 * 1024 - 64 * 1024


class ModelDataHeader(Message):
    """What the binary model payload is: a full file or a delta against ``parent_version``."""

    kind: Literal["model_data"] = "model_data"
    endpoint_id: str = Field(pattern=ENDPOINT_ID_PATTERN)
    version: str = Field(min_length=1, description="model version these bytes build")
    encoding: Literal["full", "delta"]
    parent_version: str = Field("", description="version a delta applies to; '' for full")
    payload_bytes: int = Field(gt=0, description="length of the bytes after the header")
    payload_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the bytes after the header")


class ModelData(BaseModel):
    """A decoded model payload: header plus the full model file or the delta bytes."""

    model_config = ConfigDict(frozen=True)
    header: ModelDataHeader
    payload: bytes


def make_model_data_header(payload: bytes, **fields) -> ModelDataHeader:
    """Build a header whose size and hash describe ``payload``."""
    return ModelDataHeader(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest(), **fields)


def encode_model_data(header: ModelDataHeader, payload: bytes) -> bytes:
    """Serialize a model payload: magic, header length, JSON header, bytes."""
    if len(payload) != header.payload_bytes or hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise ValueError("header does not describe these model bytes")
    return pack_binary(MODEL_DATA_MAGIC, header.model_dump_json().encode("utf-8"), payload,
                       MAX_MODEL_PAYLOAD_BYTES, "model payload")


def decode_model_data(message: bytes) -> ModelData:
    """Parse and check a model payload (size, version, fields, payload length and sha256)."""
    raw, payload = unpack_binary(message, MODEL_DATA_MAGIC, MAX_MODEL_PAYLOAD_BYTES, "model_data payload")
    try:
        header = ModelDataHeader.model_validate(raw)
    except ValidationError as exc:
        raise ProtocolError(f"invalid model_data header: {first_error(exc)}") from None
    if len(payload) != header.payload_bytes:
        raise ProtocolError(f"truncated: model payload has {len(payload)} bytes, header says {header.payload_bytes}")
    if hashlib.sha256(payload).hexdigest() != header.payload_sha256:
        raise ProtocolError("corrupt: model payload sha256 does not match the header")
    return ModelData(header=header, payload=payload)
