"""``edgeloop edge --config FILE``: run the edge's roles (ingest, learner) until a signal stops them."""

from __future__ import annotations

import logging
import signal
import threading

from pydantic import ValidationError

from edge.learner.metrics import LearnerMetrics
from edge.service_config import EdgeServiceConfig
from endpoint.wire.config_base import load_config

log = logging.getLogger(__name__)


def run_edge(config_path: str) -> int:
    metrics = None
    try:
        config = load_config(EdgeServiceConfig, config_path)
        if "learner" in config.roles:
            config.learner.check_folders()
            config.learner.check_state()
            metrics = LearnerMetrics(config.learner.metrics_port)  # one server on the port, across restarts
    except (OSError, ValueError, ValidationError) as exc:  # OSError: also a metrics_port already taken
        log.error("edgeloop edge: bad config %s: %s", config_path, exc)
        return 2
    stop = threading.Event()

    def _stop(signum, frame):
        log.info("signal %d: stopping the edge", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    threads = []
    if "learner" in config.roles:
        threads.append(threading.Thread(target=_run_learner, args=(config.learner, stop, metrics), name="learner",
                                        daemon=True))
    for thread in threads:
        thread.start()
    if "ingest" in config.roles:
        from edge.ingest import run_ingest

        stats = run_ingest(config.ingest, stop)
        log.info("ingest stopped: %d stored, %d duplicates, %d rejected", stats.stored, stats.duplicates,
                 stats.rejected_total)
    else:
        stop.wait()
    # The learner saves its state after every stage: a stop mid-training resumes that stage on the next start.
    return 0


def _run_learner(config, stop: threading.Event, metrics) -> None:
    """Run the learner until ``stop``; after a failure, a new one resumes from the saved state."""
    from edge.learner.service import Learner

    current: list = []
    threading.Thread(target=lambda: (stop.wait(), [learner.stop() for learner in current]), daemon=True).start()
    while not stop.is_set():
        learner = None
        try:
            learner = Learner(config, metrics=metrics)  # opens the store: it may not be up yet
            current[:] = [learner]
            learner.start()
            learner.serve()
            return
        except Exception:
            log.exception("the learner failed; restarting it in 10 s (its state resumes the round)")
            if learner is not None:
                learner.stop()
            stop.wait(10.0)
