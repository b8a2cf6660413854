"""What the round driver makes of its fleet: an endpoint running a model the registry never held (its own file, or
the endpoint config's default name), an endpoint added to the config after the first start, and a student too
large to push."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from edge.learner.pusher import Pusher as RegistryPusher
from edge.learner.reconcile import Reconciler
from edge.learner.round_driver import RoundDriver
from edge.learner.round_settings import EndpointSpec, RoundSettings
from edge.learner.setup import STUDENT_NAME, open_registry, signing_key
from edge.learner.state import LearnerState, PlannedEndpoint, RoundProgress, TrackState, load_state, save_state
from edge.learning_config import LearningConfig
from edge.scheduler.policies import make_policy
from edge.store.local import LocalStore


class Fleet:
    """Every endpoint reporting ``running``, and online unless said otherwise."""

    def __init__(self, running: str, online: bool = True):
        self._running, self._online = running, online

    def running(self, endpoint_id: str) -> str:
        return self._running

    def online(self, endpoint_id: str) -> bool:
        return self._online

    def telemetry(self, endpoint_id: str):
        return None

    def wait_version(self, endpoint_id: str, version: str, timeout_s: float) -> bool:
        return self._running == version


class Pusher:
    def __init__(self):
        self.lock, self.pushed = threading.RLock(), []

    def push(self, endpoint_id: str, version: str, timeout_s: float, on_sent=None):
        self.pushed.append((endpoint_id, version))
        return SimpleNamespace(kind="full", bytes=1, acked=True, reason="")


def _learner(tmp_path: Path, endpoint_ids: list[str], running: str):
    """A learner initialized for cam-1 (due v0001, which the registry holds), seen by a driver for ``endpoint_ids``."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    save_state(state_dir, LearnerState(
        class_names=["a", "b", "c"], first_domain="day", teacher_pt=state_dir / "teacher.pt",
        student_pt=state_dir / "student.pt", static_onnx=state_dir / "static.onnx", replay_dir=state_dir / "replay",
        tracks={"cam-1": TrackState(endpoint_id="cam-1", target_version="v0001")}))
    signing_key(state_dir)
    store = LocalStore(tmp_path / "store")
    registry = open_registry(store, state_dir)
    (tmp_path / "m.onnx").write_bytes(b"x" * 1000)
    registry.publish(STUDENT_NAME, tmp_path / "m.onnx", format="onnx-int8", input_size=(128, 128),
                     class_names=["a", "b", "c"])
    state, fleet = load_state(state_dir), Fleet(running)
    driver = RoundDriver(store, SimpleNamespace(publish=lambda *a, **k: True), registry, make_policy("adaptive"),
                         LearningConfig(), state, state_dir, [EndpointSpec(e) for e in endpoint_ids], fleet,
                         pusher=Pusher())
    return driver, state, fleet


def test_a_model_the_registry_never_held_is_planned_as_no_model(tmp_path):
    """It was looked up in the registry: every round's plan stage failed, and the learner restarted forever."""
    driver, state, _ = _learner(tmp_path, ["cam-1"], running="v0000")
    driver._plan("day", RoundSettings(budget_bytes=100_000))
    assert state.progress is not None and state.progress.stage == "planned"
    assert driver._deployed(state.tracks["cam-1"]) == ""
    assert driver._endpoint_state(state.tracks["cam-1"], RoundSettings(budget_bytes=1)).deployed_model_bytes == 0


def test_an_endpoint_added_after_the_first_start_is_pushed_the_fleets_model(tmp_path):
    """Its track was due '' and the reconciler, which skips an empty target, never pushed it a model."""
    _, state, fleet = _learner(tmp_path, ["cam-1", "cam-2"], running="")
    assert state.tracks["cam-2"].target_version == "v0001"
    pusher = Pusher()
    reconciler = Reconciler(fleet, pusher, lambda ep: state.tracks[ep].target_version, ["cam-1", "cam-2"], 5)
    for endpoint_id in ("cam-1", "cam-2"):
        reconciler.reconcile(endpoint_id)
    assert sorted(pusher.pushed) == [("cam-1", "v0001"), ("cam-2", "v0001")]


