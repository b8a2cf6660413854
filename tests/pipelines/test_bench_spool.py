"""``edgeloop bench spool`` runs its real selection path and holds each spool at its depth."""

from pipelines import bench_spool


def test_the_bench_cycles_frames_at_a_steady_depth(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_spool, "ROUNDS", 2)
    monkeypatch.setattr(bench_spool, "OPS_PER_ROUND", 50)
    workdirs = {10: tmp_path / "shallow", 300: tmp_path / "deep"}
    for workdir in workdirs.values():
        workdir.mkdir()
    results = bench_spool.measure(workdirs)
    assert [r.depth for r in results] == [10, 300]
    assert all(r.frames_per_s > 0 and r.select_us > 0 and r.ack_us > 0 for r in results)
    for depth, workdir in workdirs.items():  # every cycle acked one frame and spooled one: depth unchanged
        assert len(list(workdir.glob("*.frame"))) == depth
