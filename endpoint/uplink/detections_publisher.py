"""Publishes what the detector sees for applications: QoS 0, rate-limited, outside the upload budget."""

from __future__ import annotations

import logging

from endpoint.wire import protocol
from endpoint.wire.protocol import MAX_DETECTIONS_PER_MESSAGE, Detection, FrameDetections

log = logging.getLogger(__name__)


class DetectionsPublisher:
    """At most ``rate_hz`` messages per second of frame time on ``edgeloop/v1/<id>/detections`` (0: off)."""

    def __init__(self, link, endpoint_id: str, rate_hz: float):
        if rate_hz < 0:
            raise ValueError(f"detections rate must be >= 0, got {rate_hz}")
        self.link, self.endpoint_id = link, endpoint_id
        self.period_s = 1.0 / rate_hz if rate_hz > 0 else None
        self.published = 0
        self._last_frame_time: float | None = None

    def offer(self, frame_time: float, model_version: str, width: int, height: int,
              detections: list[Detection]) -> bool:
        """Publish this frame's detections if the rate allows and the broker is there; True if it was sent."""
        if self.period_s is None or not self.link.connected.is_set():
            return False
        last = self._last_frame_time
        # the limit runs on capture time, so the spacing is what subscribers see; a clock stepped back resets it
        if last is not None and last <= frame_time < last + self.period_s:
            return False
        boxes = sorted(detections, key=lambda d: d.conf, reverse=True)[:MAX_DETECTIONS_PER_MESSAGE]
        try:
            message = FrameDetections(endpoint_id=self.endpoint_id, frame_time=frame_time,
                                      model_version=model_version, width=width, height=height, detections=boxes)
        except ValueError as exc:  # a bad clock or image size must not stop detection
            log.warning("detections of a frame not published: %s", exc)
            return False
        # QoS 0 and straight to the link: a detection is stale in a second, and the uplink's bucket is for frames
        self.link.publish(protocol.FEATURE_DETECTIONS, protocol.encode(message), qos=0)
        self._last_frame_time = frame_time
        self.published += 1
        return True
