"""``edgeloop edge --config FILE``: run the edge's ingest service until a signal stops it."""

from __future__ import annotations

import logging
import signal
import threading

from edge.ingest import run_ingest
from edge.ingest_config import load_ingest_config

log = logging.getLogger(__name__)


def run_edge(config_path: str) -> int:
    config = load_ingest_config(config_path)
    stop = threading.Event()

    def _stop(signum, frame):
        log.info("signal %d: stopping the edge", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stats = run_ingest(config, stop)
    log.info("edge stopped: %d stored, %d duplicates, %d rejected", stats.stored, stats.duplicates,
             stats.rejected_total)
    return 0
