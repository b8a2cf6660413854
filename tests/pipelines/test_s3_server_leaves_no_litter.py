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
