"""``edgeloop bench scheduler --live`` without the minutes: a stand-in runner writes what a lab run writes."""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from edge.learner.round_result import RoundResult
from edge.learner.state import append_line
from pipelines.bench_scheduler import run_bench_scheduler
from pipelines.bench_scheduler_live import LIVE_POLICIES, LIVE_ROUNDS, run_bench_scheduler_live

FAILING = "data-first"


def _row(round_index: int, endpoint: str, policy: str, budget_kbps: float) -> RoundResult:
    """A made-up round whose numbers depend on its inputs, so a mixed-up summary shows."""
    value = round(0.01 * (round_index + 1) + budget_kbps / 1e5 + (0.005 if endpoint == "cam-2" else 0), 4)
    return RoundResult(round=round_index, endpoint=endpoint, domain="dusk", policy=policy, budget_bytes=1,
                       planned_upload_bytes=1, upload_bytes=1000 * (round_index + 1), planned_push_bytes=1,
                       push_bytes=700 * round_index, push_kind="full", frames_uploaded=1, model_version="v0002",
                       map50=value, map50_95=value, map50_95_before=0.0, static_map50_95=0.0, teacher_map50_95=0.0,
                       wall_s=1.0)


class FakeLab:
    """Records each command and writes the rounds of a lab that ran it (or fails, for one policy)."""

    def __init__(self):
        self.commands: list[list[str]] = []
        self.rows: dict[tuple[str, float], list[RoundResult]] = {}

    def __call__(self, command: list[str], log_path) -> int:
        self.commands.append(command)
        flag = lambda name: command[command.index(name) + 1]  # noqa: E731
        policy, kbps, rounds = flag("--policy"), float(flag("--budget-kbps")), int(flag("--rounds"))
        if policy == FAILING:
            return 1
        rows = [_row(r, e, policy, kbps) for r in range(rounds) for e in ("cam-1", "cam-2")]
        for row in rows:
            append_line(Path(f"{flag('--out')}/rounds.jsonl"), row.model_dump())
        self.rows[(policy, kbps)] = rows
        return 0


def test_live_bench_runs_one_lab_per_policy_and_budget_and_sums_its_rounds(tmp_path, capsys):
    lab = FakeLab()
    args = Namespace(out=str(tmp_path), live=True, rounds=None, policies=None, budgets_kbps="100,200,300",
                     lab_args="--imgsz 64 --frames 12", frames=0, endpoints=2)
    assert run_bench_scheduler_live(args, runner=lab) == 1  # one policy's labs failed: the bench says so
    assert len(lab.commands) == 3 * len(LIVE_POLICIES)
    for command in lab.commands:
        assert command[:4] == [sys.executable, "-m", "pipelines.cli", "lab"]
        assert command[command.index("--rounds") + 1] == str(LIVE_ROUNDS)
        assert command[-6:] == ["--imgsz", "64", "--frames", "12", "--endpoints", "2"]
    saved = json.loads((tmp_path / "scheduler-live" / "live.json").read_text())
    assert {r["budget"] for r in saved["runs"]} == {"starved", "middle", "plenty"}
    for run in saved["runs"]:
        if run["policy"] == FAILING:
            assert run["returncode"] == 1 and run["final_map50_95"] is None
            continue
        rows = lab.rows[(run["policy"], run["budget_kbps"])]
        final = [r.map50_95 for r in rows if r.round == LIVE_ROUNDS - 1]
        assert run["final_map50_95"] == sum(final) / len(final)
        assert run["mean_map50_95"] == sum(r.map50_95 for r in rows) / len(rows)
        assert (run["upload_bytes"], run["push_bytes"]) == (sum(r.upload_bytes for r in rows),
                                                            sum(r.push_bytes for r in rows))
    printed = capsys.readouterr().out
    assert "final mAP50-95" in printed and "total wall" in printed


def test_bench_scheduler_dispatches_live(monkeypatch, tmp_path):
    import pipelines.bench_scheduler_live as live

    seen = []
    monkeypatch.setattr(live, "run_bench_scheduler_live", lambda args: seen.append(args) or 0)
    args = Namespace(out=str(tmp_path), live=True)
    assert run_bench_scheduler(args) == 0 and seen == [args]


def test_rounds_file_with_a_line_a_crash_cut_short_still_reads(tmp_path):
    """What `edgeloop report` reads: the learner appends durably, and a torn last line must not hide the rest."""
    from edge.learner.round_result import read_results

    path = tmp_path / "rounds.jsonl"
    rows = [_row(0, "cam-1", "adaptive", 320), _row(1, "cam-1", "adaptive", 320)]
    for row in rows:
        append_line(path, row.model_dump())
    with open(path, "ab") as fh:
        fh.write(b'{"round": 2, "endp')
    assert read_results(path) == rows
    path.write_text(json.dumps({"round": "not a round"}) + "\n")
    with pytest.raises(ValueError, match="not a round record"):
        read_results(path)
