"""``edgeloop endpoint --config FILE``: run one endpoint until its source ends or a signal stops it."""

from __future__ import annotations

import logging
import signal

from endpoint.config import EndpointConfig
from endpoint.wire.config_base import load_command_config
from endpoint.runtime import EndpointRuntime

log = logging.getLogger(__name__)


def run_endpoint(config_path: str) -> int:
    config = load_command_config(EndpointConfig, config_path, "edgeloop endpoint")
    if config is None:
        return 2
    runtime = EndpointRuntime(config)

    def _stop(signum, frame):
        log.info("signal %d: stopping endpoint %s", signum, config.endpoint_id)
        runtime.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stats = runtime.run()
    log.info("endpoint %s done: %d frames seen, %d dropped while the detector was behind, %d sampled, "
             "%d still spooled", config.endpoint_id, stats.frames_seen, stats.frames_dropped, stats.frames_sampled,
             runtime.spool.depth())
    return 0
