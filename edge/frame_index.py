"""Which frames are stored, per endpoint and round, read back from the object store's keys.

Derived from key listing only (no side database), so it agrees with every ingest
worker that writes to the same store. A frame counts once its ``.json`` exists.
"""

from __future__ import annotations

import logging

from pydantic import Field, ValidationError

from edge import frame_keys
from edge.store.base import ObjectStore
from endpoint.wire.protocol import FrameHeader

log = logging.getLogger(__name__)


class FrameRecord(FrameHeader):
    """A stored frame's metadata: the upload header plus when the edge received it."""

    received_time: float = Field(description="unix seconds when ingest received the frame")

    @classmethod
    def from_header(cls, header: FrameHeader, received_time: float) -> "FrameRecord":
        return cls(**header.model_dump(), received_time=received_time)

    @property
    def jpeg_key(self) -> str:
        return frame_keys.jpeg_key(self.endpoint_id, self.round, self.frame_id)

    @property
    def meta_key(self) -> str:
        return frame_keys.meta_key(self.endpoint_id, self.round, self.frame_id)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


class FrameIndex:
    """Read-only view of the frames in ``store``."""

    def __init__(self, store: ObjectStore):
        self.store = store

    def frame_ids(self, endpoint_id: str, round_index: int) -> list[str]:
        """Committed frame ids of one endpoint and round, sorted; no object is read."""
        ids = []
        for key in self.store.list(frame_keys.round_prefix(endpoint_id, round_index)):
            parsed = frame_keys.parse_frame_key(key)
            if parsed and parsed.is_meta:
                ids.append(parsed.frame_id)
        return ids

    def count(self, endpoint_id: str, round_index: int) -> int:
        """How many frames of one endpoint and round are stored."""
        return len(self.frame_ids(endpoint_id, round_index))

    def frames(self, endpoint_id: str, round_index: int) -> list[FrameRecord]:
        """The stored frames' metadata, ordered by capture time; unreadable records are skipped with a warning."""
        records = []
        for frame_id in self.frame_ids(endpoint_id, round_index):
            key = frame_keys.meta_key(endpoint_id, round_index, frame_id)
            try:
                records.append(FrameRecord.model_validate_json(self.store.get(key)))
            except ValidationError as exc:
                log.warning("skipping unreadable frame record %s: %s", key, exc.errors()[0]["msg"])
        return sorted(records, key=lambda r: (r.capture_time, r.frame_id))

    def endpoints(self) -> list[str]:
        """Endpoints with at least one stored frame, sorted."""
        return sorted({k.endpoint_id for k in self._meta_keys(f"{frame_keys.FRAMES_ROOT}/")})

    def rounds(self, endpoint_id: str) -> list[int]:
        """Rounds in which ``endpoint_id`` has stored frames, ascending."""
        return sorted({k.round for k in self._meta_keys(frame_keys.endpoint_prefix(endpoint_id))})

    def load_jpeg(self, record: FrameRecord) -> bytes:
        """The JPEG bytes of a stored frame."""
        return self.store.get(record.jpeg_key)

    def _meta_keys(self, prefix: str) -> list[frame_keys.FrameKey]:
        parsed = (frame_keys.parse_frame_key(key) for key in self.store.list(prefix))
        return [k for k in parsed if k is not None and k.is_meta]


__all__ = ["FrameIndex", "FrameRecord"]
