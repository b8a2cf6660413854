"""Endpoint processes of the lab: one ``edgeloop endpoint`` per camera, started and stopped together."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from endpoint.config import EndpointConfig
from pipelines.child_process import end_with_parent

log = logging.getLogger(__name__)


@dataclass
class LabEndpoint:
    endpoint_id: str
    config_path: Path
    log_path: Path
    process: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, n_chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except FileNotFoundError:
            return ""


class LabEndpoints:
    """Writes each endpoint's config, starts the processes, and stops them all (SIGTERM, then SIGKILL)."""

    def __init__(self, root: Path):
        self.root = root
        self.endpoints: list[LabEndpoint] = []

    def add(self, config: EndpointConfig) -> LabEndpoint:
        """Write a validated config for the endpoint's process (validated again there, by the same model)."""
        folder = self.root / config.endpoint_id
        folder.mkdir(parents=True, exist_ok=True)
        config_path = folder / "endpoint.yaml"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        ep = LabEndpoint(config.endpoint_id, config_path, folder / "endpoint.log")
        self.endpoints.append(ep)
        return ep

    def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for ep in self.endpoints:
            ep.process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(ep.config_path)],
                stdout=open(ep.log_path, "ab"), stderr=subprocess.STDOUT, env=env,
                start_new_session=True,  # Ctrl-C reaches the lab, which stops them in order
                preexec_fn=end_with_parent)  # and a lab killed outright takes them with it
            log.info("started endpoint %s (pid %d, log %s)", ep.endpoint_id, ep.process.pid, ep.log_path)

    def check_alive(self) -> None:
        for ep in self.endpoints:
            if ep.process is not None and not ep.alive():
                raise RuntimeError(f"endpoint {ep.endpoint_id} exited with {ep.process.returncode}:\n{ep.log_tail()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        for ep in self.endpoints:
            if ep.alive():
                ep.process.send_signal(signal.SIGTERM)
        for ep in self.endpoints:
            if ep.process is None:
                continue
            try:
                ep.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("endpoint %s did not stop in %.0f s; killing it", ep.endpoint_id, timeout_s)
                ep.process.kill()
                ep.process.wait()
