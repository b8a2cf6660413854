"""``edgeloop bench fuzz`` in small: every receiver, as deployed, behind a real Mosquitto, takes 200 mutants
with valid traffic between them; none crashes, every valid message is kept, and refusals carry reasons."""

from __future__ import annotations

import pytest

from pipelines.bench_fuzz import RECEIVERS, receiver_table, run_fuzz

pytestmark = pytest.mark.integration


def test_every_receiver_survives_the_fuzz_and_keeps_the_valid_traffic(tmp_path, tiny_yolo):
    rows = run_fuzz(messages=200, seed=7, work=tmp_path)
    assert [row.receiver.split(" ")[0] for row in rows] == ["ingest", "endpoint", "learner", "split"]
    assert len(rows) == len(RECEIVERS)
    for row in rows:
        assert row.mutated_sent == 200, row
        assert row.crashes == 0, (row.receiver, row.crash_notes)
        assert row.valid_sent > 0 and row.valid_kept == row.valid_sent, (row.receiver, row.crash_notes)
        assert row.refused > row.mutated_sent / 2 and row.reasons, row  # refused with reasons, not swallowed
        assert row.rss_peak_mib >= row.rss_start_mib > 0, row
        assert receiver_table(row).row_count > 8
