"""``edgeloop bench distill``: after the drift, the distilled student against the same student on labels alone.

Same start weights, same frames (the drifted domain plus replay), same epochs and seed; only the teacher's terms
differ: each ``--dis`` weight is one distilled variant with that feature weight and the learning config's
class-score, box and temperature settings (``edge.distill``: the teacher runs at its own input scale). The
bootstrap is the lab's (same frames, same cache key), so a bench after a lab trains nothing twice. Scores are FP32
``.pt`` mAP50-95 on held-out frames of the new and the old domain.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DRIFT_FRAMES = 130  # about what the lab's last round trains on: 3 rounds x 2 endpoints x ~22 frames
VAL_FRAMES = 40
LABEL_ONLY = "labels only"


@dataclass(frozen=True)
class Row:
    """One trained model of the bench: its new- and old-domain mAP50-95 and training seconds."""

    variant: str
    new_map: float
    old_map: float
    train_s: float
    cpu_s: float = 0.0  # process CPU seconds of the training: on a shared machine, steadier than the wall clock


def run_bench_distill(args) -> int:
    from rich.console import Console

    console = Console(width=160)
    try:
        weights = [float(w) for w in str(getattr(args, "dis", None) or "1").split(",")]
    except ValueError:
        console.print(f"[red]edgeloop bench distill: --dis takes comma-separated numbers, not {args.dis!r}[/]")
        return 2
    frames = getattr(args, "frames", 0) or DRIFT_FRAMES
    config = _learning(args)
    head = config.distill_logit_weight or config.distill_box_weight
    if any(w < 0 or (w == 0 and not head) for w in weights):
        console.print("[red]edgeloop bench distill: every --dis weight must be > 0, or >= 0 when the learning config "
                      "distills class scores or boxes (the label-only row is every weight 0)[/]")
        return 2
    os.environ.setdefault("YOLO_VERBOSE", "False")  # before ultralytics is imported: epochs come as our own lines
    from edge.training_progress import report_training_to

    with console.status("bench distill") as status, report_training_to(status.update):
        rows, times = distill_ablation(config, frames, weights, Path(args.out) / "distill", console.print)
    console.print(_table(rows, config, frames, times))
    for line in verdict(rows):
        console.print(line)
    return 0


def _learning(args):
    from edge.learning_config import LearningConfig
    from endpoint.wire.config_base import load_config

    base = load_config(LearningConfig, args.learning, section="learning") if getattr(args, "learning", None) \
        else LearningConfig()
    return base.model_copy(update={"seed": getattr(args, "seed", 0) or 0})


def distill_ablation(config, frames: int, weights: list[float], work: Path, say=print) -> tuple[list[Row], dict]:
    """Bootstrap (cached) on day, fine-tune the teacher on ``frames`` dusk frames, train the student variants."""
    from edge.bootstrap import bootstrap_models
    from edge.distill import teacher_arguments
    from edge.evaluate import evaluate_pt
    from edge.replay import ReplayBuffer
    from edge.teacher import finetune_teacher
    from edge.training import train_stage
    from edge.yolo_dataset import scenario_items
    from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario
    from pipelines.scenarios import VAL_OFFSET

    old, new = (d.name for d in (SyntheticScenario().domains[0], SyntheticScenario().domains[-1]))
    # the lab's bootstrap frames (pipelines/lab_session.py), so the cached weights are shared with `make lab`
    boot_source = SyntheticScenario(seed=config.seed + 1000)
    boot_train = scenario_items(boot_source, old, 0, config.bootstrap_train_frames, "train-")
    boot_val = scenario_items(boot_source, old, 100_000, config.bootstrap_val_frames, "val-")
    stream = SyntheticScenario(seed=config.seed)  # what the lab's first endpoint streams and is scored on
    drift = scenario_items(stream, new, 0, frames, "up-")
    val = {new: scenario_items(stream, new, VAL_OFFSET, VAL_FRAMES, "val-"),
           old: scenario_items(stream, old, VAL_OFFSET, VAL_FRAMES, "val-")}
    times: dict[str, float] = {}

    started, cpu = time.perf_counter(), time.process_time()
    say(f"bootstrap: teacher {config.teacher.yaml} {config.teacher.scale}, student {config.student.yaml} "
        f"{config.student.scale}, {config.teacher_size()} / {config.imgsz} px (cached after the first run)")
    boot = bootstrap_models(config, boot_train, boot_val, CLASS_NAMES)
    times["bootstrap_s"] = time.perf_counter() - started
    times["bootstrap_cpu_s"] = time.process_time() - cpu
    times["bootstrap_cached"] = float(boot.cached)

    def score(variant: str, weights_pt: Path, train_s: float, imgsz: int = config.imgsz, cpu_s: float = 0.0) -> Row:
        maps = {d: evaluate_pt(weights_pt, items, imgsz, config.eval_conf).map50_95 for d, items in val.items()}
        row = Row(variant, maps[new], maps[old], train_s, cpu_s)
        say(f"{variant}: {new} {row.new_map:.3f}, {old} {row.old_map:.3f} mAP50-95, trained {train_s:.0f} s "
            f"({cpu_s:.0f} CPU s)")
        return row

    replay = ReplayBuffer(config.replay_capacity_per_domain, seed=config.seed)
    replay.add(boot_train, old)
    rows = [score("student before the drift", boot.student, 0.0), score("teacher before the drift", boot.teacher, 0,
                                                                         config.teacher_size())]
    say(f"fine-tuning the teacher on {frames} {new} frames + replay")
    cpu = time.process_time()
    teacher = finetune_teacher(boot.teacher, drift, config, work / "teacher", CLASS_NAMES, replay=replay,
                               exclude_domain=new)
    rows.append(score("teacher (fine-tuned)", teacher.weights, teacher.train_s, config.teacher_size(),
                      time.process_time() - cpu))
    variants = [(LABEL_ONLY, {})] + [(distilled_name(config, w), teacher_arguments(
        teacher.weights, config.model_copy(update={"distill_loss_weight": w}))) for w in weights]
    drawn = replay
    for index, (variant, extra) in enumerate(variants):
        say(f"training the student: {variant}")
        cpu = time.process_time()
        # each variant draws from a copy of the same buffer state: the same replay images, not the next draw
        replay = copy.deepcopy(drawn)
        run = train_stage(boot.student, drift, config.distill, config, work / f"student-{index}", CLASS_NAMES,
                          "student", replay=replay, exclude_domain=new, **extra)
        rows.append(score(variant, run.weights, run.train_s, cpu_s=time.process_time() - cpu))
    return rows, times


def distilled_name(config, feature_weight: float) -> str:
    """The variant's row name: every distillation weight it trains with."""
    return (f"distilled, dis {feature_weight:g}, logit {config.distill_logit_weight:g}, box "
            f"{config.distill_box_weight:g}, T {config.distill_temperature:g}")


