"""``edgeloop bench scheduler --live``: the real lab per policy and budget, not a replay of measured surfaces.

Each run is ``edgeloop lab`` in its own process (the same code, a fresh broker, store and
endpoints each time); its ``rounds.jsonl`` gives the final and mean deployed mAP50-95 and the
bytes that crossed the link. A benchmark, not a test: a run takes minutes.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from edge.learner.round_result import RoundResult, read_results

log = logging.getLogger(__name__)

LIVE_POLICIES = ("adaptive", "fixed-50-50", "data-first", "model-first")
LIVE_ROUNDS = 4
# Per-endpoint link rates for the lab's 10 s rounds, picked from the replayed bench (edgeloop bench scheduler):
# starved (400 kB a round, the replay's 394 kB row: no full student push fits), middle (1.375 MB, its 1,386 kB
# row: one full student push plus about 28 frames) and plenty (3.75 MB: every one of the lab's 80 frames and a push).
LIVE_BUDGETS_KBPS = {"starved": 320.0, "middle": 1100.0, "plenty": 3000.0}

Runner = Callable[[list[str], Path], int]  # (command, log file) -> exit status


@dataclass
class LiveRun:
    """One lab run: a policy at a budget, and what its rounds measured."""

    policy: str
    budget: str  # starved / middle / plenty
    budget_kbps: float
    returncode: int
    wall_s: float
    rounds: int = 0
    final_map50_95: float | None = None  # the last round's deployed student, mean over endpoints
    mean_map50_95: float | None = None  # mean over rounds and endpoints
    upload_bytes: int = 0
    push_bytes: int = 0


def lab_command(policy: str, budget_kbps: float, out: Path, rounds: int, extra: Sequence[str] = ()) -> list[str]:
    """``edgeloop lab`` for one run, in this interpreter and this checkout."""
    return [sys.executable, "-m", "pipelines.cli", "lab", "--policy", policy, "--budget-kbps", f"{budget_kbps:g}",
            "--rounds", str(rounds), "--out", str(out), *extra]


def summarize(run: LiveRun, results: Sequence[RoundResult]) -> LiveRun:
    """Fill ``run`` from the lab's round results."""
    if not results:
        return run
    last = max(r.round for r in results)
    final = [r.map50_95 for r in results if r.round == last]
    run.rounds = last + 1
    run.final_map50_95 = sum(final) / len(final)
    run.mean_map50_95 = sum(r.map50_95 for r in results) / len(results)
    run.upload_bytes = sum(r.upload_bytes for r in results)
    run.push_bytes = sum(r.push_bytes for r in results)
    return run


def _subprocess_runner(command: list[str], log_path: Path) -> int:
    with open(log_path, "w") as fh:
        return subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT).returncode


def run_live(policies: Sequence[str], budgets_kbps: dict[str, float], rounds: int, out: Path,
             extra: Sequence[str] = (), runner: Runner = _subprocess_runner,
             progress: Callable[[LiveRun], None] | None = None) -> list[LiveRun]:
    """Every policy at every budget, one lab each, under ``out/<budget>-<policy>``."""
    runs = []
    for label, kbps in budgets_kbps.items():
        for policy in policies:
            lab_out = out / f"{label}-{policy}"
            lab_out.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            rc = runner(lab_command(policy, kbps, lab_out, rounds, extra), lab_out / "bench.log")
            run = LiveRun(policy, label, kbps, rc, time.perf_counter() - started)
            rounds_file = lab_out / "rounds.jsonl"
            summarize(run, read_results(rounds_file) if rounds_file.exists() else [])
            runs.append(run)
            if progress:
                progress(run)
    return runs


def live_table(runs: Sequence[LiveRun], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("budget", "kbit/s", "policy", "rounds", "final mAP50-95", "mean mAP50-95", "up MB", "down MB",
                "wall s", "exit"):
        table.add_column(col, justify="left" if col in ("budget", "policy") else "right")
    for r in runs:
        fmt = (lambda v: "-" if v is None else f"{v:.3f}")
        table.add_row(r.budget, f"{r.budget_kbps:g}", r.policy, str(r.rounds), fmt(r.final_map50_95),
                      fmt(r.mean_map50_95), f"{r.upload_bytes / 1e6:.2f}", f"{r.push_bytes / 1e6:.2f}",
                      f"{r.wall_s:.0f}", str(r.returncode))
    return table


def parse_budgets(text: str | None) -> dict[str, float]:
    """``starved,middle,plenty`` rates, or ``name=kbps,...`` in the order to run them; none: the defaults."""
    if not text:
        return dict(LIVE_BUDGETS_KBPS)
    items = [t.strip() for t in text.split(",") if t.strip()]
    if all("=" in t for t in items):
        return {name.strip(): float(kbps) for name, kbps in (t.split("=", 1) for t in items)}
    values = [float(t) for t in items]
    if len(values) == len(LIVE_BUDGETS_KBPS):
        return dict(zip(LIVE_BUDGETS_KBPS, values))
    return {f"{v:g}kbps": v for v in values}


def run_bench_scheduler_live(args, runner: Runner = _subprocess_runner) -> int:
    from rich.console import Console

    console = Console(width=160)
    policies = [p for p in (getattr(args, "policies", None) or ",".join(LIVE_POLICIES)).split(",") if p]
    budgets = parse_budgets(getattr(args, "budgets_kbps", None))
    rounds = getattr(args, "rounds", None) or LIVE_ROUNDS
    extra = shlex.split(getattr(args, "lab_args", None) or "")
    if getattr(args, "frames", 0):
        extra += ["--frames", str(args.frames)]
    if getattr(args, "endpoints", None):
        extra += ["--endpoints", str(args.endpoints)]
    out = Path(args.out) / "scheduler-live"
    console.print(f"bench scheduler --live: {len(policies)} policies x {len(budgets)} budgets, {rounds} rounds each, "
                  f"one `edgeloop lab` per run; logs and rounds.jsonl under {out}")
    started = time.perf_counter()
    done: list[LiveRun] = []

    def save(run: LiveRun) -> None:  # after every run, so a stopped bench keeps what it measured
        done.append(run)
        (out / "live.json").write_text(json.dumps({"rounds": rounds, "wall_s": time.perf_counter() - started,
                                                   "lab_args": extra, "runs": [asdict(r) for r in done]}, indent=1))
        final = "-" if run.final_map50_95 is None else f"{run.final_map50_95:.3f}"
        console.print(f"  {run.budget} {run.policy}: final {final} in {run.wall_s:.0f} s (exit {run.returncode})")

    runs = run_live(policies, budgets, rounds, out, extra, runner, progress=save)
    wall_s = time.perf_counter() - started
    console.print(live_table(runs, f"real lab, {rounds} rounds per run: deployed mAP50-95 and link bytes "
                                   f"(all endpoints); total wall {wall_s:.0f} s"))
    console.print(f"wrote {out / 'live.json'}")
    return 0 if all(r.returncode == 0 for r in runs) else 1


__all__ = ["LIVE_BUDGETS_KBPS", "LIVE_POLICIES", "LIVE_ROUNDS", "LiveRun", "lab_command", "live_table", "parse_budgets",
           "run_live", "run_bench_scheduler_live", "summarize"]
