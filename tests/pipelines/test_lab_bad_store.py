"""`edgeloop lab --store HOST:PORT`: keys the S3 server refuses are one clear line and exit 2; each run starts from an
empty bucket."""

from __future__ import annotations

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.integration


def test_refused_s3_keys_are_a_clear_error_and_the_earlier_run_stays(s3_server, tmp_path, capsys):
    earlier = tmp_path / "lab" / "rounds.jsonl"
    earlier.parent.mkdir()
    earlier.write_text('{"round": 0}\n')
    rc = main(["lab", "--store", s3_server.endpoint, "--s3-access-key", "nobody", "--s3-secret-key", "wrong",
               "--endpoints", "1", "--rounds", "1", "--metrics-port", "0", "--out", str(tmp_path / "lab")])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert rc == 2
    assert f"edgeloop lab: --store {s3_server.endpoint}:" in out and "HTTP 403" in out and "access_key" in out
    assert earlier.read_text() == '{"round": 0}\n'  # it was deleted, and a broker started, before the store said no


def test_a_store_that_is_down_is_a_clear_error_before_anything_starts(tmp_path, capsys):
    from pipelines.ports import free_port

    store = f"127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    rc = main(["lab", "--store", store, "--endpoints", "1", "--rounds", "1", "--metrics-port", "0",
               "--out", str(tmp_path / "lab")])
    out = " ".join(capsys.readouterr().out.split())
    assert rc == 2 and f"edgeloop lab: --store {store}:" in out and "unreachable" in out
    assert not (tmp_path / "lab").exists()


def test_a_lab_run_on_s3_starts_from_an_empty_bucket(s3_store):
    """The local store's folder is removed before a run; frames a run left in the bucket would join the next
    run's rounds under the same round numbers."""
    from pipelines.lab_session import clear_store

    for key in ("frames/cam-1/r00000/f1.jpg", "frames/cam-1/r00000/f1.json", "models/student/v0002/model.onnx"):
        s3_store.put(key, b"from an earlier run")
    assert clear_store(s3_store) == 3
    assert list(s3_store.list("")) == []
    assert clear_store(s3_store) == 0
