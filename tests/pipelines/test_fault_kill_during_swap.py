"""``kill -9`` of a real endpoint process while it installs a pushed model: after a restart it runs a model whose
signed sidecar verifies (the newest one complete on disk, never a half-written file), says so, and keeps detecting."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from edge.signing import generate_keypair, load_private_key, sign
from endpoint.model.updater import TMP_PREFIX
from endpoint.model.verify import ModelRejected, load_public_key, sidecar_paths, verify_stored
from endpoint.wire.manifest import canonical_bytes
from tests.pipelines.endpoint_process import (EdgeSide, manifest_for, start_endpoint, stop_endpoint,
                                              write_endpoint_config)

pytestmark = pytest.mark.integration

ENDPOINT_ID = "cam-1"  # the one endpoint_process's config and EdgeSide speak for
POLL_S = 0.0005  # the fault injector's look at the models dir: the install's steps are milliseconds apart

# When to kill, in the order the updater writes: mid-way through the model file (its temp file exists), once the
# model file has its final name (sidecars and swap still to come), once the signature sidecar exists (swap to come).
KILL_POINTS: dict[str, Callable[[Path, str], bool]] = {
    "model_half_written": lambda d, v: any(p.name.startswith(TMP_PREFIX) for p in d.iterdir())
    or (d / f"{v}.onnx").exists(),  # a temp file lives for milliseconds: a late look kills at the next step
    "model_written": lambda d, v: (d / f"{v}.onnx").exists(),
    "sidecars_written": lambda d, v: sidecar_paths(d / f"{v}.onnx")[1].exists(),
}
PUSHES = ("v0002", "v0003", "v0004")  # a kill that comes after the swap (the test process stalled) pushes anew


def _boot(edge: EdgeSide, config: Path, log_path: Path, started: list[subprocess.Popen]) -> str:
    """Start the endpoint; return the version it reports once online and detecting."""
    since = time.time()
    started.append(start_endpoint(config, log_path))
    status = edge.wait_status("online", since)
    assert status is not None, log_path.read_text()[-3000:]
    edge.telemetry.clear()
    assert edge.wait_frames(3) > 3, log_path.read_text()[-3000:]
    return status.model_version


def _kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert process.poll() is None and time.monotonic() < deadline, "the install never reached the kill point"
        time.sleep(POLL_S)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def _newest_complete(models_dir: Path, public_key) -> str:
    """What a correct boot must pick: the newest version whose files verify as they lie on disk."""
    verified = []
    for path in models_dir.glob("*.onnx"):
        try:
            verified.append(verify_stored(path, public_key, ENDPOINT_ID, "default"))
        except ModelRejected:
            continue
    return max(verified, key=lambda m: m.serial).version


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_an_endpoint_killed_while_installing_a_model_boots_a_verified_one_and_keeps_detecting(
        tmp_path, broker, tiny_yolo_onnx, kill_point):
    private_path, public_path = generate_keypair(tmp_path / "keys")
    private_key, public_key = load_private_key(private_path), load_public_key(public_path)
    good = tiny_yolo_onnx.read_bytes()
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    # v0001 carries a signed sidecar too, so whichever version boots, its signature can be checked
    (models_dir / "v0001.onnx").write_bytes(good)
    v0001 = manifest_for(good, "v0001")
    manifest_path, signature_path = sidecar_paths(models_dir / "v0001.onnx")
    manifest_path.write_bytes(canonical_bytes(v0001))
    signature_path.write_text(sign(v0001, private_key))
    config = write_endpoint_config(tmp_path, broker.port, models_dir, public_path)
    log_path = tmp_path / "endpoint.log"
    edge = EdgeSide(broker.port)
    started: list[subprocess.Popen] = []
    try:
        assert _boot(edge, config, log_path, started) == "v0001"
        for version in PUSHES:
            pushed = manifest_for(good, version)
            edge.publisher.push(ENDPOINT_ID, pushed, sign(pushed, private_key), good)
            _kill_when(started[-1], lambda v=version: KILL_POINTS[kill_point](models_dir, v))
            # the updater logs this after the swap and before the ack: its absence proves the kill was in the window
            if f"model {version} (full" not in log_path.read_text():
                break
            _boot(edge, config, log_path, started)
        else:
            pytest.fail(f"every kill came after the swap: {PUSHES}")
        expected = _newest_complete(models_dir, public_key)
        for stored in models_dir.glob("*.onnx"):  # final names only ever hold complete files
            assert stored.read_bytes() == good, f"{stored.name} is half-written"

        version = _boot(edge, config, log_path, started)
        assert version == expected, log_path.read_text()[-3000:]
        assert verify_stored(models_dir / f"{version}.onnx", public_key, ENDPOINT_ID, "default").version == version
        assert edge.telemetry[-1].model_version == version and edge.telemetry[-1].inference_ms > 0

        # the edge saw no ack, so it pushes again: the endpoint ends up on that version whatever the kill left
        while not edge.acks.empty():  # acks of pushes whose kill came too late
            edge.acks.get_nowait()
        edge.publisher.push(ENDPOINT_ID, pushed, sign(pushed, private_key), good)
        ack = edge.acks.get(timeout=30)
        assert (ack.ok, ack.model_version) == (True, pushed.version), ack.reason
        seen = edge.frames_seen()
        assert edge.wait_frames(seen + 3) > seen + 3
        assert edge.telemetry[-1].model_version == pushed.version and edge.telemetry[-1].inference_ms > 0
        if expected != pushed.version:  # a fresh install prunes what the killed one left behind
            assert not [p.name for p in models_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
        assert started[-1].poll() is None
    finally:
        for process in started:
            if process.poll() is None:
                stop_endpoint(process)
        edge.mqtt.stop()
