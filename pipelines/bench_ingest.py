"""``edgeloop bench ingest``: frames/s from an endpoint process through Mosquitto into S3, and bytes per frame."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestBenchResult:
    stream: str
    frames: int
    wall_s: float
    frames_per_s: float
    payload_bytes_per_frame: float
    jpeg_bytes_per_frame: float
    raw_bytes_per_frame: float


def bench_stream(name: str, source: dict, frames: int, broker_port: int, store, workdir: Path) -> IngestBenchResult:
    """Stream ``frames`` frames from a real endpoint process and time them into the store."""
    from edge.frame_index import FrameIndex
    from edge.ingest import Ingest
    from edge.ingest_config import IngestConfig

    endpoint_id = f"bench-{name}"
    config = {"endpoint_id": endpoint_id, "broker": {"port": broker_port},
              "source": {**source, "max_frames": frames},
              "sampler": {"name": "uniform", "sample_rate": 1.0},
              "uplink": {"spool_dir": str(workdir / f"spool-{name}"), "rate_bytes_per_s": 1e9,
                         "burst_bytes": 100_000_000, "window": 64},
              "exit_when_drained": True, "summary_path": str(workdir / f"{name}.json")}
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    ingest = Ingest(IngestConfig(broker_port=broker_port, shared_group=""), store).start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(config_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        # time from the first stored frame to the last, so process start-up is not counted
        if not ingest.wait_for(1, timeout_s=60):
            proc.kill()
            raise RuntimeError(f"no frame arrived:\n{proc.communicate()[0][-2000:]}")
        started = time.perf_counter()
        if not ingest.wait_for(frames, timeout_s=120):
            proc.kill()
            raise RuntimeError(f"only {ingest.stats().stored} of {frames} frames stored")
        wall_s = time.perf_counter() - started
        output, _ = proc.communicate(timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"endpoint failed:\n{output[-2000:]}")
    finally:
        ingest.stop()
    records = FrameIndex(store).frames(endpoint_id, 0)
    jpeg_bytes = sum(r.jpeg_bytes for r in records) / max(1, len(records))
    raw_bytes = sum(r.width * r.height * 3 for r in records) / max(1, len(records))
    summary = json.loads((workdir / f"{name}.json").read_text())
    return IngestBenchResult(name, len(records), wall_s, (len(records) - 1) / wall_s,
                             summary["bytes_sent"] / max(1, summary["frames_sent"]), jpeg_bytes, raw_bytes)


def run_bench_ingest(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from edge.store.s3 import S3Store
    from pipelines.broker import Broker
    from pipelines.s3_server import SeaweedS3

    streams = {"synthetic 320x240": {"kind": "scenario", "domain": "day"}}
    video = Path(args.video)
    if video.exists():
        streams["vtest.avi 768x576"] = {"kind": "video", "path": str(video.resolve()), "loop": True}
    else:
        log.warning("no real video at %s; benchmarking the synthetic stream only", video)
    workdir = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    results = []
    with Broker(workdir=workdir) as broker, SeaweedS3(workdir=workdir / "s3") as s3:
        log.info("broker %s (%s), S3 %s", broker.url, broker.kind, s3.endpoint)
        store = S3Store(s3.endpoint, "bench", s3.access_key, s3.secret_key)
        for i, (name, source) in enumerate(streams.items()):
            results.append(bench_stream(f"s{i}", source, args.frames, broker.port, store, workdir))
            results[-1] = IngestBenchResult(name, *list(results[-1].__dict__.values())[1:])
    table = Table(title=f"ingest: endpoint process → {broker.kind} → SeaweedFS S3 ({args.frames} frames each)")
    for col in ("stream", "frames", "wall s", "frames/s", "payload B/frame", "JPEG B/frame", "raw B/frame",
                "raw/JPEG"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(r.stream, str(r.frames), f"{r.wall_s:.1f}", f"{r.frames_per_s:.1f}",
                      f"{r.payload_bytes_per_frame:,.0f}", f"{r.jpeg_bytes_per_frame:,.0f}",
                      f"{r.raw_bytes_per_frame:,.0f}", f"{r.raw_bytes_per_frame / r.jpeg_bytes_per_frame:.1f}x")
    Console(width=130).print(table)
    return 0
