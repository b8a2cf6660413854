"""Concurrent ingest: store writes overlap, two copies of one frame in flight are stored once, the inbox is bounded."""

from __future__ import annotations

import threading
import time

import pytest

from edge.frame_index import FrameRecord
from edge.ingest_inbox import Inbox, Incoming
from edge.ingest_writer import FrameWriter, Outcome
from edge.store.local import LocalStore
from endpoint.wire import protocol
from tests.edge.ingest_parts import frame_payload, ingest_config, make_jpeg


def wait_for(predicate, timeout_s: float = 10.0) -> bool:
    """Poll a state that has no event of its own (another thread's position)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class GateStore:
    """A LocalStore whose calls wait at a gate until ``wanted`` of them run at once (or the gate times out)."""

    def __init__(self, inner: LocalStore, wanted: int, timeout_s: float = 5.0):
        self.inner, self.wanted, self.timeout_s = inner, wanted, timeout_s
        self.running = self.peak = 0
        self._cond = threading.Condition()

    def _gate(self):
        with self._cond:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.peak >= self.wanted, self.timeout_s)
        return self

    def _leave(self):
        with self._cond:
            self.running -= 1

    def put_if_absent(self, key, data, content_type="application/octet-stream"):  # a frame's first store call
        self._gate()
        try:
            return self.inner.put_if_absent(key, data, content_type)
        finally:
            self._leave()

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.integration
def test_store_calls_of_different_frames_overlap(broker, tmp_path, peer, make_ingest):  # noqa: F811
    store = GateStore(LocalStore(tmp_path / "store"), wanted=4)
    ingest = make_ingest(ingest_config(broker, store_concurrency=4), store)
    for i in range(4):
        peer.publish("cam-a", frame_payload("cam-a", f"f{i}", jpeg=make_jpeg(i)))

    assert ingest.wait_for(4, timeout_s=15)
    assert peer.wait_acked(4)
    assert store.peak >= 4  # one worker at a time would leave every call waiting out the gate alone


class HeldStore:
    """A LocalStore whose JPEG puts wait until ``release`` is set; counts puts per key."""

    def __init__(self, inner: LocalStore):
        self.inner = inner
        self.release = threading.Event()
        self.entered = threading.Event()
        self.puts: dict[str, int] = {}

    def put(self, key, data, content_type="application/octet-stream"):
        self.puts[key] = self.puts.get(key, 0) + 1
        if key.endswith(".jpg"):
            self.entered.set()
            assert self.release.wait(10)
        self.inner.put(key, data, content_type)

    def put_if_absent(self, key, data, content_type="application/octet-stream"):
        if key.endswith(".jpg"):
            self.entered.set()
            assert self.release.wait(10)
        written = self.inner.put_if_absent(key, data, content_type)
        if written:  # a conditional write that finds the key writes nothing
            self.puts[key] = self.puts.get(key, 0) + 1
        return written

    def __getattr__(self, name):
        return getattr(self.inner, name)


def record_for(jpeg: bytes, frame_id: str = "f1") -> FrameRecord:
    header = protocol.make_frame_header(jpeg, endpoint_id="cam-a", frame_id=frame_id, capture_time=1.0, round=0,
                                        model_version="s0", width=48, height=32)
    return FrameRecord.from_header(header, received_time=2.0)


def test_two_copies_of_one_frame_in_flight_are_stored_once(tmp_path):
    store = HeldStore(LocalStore(tmp_path / "store"))
    writer = FrameWriter(store, threading.Event(), 0.01, 0.1, on_store_error=lambda: None)
    jpeg = make_jpeg(1)
    outcomes: list[Outcome] = []
    first = threading.Thread(target=lambda: outcomes.append(writer.write(record_for(jpeg), jpeg)))
    first.start()
    assert store.entered.wait(10)  # the first copy is inside its JPEG put, its marker not yet written
    second = threading.Thread(target=lambda: outcomes.append(writer.write(record_for(jpeg), jpeg)))
    second.start()
    assert wait_for(lambda: writer.copies_waiting() == 1 or store.puts.get("frames/cam-a/r00000/f1.jpg") == 2)
    store.release.set()
    first.join(10)
    second.join(10)

    assert sorted(o.value for o in outcomes) == ["duplicate", "stored"]
    assert store.puts == {"frames/cam-a/r00000/f1.jpg": 1, "frames/cam-a/r00000/f1.json": 1}


@pytest.mark.integration
def test_two_copies_in_flight_through_ingest_are_stored_once_and_both_acked(broker, tmp_path, peer,  # noqa: F811
                                                                              make_ingest):
    store = HeldStore(LocalStore(tmp_path / "store"))
    ingest = make_ingest(ingest_config(broker, store_concurrency=4), store)
    payload = frame_payload("cam-a", "twice")
    peer.publish("cam-a", payload)
    assert store.entered.wait(10)
    peer.publish("cam-a", payload)
    assert wait_for(lambda: ingest._writer.copies_waiting() == 1 or store.puts.get(
        "frames/cam-a/r00000/twice.jpg") == 2)
    store.release.set()

    assert ingest.wait_until(lambda s: s.stored + s.duplicates == 2, timeout_s=10), ingest.stats()
    assert peer.wait_acked(2)
    assert peer.acked_ids() == ["twice", "twice"]
    assert (ingest.stats().stored, ingest.stats().duplicates) == (1, 1)
    assert store.puts == {"frames/cam-a/r00000/twice.jpg": 1, "frames/cam-a/r00000/twice.json": 1}


def incoming(n_bytes: int) -> Incoming:
    return Incoming("edgeloop/v1/cam-a/frame", bytes(n_bytes), 0.0)


def test_inbox_is_bounded_by_count_and_bytes_and_put_waits_for_room():
    inbox = Inbox(max_messages=2, max_bytes=1000)
    assert inbox.put(incoming(10), 0.01) and inbox.put(incoming(10), 0.01)
    assert not inbox.put(incoming(10), 0.01)  # count bound
    assert inbox.get(0.01).payload == bytes(10)
    assert not inbox.put(incoming(995), 0.01)  # byte bound: 10 + 995 > 1000
    assert inbox.depth() == (1, 10)

    # A waiting put goes through as soon as a worker takes a message.
    result = []
    waiter = threading.Thread(target=lambda: result.append(inbox.put(incoming(995), 10)))
    waiter.start()
    assert inbox.get(1).payload == bytes(10)
    waiter.join(10)
    assert result == [True] and inbox.depth() == (1, 995)


def test_inbox_takes_one_oversized_message_when_empty_and_close_wakes_waiters():
    inbox = Inbox(max_messages=4, max_bytes=100)
    assert inbox.put(incoming(500), 0.01)  # bigger than the byte bound, but alone
    result = []
    waiter = threading.Thread(target=lambda: result.append(inbox.put(incoming(10), 30)))
    waiter.start()
    assert wait_for(lambda: waiter.is_alive())
    inbox.close()
    waiter.join(5)
    assert result == [False] and inbox.get(0.01) is None


class CountingCondition(threading.Condition):
    """Counts the threads waiting and how often a waiter wakes up, notified or not (all under the lock)."""

    waiting = wakeups = 0

    def wait(self, timeout=None):
        CountingCondition.waiting += 1
        woke = super().wait(timeout)
        CountingCondition.waiting -= 1
        CountingCondition.wakeups += 1
        return woke


def test_inbox_wakes_one_waiting_worker_per_message(monkeypatch):
    """Sixteen idle workers wait on the inbox; a message must not wake them all to find it already taken."""
    monkeypatch.setattr("edge.ingest_inbox.threading.Condition", CountingCondition)
    CountingCondition.waiting = 0
    inbox = Inbox(max_messages=8, max_bytes=1000)
    got = []
    workers = [threading.Thread(target=lambda: got.append(inbox.get(30))) for _ in range(8)]
    for worker in workers:
        worker.start()
    assert wait_for(lambda: CountingCondition.waiting == 8)
    CountingCondition.wakeups = 0
    assert inbox.put(incoming(10), 0.01)
    assert wait_for(lambda: len(got) == 1)
    time.sleep(0.3)  # room for needless wake-ups to happen, had the put woken every worker
    assert CountingCondition.wakeups == 1
    inbox.close()
    for worker in workers:
        worker.join(5)


class DiskErrorStore:
    """A LocalStore whose first put raises a bare OSError, as a store that does not wrap disk errors would."""

    def __init__(self, inner: LocalStore):
        self.inner, self.failed = inner, False

    def put(self, key, data, content_type="application/octet-stream"):
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        self.inner.put(key, data, content_type)

    def put_if_absent(self, key, data, content_type="application/octet-stream"):
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return self.inner.put_if_absent(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_bare_os_error_from_the_store_is_retried_like_a_store_error(tmp_path):
    errors = []
    store = DiskErrorStore(LocalStore(tmp_path / "store"))
    writer = FrameWriter(store, threading.Event(), 0.001, 0.01, on_store_error=lambda: errors.append(1))
    jpeg = make_jpeg(2)
    assert writer.write(record_for(jpeg), jpeg) is Outcome.STORED
    assert errors == [1] and store.inner.get("frames/cam-a/r00000/f1.jpg") == jpeg


class CallLog:
    """A LocalStore that records each call by name and key."""

    def __init__(self, inner: LocalStore):
        self.inner, self.calls = inner, []

    def __getattr__(self, name):
        call = getattr(self.inner, name)

        def logged(key, *args, **kwargs):
            self.calls.append((name, key.rsplit("/", 1)[-1]))
            return call(key, *args, **kwargs)

        return logged


def test_a_new_frame_costs_two_store_calls_and_a_redelivery_writes_nothing(tmp_path):
    store = CallLog(LocalStore(tmp_path / "store"))
    writer = FrameWriter(store, threading.Event(), 0.01, 0.1, on_store_error=lambda: None)
    jpeg = make_jpeg(3)
    assert writer.write(record_for(jpeg), jpeg) is Outcome.STORED
    # the conditional JPEG write finds no frame in the same request that stores it; the marker comes last
    assert store.calls == [("put_if_absent", "f1.jpg"), ("put_if_absent", "f1.json")]
    store.calls.clear()
    assert writer.write(record_for(jpeg), jpeg) is Outcome.DUPLICATE
    assert store.calls == [("put_if_absent", "f1.jpg"), ("exists", "f1.json"), ("get", "f1.json")]


def test_a_jpeg_left_without_its_marker_is_stored_over(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.put("frames/cam-a/r00000/f1.jpg", b"\xff\xd8 cut short by a crash before the marker")
    # found again after the grace: too old to be another ingest's write in flight
    writer = FrameWriter(store, threading.Event(), 0.01, 0.1, on_store_error=lambda: None, foreign_write_grace_s=0)
    jpeg = make_jpeg(4)
    assert writer.write(record_for(jpeg), jpeg) is Outcome.STORED
    assert store.get("frames/cam-a/r00000/f1.jpg") == jpeg
    assert FrameRecord.model_validate_json(store.get("frames/cam-a/r00000/f1.json")).jpeg_sha256 == \
        record_for(jpeg).jpeg_sha256


class DownThenTimed(LocalStore):
    """A LocalStore that refuses every call for ``down_s``, then records when each call on the JPEG happens."""

    def __init__(self, root, down_s: float):
        super().__init__(root)
        self.up_at, self.jpeg_calls = time.monotonic() + down_s, []

    def _call(self, name, key):
        from edge.store import StoreError

        if time.monotonic() < self.up_at:
            raise StoreError("store went away")
        if key.endswith(".jpg"):
            self.jpeg_calls.append((name, time.monotonic()))

    def put(self, key, data, content_type="application/octet-stream"):
        self._call("put", key)
        super().put(key, data, content_type)

    def put_if_absent(self, key, data, content_type="application/octet-stream"):
        self._call("put_if_absent", key)
        return super().put_if_absent(key, data, content_type)

    def get(self, key):
        self._call("get", key)
        return super().get(key)

    def exists(self, key):
        self._call("exists", key)
        return super().exists(key)


GRACE_S = 0.3


def _stored_over_at(store: "DownThenTimed") -> float:
    """Write a frame whose id holds another ingest's unmarked JPEG (its marker never comes): when it was stored over."""
    writer = FrameWriter(store, threading.Event(), 0.05, 0.05, on_store_error=lambda: None,
                         foreign_write_grace_s=GRACE_S)
    jpeg = make_jpeg(5)
    LocalStore.put(store, "frames/cam-a/r00000/f1.jpg", b"\xff\xd8 another ingest's bytes, marker on the way")
    assert writer.write(record_for(jpeg), jpeg) is Outcome.STORED  # no marker ever came: stored over, in the end
    return next(at for name, at in store.jpeg_calls if name == "put")