def test_a_new_track_is_due_the_newest_version_by_number():
    state = LearnerState(class_names=["a"], first_domain="day", teacher_pt=Path("t"), student_pt=Path("s"),
                         static_onnx=Path("o"), replay_dir=Path("r"),
                         tracks={"a": TrackState(endpoint_id="a", target_version="v9999"),
                                 "b": TrackState(endpoint_id="b", target_version="v10000"),
                                 "c": TrackState(endpoint_id="c")})
    state.add_track("d")
    state.add_track("a")  # a known endpoint keeps its track
    assert state.tracks["d"].target_version == "v10000" and state.tracks["a"].target_version == "v9999"


def test_a_student_over_the_push_limit_fails_its_push_and_the_learner_goes_on(tmp_path, caplog):
    """An FP32 yolo11n (10 MB) was registered, then its push raised: the round resumed at the push and raised again."""
    driver, state, fleet = _learner(tmp_path, ["cam-1"], running="")
    big = tmp_path / "big.onnx"
    big.write_bytes(bytes(9 * 1024 * 1024))
    version = driver.registry.publish(STUDENT_NAME, big, format="onnx-fp32", input_size=(640, 640),
                                      class_names=["a", "b", "c"]).version
    sent = []
    pusher = RegistryPusher(lambda topic, payload: sent.append(topic), driver.registry, fleet, STUDENT_NAME)
    outcome = pusher.push("cam-1", version, timeout_s=1)
    assert not outcome.acked and outcome.reason.startswith("too large: model payload of 9,") and sent == []
    assert f"cannot push {version} to cam-1" in caplog.text


def test_a_push_to_an_endpoint_gone_offline_waits_for_it_instead_of_its_ack(tmp_path):
    """It was pushed, and the round waited push_timeout_s for an ack that could not come, then recorded a failure."""
    driver, state, fleet = _learner(tmp_path, ["cam-1"], running="v0001")
    fleet._online = False
    state.progress = RoundProgress(
        round=0, domain="day", stage="registered", started_unix_s=0.0, candidate_version="v0002",
        plans=[PlannedEndpoint(endpoint_id="cam-1", upload_bytes=0, push={"kind": "full"})])
    driver._push_all(RoundSettings(budget_bytes=1, push_regressions=True, push_timeout_s=60))
    assert driver.pusher.pushed == []
    assert state.progress.pushes["cam-1"].kind == "pending" and state.tracks["cam-1"].target_version == "v0002"


class KilledWhileWaitingForTheAck(Pusher):
    def push(self, endpoint_id: str, version: str, timeout_s: float, on_sent=None):
        self.pushed.append((endpoint_id, version))
        on_sent("delta", 500)
        raise SystemExit("killed")  # the learner dies here; the endpoint installs the push and acks it


def test_a_push_whose_ack_a_kill_cut_off_is_recorded_as_sent_and_acked_after_the_restart(tmp_path):
    """It was saved only after the ack: a kill in between left no push on record, and the restarted round found
    the endpoint running the candidate and wrote a skip of 0 bytes into history and rounds.jsonl."""
    driver, state, fleet = _learner(tmp_path, ["cam-1"], running="v0001")
    (tmp_path / "m2.onnx").write_bytes(b"y" * 1000)
    candidate = driver.registry.publish(STUDENT_NAME, tmp_path / "m2.onnx", format="onnx-int8",
                                        input_size=(128, 128), class_names=["a", "b", "c"]).version
    state.progress = RoundProgress(
        round=0, domain="day", stage="registered", started_unix_s=0.0, candidate_version=candidate,
        plans=[PlannedEndpoint(endpoint_id="cam-1", upload_bytes=0, push={"kind": "full"})])
    driver.pusher = KilledWhileWaitingForTheAck()
    settings = RoundSettings(budget_bytes=1, push_regressions=True, push_timeout_s=60)
    try:
        driver._push_all(settings)
    except SystemExit:
        pass
    saved = load_state(tmp_path / "state")
    assert saved.progress.pushes["cam-1"].model_dump() == {"kind": "delta", "bytes": 500, "version": candidate,
                                                          "acked": False}
    fleet._running = candidate  # its report after the restart
    restarted = RoundDriver(driver.store, driver.mqtt, driver.registry, driver.policy, LearningConfig(), saved,
                            tmp_path / "state", [EndpointSpec("cam-1")], fleet, pusher=Pusher())
    restarted._push_all(settings)
    assert restarted.pusher.pushed == []  # not pushed again
    assert saved.progress.pushes["cam-1"].model_dump() == {"kind": "delta", "bytes": 500, "version": candidate,
                                                          "acked": True}
    assert saved.push_bytes_by_option == {"full": 500}


