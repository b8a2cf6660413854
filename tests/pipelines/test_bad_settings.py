"""Settings a user gets wrong fail at start with one clear line and exit 2, and `edgeloop lab` deletes nothing of an
earlier run first. Before: a misspelt policy or label source, a missing bootstrap or a taken metrics port surfaced
deep in the learner (a traceback, an endless restart every 10 s, or a dead learner thread in a live process)."""

from __future__ import annotations

import logging
import socket

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
])
def test_lab_refuses_bad_flags_before_it_deletes_an_earlier_run(tmp_path, capsys, flags, says):
    out = tmp_path / "lab"
    out.mkdir()
    (out / "rounds.jsonl").write_text("an earlier run's results\n")
    assert main(["lab", "--out", str(out), "--metrics-port", "0", *flags]) == 2
    assert says in " ".join(capsys.readouterr().out.split())
    assert (out / "rounds.jsonl").read_text() == "an earlier run's results\n"
