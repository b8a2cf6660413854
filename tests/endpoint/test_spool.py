import errno
import logging
import os

import pytest

from endpoint.uplink import spool as spool_module
from endpoint.uplink.spool import QUARANTINE_DIR, CorruptFrame, Spool, SpoolDiskFull, SpoolFull, seq_of
from tests.endpoint.spool_frames import fill, frame_bytes


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


def test_a_new_spool_for_the_same_endpoint_does_not_reissue_an_earlier_spools_ids(tmp_path):
    """A reflashed card, or a lab run again, starts an empty spool: ids from 0 again were stored conflicts."""
    import shutil

    earlier = Spool(tmp_path / "spool")
    issued = [earlier.next_frame_id()[0] for _ in range(200)]
    shutil.rmtree(tmp_path / "spool")
    assert Spool(tmp_path / "spool").next_frame_id()[0] > max(issued)
    (tmp_path / "spool" / "next_seq").write_text("not a number")  # a counter a power cut garbled
    assert Spool(tmp_path / "spool").next_frame_id()[0] > max(issued)


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


def test_next_after_walks_in_order_and_skips_acked_frames(tmp_path):
    spool = Spool(tmp_path)
    ids = fill(spool, 6)
    spool.remove(ids[0])
    spool.remove(ids[3])
    seqs = [seq_of(i) for i in ids]
    assert spool.next_after(-1).frame_id == ids[1]
    assert spool.next_after(seqs[2]).frame_id == ids[4]  # the fourth was acked
    assert spool.next_after(seqs[5]) is None
    assert [e.frame_id for e in Spool(tmp_path).pending()] == [ids[1], ids[2], ids[4], ids[5]]


def _fail_counter_writes(monkeypatch):
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if os.path.basename(dst) == "next_seq":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def test_ids_are_not_reissued_after_a_failed_counter_write(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    delivered = []  # ids whose frames were spooled, sent and acked: the edge has them
    for fid in fill(spool, 10):
        assert spool.remove(fid)
        delivered.append(fid)
    _fail_counter_writes(monkeypatch)
    refused = 0
    for _ in range(100):  # crosses an id block while the counter cannot be written
        try:
            seq, fid = spool.next_frame_id()
        except OSError:  # an older spool raised here; a caller that carried on got reissued ids
            continue
        try:
            spool.put(seq, frame_bytes(fid))
        except SpoolFull:
            refused += 1
            continue
        assert spool.remove(fid)
        delivered.append(fid)
    monkeypatch.undo()

    reopened = Spool(tmp_path)  # a restart with an empty spool: only the counter remembers
    fresh = fill(reopened, 100)
    assert not set(fresh) & set(delivered), "ids the edge already has were issued again"
    assert len(set(delivered)) == len(delivered)
    assert refused > 0  # ids past the last block on disk were never written


def test_a_failed_counter_write_skips_frames_until_it_works_again(tmp_path, monkeypatch):
    spool = Spool(tmp_path)
    _fail_counter_writes(monkeypatch)
    for _ in range(500):  # ids still reserved on disk are written; the first one past them is refused
        seq, fid = spool.next_frame_id()  # never raises: the runtime calls it outside its SpoolFull handler
        try:
            spool.put(seq, frame_bytes(fid))
        except SpoolDiskFull as exc:
            assert "disk full" in str(exc)
            break
    else:
        pytest.fail("a frame was spooled under an id that no counter on disk covers")
    assert fid not in spool
    monkeypatch.undo()
    seq, fid = spool.next_frame_id()
    spool.put(seq, frame_bytes(fid))
    assert fid in spool and not list(tmp_path.glob(".tmp-*"))


def test_bad_files_are_quarantined_at_start_and_named(tmp_path, caplog):
    good = Spool(tmp_path)
    ids = fill(good, 2)
    (tmp_path / "0000000000100.frame").write_bytes(frame_bytes("f0000000100"))  # 13 digits for seq 100
    (tmp_path / "abc.frame").write_bytes(b"garbage")  # not a frame name
    (tmp_path / "5.frame").write_bytes(frame_bytes("f0000000005"))  # not the canonical name of seq 5
    (tmp_path / "notes.txt").write_text("left by an operator")  # not ours: ignored, never sent
    with caplog.at_level(logging.WARNING, logger="endpoint.uplink.spool"):
        spool = Spool(tmp_path)
    assert [e.frame_id for e in spool.pending()] == ids
    quarantined = sorted(p.name for p in (tmp_path / QUARANTINE_DIR).iterdir())
    assert quarantined == ["0000000000100.frame", "5.frame", "abc.frame"]
    for name in quarantined:
        assert name in caplog.text
    assert (tmp_path / "notes.txt").exists()
    assert Spool(tmp_path).depth() == 2  # a second start finds nothing more to do


def test_the_quarantine_is_bounded(tmp_path):
    for i in range(5):
        (tmp_path / f"bad{i}.frame").write_bytes(b"x")
    spool = Spool(tmp_path, quarantine_max_files=2)
    assert spool.depth() == 0
    assert len(list((tmp_path / QUARANTINE_DIR).iterdir())) == 2
    assert not list(tmp_path.glob("bad*.frame"))  # the rest were deleted, not left to crash the next start


@pytest.mark.parametrize("size_bytes", [0, 101])  # empty: a crash before the data reached the disk
def test_read_bounds_the_size_before_reading(tmp_path, size_bytes):
    spool = Spool(tmp_path, max_payload_bytes=100)
    seq, fid = spool.next_frame_id()
    entry = spool.put(seq, b"x" * size_bytes)
    with pytest.raises(CorruptFrame):
        spool.read(entry)


def test_the_index_stays_small_behind_a_frame_that_never_leaves(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "_COMPACT_MIN", 16)  # the real batch is 1024: too many fsyncs for a test
    spool = Spool(tmp_path)
    seq, _ = spool.next_frame_id()
    stuck = spool.put(seq, b"x")  # never acked: an unreadable file, say
    for _ in range(200):
        seq, frame_id = spool.next_frame_id()
        spool.put(seq, b"x")
        spool.remove(frame_id)
    assert spool.depth() == 1 and spool.next_after(-1) == stuck
    assert len(spool._order) <= 2 * 16  # acked seqs do not pile up behind the stuck one
