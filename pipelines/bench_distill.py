"""``edgeloop bench distill``: after the drift, the distilled student against the same student on labels alone.

Same start weights, same frames (the drifted domain plus replay), same epochs and seed; only the teacher's terms
differ: each ``--dis`` weight is one distilled variant with that feature weight and the learning config's
class-score, box and temperature settings (``edge.distill``: the teacher runs at its own input scale). The
bootstrap is the lab's (same frames, same cache key), so a bench after a lab trains nothing twice. Scores are FP32
``.pt`` mAP50-95 on held-out frames of the new and the old domain. ``--seeds`` repeats the students over training
seeds (frames, replay draw and teacher stay fixed): one seed's noise is several points, so the verdict is the mean
gain over seeds, printed with its standard deviation. Each seed also trains the label-only student for as many
epochs as fit the distilled students' wall time ("labels only, same wall time"): the same-time comparison.
``--labels teacher`` takes the drift frames' ground truth away, as ``edgeloop lab --labels teacher`` does: the
teacher fine-tunes on the pre-drift teacher's pseudo-labels, and the students learn the fine-tuned teacher's (frames
with no box at or above ``teacher_label_conf`` left out); replay and held-out frames keep their ground truth.
"""

from __future__ import annotations

import copy
import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DRIFT_FRAMES = 130  # about what the lab's last round trains on: 3 rounds x 2 endpoints x ~22 frames
VAL_FRAMES = 40
DRIFT_LABELS = ("oracle", "teacher")  # what the drift frames are labelled with (--labels)
LABEL_ONLY = "labels only"
# the label-only student in the cached teacher's fixed geometry (edge.teacher_cache), beside the default one
LABEL_ONLY_FIXED = "labels only, fixed geometry"
SAME_TIME = ", same wall time"
# the label-only student again, for as many epochs as fit the distilled students' wall time: "same time"
LABEL_ONLY_SAME_TIME = LABEL_ONLY + SAME_TIME


@dataclass(frozen=True)
class Row:
    """One trained model of the bench: its new- and old-domain mAP50-95 and training seconds."""

    variant: str
    new_map: float
    old_map: float
    train_s: float
    cpu_s: float = 0.0  # process CPU seconds of the training: on a shared machine, steadier than the wall clock
    seed: int | None = None  # the students' training seed; None for the bootstrap and the teacher
    epochs: int | None = None  # the student's training epochs
    epoch_times_s: tuple[float, ...] = ()  # each epoch's seconds (ultralytics' results.csv); () when not read

    @property
    def epoch_s(self) -> float:
        """Seconds of a typical epoch: the median of ``epoch_times_s``, else the training's mean."""
        if self.epoch_times_s:
            return statistics.median(self.epoch_times_s)
        return self.train_s / self.epochs if self.epochs else float("nan")

    @property
    def steady_s(self) -> float:
        """``train_s`` with every epoch at ``epoch_s``: a stall (another process on the machine) taken out.

        An unrepeatable 248 s and a 50 s among 12-13 s label-only runs once paced their same-time runs at 6
        and 5 epochs instead of about 28."""
        return self.train_s - sum(self.epoch_times_s) + len(self.epoch_times_s) * self.epoch_s


@dataclass(frozen=True)
class Gain:
    """One distilled variant against the label-only student, per training seed, in mAP50-95 points (new domain)."""

    variant: str
    by_seed: dict[int, float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.by_seed.values())

    @property
    def std(self) -> float:
        """Sample standard deviation over seeds; NaN for a single seed."""
        return statistics.stdev(self.by_seed.values()) if len(self.by_seed) > 1 else float("nan")


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
    if config is None:
        return 2
    try:
        seeds = training_seeds(getattr(args, "seeds", None), config.seed)
    except ValueError as error:
        console.print(f"[red]edgeloop bench distill: {error}[/]")
        return 2
    head = config.distill_logit_weight or config.distill_box_weight
    if any(w < 0 or (w == 0 and not head) for w in weights):
        console.print("[red]edgeloop bench distill: every --dis weight must be > 0, or >= 0 when the learning config "
                      "distills class scores or boxes (the label-only row is every weight 0)[/]")
        return 2
    os.environ.setdefault("YOLO_VERBOSE", "False")  # before ultralytics is imported: epochs come as our own lines
    from edge.training_progress import report_training_to

    labels = getattr(args, "labels", None) or "oracle"
    try:
        with console.status("bench distill") as status, report_training_to(status.update):
            rows, times = distill_ablation(config, frames, weights, Path(args.out) / "distill", console.print, seeds,
                                           labels)
    except NoPseudoLabels as error:
        console.print(f"[red]edgeloop bench distill --labels teacher: {error}[/]")
        return 2
    console.print(_table(rows, config, frames, times))
    for baseline, when in comparisons(rows):
        console.print(_gain_table(gains(rows, baseline), when, baseline))
    for line in verdict(rows):
        console.print(line)
    return 0


