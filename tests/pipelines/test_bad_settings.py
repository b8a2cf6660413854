"""Settings a user gets wrong fail at start with one clear line and exit 2, and `edgeloop lab` deletes nothing of an
earlier run first. Before: a misspelt policy or label source, a missing bootstrap or a taken metrics port surfaced
deep in the learner (a traceback, an endless restart every 10 s, or a dead learner thread in a live process)."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import yaml

from pipelines.cli import main

pytestmark = pytest.mark.timeout(60)  # a check that is missing lets `edgeloop edge` run, and this never returns


def _config(tmp_path, edge: bool, **learner) -> str:
    body = {"endpoints": [{"id": "cam-1"}], "state_dir": str(tmp_path / "state"),
            "bootstrap": {"synthetic_domain": "day"}, "learning": {"cache_dir": str(tmp_path / "cache")}, **learner}
    body = {k: v for k, v in body.items() if v is not None}
    path = tmp_path / ("edge.yaml" if edge else "round.yaml")
    path.write_text(yaml.safe_dump({"roles": ["learner"], "learner": body} if edge else body))
    return str(path)


@pytest.mark.parametrize("learner, says", [
    ({"policy": "adaptve"}, "unknown scheduler policy 'adaptve'"),
    ({"labels": ["orcale", "teacher"]}, "unknown label sources ['orcale']"),
    ({"bootstrap": None}, "holds no learner state yet"),
])
def test_edge_and_round_refuse_bad_learner_settings(tmp_path, caplog, capsys, learner, says):
    with caplog.at_level(logging.ERROR):
        assert main(["edge", "--config", _config(tmp_path, edge=True, **learner)]) == 2
    assert says in caplog.text
    assert main(["round", "--config", _config(tmp_path, edge=False, **learner), "--init"]) == 2
    assert says in " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert not (tmp_path / "state").exists()


def test_edge_refuses_a_metrics_port_already_taken(tmp_path, caplog):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR):
            assert main(["edge", "--config", _config(tmp_path, edge=True, metrics_port=port)]) == 2
    assert "bad config" in caplog.text and "Address already in use" in caplog.text


@pytest.mark.parametrize("flags, says", [
    (["--learning", "missing.yaml"], "bad --learning or model flags"),
    (["--imgsz", "100"], "bad --learning or model flags"),
    (["--policy", "adaptve"], "bad --policy: unknown scheduler policy 'adaptve'"),
    (["--labels", "orcale"], "bad --labels: unknown label sources ['orcale']"),
    (["--endpoints", "0"], "--endpoints and --rounds must be at least 1"),
    # these were checked only after the earlier run was deleted and the broker had started: a traceback, exit 1
    (["--budget-kbps", "0"], "--budget-kbps and --round-s must be above 0"),
    (["--round-s", "0"], "--budget-kbps and --round-s must be above 0"),
    (["--frames", "0"], "--frames at least 1"),
    (["--seed", "-1"], "--seed at least 0"),
    (["--metrics-port", "70000"], "--metrics-port 70000 leaves no port"),
    (["--teacher", "nope.pt"], "--teacher nope.pt: no such weights file"),
    (["--imgsz", "0"], "bad --learning or model flags"),
])
def test_lab_refuses_bad_flags_before_it_deletes_an_earlier_run(tmp_path, capsys, flags, says):
    out = tmp_path / "lab"
    out.mkdir()
    (out / "rounds.jsonl").write_text("an earlier run's results\n")
    assert main(["lab", "--out", str(out), "--metrics-port", "0", *flags]) == 2
    assert says in " ".join(capsys.readouterr().out.split())
    assert (out / "rounds.jsonl").read_text() == "an earlier run's results\n"


def test_edge_and_round_refuse_an_unreadable_state(tmp_path, caplog, capsys):
    """A state.json cut short: `round` ended in a traceback, `edge` restarted its learner on it every 10 s."""
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "state.json").write_text('{"round": ')
    with caplog.at_level(logging.ERROR):
        assert main(["edge", "--config", _config(tmp_path, edge=True)]) == 2
    assert "state.json is unreadable" in caplog.text
    assert main(["round", "--config", _config(tmp_path, edge=False)]) == 2
    assert "state.json is unreadable" in " ".join(capsys.readouterr().out.split())


def test_endpoint_refuses_a_metrics_port_out_of_range(tmp_path, caplog):
    config = tmp_path / "endpoint.yaml"
    config.write_text("endpoint_id: cam-1\nmetrics_port: 70000\n")
    with caplog.at_level(logging.ERROR):
        assert main(["endpoint", "--config", str(config)]) == 2  # it was an OverflowError from bind(), exit 1
    assert "bad config" in caplog.text and "metrics_port" in caplog.text


def test_report_refuses_a_record_of_another_shape(tmp_path, capsys):
    (tmp_path / "rounds.jsonl").write_text('{"round": 3}\n')
    assert main(["report", str(tmp_path)]) == 2  # it was a pydantic traceback, exit 1
    assert "holds a record of another shape" in capsys.readouterr().err


@pytest.mark.parametrize("argv, says", [
    # these started Mosquitto and SeaweedFS, and fuzzed "-1 mutated messages"
    (["bench", "ingest", "--endpoints", "-1"], "at least 1"), (["bench", "ingest", "--window", "0"], "at least 1"),
    (["bench", "ingest", "--workers", "0"], "at least 1"), (["bench", "fuzz", "--messages", "-1"], "at least 1"),
    (["bench", "scheduler", "--endpoints", "-1"], "--endpoints -1"),  # a ValueError traceback, exit 1
    (["bench", "scheduler", "--seed", "-1"], "--seed -1"),  # numpy's traceback
    (["bench", "scheduler", "--rounds", "-1"], "--rounds -1"),  # simulated nothing, wrote a plot, exit 0
    (["bench", "push", "--fractions", "abc"], "--fractions takes"),  # a traceback
    (["bench", "push", "--fractions", "0,1.5"], "--fractions takes"),
    (["bench", "push", "--learning", "/nonexistent/learning.yaml"], "bad config /nonexistent/learning.yaml"),
    (["bench", "distill", "--learning", "/nonexistent/learning.yaml"], "bad config /nonexistent/learning.yaml")])
def test_benches_refuse_bad_flags_in_one_line_before_any_work(argv, says, tmp_path, capsys, caplog):
    started = time.monotonic()
    assert main([*argv, "--out", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert says in " ".join((captured.out + captured.err + caplog.text).split())
    assert "Traceback" not in captured.out + captured.err
    assert time.monotonic() - started < 5 and not list(tmp_path.iterdir())  # nothing trained, simulated or written
