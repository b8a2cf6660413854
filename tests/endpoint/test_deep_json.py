"""Deeply nested JSON (found by ``edgeloop bench fuzz``) is refused as malformed, never a RecursionError.

json.loads raises RecursionError, not JSONDecodeError, on ~100k nested brackets; it escaped every receiver's
``except ProtocolError`` (endpoint plan handler, fleet view, split server, ingest's worker).
"""

import struct

import pytest

from edge.learner.fleet import FleetView
from endpoint.wire import protocol
from endpoint.wire.protocol import ProtocolError
from endpoint.wire.split_protocol import SPLIT_MAGIC, decode_result, decode_split_request

DEEP = b"[" * 100_000  # 100 kB: under every size limit


def _binary(magic: bytes) -> bytes:
    return magic + struct.pack(">I", len(DEEP)) + DEEP + b"body"


@pytest.mark.parametrize("decode, payload", [
    (protocol.decode, DEEP),
    (protocol.decode, b'{"v": 1, "kind": "plan", "x": ' + DEEP),
    (protocol.decode_frame, _binary(protocol.FRAME_MAGIC)),
    (protocol.decode_model_data, _binary(protocol.MODEL_DATA_MAGIC)),
    (decode_split_request, _binary(SPLIT_MAGIC)),
    (decode_result, DEEP),
], ids=["json", "json-field", "frame", "model_data", "split_request", "split_result"])
def test_deep_nesting_is_a_protocol_error(decode, payload):
    with pytest.raises(ProtocolError):
        decode(payload)


class _NoMqtt:
    def subscribe(self, *args, **kwargs):
        pass


def test_the_fleet_view_drops_a_deeply_nested_status():
    fleet = FleetView(_NoMqtt(), ["cam-1"])
    fleet._on_message(protocol.topic("cam-1", protocol.FEATURE_STATUS), DEEP)  # raised RecursionError
    assert fleet.dropped == 1 and fleet.running("cam-1") is None