def test_a_write_that_outlasted_an_outage_still_gives_another_ingest_its_grace(tmp_path):
    """Its grace was counted from when this write started: after an outage longer than the grace, the first sight
    of another ingest's JPEG (stored a moment ago, its marker on the way) was stored over at once."""
    store = DownThenTimed(tmp_path / "store", down_s=GRACE_S * 2)
    stored_over = _stored_over_at(store)
    first_sight = next(at for name, at in store.jpeg_calls if name == "get")
    assert stored_over - first_sight >= GRACE_S


class DownAfterFirstSight(DownThenTimed):
    """Up until the first read of the JPEG; then down for ``down_s``."""

    def __init__(self, root, down_s: float):
        super().__init__(root, down_s=0.0)
        self.down_s, self.went_down = down_s, False

    def get(self, key):
        data = super().get(key)
        if key.endswith(".jpg") and not self.went_down:  # the first sight: the outage starts
            self.went_down, self.up_at = True, time.monotonic() + self.down_s
        return data


def test_an_outage_after_the_first_sight_restarts_the_other_ingests_grace(tmp_path):
    """Found after review: the grace ran on through an outage that began after the first sight, so the first
    attempt after a long outage stored over the other ingest's JPEG while its marker waited out the same outage."""
    store = DownAfterFirstSight(tmp_path / "store", down_s=GRACE_S * 3)
    assert _stored_over_at(store) - store.up_at >= GRACE_S  # a whole grace after the store came back