class StillInstalling(Fleet):
    """Runs the old version when the learner restarts; reports the pushed one while the learner waits."""

    def wait_version(self, endpoint_id: str, version: str, timeout_s: float) -> bool:
        self.waited_s, self._running = timeout_s, version
        return True


def test_a_push_the_endpoint_was_still_installing_at_the_restart_is_acked_when_it_reports_it(tmp_path):
    """After a restart the check ran once: an endpoint still installing the push kept it unacked, and the round's
    record said "failed" for a push the endpoint then ran."""
    driver, state, _ = _learner(tmp_path, ["cam-1"], running="v0001")
    fleet = driver.fleet = StillInstalling(running="v0001")
    (tmp_path / "m2.onnx").write_bytes(b"y" * 1000)
    candidate = driver.registry.publish(STUDENT_NAME, tmp_path / "m2.onnx", format="onnx-int8",
                                        input_size=(128, 128), class_names=["a", "b", "c"]).version
    state.progress = RoundProgress(
        round=0, domain="day", stage="registered", started_unix_s=0.0, candidate_version=candidate,
        plans=[PlannedEndpoint(endpoint_id="cam-1", upload_bytes=0, push={"kind": "full"})],
        pushes={"cam-1": {"kind": "full", "bytes": 700, "version": candidate, "acked": False}})
    driver._push_all(RoundSettings(budget_bytes=1, push_regressions=True, push_timeout_s=60))
    assert driver.pusher.pushed == [] and 59 < fleet.waited_s <= 60
    assert state.progress.pushes["cam-1"].acked and state.progress.pushes["cam-1"].bytes == 700


class NeverInstalls(Fleet):
    """Online, running the old version at the restart, and never reporting the pushed one: each wait runs out."""

    def __init__(self, running: str, clock: list[float]):
        super().__init__(running)
        self.clock, self.waits_s = clock, []

    def wait_version(self, endpoint_id: str, version: str, timeout_s: float) -> bool:
        self.waits_s.append(timeout_s)
        self.clock[0] += timeout_s
        return False


def test_after_a_restart_unacked_pushes_share_one_ack_timeout(tmp_path, monkeypatch):
    """Each endpoint got the whole push_timeout_s: a fleet of online endpoints that never installed their pushes
    held the restarted round for push_timeout_s times their number."""
    import edge.learner.round_driver as round_driver

    clock = [1000.0]
    monkeypatch.setattr(round_driver.time, "monotonic", lambda: clock[0])
    driver, state, _ = _learner(tmp_path, ["cam-1", "cam-2", "cam-3"], running="v0001")
    fleet = driver.fleet = NeverInstalls("v0001", clock)
    endpoints = ["cam-1", "cam-2", "cam-3"]
    state.progress = RoundProgress(
        round=0, domain="day", stage="registered", started_unix_s=0.0, candidate_version="v0001",
        plans=[PlannedEndpoint(endpoint_id=ep, upload_bytes=0, push={"kind": "full"}) for ep in endpoints],
        pushes={ep: {"kind": "full", "bytes": 700, "version": "v0001", "acked": False} for ep in endpoints})
    driver._push_all(RoundSettings(budget_bytes=1, push_regressions=True, push_timeout_s=60))
    assert fleet.waits_s == [60, 0, 0] and clock[0] == 1060
    assert not any(state.progress.pushes[ep].acked for ep in endpoints)
