"""`edgeloop split-server` with a missing split set or broker file says which, in one line, and exits 2."""

from __future__ import annotations

import logging

from pipelines.cli import main


def test_missing_split_set(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["split-server", "--set-dir", str(tmp_path / "nope"), "--port", "1"]) == 2
    assert f"edgeloop split-server: [Errno 2] No such file or directory: '{tmp_path / 'nope'}" in caplog.text


def test_missing_broker_config(tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        assert main(["split-server", "--set-dir", str(tmp_path), "--broker-config", str(tmp_path / "b.yaml")]) == 2
    assert f"No such file or directory: '{tmp_path / 'b.yaml'}'" in caplog.text


def test_an_options_file_of_another_shape(split_set, tmp_path, caplog):
    set_dir, _ = split_set
    options = tmp_path / "options.json"
    options.write_text('[{"version": 1}]')  # an AttributeError traceback before
    with caplog.at_level(logging.ERROR):
        assert main(["split-server", "--set-dir", str(set_dir), "--port", "1", "--options", str(options)]) == 2
    assert f"edgeloop split-server: {options}: not a version 1 options file" in caplog.text
