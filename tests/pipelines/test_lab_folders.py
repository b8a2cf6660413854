"""``edgeloop lab --scenario DIR1,DIR2`` on YOLO-format folders made here, end to end with real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.pipelines.domain_folders import make_domain_folder

pytestmark = [pytest.mark.slow, pytest.mark.integration]

FIELDS = {"round", "endpoint", "domain", "policy", "budget_bytes", "upload_bytes", "push_bytes", "frames_uploaded",
          "model_version", "map50", "map50_95", "static_map50_95", "teacher_map50_95", "wall_s"}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Two domain folders, a small learning config, and one bootstrap cache shared by the tests here."""
    root = tmp_path_factory.mktemp("lab-folders")
    day = make_domain_folder(root / "day", "day", 40, 12)
    dusk = make_domain_folder(root / "dusk", "dusk", 40, 12)
    learning = root / "learning.yaml"
    learning.write_text(yaml.safe_dump({
        "imgsz": 64, "teacher_input_scale": 1, "batch": 8, "bootstrap": {"epochs": 4}, "finetune": {"epochs": 2},
        "distill": {"epochs": 2}, "calibration_frames": 8}))
    return {"scenario": f"{day},{dusk}", "learning": learning, "cache": root / "cache"}


def lab_command(folders, out, *flags) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", "lab", "--scenario", folders["scenario"], "--endpoints", "1",
            "--frames", "12", "--round-s", "3", "--budget-kbps", "2000", "--learning", str(folders["learning"]),
            "--out", str(out), "--cache", str(folders["cache"]), *flags]


def test_lab_runs_on_yolo_folders_into_s3_and_report_rebuilds(tmp_path, folders, s3_server):
    out = tmp_path / "lab"
    run = subprocess.run(lab_command(folders, out, "--rounds", "2", "--policy", "fixed-50-50",
                                     "--store", s3_server.endpoint, "--s3-access-key", s3_server.access_key,
                                     "--s3-secret-key", s3_server.secret_key),
                         capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    rows = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert [(r["round"], r["endpoint"], r["domain"]) for r in rows] == [(0, "cam-1", "day"), (1, "cam-1", "dusk")]
    for r in rows:
        assert FIELDS <= set(r)
        assert r["policy"] == "fixed-50-50" and r["frames_uploaded"] > 0 and r["upload_bytes"] > 0
        assert 0.0 <= r["map50_95"] <= r["map50"] <= 1.0
    assert set(rows[0]["map50_95_by_domain"]) == {"day"}  # forgetting: every domain seen so far is scored
    assert set(rows[1]["map50_95_by_domain"]) == {"day", "dusk"}
    assert rows[1]["map50_95_by_domain"]["dusk"] == rows[1]["map50_95"]
    assert (out / "map_per_round.png").stat().st_size > 10_000
    assert "round 1 (dusk)" in run.stdout
    assert "data-aware settings for day" in run.stdout  # printed at start; this run's --learning file keeps its own
    assert "kept from your flags or --learning: batch, bootstrap, imgsz" in run.stdout
    assert f"store s3://{s3_server.endpoint}/edgeloop-lab" in run.stdout
    from edge.store.s3 import S3Store

    stored = S3Store(s3_server.endpoint, "edgeloop-lab", s3_server.access_key, s3_server.secret_key)
    jpegs = [k for k in stored.list("frames/") if k.endswith(".jpg")]
    assert len(jpegs) == sum(r["frames_uploaded"] for r in rows)
    assert any(k.startswith("models/student/") for k in stored.list("models/"))

    (out / "map_per_round.png").unlink()
    report = subprocess.run([sys.executable, "-m", "pipelines.cli", "report", str(out)], capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert "dusk" in report.stdout and (out / "map_per_round.png").exists()


def test_lab_on_the_embedded_amqtt_broker_stores_frames_and_learns(tmp_path, folders):
    """No Mosquitto (no root, no apt): amqtt has no shared subscriptions, so ingest subscribes plainly."""
    out = tmp_path / "lab"
    run = subprocess.run(lab_command(folders, out, "--rounds", "1", "--broker", "amqtt", "--policy", "fixed-50-50",
                                     "--budget-kbps", "8000", "--labels", "oracle"),
                         capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "broker amqtt" in run.stdout
    [row] = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert row["frames_uploaded"] > 0 and row["push_kind"] in ("full", "delta") and row["model_version"] == "v0002"
    assert len(list((out / "store" / "frames" / "cam-1").rglob("*.jpg"))) == row["frames_uploaded"]


def test_lab_starts_from_your_own_weights(tmp_path, folders, tiny_yolo_pt):
    """--teacher/--student: weights an earlier step trained (the session's tiny detector) skip the bootstrap."""
    out = tmp_path / "lab"
    run = subprocess.run(lab_command(folders, out, "--rounds", "1", "--imgsz", "128", "--teacher", str(tiny_yolo_pt),
                                     "--student", str(tiny_yolo_pt)), capture_output=True, text=True, timeout=500)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "bootstrap (your weights)" in run.stdout
    assert "bootstrap: training teacher" not in (out / "lab.log").read_text()  # edge.bootstrap says it when it trains
    [row] = [json.loads(line) for line in (out / "rounds.jsonl").read_text().splitlines()]
    assert row["static_map50_95"] > 0.05  # the day-trained detector, not a fresh one, is the first student


def test_a_round_without_frames_fails_loudly(tmp_path, folders):
    out = tmp_path / "lab"
    run = subprocess.run(lab_command(folders, out, "--rounds", "1", "--policy", "model-first", "--budget-kbps", "0.001"),
                         capture_output=True, text=True, timeout=500)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert "no frame reached the store" in run.stdout
    assert not (out / "rounds.jsonl").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_every_lab_process(tmp_path, folders, signum):
    """SIGTERM (kill, systemd, docker stop) ended the lab alone: its broker and endpoints ran on."""
    out = tmp_path / "lab"
    lab = subprocess.Popen(lab_command(folders, out, "--rounds", "5"), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    endpoint_log = out / "endpoints" / "cam-1" / "endpoint.log"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and lab.poll() is None:
        if endpoint_log.exists() and "connected" in endpoint_log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    assert lab.poll() is None, lab.stdout.read()[-3000:]
    os.kill(lab.pid, signum)
    output, _ = lab.communicate(timeout=90)
    assert lab.returncode == 128 + signum, output[-3000:]
    assert "interrupted" in output
    leftovers = subprocess.run(["pgrep", "-f", str(out)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"processes still running for {out}: {leftovers}"


def test_lab_refuses_a_folder_without_yolo_layout(tmp_path):
    (tmp_path / "empty" / "images").mkdir(parents=True)
    run = subprocess.run([sys.executable, "-m", "pipelines.cli", "lab", "--scenario", str(tmp_path / "empty"),
                          "--out", str(tmp_path / "lab")], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "lacks images/train" in run.stdout + run.stderr


def test_broker_starts_from_a_relative_workdir(tmp_path, monkeypatch):
    """``make lab`` passes a relative --out; the broker runs in its workdir and must still find its config."""
    from pipelines.broker import Broker

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel" / "broker").mkdir(parents=True)
    with Broker(workdir="rel/broker") as broker:
        assert broker.port and broker.process.poll() is None