class FirstMarkerHeld:
    """A LocalStore whose first marker write (put or conditional) waits until ``release`` is set."""

    def __init__(self, inner: LocalStore):
        self.inner, self.release, self.entered = inner, threading.Event(), threading.Event()

    def _hold(self, key):
        if key.endswith(".json") and not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)

    def put(self, key, data, content_type="application/octet-stream"):
        self._hold(key)
        self.inner.put(key, data, content_type)

    def put_if_absent(self, key, data, content_type="application/octet-stream"):
        self._hold(key)
        return self.inner.put_if_absent(key, data, content_type)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_two_ingests_storing_one_frame_id_with_other_bytes_keep_the_first_whole(tmp_path):
    """Ingests share the store, not their locks: the second must not write over the first's JPEG before its marker."""
    store = FirstMarkerHeld(LocalStore(tmp_path / "store"))
    first_ingest, second_ingest = (FrameWriter(store, threading.Event(), 0.01, 0.05, on_store_error=lambda: None)
                                   for _ in range(2))
    jpeg_a, jpeg_b = make_jpeg(5), make_jpeg(6)
    outcomes: dict[str, Outcome] = {}
    first = threading.Thread(target=lambda: outcomes.update(a=first_ingest.write(record_for(jpeg_a), jpeg_a)))
    first.start()
    assert store.entered.wait(10)  # the first ingest's JPEG is stored, its marker not yet
    second = threading.Thread(target=lambda: outcomes.update(b=second_ingest.write(record_for(jpeg_b), jpeg_b)))
    second.start()
    second.join(0.3)  # the second finds the first's JPEG without a marker meanwhile
    store.release.set()
    first.join(10)
    second.join(10)

    assert outcomes == {"a": Outcome.STORED, "b": Outcome.CONFLICT}
    assert store.get("frames/cam-a/r00000/f1.jpg") == jpeg_a
    assert FrameRecord.model_validate_json(store.get("frames/cam-a/r00000/f1.json")).jpeg_sha256 == \
        record_for(jpeg_a).jpeg_sha256