def _learning(args):
    """The --learning file's settings at --seed, or None (said in one line) for a missing or bad file."""
    from edge.learning_config import LearningConfig
    from endpoint.wire.config_base import load_command_config

    base = load_command_config(LearningConfig, args.learning, "edgeloop bench distill", section="learning") \
        if getattr(args, "learning", None) else LearningConfig()
    return None if base is None else base.model_copy(update={"seed": getattr(args, "seed", 0) or 0})


MAX_SEEDS = 100


def training_seeds(spec: str | None, first: int) -> list[int]:
    """``--seeds``: None is ``first`` alone, ``N`` is ``first`` .. ``first + N - 1``, ``a,b,c`` those seeds."""
    if spec is None or not str(spec).strip():
        return [first]
    text = str(spec).strip()
    try:
        seeds = [int(part) for part in text.split(",")] if "," in text else list(range(first, first + int(text)))
    except ValueError:
        raise ValueError(f"--seeds takes a count or comma-separated integers, not {spec!r}") from None
    if not 1 <= len(seeds) <= MAX_SEEDS or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs 1 to {MAX_SEEDS} distinct seeds, not {spec!r}")
    return seeds


def distill_ablation(config, frames: int, weights: list[float], work: Path, say=print,
                     seeds: list[int] | None = None, labels: str = "oracle") -> tuple[list[Row], dict]:
    """Bootstrap (cached) on day, fine-tune the teacher on ``frames`` dusk frames, train the student variants.

    The students train once per seed of ``seeds`` (default: the config's), all on the same frames and replay draw.
    ``labels``: "oracle" (the frames' ground truth) or "teacher" (pseudo-labels, as the module says).
    """
    if labels not in DRIFT_LABELS:
        raise ValueError(f"labels is one of {DRIFT_LABELS}, not {labels!r}")
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

    def score(variant: str, weights_pt: Path, train_s: float, imgsz: int = config.imgsz, cpu_s: float = 0.0,
              seed: int | None = None, epochs: int | None = None, epoch_times_s: tuple[float, ...] = ()) -> Row:
        maps = {d: evaluate_pt(weights_pt, items, imgsz, config.eval_conf).map50_95 for d, items in val.items()}
        row = Row(variant, maps[new], maps[old], train_s, cpu_s, seed, epochs, epoch_times_s)
        at = "" if seed is None else f" (seed {seed})"
        say(f"{variant}{at}: {new} {row.new_map:.3f}, {old} {row.old_map:.3f} mAP50-95, trained {train_s:.0f} s "
            f"({cpu_s:.0f} CPU s)")
        return row

    replay = ReplayBuffer(config.replay_capacity_per_domain, seed=config.seed)
    replay.add(boot_train, old)
    rows = [score("student before the drift", boot.student, 0.0), score("teacher before the drift", boot.teacher, 0,
                                                                         config.teacher_size())]
    teacher_drift = drift if labels == "oracle" else \
        pseudo_labelled(drift, boot.teacher, "the pre-drift teacher", config, say)
    say(f"fine-tuning the teacher on {len(teacher_drift)} {new} frames + replay")
    cpu = time.process_time()
    teacher = finetune_teacher(boot.teacher, teacher_drift, config, work / "teacher", CLASS_NAMES, replay=replay,
                               exclude_domain=new)
    rows.append(score("teacher (fine-tuned)", teacher.weights, teacher.train_s, config.teacher_size(),
                      time.process_time() - cpu))
    if labels == "teacher":
        drift = pseudo_labelled(drift, teacher.weights, "the fine-tuned teacher", config, say)
    distilled = [(distilled_name(config, w), teacher_arguments(
        teacher.weights, config.model_copy(update={"distill_loss_weight": w}))) for w in weights]
    baselines = [(LABEL_ONLY, {})]
    if any(getattr(extra.get("distill_head"), "cached_teacher", False) for _, extra in distilled):
        from edge.teacher_cache import FIXED_GEOMETRY

        # a cached teacher's students keep each image's geometry: so does this label-only student
        baselines.append((LABEL_ONLY_FIXED, dict(FIXED_GEOMETRY)))
    variants = baselines + distilled
    drawn = replay
    for seed in seeds if seeds is not None else [config.seed]:
        seeded = config.model_copy(update={"seed": seed})  # ultralytics' seed: initial draws, augmentation, order

        def student(variant: str, folder: str, stage, **extra) -> Row:
            say(f"training the student: {variant}, seed {seed}")
            cpu = time.process_time()
            # each variant draws from a copy of the same buffer state: the same replay images, not the next draw
            run_dir = work / f"{folder}-seed-{seed}"
            run = train_stage(boot.student, drift, stage, seeded, run_dir, CLASS_NAMES, "student",
                              replay=copy.deepcopy(drawn), exclude_domain=new, **extra)
            return score(variant, run.weights, run.train_s, cpu_s=time.process_time() - cpu, seed=seed,
                         epochs=stage.epochs_for(run.images),
                         epoch_times_s=epoch_seconds(run_dir / "runs" / "student" / "results.csv"))

        trained = [student(variant, f"student-{index}", seeded.distill, **extra)
                   for index, (variant, extra) in enumerate(variants)]
        rows += trained
        if len(trained) > len(baselines):
            wall_s = statistics.fmean(r.steady_s for r in trained[len(baselines):])
            for index, ((variant, extra), on_labels) in enumerate(zip(baselines, trained)):
                epochs = same_time_epochs(on_labels, wall_s)
                rows.append(student(variant + SAME_TIME, "student-same-time" + (f"-{index}" if index else ""),
                                    seeded.distill.model_copy(update={"epochs": epochs, "target_images": None}),
                                    **extra))
    return rows, times


