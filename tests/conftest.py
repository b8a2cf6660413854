"""Fixtures that start real parts on free loopback ports and stop them after."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

pytest_plugins = ["tests.model_fixtures", "tests.push_fixtures"]


@pytest.fixture
def broker(tmp_path):
    """A real MQTT broker (Mosquitto; amqtt only where no mosquitto binary exists)."""
    from pipelines.broker import Broker

    (tmp_path / "broker").mkdir()
    b = Broker(workdir=tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real SeaweedFS S3 server for the whole session."""
    from pipelines.s3_server import SeaweedS3

    server = SeaweedS3(workdir=tmp_path_factory.mktemp("seaweed")).start()
    yield server
    server.wipe()


@pytest.fixture
def s3_store(s3_server):
    """An S3 store in a fresh bucket of the session's SeaweedFS server."""
    from edge.store.s3 import S3Store

    return S3Store(s3_server.endpoint, f"test-{uuid.uuid4().hex[:12]}", s3_server.access_key, s3_server.secret_key)


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk("256k")``: a tmpfs of that size, a disk that really fills up (needs root or CAP_SYS_ADMIN)."""
    import shutil
    import subprocess

    mounted = []

    def mount(size: str):
        mount_dir = tmp_path / f"disk-{len(mounted)}"
        mount_dir.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no mount command here: cannot make a real full filesystem")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_dir)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
        mounted.append(mount_dir)
        return mount_dir

    yield mount
    for mount_dir in mounted:
        subprocess.run(["umount", "-l", str(mount_dir)], check=False)
