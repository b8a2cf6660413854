"""Start an MQTT broker on loopback: Mosquitto when installed, else the embedded amqtt."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.child_process import end_with_parent
from pipelines.ports import free_port, wait_for_port

log = logging.getLogger(__name__)

MAX_PACKET_BYTES = 8 * 1024 * 1024


def mosquitto_binary() -> str | None:
    """The mosquitto executable, if one is installed (Debian puts it in /usr/sbin)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None)


@dataclass
class Broker:
    """A broker process on ``host:port``; ``stop()`` and ``start()`` may be repeated (outage tests)."""

    port: int = 0
    host: str = "127.0.0.1"
    kind: str = "auto"  # "mosquitto", "amqtt" or "auto"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgeloop-broker-")))
    process: subprocess.Popen | None = None

    def __post_init__(self):
        self.workdir = Path(self.workdir).resolve()  # the broker runs with it as cwd; relative paths would break
        if self.kind == "auto":
            self.kind = "mosquitto" if mosquitto_binary() else "amqtt"
        if not self.port:
            self.port = free_port(self.host)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> "Broker":
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = self._mosquitto_cmd() if self.kind == "mosquitto" else self._amqtt_cmd()
        logfile = open(self.workdir / f"{self.kind}.log", "ab")
        self.process = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, cwd=self.workdir,
                                        preexec_fn=end_with_parent)
        try:
            wait_for_port(self.port, self.host, timeout_s)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"{self.kind} did not start; see {self.workdir / (self.kind + '.log')}") from None
        log.info("%s broker listening on %s", self.kind, self.url)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _mosquitto_cmd(self) -> list[str]:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            f"max_packet_size {MAX_PACKET_BYTES}\n"
            "max_queued_messages 10000\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            # Started by root, mosquitto switches to its own user, and the switch cancels the signal that ends it
            # with its parent (pipelines.child_process). This broker is the lab's and the tests', on loopback.
            + ("user root\n" if os.geteuid() == 0 else "")
        )
        return [mosquitto_binary() or "mosquitto", "-c", str(conf)]

    def _amqtt_cmd(self) -> list[str]:
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(
            "listeners:\n  default:\n    type: tcp\n"
            f"    bind: {self.host}:{self.port}\n"
            "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n"
            "  amqtt.plugins.sys.broker.BrokerSysPlugin:\n    sys_interval: 0\n"
        )
        return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]

    def __enter__(self) -> "Broker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
