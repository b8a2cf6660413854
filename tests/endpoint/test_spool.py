import pytest

from endpoint.spool import Spool, SpoolFull


def test_frames_survive_a_restart_and_ids_never_repeat(tmp_path):
    spool = Spool(tmp_path)
    ids = []
    for _ in range(5):
        seq, fid = spool.next_frame_id()
        spool.put(seq, f"payload {fid}".encode())
        ids.append(fid)
    assert spool.remove(ids[0]) and not spool.remove(ids[0])

    reopened = Spool(tmp_path)  # a reboot
    assert [e.frame_id for e in reopened.pending()] == ids[1:]
    assert reopened.pending()[0].read() == f"payload {ids[1]}".encode()
    _, fid = reopened.next_frame_id()
    assert fid not in ids


def test_reserved_but_unused_ids_are_not_reused(tmp_path):
    spool = Spool(tmp_path)
    _, first = spool.next_frame_id()
    _, second = Spool(tmp_path).next_frame_id()
    assert first != second


def test_full_spool_refuses(tmp_path):
    spool = Spool(tmp_path, max_frames=2)
    for _ in range(2):
        seq, _ = spool.next_frame_id()
        spool.put(seq, b"x")
    seq, _ = spool.next_frame_id()
    with pytest.raises(SpoolFull):
        spool.put(seq, b"x")


def test_leftover_temp_files_are_cleaned(tmp_path):
    (tmp_path / ".tmp-000000000001.frame").write_bytes(b"half")
    spool = Spool(tmp_path)
    assert spool.depth() == 0
    assert not list(tmp_path.glob(".tmp-*"))
