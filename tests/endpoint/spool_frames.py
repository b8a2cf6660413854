"""Real protocol frames for spool and uplink tests: the uplink refuses to send anything else."""

from endpoint.uplink.spool import Spool
from endpoint.wire import protocol


def frame_bytes(frame_id: str, jpeg_bytes: int = 64) -> bytes:
    """A valid frame upload for ``frame_id`` whose JPEG part is ``jpeg_bytes`` long (its content is not decoded)."""
    jpeg = (frame_id.encode() * (jpeg_bytes // len(frame_id) + 1))[:jpeg_bytes]
    header = protocol.make_frame_header(jpeg, endpoint_id="cam", frame_id=frame_id, capture_time=0.0, round=0,
                                        model_version="v0001", width=8, height=8)
    return protocol.encode_frame(header, jpeg)


def fill(spool: Spool, n: int, jpeg_bytes: int = 64) -> list[str]:
    """Spool ``n`` frames the way the runtime does; their ids, oldest first."""
    ids = []
    for _ in range(n):
        seq, frame_id = spool.next_frame_id()
        spool.put(seq, frame_bytes(frame_id, jpeg_bytes))
        ids.append(frame_id)
    return ids
