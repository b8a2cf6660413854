"""``edgeloop bench ingest`` runs end to end on real parts and checks the store (a smoke test, no timing asserted)."""

from __future__ import annotations

import argparse

import pytest

pytestmark = pytest.mark.integration


def test_bench_ingest_runs_its_workers_and_finds_every_frame_once(capsys):
    import tempfile
    from pathlib import Path

    from pipelines.bench_ingest import run_bench_ingest

    def workdirs() -> set[Path]:
        return set(Path(tempfile.gettempdir()).glob("edgeloop-bench-*"))

    before = workdirs()
    from pipelines.broker import mosquitto_binary

    workers = 2 if mosquitto_binary() else 1  # two need shared subscriptions, which amqtt has not
    args = argparse.Namespace(frames=60, duration_s=1.0, endpoints=3, window=4, workers=workers, pool_size=4,
                              store_latency_ms=1.0, video="")
    assert run_bench_ingest(args) == 0  # non-zero when a frame is missing, extra, written twice or unacked
    assert workdirs() == before  # its broker's and store's folders are gone with them
    out = capsys.readouterr().out
    assert "frames/s" in out and "ack p99 ms" in out and " ok " in out
    assert "the store alone" in out and "SeaweedFS CPU ms/frame" in out


def test_store_alone_writes_each_frame_once_and_refuses_a_store_that_already_had_it(tmp_path):
    import os

    from edge.store import StoreError
    from edge.store.local import LocalStore
    from pipelines.bench_store_alone import write_frames

    store = LocalStore(tmp_path)
    row = write_frames(store, os.getpid(), [b"\xff\xd8one\xff\xd9", b"\xff\xd8two\xff\xd9"], (4, 3), 10, 3)
    keys = sorted(store.list(""))
    assert row.frames == 10 and len(keys) == 20 and sum(k.endswith(".json") for k in keys) == 10
    endpoint_prefix = keys[0].split("/")[0]
    assert all(k.startswith(endpoint_prefix) for k in keys)

    class FailingOnce:  # one store error, retried: the frame lands, but a bench that hid the error would lie
        failed = False

        def __getattr__(self, name):
            return getattr(store, name)

        def put_if_absent(self, key, data, content_type="application/octet-stream"):
            if not FailingOnce.failed:
                FailingOnce.failed = True
                raise StoreError("store went away")
            return store.put_if_absent(key, data, content_type)

    with pytest.raises(RuntimeError, match="not stored cleanly"):
        write_frames(FailingOnce(), os.getpid(), [b"\xff\xd8one\xff\xd9"], (4, 3), 3, 1)
