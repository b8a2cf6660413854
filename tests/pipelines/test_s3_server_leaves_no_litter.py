"""The real SeaweedFS keeps what it writes inside its own workdir: hundreds of test and lab starts left a folder
of scratch volumes each in /tmp (WebDAV's chunk cache) until that filled the disk of the machine running them."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from pipelines.s3_server import SeaweedS3

pytestmark = pytest.mark.integration

WEED_LITTER = re.compile(r"^([0-9a-f]{8}|seaweedfs-.*\.sock|weed\..*)$")


def _weed_litter() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).iterdir() if WEED_LITTER.match(p.name)}


@pytest.mark.parametrize("kill", [False, True], ids=["stopped", "killed"])
def test_a_started_and_stopped_server_leaves_nothing_in_the_system_temp_dir(tmp_path, kill):
    before = _weed_litter()
    server = SeaweedS3(workdir=tmp_path / "seaweed").start()
    try:
        server.stop(kill=kill)
        assert _weed_litter() - before == set()
    finally:
        server.wipe()


def test_a_start_removes_the_sockets_of_servers_killed_with_their_parent():
    """A lab, test or bench killed outright takes its SeaweedFS with it (PR_SET_PDEATHSIG), but nothing was left to
    remove that server's sockets: three stayed in /tmp after every such kill. A live server's socket stays."""
    import socket

    from pipelines.s3_server import remove_stale_sockets

    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # short: a Unix socket path has ~107 bytes
        stale, live, other = (Path(folder) / name for name in
                              ("seaweedfs-s3-1.sock", "seaweedfs-s3-grpc-2.sock", "seaweedfs-notes.sock"))
        with socket.socket(socket.AF_UNIX) as gone:
            gone.bind(str(stale))  # closed without an unlink: what a killed server leaves
        other.write_text("not a socket")
        with socket.socket(socket.AF_UNIX) as listening:
            listening.bind(str(live))
            listening.listen()
            assert remove_stale_sockets(Path(folder)) == 1
            assert not stale.exists() and live.exists() and other.exists()
