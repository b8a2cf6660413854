"""Co-inference mix-ups a review found: a request answered twice (two split servers without a share group, or a
duplicate) crashed the endpoint's client, a tail file of another model, swapped in under a running server, answered
a head's features as if it were the head's own tail, and an endless reply timeout was accepted."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from edge.split.server import SplitServer
from endpoint.model.split_halves import SplitHeadRunner
from endpoint.sources.scenario import SyntheticScenario
from endpoint.split.client import SplitClient
from endpoint.split.config import SplitModeConfig
from endpoint.wire.feature_codec import CodecSpec, encode_tensors
from endpoint.wire.split_protocol import (FEATURE_SPLIT_RESULT, SplitRequest, SplitRequestHeader, SplitResult,
                                          decode_split_request, encode_message)


class AnswersTwice:
    """A link on which every request is answered twice, as two servers without a share group answer it."""

    def __init__(self):
        self.handlers = {}

    def on(self, feature, handler):
        self.handlers[feature] = handler

    def publish(self, feature, payload, qos=1, retain=False):
        request = decode_split_request(payload).header
        result = encode_message(SplitResult(endpoint_id=request.endpoint_id, request_id=request.request_id))
        for _ in range(2):
            self.handlers[FEATURE_SPLIT_RESULT](result)


def test_a_request_answered_twice_gives_one_outcome(split_set):
    folder, _ = split_set
    client = SplitClient(AnswersTwice(), "cam-1", folder, "after4", "fp32", timeout_s=1.0)
    for _ in range(3):  # the second answer unpacked six values into three: ValueError, and the endpoint exited
        outcome = client.infer(np.zeros((120, 160, 3), np.uint8))
        assert outcome.reason == "" and outcome.detections is not None
    assert client._waiting == {}


def test_a_tail_of_another_model_is_refused(split_set, tmp_path):
    folder, _ = split_set
    mixed = tmp_path / "set"
    shutil.copytree(folder, mixed)
    server = SplitServer(mixed, "127.0.0.1", 1, threads=1)  # reads the manifest now; tails load on first use
    tail = onnx.load(str(mixed / "after4.tail.onnx"))  # the set rebuilt from another model: same shapes, new pair
    next(p for p in tail.metadata_props if p.key == "pair_id").value = "0123456789abcdef"
    onnx.save(tail, str(mixed / "after4.tail.onnx"))
    head = SplitHeadRunner(mixed / "after4.head.onnx", 1)
    image = SyntheticScenario().frame("day", 7).image
    features, _ = head.run(image)
    payload = encode_tensors(features, CodecSpec.parse("fp32"))
    header = SplitRequestHeader(endpoint_id="cam-1", request_id="cam-1-00000001", pair_id=head.meta.pair_id,
                                codec="fp32", source_width=image.shape[1], source_height=image.shape[0],
                                sent_time=0.0, payload_bytes=len(payload))
    result = server.handle(SplitRequest(header=header, payload=payload))
    assert not result.ok and result.reason.startswith("unknown_pair") and "0123456789abcdef" in result.reason


@pytest.mark.parametrize("timeout_s", [float("inf"), 1e9])
def test_a_reply_timeout_past_an_hour_is_a_bad_config(timeout_s):
    """inf was accepted, and the first frame's Event.wait(inf) raised OverflowError; 1e9 waited forever."""
    with pytest.raises(ValidationError, match="timeout_s"):
        SplitModeConfig(set_dir="set", timeout_s=timeout_s)
    assert SplitModeConfig(set_dir="set", timeout_s=3600).timeout_s == 3600


def test_a_request_over_the_size_limit_loses_its_frame_not_the_endpoint(split_set, monkeypatch):
    """A large fp32 crossing (a big input) raised PayloadTooLarge out of infer(), and the split endpoint exited."""
    import endpoint.wire.split_protocol as split_protocol

    folder, _ = split_set
    monkeypatch.setattr(split_protocol, "MAX_SPLIT_PAYLOAD_BYTES", 1000)  # below this set's fp32 crossing
    sent = []
    link = type("Link", (), {"on": lambda self, f, h: None, "publish": lambda self, *a, **k: sent.append(a)})()
    client = SplitClient(link, "cam-1", folder, "after4", "fp32", timeout_s=0.5)
    outcome = client.infer(np.zeros((120, 160, 3), np.uint8))
    assert outcome.detections is None and outcome.reason.startswith("too_large: split request of ")
    assert outcome.request_bytes == 0 and sent == [] and client._waiting == {}
