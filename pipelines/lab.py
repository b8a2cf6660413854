"""``edgeloop lab``: broker, object store, edge ingest and endpoint processes on this machine."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


def run_lab(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from edge.frame_index import FrameIndex
    from edge.ingest import Ingest
    from edge.ingest_config import IngestConfig
    from edge.store import StoreConfig, open_store
    from pipelines.broker import Broker

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = open_store(StoreConfig(kind="local", path=str(out / "store")))
    with Broker(workdir=_fresh(out / "broker")) as broker:
        log.info("broker: %s (%s); store: %s", broker.url, broker.kind, store.describe())
        ingest = Ingest(IngestConfig(broker_port=broker.port), store).start()
        procs = []
        try:
            for i in range(args.endpoints):
                config = {"endpoint_id": f"cam-{i + 1}", "broker": {"port": broker.port},
                          "source": {"kind": "scenario", "domain": "day", "seed": args.seed + i,
                                     "max_frames": args.frames, "fps": 30},
                          "sampler": {"name": "uniform", "sample_rate": 0.5},
                          "uplink": {"spool_dir": str(out / "spool" / f"cam-{i + 1}")},
                          "exit_when_drained": True}
                path = out / f"cam-{i + 1}.yaml"
                path.write_text(yaml.safe_dump(config))
                procs.append(subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config",
                                               str(path)], env={**os.environ, "PYTHONUNBUFFERED": "1"}))
            for p in procs:
                p.wait()
        except KeyboardInterrupt:
            log.info("stopping")
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=10)
            ingest.stop()
    index = FrameIndex(store)
    table = Table(title="frames stored per endpoint")
    table.add_column("endpoint")
    table.add_column("round", justify="right")
    table.add_column("frames", justify="right")
    for endpoint_id in index.endpoints():
        for r in index.rounds(endpoint_id):
            table.add_row(endpoint_id, str(r), str(index.count(endpoint_id, r)))
    Console(width=120).print(table)
    return 0


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
