"""`edgeloop edge`'s learner retries when its store refuses it at start (MinIO not up yet, keys not yet valid)
rather than its thread dying while ingest runs on without it."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from edge.learner.config import LearnerConfig
from edge.learner.metrics import LearnerMetrics
from edge.main import _run_learner

pytestmark = pytest.mark.integration


def test_a_refused_store_at_start_is_retried_until_stopped(s3_server, tmp_path, caplog):
    config = LearnerConfig.model_validate({
        "store": {"kind": "s3", "endpoint": s3_server.endpoint, "bucket": "learner-retry",
                  "access_key": s3_server.access_key, "secret_key": "not-the-secret"},
        "state_dir": str(tmp_path / "state"), "endpoints": [{"id": "cam-1"}],
        "bootstrap": {"synthetic_domain": "day", "frames": 4}})
    stop = threading.Event()
    failures = []
    thread = threading.Thread(target=_catching, args=(failures, config, stop), daemon=True)
    with caplog.at_level(logging.ERROR):
        thread.start()
        deadline = time.monotonic() + 20
        while "restarting it in 10 s" not in caplog.text and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert thread.is_alive() and not failures  # still trying, not dead
        assert "restarting it in 10 s" in caplog.text and "HTTP 403" in caplog.text
        stop.set()
        thread.join(15)
    assert not thread.is_alive()


def _catching(failures, config, stop):
    try:
        _run_learner(config, stop, LearnerMetrics(0))
    except BaseException as exc:  # what would have killed the learner's thread
        failures.append(exc)
