"""``python -m pipelines.bench_delta`` in small: one fraction on a real INT8 model, rebuilt and printed."""

from __future__ import annotations

from pipelines.bench_delta import measure, rows_table


def test_the_delta_bench_measures_a_sparse_change_against_the_whole_tensor_delta(push_models):
    (row,) = measure(push_models.base, fractions_pct=(5,))
    assert row.changed_values > 0 and row.full_bytes == push_models.base.stat().st_size
    assert row.delta_bytes < 0.5 * row.whole_tensor_delta_bytes
    assert rows_table([row], "smoke").row_count == 1