def label_only(rows: list[Row]) -> Row:
    """The student trained on labels alone."""
    return next(r for r in rows if r.variant == LABEL_ONLY)


def verdict(rows: list[Row]) -> list[str]:
    """The issue's two questions: is the teacher worth learning from, and does distillation pay."""
    base = label_only(rows)
    teacher = next(r for r in rows if r.variant == "teacher (fine-tuned)")
    distilled = [r for r in rows if r.variant.startswith("distilled")]
    best = max(distilled, key=lambda r: r.new_map)
    ratio = teacher.new_map / base.new_map if base.new_map > 0 else float("inf")
    return [f"teacher / label-only student: {ratio:.2f}x (target >= 1.3x)",
            f"best distilled ({best.variant}) - label-only: {100 * (best.new_map - base.new_map):+.1f} pts "
            f"(target >= +1 pt)"]


def _table(rows: list[Row], config, frames: int, times: dict):
    from rich.table import Table

    cached = "cached" if times.get("bootstrap_cached") else "trained"
    table = Table(title=f"bench distill: {frames} drift frames, {config.imgsz} px, FP32 .pt mAP50-95; bootstrap "
                        f"{times['bootstrap_s']:.0f} s, {times['bootstrap_cpu_s']:.0f} CPU s ({cached})")
    for column in ("variant", "new domain", "old domain", "train s", "train CPU s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        table.add_row(r.variant, f"{r.new_map:.3f}", f"{r.old_map:.3f}", f"{r.train_s:.0f}", f"{r.cpu_s:.0f}")
    return table


__all__ = ["DRIFT_FRAMES", "Row", "distill_ablation", "distilled_name", "label_only", "run_bench_distill", "verdict"]
