"""`edgeloop endpoint` with a missing or wrong config logs one line naming the file and the field, exit 2
(as `edgeloop edge` and `edgeloop round` do), in detect and split mode alike."""

from __future__ import annotations

import logging

import pytest

from pipelines.cli import main


@pytest.mark.parametrize("mode", ["detect", "split"])
def test_missing_config_file(mode, tmp_path, caplog):
    missing = tmp_path / "endpoint.yaml"
    with caplog.at_level(logging.ERROR):
        assert main(["endpoint", "--config", str(missing), "--mode", mode]) == 2
    assert f"bad config {missing}" in caplog.text and "No such file" in caplog.text


@pytest.mark.parametrize("mode", ["detect", "split"])
def test_misspelt_field(mode, tmp_path, caplog):
    config = tmp_path / "endpoint.yaml"
    config.write_text("endpoint_id: cam-1\nsourc: {kind: scenario}\n")
    with caplog.at_level(logging.ERROR):
        assert main(["endpoint", "--config", str(config), "--mode", mode]) == 2
    assert f"bad config {config}" in caplog.text and "sourc" in caplog.text


def test_misspelt_sampler_is_a_bad_config(tmp_path, caplog):
    config = tmp_path / "endpoint.yaml"
    config.write_text("endpoint_id: cam-1\nsampler: {name: low_confidnce}\n")
    with caplog.at_level(logging.ERROR):
        assert main(["endpoint", "--config", str(config)]) == 2
    assert f"bad config {config}" in caplog.text and "unknown sampler 'low_confidnce'" in caplog.text
