"""The last stage of a round: score what each endpoint runs now, and record the round for the scheduler and people.

Appends one line per endpoint to ``history.jsonl`` (the scheduler's) and ``rounds.jsonl`` (the results), each
at most once per (round, endpoint): a restart between those writes and the state save writes no duplicate.
"""

from __future__ import annotations

import time
from pathlib import Path

from edge.frame_index import FrameRecord
from edge.learner.push_options import trained_fraction
from edge.learner.round_result import RoundResult
from edge.learner.scoring import AGREEMENT_FRAMES
from edge.learner.state import HISTORY_FILE, ROUNDS_FILE, PushDone, append_line, read_lines
from edge.scheduler.policy import RoundRecord


def finish_round(driver, records: list[FrameRecord], settings) -> list[RoundResult]:
    """Score and record the driver's round in flight; one result per endpoint, in plan order."""
    from edge.learner.round_driver import NOT_SCORED, STUDENT_NAME

    state, p = driver.state, driver.state.progress
    rounds_path, history_path = driver.state_dir / ROUNDS_FILE, driver.state_dir / HISTORY_FILE
    in_rounds = _written(rounds_path, "round", "endpoint")
    in_history = _written(history_path, "round", "endpoint_id")
    results = []
    for planned in p.plans:
        ep, track = planned.endpoint_id, state.tracks[planned.endpoint_id]
        recs = [r for r in records if r.endpoint_id == ep]
        push = p.pushes.get(ep, PushDone(kind="skip", bytes=0, version=""))
        before = driver._map(track, p.versions_before.get(ep, ""))
        deployed = driver._deployed(track)
        after = driver._map(track, deployed)
        val = driver._val(track)
        static = driver.scorer.file(ep, track.domain, val, state.static_onnx) if val else NOT_SCORED
        uploaded = sum(r.jpeg_bytes for r in recs)
        uploaded_before = track.uploaded_bytes_domain
        track.uploaded_bytes_domain += uploaded
        if recs:
            track.bytes_per_frame = uploaded / len(recs)
        if push.kind == "full" and push.acked:  # only a full model the endpoint runs re-anchors the curves
            track.anchor_uploaded_bytes, track.anchor_map = track.uploaded_bytes_domain, after.map50_95
        push_kind = reported_push_kind(push)
        candidate = p.candidate_version
        record = RoundRecord(
            round=p.round, endpoint_id=ep, policy=driver.policy.name, budget_bytes=settings.budget_bytes,
            planned_upload_bytes=planned.upload_bytes, spent_upload_bytes=p.spent_upload_bytes.get(ep, 0),
            planned_push_bytes=planned.push["bytes"], spent_push_bytes=push.bytes, frames_uploaded=len(recs),
            push=planned.push["name"], push_kind=push.kind if push.acked else "skip",
            push_student=STUDENT_NAME if push.acked else "", uploaded_bytes_before=uploaded_before,
            map_base=track.map_base, anchor_uploaded_bytes=track.anchor_uploaded_bytes,
            anchor_map=track.anchor_map if track.anchor_map is not None else track.map_base,
            map_before=before.map50_95, map_after=after.map50_95,
            candidate_map=driver._map(track, candidate).map50_95 if candidate else None,
            candidate_bytes=driver.registry.manifest(STUDENT_NAME, candidate).size_bytes if candidate else None,
            domain=p.domain)
        agreement = driver.scorer.agreement(deployed, state.teacher_pt,
                                            [driver.store.get(r.jpeg_key) for r in recs[:AGREEMENT_FRAMES]])
        if agreement is not None:
            state.last_agreement[ep] = agreement
        teacher = driver.scorer.teacher(ep, driver._val_sets(ep), state.teacher_pt)
        result = RoundResult(
            round=p.round, endpoint=ep, domain=p.domain, policy=driver.policy.name,
            budget_bytes=settings.budget_bytes, planned_upload_bytes=planned.upload_bytes,
            upload_bytes=p.spent_upload_bytes.get(ep, 0), planned_push_bytes=planned.push["bytes"],
            push_bytes=push.bytes, push_kind=push_kind, frames_uploaded=len(recs), model_version=deployed,
            map50=after.map50, map50_95=after.map50_95, map50_95_before=before.map50_95,
            static_map50_95=static.map50_95, teacher_map50_95=teacher.get(p.domain, 0.0),
            agreement_map50_95=agreement, teacher_map50_95_by_domain=teacher,
            map50_95_by_domain=driver._by_domain(ep, deployed), wall_s=time.time() - p.started_unix_s,
            push_fraction=trained_fraction(driver.registry, push.version) if push_kind in ("delta", "full") else None)
        if (p.round, ep) not in in_history:
            append_line(history_path, record.to_dict())
        if (p.round, ep) not in in_rounds:
            append_line(rounds_path, result.model_dump())
        results.append(result)
    return results


def reported_push_kind(push: PushDone) -> str:
    """The round's push as rounds.jsonl reports it: its kind once acked; "failed" for one sent but never acked.

    "skip" and "pending" (the endpoint had not reported, so the reconciler pushes when it does) sent nothing to ack.
    """
    return push.kind if push.acked or push.kind in ("skip", "pending") else "failed"


def _written(path: Path, round_key: str, endpoint_key: str) -> set[tuple[int, str]]:
    if not path.exists():
        return set()
    rows = read_lines(path)
    return {(row[round_key], row[endpoint_key]) for row in rows}
