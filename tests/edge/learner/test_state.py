"""The learner's persisted state: a save/load round trip, crash leftovers, and the order of a round's stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.learner.state import (HISTORY_FILE, STAGES, STATE_FILE, LearnerState, PlannedEndpoint, PushDone,
                                RoundProgress, TrackState, append_line, load_state, read_history, save_state)
from edge.scheduler.policy import EndpointPlan, PushOption, RoundRecord
from endpoint.wire.durable_file import TMP_PREFIX


def _state(stage=None) -> LearnerState:
    plan = EndpointPlan("cam-1", 120_000, PushOption("full-nano", 300_000, "full", "nano"), "uniform", 0.5, 0.31)
    progress = None if stage is None else RoundProgress(
        round=3, domain="dusk", stage=stage, started_unix_s=1795000000.25, plans=[PlannedEndpoint.of(plan)],
        versions_before={"cam-1": "v0002"}, spent_upload_bytes={"cam-1": 118_000}, labelled_frames=9,
        candidate_version="v0003", pushes={"cam-1": PushDone(kind="full", bytes=300_000, version="v0003", acked=True)},
        stage_seconds={"planned": 0.5})
    return LearnerState(next_round=3, class_names=["square", "disc"], first_domain="day",
                        teacher_pt=Path("/m/teacher.pt"), student_pt=Path("/m/student.pt"),
                        static_onnx=Path("/m/static.onnx"), replay_dir=Path("/m/replay-3"),
                        tracks={"cam-1": TrackState(endpoint_id="cam-1", running_version="v0002", anchor_map=0.2)},
                        progress=progress, last_agreement={"cam-1": 0.7})


def test_no_state_yet_loads_as_none(tmp_path):
    assert load_state(tmp_path / "nowhere") is None


@pytest.mark.parametrize("stage", [None, "planned", "pushed"])
def test_save_then_load_gives_the_same_state(tmp_path, stage):
    state = _state(stage)
    save_state(tmp_path / "learner", state)  # the folder does not exist yet
    back = load_state(tmp_path / "learner")
    assert back == state
    if stage is not None:
        assert back.progress.plans[0].to_plan() == state.progress.plans[0].to_plan()
        assert back.progress.plans[0].to_plan().push == PushOption("full-nano", 300_000, "full", "nano")


def test_a_leftover_temp_file_does_not_break_load_or_the_next_save(tmp_path):
    first, second = _state("planned"), _state("teacher")
    save_state(tmp_path, first)
    (tmp_path / f"{TMP_PREFIX}state-cut-short").write_bytes(b'{"v": 1, "next_ro')  # a save killed mid-write
    assert load_state(tmp_path) == first
    save_state(tmp_path, second)
    assert load_state(tmp_path) == second
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{TMP_PREFIX}state-cut-short", STATE_FILE]


def test_a_save_that_fails_midway_leaves_the_old_state(tmp_path, monkeypatch):
    first = _state("student")
    save_state(tmp_path, first)

    def disk_gone(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("os.fsync", disk_gone)  # the new bytes never reach the disk
    with pytest.raises(OSError):
        save_state(tmp_path, _state("registered"))
    monkeypatch.undo()
    assert load_state(tmp_path) == first
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # the cut-short temp file was cleaned up


def test_a_save_replaces_the_file_whole(tmp_path):
    save_state(tmp_path, _state("collected"))
    save_state(tmp_path, _state(None))  # shorter than the first: no tail of the old file may survive
    assert load_state(tmp_path).progress is None
    assert (tmp_path / STATE_FILE).read_bytes().rstrip().endswith(b"}")


def test_a_state_with_an_unknown_field_is_refused(tmp_path):
    (tmp_path / STATE_FILE).write_text(_state(None).model_dump_json()[:-1] + ', "surprise": 1}')
    with pytest.raises(ValueError, match="surprise"):
        load_state(tmp_path)


def test_stage_done_follows_the_stage_order():
    assert STAGES == ("planned", "collected", "teacher", "student", "registered", "pushed")
    assert not any(_state(None).stage_done(s) for s in STAGES)  # between rounds nothing of a round is done
    for i, reached in enumerate(STAGES):
        state = _state(reached)
        assert [state.stage_done(s) for s in STAGES] == [j <= i for j in range(len(STAGES))], reached


def _record(round_index: int, domain: str) -> RoundRecord:
    return RoundRecord(round=round_index, endpoint_id="cam-1", policy="adaptive", budget_bytes=1000,
                       planned_upload_bytes=800, spent_upload_bytes=790, planned_push_bytes=200, spent_push_bytes=200,
                       frames_uploaded=3, push="full", push_kind="delta", push_student="student",
                       uploaded_bytes_before=0, map_base=0.0, anchor_uploaded_bytes=0, anchor_map=0.0,
                       map_before=0.0, map_after=0.3, domain=domain)


def test_the_schedulers_history_leaves_out_the_bootstrap_domain(tmp_path):
    assert read_history(tmp_path) == []
    records = [_record(0, "day"), _record(1, "dusk"), _record(2, "dusk")]
    for record in records:
        append_line(tmp_path / HISTORY_FILE, record.to_dict())
    assert read_history(tmp_path) == records
    assert read_history(tmp_path, skip_domain="day") == records[1:]


@pytest.mark.parametrize("torn", [b'{"round": 3, "endpoint_id": "ca', b"\0" * 40], ids=["cut", "zero-filled"])
def test_a_line_a_power_cut_tore_is_skipped_and_the_next_append_starts_a_line_of_its_own(tmp_path, torn):
    """A crash mid-append leaves part of a line (or, after a power cut, zeros): a restart must still read the rest."""
    from edge.learner.round_finish import _written

    path = tmp_path / HISTORY_FILE
    records = [_record(1, "dusk"), _record(2, "dusk")]
    for record in records:
        append_line(path, record.to_dict())
    with open(path, "ab") as fh:
        fh.write(torn)
    assert read_history(tmp_path) == records
    append_line(path, _record(3, "dusk").to_dict())
    assert read_history(tmp_path) == records + [_record(3, "dusk")]
    assert _written(path, "round", "endpoint_id") == {(1, "cam-1"), (2, "cam-1"), (3, "cam-1")}
