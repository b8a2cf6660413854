"""A lab, bench or test killed outright (SIGKILL, the OOM killer) takes the servers it started with it: they ran on
for good, and a lab's endpoints kept streaming to its orphaned broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration

STARTS = {
    "mosquitto": "from pipelines.broker import Broker; server = Broker(workdir=WORK).start()",
    "seaweedfs": "from pipelines.s3_server import SeaweedS3; server = SeaweedS3(workdir=WORK).start()",
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended; only its exit status is left
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("server", sorted(STARTS))
def test_a_server_ends_when_the_process_that_started_it_is_killed(tmp_path, server):
    script = (f"import time; WORK = {str(tmp_path / server)!r}; {STARTS[server]}; "
              f"print(server.process.pid, flush=True); time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), f"{server} (pid {child}) outlived the process that started it"
    finally:
        parent.kill()
        if server == "seaweedfs":  # its parent, killed, removed none of its sockets; the next start would
            from pipelines.s3_server import remove_stale_sockets

            remove_stale_sockets()