def pseudo_labelled(items: list, teacher_pt: Path, who: str, config, say=print) -> list:
    """``items`` with the ``teacher_pt`` teacher's pseudo-labels, as a lab round labels frames without ground truth."""
    from edge.labels import LabelContext, teacher_labelled

    labelled = teacher_labelled(items, LabelContext(teacher_weights=teacher_pt, teacher_conf=config.teacher_label_conf,
                                                    imgsz=config.teacher_size()))
    boxes, truth = (sum(len(item.classes) for item in group) for group in (labelled, items))
    found = (f"{len(labelled)} of {len(items)} frames with a box at or above {config.teacher_label_conf:g}, "
             f"{boxes} boxes against {truth} in ground truth")
    if not labelled:
        raise NoPseudoLabels(f"{who} labelled none of the drift frames ({found}): nothing to train on; a lower "
                             f"teacher_label_conf in --learning finds more")
    say(f"pseudo-labels of {who}: {found}")
    return labelled


class NoPseudoLabels(ValueError):
    """The teacher found no box in any drift frame at its label threshold."""


def same_time_epochs(labels: Row, wall_s: float) -> int:
    """Epochs of the label-only student that take about ``wall_s``: its own run's time outside the epochs, plus
    epochs at its typical pace (``Row.epoch_s``)."""
    if not labels.epochs or labels.train_s <= 0:
        raise ValueError(f"the label-only row has no epochs or time to pace from: {labels}")
    outside_s = labels.steady_s - labels.epochs * labels.epoch_s
    return max(1, round((wall_s - outside_s) / labels.epoch_s))


def epoch_seconds(results_csv: Path) -> tuple[float, ...]:
    """Each epoch's seconds from ultralytics' ``results.csv`` (its ``time`` column is cumulative); () without one."""
    import csv

    try:
        with open(results_csv, newline="") as f:
            times = [float(row["time"]) for row in csv.DictReader(f)]
    except (OSError, KeyError, ValueError) as error:
        log.warning("no epoch times in %s (%s): pacing from the whole training's time", results_csv, error)
        return ()
    return tuple(b - a for a, b in zip([0.0] + times, times))


def distilled_name(config, feature_weight: float) -> str:
    """The variant's row name: every distillation weight it trains with."""
    pool = "" if config.distill_logit_pool == "max" else f" {config.distill_logit_pool}-pooled"
    return (f"distilled, dis {feature_weight:g}, logit {config.distill_logit_weight:g}{pool}, box "
            f"{config.distill_box_weight:g}, T {config.distill_temperature:g}")


