"""``edgeloop round``: --init, then one round against a real broker, ingest and endpoint process."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

from edge.ingest import Ingest
from edge.ingest_config import IngestConfig
from edge.store.config import StoreConfig
from endpoint.wire.broker_config import BrokerConfig
from pipelines.cli import main
from tests.pipelines.domain_folders import make_domain_folder

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.mark.parametrize("sparse_fraction", [None, 0.1], ids=["dense", "sparse"])
def test_init_then_a_round_pushes_a_new_student_to_a_running_endpoint(tmp_path, broker, sparse_fraction):
    day = make_domain_folder(tmp_path / "day", "day", 40, 12)
    dusk = make_domain_folder(tmp_path / "dusk", "dusk", 40, 12)
    store = StoreConfig(kind="local", path=str(tmp_path / "store"))
    state_dir = tmp_path / "edge-state"
    config = tmp_path / "round.yaml"
    config.write_text(yaml.safe_dump({
        "broker": {"port": broker.port}, "store": store.model_dump(), "state_dir": str(state_dir),
        "bootstrap": {"folder": str(day)}, "endpoints": [{"id": "cam-1", "val": {"folder": str(dusk)}}],
        "policy": "fixed-50-50", "domain": "dusk",
        # fixed-50-50 pushes the largest of the student's pushes that fits half the link: at 2000 kbit/s for
        # 3 s that is the sparse delta (~110 kB planned), not the whole 679 kB model
        "budget_kbps": 8000 if sparse_fraction is None else 2000, "round_s": 3, "frames": 12, "labels": ["oracle"],
        "learning": {"imgsz": 64, "batch": 8, "bootstrap": {"epochs": 3}, "finetune": {"epochs": 2},
                     "distill": {"epochs": 2}, "calibration_frames": 8, "sparse_fraction": sparse_fraction}}))

    assert main(["round", "--config", str(config)]) == 2  # not initialized yet: a clear refusal
    assert main(["round", "--config", str(config), "--init"]) == 0
    deploy = state_dir / "deploy"
    assert (deploy / "v0001.onnx").exists() and (deploy / "model_signing.pub").exists()
    assert main(["round", "--config", str(config), "--init"]) == 2  # never overwrites the key endpoints trust
    initialized = yaml.safe_load(config.read_text())
    del initialized["bootstrap"]  # its data is for the first start only: a round on the saved state needs none
    config.write_text(yaml.safe_dump(initialized))

    ingest = Ingest(IngestConfig(broker=BrokerConfig(port=broker.port), shared_group="", store=store)).start()
    endpoint_dir = tmp_path / "cam-1"
    endpoint_config = endpoint_dir / "endpoint.yaml"
    endpoint_dir.mkdir()
    endpoint_config.write_text(yaml.safe_dump({
        "endpoint_id": "cam-1", "broker": {"port": broker.port},
        "source": {"kind": "images", "follow_plan": True, "domain": "day", "path": str(day / "images/train"),
                   "domain_paths": {"day": str(day / "images/train"), "dusk": str(dusk / "images/train")},
                   "fps": 10.0},
        "uplink": {"spool_dir": str(endpoint_dir / "spool"), "ack_timeout_s": 5.0},
        "model": {"path": str(deploy / "v0001.onnx"), "version": "v0001", "models_dir": str(endpoint_dir / "models"),
                  "public_key": str(deploy / "model_signing.pub")},
        "telemetry_interval_s": 0.5}))
    log = open(endpoint_dir / "endpoint.log", "wb")
    endpoint = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "endpoint", "--config", str(endpoint_config)],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(2)
        assert main(["round", "--config", str(config), "--domain", "dusk"]) == 0
    finally:
        endpoint.terminate()
        endpoint.wait(timeout=30)
        ingest.stop()

    [result] = [json.loads(line) for line in (state_dir / "rounds.jsonl").read_text().splitlines()]
    assert result["round"] == 0 and result["domain"] == "dusk" and result["frames_uploaded"] > 0
    assert result["push_kind"] in ("full", "delta") and result["push_bytes"] > 0
    assert result["model_version"] == "v0002"
    # the endpoint verified the rebuilt model's sha256 before it ran it (its log names v0002 below)
    assert result["push_fraction"] == (sparse_fraction or 1.0)
    if sparse_fraction is not None:  # requantized on the parent's INT8 grid, so sent as a delta
        assert result["push_kind"] == "delta"
        assert (state_dir / "work" / "round-000" / "sparse-base.int8.onnx").exists()
    assert "v0002" in (endpoint_dir / "endpoint.log").read_text()
    state = json.loads((state_dir / "state.json").read_text())
    assert state["next_round"] == 1 and state["progress"] is None
    assert state["tracks"]["cam-1"]["running_version"] == state["tracks"]["cam-1"]["target_version"] == "v0002"
    # the next round plans this kind of push at what this one sent
    assert state["push_bytes_by_option"] == {("sparse-10" if sparse_fraction else "full"): result["push_bytes"]}
    [record] = [json.loads(line) for line in (state_dir / "history.jsonl").read_text().splitlines()]
    assert record["domain"] == "dusk"  # so the scheduler's fit can leave out the bootstrap domain's rounds
    assert state["replay_dir"] == str(state_dir / "replay-r000") and (state_dir / "replay-r000" / "images").is_dir()


def test_the_shipped_example_round_config_parses():
    from pathlib import Path

    from edge.learner.config import LearnerConfig
    from edge.service_config import EdgeServiceConfig
    from endpoint.wire.config_base import load_config

    deploy = Path(__file__).resolve().parents[2] / "deploy" / "config"
    config = load_config(LearnerConfig, deploy / "round.yaml", section="learner")
    assert config.endpoints[0].id == "cam-1" and config.policy == "adaptive" and config.learning.imgsz == 160
    assert "oracle" not in config.labels  # endpoints' own labels are never the default outside the lab
    service = load_config(EdgeServiceConfig, deploy / "edge.yaml")
    assert service.roles == ["ingest", "learner"]
    assert service.learner == load_config(LearnerConfig, deploy / "edge.yaml", section="learner")
