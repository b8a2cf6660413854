"""`edgeloop lab --store HOST:PORT` with keys the S3 server refuses: one clear line and exit 2, not a traceback."""

from __future__ import annotations

import pytest

from pipelines.cli import main

pytestmark = pytest.mark.integration


def test_refused_s3_keys_are_a_clear_error(s3_server, tmp_path, capsys):
    rc = main(["lab", "--store", s3_server.endpoint, "--s3-access-key", "nobody", "--s3-secret-key", "wrong",
               "--endpoints", "1", "--rounds", "1", "--metrics-port", "0", "--out", str(tmp_path / "lab")])
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert rc == 2
    assert f"edgeloop lab: --store {s3_server.endpoint}:" in out and "HTTP 403" in out and "access_key" in out
