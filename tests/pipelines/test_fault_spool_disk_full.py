"""ENOSPC under a running endpoint's spool (a real tmpfs, filled by a file): the endpoint keeps detecting, counts
the frames it skips, and uploads again once the file is deleted; every acked frame is stored exactly once."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

import pytest

from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from endpoint.wire.broker_config import BrokerConfig
from tests.pipelines.endpoint_process import start_endpoint
from tests.pipelines.fault_parts import (ENDPOINT_ID, EdgeWatch, assert_every_ack_stored,
                                         assert_stored_exactly_once, uploading_endpoint_config, wait_exit)

pytestmark = pytest.mark.integration

FPS = 10.0
N_FRAMES = 150  # 15 s of stream: room for a full disk and a recovery while it still runs
SKIPPED_WHILE_FULL = 10  # frames the detector must see and the spool refuse before the disk is freed


@pytest.fixture
def spool_disk(small_disk):
    """A 1 MiB tmpfs: a disk that really fills up."""
    return small_disk("1m")


def fill(path: Path) -> None:
    """Append to ``path`` until the filesystem refuses; called again, it takes back the space that acks freed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for chunk_bytes in (64 * 1024, 4096):  # tmpfs hands out 4 KiB pages: the last ones one at a time
            chunk = b"\0" * chunk_bytes
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def _skipping_since(since: float):
    """Telemetry after ``since`` shows frames detected yet not spooled, and the model still running."""
    def holds(watch: EdgeWatch) -> bool:
        after = [t for t in watch.telemetry if t.time > since]
        if len(after) < 2:
            return False
        first, last = after[0], after[-1]
        not_spooled = (last.frames_seen - last.frames_sampled) - (first.frames_seen - first.frames_sampled)
        return not_spooled >= SKIPPED_WHILE_FULL and last.inference_ms > 0
    return holds


def _keep_full_until_skipping(watch: EdgeWatch, filler: Path, endpoint: subprocess.Popen, log_path: Path,
                              logged: str = "") -> None:
    """Fill the spool's disk and keep it full until the running endpoint has skipped frames for it (and has
    logged ``logged``)."""
    full_at = time.time()
    deadline = time.monotonic() + 30
    fill(filler)
    while not (watch.wait(_skipping_since(full_at), timeout_s=0.3) and logged in log_path.read_text()):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        assert endpoint.poll() is None, log_path.read_text()[-3000:]  # ENOSPC must not crash it
        fill(filler)  # acked frames leave the spool and free pages: keep the disk full
    assert endpoint.poll() is None, log_path.read_text()[-3000:]


def test_a_full_spool_disk_skips_frames_keeps_detecting_and_uploads_again_once_space_frees(
        tmp_path, broker, s3_store, spool_disk, tiny_yolo_onnx):
    ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group=""), store=s3_store).start()
    watch = EdgeWatch(broker.port)
    log_path = tmp_path / "endpoint.log"
    config = uploading_endpoint_config(tmp_path, broker.port, tiny_yolo_onnx, spool_disk / "spool", N_FRAMES, FPS)
    endpoint = start_endpoint(config, log_path)
    filler = spool_disk / "filler"
    try:
        assert watch.wait(lambda w: len(w.acked) >= 10, timeout_s=60), log_path.read_text()[-3000:]
        _keep_full_until_skipping(watch, filler, endpoint, log_path)
        filler.unlink()
        at_free = watch.last()
        assert watch.wait(lambda w: w.last().frames_sampled >= at_free.frames_sampled + 10
                          and w.last().frames_acked >= at_free.frames_acked + 10, timeout_s=30), \
            log_path.read_text()[-3000:]
        summary = wait_exit(endpoint, log_path, timeout_s=90)
    finally:
        if endpoint.poll() is None:
            endpoint.kill()
        watch.stop()
        ingest.stop()

    assert_every_ack_stored(watch, summary, s3_store)
    assert summary["frames_seen"] == N_FRAMES and summary["inference_ms_total"] > 0
    assert summary["frames_skipped_spool_full"] >= SKIPPED_WHILE_FULL
    assert summary["frames_skipped_errors"] == 0  # a full disk is told apart from other failures
    # sampling takes every frame: each one was either spooled (and then acked) or skipped for the full disk
    assert summary["frames_sampled"] + summary["frames_skipped_spool_full"] == N_FRAMES
    assert "disk full" in log_path.read_text()


def test_an_endpoint_killed_on_a_full_spool_disk_reissues_no_frame_id_after_its_restart(
        tmp_path, broker, s3_store, spool_disk, tiny_yolo_onnx):
    """Issue 11: a failed id-counter write must not let a restart reissue ids the edge already stored."""
    ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group=""), store=s3_store).start()
    watch = EdgeWatch(broker.port)
    log_path = tmp_path / "endpoint.log"
    spool_dir, filler = spool_disk / "spool", spool_disk / "filler"
    endless = uploading_endpoint_config(tmp_path, broker.port, tiny_yolo_onnx, spool_dir, 100_000, FPS)
    endpoint = start_endpoint(endless, log_path)
    try:
        # ids are reserved on disk in blocks (the first covers 0-64): fill before the first is used up, so the next
        # reservation is the one that fails
        assert watch.wait(lambda w: len(w.acked) >= 50, timeout_s=60), log_path.read_text()[-3000:]
        _keep_full_until_skipping(watch, filler, endpoint, log_path, logged="could not persist the spool's id counter")
        endpoint.kill()  # a power cut while the disk is full: the id counter could not be written
        endpoint.wait(timeout=10)
        acked_before = set(watch.acked)
        filler.unlink()
        # other scenes than before: a reissued id would carry other JPEG bytes, which the edge refuses
        short = uploading_endpoint_config(tmp_path, broker.port, tiny_yolo_onnx, spool_dir, 40, FPS,
                                          start_index=10_000)
        endpoint = start_endpoint(short, log_path)
        summary = wait_exit(endpoint, log_path, timeout_s=90)
    finally:
        if endpoint.poll() is None:
            endpoint.kill()
        watch.stop()
        ingest.stop()

    assert not watch.refused, [a.reason for a in watch.refused[:3]]  # a reissued id is refused as a conflict
    assert not acked_before & set(summary["sampled_ids"])  # the restart took only ids never used before
    assert summary["spool_depth"] == 0  # what the killed run left spooled went out too
    assert summary["frames_sampled"] == 40 and summary["inference_ms_total"] > 0
    stored_ids = {key.rsplit("/", 1)[1].split(".")[0] for key in s3_store.list("frames/")}
    assert stored_ids == set(watch.acked)
    assert_stored_exactly_once(s3_store, ENDPOINT_ID, stored_ids)
