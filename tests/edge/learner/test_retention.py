"""A learner keeps the newest two rounds' outputs and what its state names; the rest goes. Every round left a
replay folder of its own (about 30 MB in the lab) that was never deleted, and a copy of every scored version."""

from __future__ import annotations

from pathlib import Path

from edge.learner.retention import prune_round_outputs
from edge.learner.scoring import Scorer
from edge.learner.state import LearnerState
from edge.map_metric import MapResult


def _touch(path: Path, folder: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if folder else path.write_bytes(b"x")


def test_rounds_before_the_last_two_are_dropped_but_what_the_state_names_stays(tmp_path):
    for r in range(5):
        _touch(tmp_path / "models" / f"teacher-r{r:03d}.pt")
        _touch(tmp_path / "models" / f"student-r{r:03d}.pt")
        _touch(tmp_path / "work" / f"round-{r:03d}", folder=True)
        _touch(tmp_path / f"replay-r{r:03d}", folder=True)
    _touch(tmp_path / "replay-boot", folder=True)
    _touch(tmp_path / "models" / "teacher-boot.pt")  # the bootstrap's weights: not a round's, kept
    _touch(tmp_path / "work" / "deployed", folder=True)  # not a round's either
    # a student kept from round 1: the state names it (a round that trained none keeps the older one)
    state = LearnerState(class_names=["person"], first_domain="day", teacher_pt=tmp_path / "models/teacher-r004.pt",
                         student_pt=tmp_path / "models/student-r001.pt", static_onnx=tmp_path / "static.onnx",
                         replay_dir=tmp_path / "replay-r004")
    prune_round_outputs(tmp_path, state, round_index=4)
    assert sorted(p.name for p in tmp_path.glob("replay-*")) == ["replay-r003", "replay-r004"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["deployed", "round-003", "round-004"]
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [
        "student-r001.pt", "student-r003.pt", "student-r004.pt", "teacher-boot.pt", "teacher-r003.pt",
        "teacher-r004.pt"]


class _Registry:
    def get(self, name, version):
        raise AssertionError("not fetched in this test")


def test_the_scorer_forgets_versions_no_endpoint_runs_or_is_due_and_earlier_teachers(tmp_path):
    scorer = Scorer(_Registry(), "student", tmp_path, 128, 0.25)
    for version in ("v0001", "v0002", "v0003"):
        _touch(tmp_path / "deployed" / f"{version}.onnx")
        scorer._files[("cam-1", "dusk", str(tmp_path / "deployed" / f"{version}.onnx"))] = MapResult(0.5, 0.3)
    scorer._files[("cam-1", "dusk", str(tmp_path / "static.onnx"))] = MapResult(0.2, 0.1)
    scorer._teacher[("cam-1", "dusk", "models/teacher-r000.pt")] = 0.4
    scorer._teacher[("cam-1", "dusk", "models/teacher-r001.pt")] = 0.5
    scorer.forget(keep_versions={"v0002", "v0003"}, teacher_pt=Path("models/teacher-r001.pt"))
    assert sorted(p.name for p in (tmp_path / "deployed").iterdir()) == ["v0002.onnx", "v0003.onnx"]
    assert sorted(Path(key[2]).name for key in scorer._files) == ["static.onnx", "v0002.onnx", "v0003.onnx"]
    assert list(scorer._teacher) == [("cam-1", "dusk", "models/teacher-r001.pt")]


def test_after_a_round_the_registry_keeps_what_endpoints_run_are_due_or_ran_and_the_newest(tmp_path):
    import threading
    from types import SimpleNamespace

    from edge.learner.retention import forget_after_round
    from edge.learner.state import RoundProgress, TrackState
    from edge.registry import ModelRegistry
    from edge.signing import generate_keypair, load_private_key
    from edge.store.local import LocalStore

    registry = ModelRegistry(LocalStore(tmp_path / "store"), load_private_key(generate_keypair(tmp_path)[0]))
    for n in range(1, 9):
        (tmp_path / "m.onnx").write_bytes(b"m" * n)
        registry.publish("student", tmp_path / "m.onnx", format="onnx-int8", input_size=(64, 64), class_names=["a"])
    state = LearnerState(class_names=["a"], first_domain="day", teacher_pt=tmp_path / "t.pt",
                         student_pt=tmp_path / "s.pt", static_onnx=tmp_path / "static.onnx",
                         replay_dir=tmp_path / "replay-r004")
    state.tracks = {"cam-1": TrackState(endpoint_id="cam-1", running_version="v0003", target_version="v0007"),
                    "cam-2": TrackState(endpoint_id="cam-2", running_version="v0002", target_version="v0002")}
    finished = RoundProgress(round=4, domain="dusk", stage="pushed", started_unix_s=0.0, plans=[],
                             versions_before={"cam-1": "v0004", "cam-2": "v0002"}, candidate_version="v0007")
    forgotten = []
    driver = SimpleNamespace(state=state, state_dir=tmp_path, registry=registry, pusher=SimpleNamespace(
        lock=threading.RLock()), scorer=Scorer(registry, "student", tmp_path / "work", 64, 0.25),
        _deployed=lambda track: track.running_version, forget_registered=lambda: forgotten.append(True))
    forget_after_round(driver, finished, keep_versions=1)
    assert registry.versions("student") == ["v0001", "v0002", "v0003", "v0004", "v0007", "v0008"]
    assert forgotten == [True]  # the driver's list of registered versions is read again


def test_a_prune_cut_short_by_the_store_is_logged_and_the_registered_versions_are_read_again(tmp_path, caplog):
    """Found after review: the versions a failed prune had deleted stayed in the driver's list of registered ones,
    so a later report of one was looked up in the registry, and the round's plan failed on it."""
    import threading
    from types import SimpleNamespace

    from edge.learner.retention import forget_after_round
    from edge.learner.state import RoundProgress
    from edge.store import StoreError

    def prune(name, keep, keep_newest):
        raise StoreError("store went away mid-prune")

    state = LearnerState(class_names=["a"], first_domain="day", teacher_pt=tmp_path / "t.pt",
                         student_pt=tmp_path / "s.pt", static_onnx=tmp_path / "static.onnx",
                         replay_dir=tmp_path / "replay-r001")
    forgotten = []
    driver = SimpleNamespace(state=state, state_dir=tmp_path, registry=SimpleNamespace(prune=prune),
                             pusher=SimpleNamespace(lock=threading.RLock()),
                             scorer=Scorer(_Registry(), "student", tmp_path / "work", 64, 0.25),
                             _deployed=lambda track: "", forget_registered=lambda: forgotten.append(True))
    forget_after_round(driver, RoundProgress(round=1, domain="dusk", stage="pushed", started_unix_s=0.0, plans=[]))
    assert forgotten == [True] and "pruning old versions failed: store went away mid-prune" in caplog.text
