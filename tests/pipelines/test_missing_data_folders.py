"""A learner config naming YOLO folders that do not exist, or a store refusing its keys, fails at start with a
clear line, exit 2: `edgeloop edge` no longer retries a traceback every 10 s, `edgeloop round` no longer ends in one."""

from __future__ import annotations

import logging

import pytest
import yaml

from pipelines.cli import main


def write_config(path, learner: dict, edge: bool):
    body = {"endpoints": [{"id": "cam-1", "val": {"folder": str(path.parent / "site-1")}}],
            "state_dir": str(path.parent / "state"), "learning": {"cache_dir": str(path.parent / "cache")},
            **learner}
    path.write_text(yaml.safe_dump({"roles": ["learner"], "learner": body} if edge else body))
    return path


def test_round_init_names_the_missing_folders(tmp_path, capsys):
    config = write_config(tmp_path / "round.yaml", {"bootstrap": {"folder": str(tmp_path / "day")}}, edge=False)
    assert main(["round", "--config", str(config), "--init"]) == 2
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert f"bootstrap: {tmp_path / 'day' / 'images' / 'train'}" in out
    assert f"endpoint cam-1 val: {tmp_path / 'site-1' / 'images' / 'val'}" in out
    assert not (tmp_path / "state").exists()


@pytest.mark.timeout(30)  # without the check the learner thread retries forever and this never returns
def test_edge_refuses_missing_folders_before_starting_roles(tmp_path, caplog):
    config = write_config(tmp_path / "edge.yaml", {"bootstrap": {"folder": str(tmp_path / "day")}}, edge=True)
    with caplog.at_level(logging.ERROR):
        assert main(["edge", "--config", str(config)]) == 2
    assert f"bootstrap: {tmp_path / 'day' / 'data.yaml'}" in caplog.text
    assert f"endpoint cam-1 val: {tmp_path / 'site-1' / 'images' / 'val'}" in caplog.text


def test_round_with_a_store_that_refuses_its_keys(s3_server, tmp_path, capsys):
    store = {"kind": "s3", "endpoint": s3_server.endpoint, "bucket": "round-keys", "access_key": "nobody",
             "secret_key": "wrong"}
    config = write_config(tmp_path / "round.yaml", {"bootstrap": {"synthetic_domain": "day"}, "store": store,
                                                    "endpoints": [{"id": "cam-1"}]}, edge=False)
    assert main(["round", "--config", str(config), "--init"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "edgeloop round:" in out and "HTTP 403" in out