def label_only(rows: list[Row]) -> list[Row]:
    """The students trained on labels alone, one per training seed."""
    return [r for r in rows if r.variant == LABEL_ONLY]


def gains(rows: list[Row], baseline: str = LABEL_ONLY) -> list[Gain]:
    """Each distilled variant minus the ``baseline`` student of the same seed, in points, in the rows' order."""
    base = {r.seed: r.new_map for r in rows if r.variant == baseline}
    by_variant: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.variant.startswith("distilled"):
            if r.seed not in base:
                raise ValueError(f"no {baseline!r} student for seed {r.seed} to compare {r.variant!r} with")
            by_variant.setdefault(r.variant, {})[r.seed] = 100 * (r.new_map - base[r.seed])
    return [Gain(variant, by_seed) for variant, by_seed in by_variant.items()]


def comparisons(rows: list[Row]) -> list[tuple[str, str]]:
    """(baseline variant, when) of each label-only student the rows hold, to compare the distilled ones with."""
    out = []
    for base in (LABEL_ONLY, LABEL_ONLY_FIXED):
        for baseline, when in ((base, "at the same epochs"), (base + SAME_TIME, "at the same wall time")):
            if any(r.variant == baseline for r in rows):
                out.append((baseline, when))
    return out


def verdict(rows: list[Row]) -> list[str]:
    """The issue's two questions: is the teacher worth learning from, and does distillation pay (mean over seeds)."""
    base = statistics.fmean(r.new_map for r in label_only(rows))
    teacher = next(r for r in rows if r.variant == "teacher (fine-tuned)")
    ratio = teacher.new_map / base if base > 0 else float("inf")
    lines = [f"teacher / label-only student (mean over seeds): {ratio:.2f}x (target >= 1.3x)"]
    for baseline, when in comparisons(rows):
        best = max(gains(rows, baseline), key=lambda g: g.mean)
        lines.append(f"best distilled ({best.variant}) - {baseline.removesuffix(SAME_TIME)} {when}: "
                     f"{best.mean:+.1f} pts mean, std {best.std:.1f}, over {len(best.by_seed)} training seed(s) "
                     f"(target >= +1 pt)")
    return lines


def _table(rows: list[Row], config, frames: int, times: dict):
    from rich.table import Table

    cached = "cached" if times.get("bootstrap_cached") else "trained"
    table = Table(title=f"bench distill: {frames} drift frames, {config.imgsz} px, FP32 .pt mAP50-95; bootstrap "
                        f"{times['bootstrap_s']:.0f} s, {times['bootstrap_cpu_s']:.0f} CPU s ({cached})")
    for column in ("variant", "seed", "epochs", "new domain", "old domain", "train s", "median epoch s",
                   "train CPU s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    for r in rows:
        table.add_row(r.variant, "" if r.seed is None else str(r.seed), "" if r.epochs is None else str(r.epochs),
                      f"{r.new_map:.3f}", f"{r.old_map:.3f}", f"{r.train_s:.0f}",
                      f"{r.epoch_s:.2f}" if r.epochs else "", f"{r.cpu_s:.0f}")
    return table


def _gain_table(variant_gains: list[Gain], when: str, baseline: str = LABEL_ONLY):
    from rich.table import Table

    table = Table(title=f"distilled - {baseline.removesuffix(SAME_TIME)} {when}, new-domain mAP50-95 points, per "
                        f"training seed")
    table.add_column("variant")
    seeds = sorted({s for g in variant_gains for s in g.by_seed})
    for column in [f"seed {s}" for s in seeds] + ["mean", "std"]:
        table.add_column(column, justify="right")
    for g in variant_gains:
        cells = [f"{g.by_seed[s]:+.1f}" if s in g.by_seed else "" for s in seeds]
        table.add_row(g.variant, *cells, f"{g.mean:+.1f}", f"{g.std:.1f}")
    return table


__all__ = ["DRIFT_FRAMES", "LABEL_ONLY_FIXED", "LABEL_ONLY_SAME_TIME", "SAME_TIME", "Gain", "NoPseudoLabels", "Row",
           "comparisons", "distill_ablation", "distilled_name", "epoch_seconds", "gains", "label_only",
           "pseudo_labelled", "run_bench_distill", "same_time_epochs", "training_seeds", "verdict"]
