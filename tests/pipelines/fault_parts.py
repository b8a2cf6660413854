"""Shared parts of the fault tests on real parts: a detecting, uploading endpoint process, a watcher of what the
edge tells it over the broker, and the exactly-once check run on the object store after every fault."""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
import threading
from pathlib import Path
from typing import Callable

import yaml

from edge import frame_keys
from edge.frame_index import FrameRecord
from edge.mqtt_connection import MqttConnection
from edge.store import ObjectStore
from endpoint.wire import protocol

ENDPOINT_ID = "cam-9"


def uploading_endpoint_config(tmp_path: Path, broker_port: int, model_path: Path, spool_dir: Path, n_frames: int,
                              fps: float, ack_timeout_s: float = 2.0, start_index: int = 0) -> Path:
    """An endpoint that detects ``n_frames`` scenario frames (from ``start_index``) at ``fps``, uploads every one,
    and exits once all are acked; its summary goes to ``tmp_path/summary.json``."""
    config = {
        "endpoint_id": ENDPOINT_ID,
        "broker": {"host": "127.0.0.1", "port": broker_port, "keepalive_s": 5},
        "source": {"kind": "scenario", "domain": "day", "max_frames": n_frames, "fps": fps, "width": 192,
                   "height": 144, "start_index": start_index},
        "sampler": {"name": "uniform", "sample_rate": 1.0},
        "uplink": {"spool_dir": str(spool_dir), "ack_timeout_s": ack_timeout_s, "rate_bytes_per_s": 5_000_000,
                   "burst_bytes": 1_000_000},
        "model": {"path": str(model_path), "version": "v0001"},
        "telemetry_interval_s": 0.3,
        "exit_when_drained": True,
        "drain_timeout_s": 90,
        "summary_path": str(tmp_path / "summary.json"),
    }
    path = tmp_path / "endpoint.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class EdgeWatch:
    """Records, on the broker, every frame ack the edge sends to the endpoint and every telemetry it publishes."""

    def __init__(self, port: int, endpoint_id: str = ENDPOINT_ID):
        self.acked: collections.Counter[str] = collections.Counter()  # frame id -> ok acks seen
        self.refused: list[protocol.Ack] = []
        self.telemetry: list[protocol.Telemetry] = []
        self._changed = threading.Condition()
        self.mqtt = MqttConnection("127.0.0.1", port, client_id="fault-test-watch", keepalive_s=5)
        self.mqtt.subscribe(protocol.topic(endpoint_id, protocol.FEATURE_ACK), self._on_ack)
        self.mqtt.subscribe(protocol.topic(endpoint_id, protocol.FEATURE_TELEMETRY), self._on_telemetry, qos=0)
        assert self.mqtt.start(), f"the watcher could not subscribe on port {port}"

    def _on_ack(self, topic: str, payload: bytes) -> None:
        ack = protocol.decode(payload)
        with self._changed:
            if ack.ok:
                self.acked.update(ack.frame_ids)
            elif ack.frame_ids:
                self.refused.append(ack)
            self._changed.notify_all()

    def _on_telemetry(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.telemetry.append(protocol.decode(payload))
            self._changed.notify_all()

    def wait(self, predicate: Callable[["EdgeWatch"], bool], timeout_s: float) -> bool:
        """Block until ``predicate(self)`` holds (checked on every ack and telemetry) or ``timeout_s`` passes."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout=timeout_s)

    def last(self) -> protocol.Telemetry | None:
        with self._changed:
            return self.telemetry[-1] if self.telemetry else None

    def detecting_since(self, since: float, more_frames: int) -> Callable[["EdgeWatch"], bool]:
        """A predicate: telemetry stamped after ``since`` shows ``more_frames`` more frames detected than the
        first telemetry after ``since``, with a positive inference time (the model really ran)."""
        def holds(watch: EdgeWatch) -> bool:
            after = [t for t in watch.telemetry if t.time > since]
            return bool(after) and after[-1].frames_seen >= after[0].frames_seen + more_frames \
                and after[-1].inference_ms > 0
        return holds

    def stop(self) -> None:
        self.mqtt.stop()


def wait_exit(process: subprocess.Popen, log_path: Path, timeout_s: float) -> dict:
    """The endpoint's summary once it exited by itself with status 0."""
    try:
        rc = process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the endpoint did not drain and exit in {timeout_s} s:\n"
                             f"{log_path.read_text()[-3000:]}") from None
    assert rc == 0, log_path.read_text()[-3000:]
    return json.loads((log_path.parent / "summary.json").read_text())


def assert_stored_exactly_once(store: ObjectStore, endpoint_id: str, expected_ids: set[str]) -> None:
    """Every expected frame is stored once, in round 0, as one JPEG and one ``.json`` whose hash matches the JPEG;
    nothing else of this endpoint is stored."""
    objects: dict[tuple[int, str], list[str]] = collections.defaultdict(list)
    for key in store.list(frame_keys.endpoint_prefix(endpoint_id)):
        parsed = frame_keys.parse_frame_key(key)
        assert parsed is not None, f"a stray object {key!r}"
        objects[(parsed.round, parsed.frame_id)].append(key)
    stored_ids = [frame_id for _, frame_id in objects]
    assert len(stored_ids) == len(set(stored_ids)), "a frame is stored under two rounds"
    missing, extra = expected_ids - set(stored_ids), set(stored_ids) - expected_ids
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, unexpected {sorted(extra)[:10]}"
    for (round_index, frame_id), keys in objects.items():
        assert sorted(keys) == sorted([frame_keys.jpeg_key(endpoint_id, round_index, frame_id),
                                       frame_keys.meta_key(endpoint_id, round_index, frame_id)]), keys
        record = FrameRecord.model_validate_json(store.get(frame_keys.meta_key(endpoint_id, round_index, frame_id)))
        jpeg = store.get(frame_keys.jpeg_key(endpoint_id, round_index, frame_id))
        assert hashlib.sha256(jpeg).hexdigest() == record.jpeg_sha256, f"{frame_id}: JPEG and record disagree"


def assert_every_ack_stored(watch: EdgeWatch, summary: dict, store: ObjectStore) -> set[str]:
    """The common end check: the drained endpoint's sampled frames are exactly the acked ones, each stored once."""
    sampled = summary["sampled_ids"]
    assert len(sampled) == summary["frames_sampled"] == len(set(sampled)), "sampled_ids no longer holds them all"
    assert summary["spool_depth"] == 0 and summary["frames_acked"] == summary["frames_sampled"]
    assert not watch.refused, [a.reason for a in watch.refused[:3]]
    assert set(watch.acked) == set(sampled)  # the edge acked every frame it got, and only those
    assert_stored_exactly_once(store, ENDPOINT_ID, set(sampled))
    return set(sampled)
