"""``edgeloop bench ingest`` runs end to end on real parts and checks the store (a smoke test, no timing asserted)."""

from __future__ import annotations

import argparse

import pytest

pytestmark = pytest.mark.integration


def test_bench_ingest_runs_two_workers_and_finds_every_frame_once(capsys):
    from pipelines.bench_ingest import run_bench_ingest

    args = argparse.Namespace(frames=60, duration_s=1.0, endpoints=3, window=4, workers=2, pool_size=4,
                              store_latency_ms=1.0, video="")
    assert run_bench_ingest(args) == 0  # non-zero when a frame is missing, extra, written twice or unacked
    out = capsys.readouterr().out
    assert "frames/s" in out and "ack p99 ms" in out and " ok " in out
