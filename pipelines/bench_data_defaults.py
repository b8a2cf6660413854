"""``edgeloop bench data-defaults``: data-aware training settings against the old fixed 128 px, same training time.

Each data set is a YOLO folder of small objects made here (the synthetic renderer, one class, JPEG frames, as
a user would bring them). The lab's student is trained (a) at the old fixed settings (``LearningConfig``'s
imgsz, batch, bootstrap epochs and rate), (b) with ``edge.data_profile``'s settings, and (a') with (b)'s
settings but the old imgsz, given (b)'s wall seconds through ultralytics' own ``time=`` budget (it re-plans
epochs and the LR schedule to end on time). Every model is scored on the held-out split at its own input size.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmallObjectSet:
    """One generated data set: image size, object side range in pixels, images per split."""

    name: str
    width: int
    height: int
    object_px: tuple[int, int]
    train_images: int = 160
    val_images: int = 60
    max_objects: int = 6
    jpeg_quality: int = 92


# Sized for a 2-core CPU (a data-aware run takes minutes there): the rule sees object size relative to the
# image, so 4-12 px objects in 320 px frames are the case of 8-24 px objects in 640 px frames at a quarter the cost.
DATA_SETS = (SmallObjectSet("small-4-12px-in-320", width=320, height=240, object_px=(4, 12)),
             SmallObjectSet("small-6-14px-in-384", width=384, height=288, object_px=(6, 14)))


@dataclass(frozen=True)
class VariantResult:
    data_set: str
    variant: str
    imgsz: int
    epochs: int  # epochs that actually ran
    batch: int
    train_s: float
    map50: float
    map50_95: float


def make_small_object_folder(root: Path, spec: SmallObjectSet, seed: int) -> Path:
    """A YOLO folder (images/labels train+val, data.yaml) of one class of small squares; val never overlaps train."""
    import cv2

    from edge.yolo_dataset import LabelledImage, scenario_items, write_yolo_dataset
    from endpoint.sources.scenario import CLASS_NAMES, Domain, SyntheticScenario

    if not 2 <= spec.object_px[0] <= spec.object_px[1] < min(spec.width, spec.height):
        raise ValueError(f"object sizes {spec.object_px} px do not fit {spec.width}x{spec.height} images")
    short = min(spec.width, spec.height)
    domain = Domain(spec.name, noise_std=6.0, scale=(spec.object_px[0] / short, spec.object_px[1] / short),
                    class_weights=(1.0, 0.0, 0.0))
    scenario = SyntheticScenario(width=spec.width, height=spec.height, seed=seed, domains=(domain,),
                                 max_objects=spec.max_objects)

    def jpeg(items):  # real folders hold JPEGs; training and scoring then see the same compression
        return [LabelledImage(i.name, cv2.imencode(".jpg", i.image, [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])[1]
                              .tobytes(), i.boxes, i.classes) for i in items]

    write_yolo_dataset(root, {"train": jpeg(scenario_items(scenario, spec.name, 0, spec.train_images, "train-")),
                              "val": jpeg(scenario_items(scenario, spec.name, 500_000, spec.val_images, "val-"))},
                       CLASS_NAMES[:1])
    return root


def train_and_score(folder: Path, work: Path, variant: str, imgsz: int, batch: int, epochs: int,
                    time_s: float | None = None, seed: int = 0, lr0: float | None = None,
                    nominal_batch: int | None = None) -> VariantResult:
    """Train the lab's student from YAML on ``folder``'s train split and score it on its val split at ``imgsz``."""
    from edge.evaluate import evaluate_pt
    from edge.learning_config import LearningConfig
    from edge.training import model_source, train_yolo
    from edge.yolo_dataset import folder_items

    config = LearningConfig(imgsz=imgsz, batch=batch, nominal_batch=nominal_batch, seed=seed,
                            cache_dir=work / "cache", work_dir=work)
    stage = config.bootstrap.model_copy(update={"epochs": epochs, **({"lr0": lr0} if lr0 else {})})
    extra = {"time": time_s / 3600} if time_s else {}
    run_dir = work / "runs" / variant
    started = time.perf_counter()
    weights = train_yolo(model_source(config.student, config.cache_dir), folder / "data.yaml", stage, config,
                         run_dir, label=variant, **extra)
    train_s = time.perf_counter() - started
    score = evaluate_pt(weights, folder_items(folder, "val"), imgsz)
    return VariantResult(folder.name, variant, imgsz, _epochs_run(run_dir, epochs), batch, train_s,
                         score.map50, score.map50_95)


def _epochs_run(run_dir: Path, planned: int) -> int:
    """Rows of ultralytics' results.csv (one per finished epoch); ``planned`` when it wrote none."""
    csv = run_dir / "results.csv"
    return max(0, len(csv.read_text().splitlines()) - 1) if csv.exists() else planned


def bench_data_set(spec: SmallObjectSet, out: Path, seed: int = 0, say=print) -> list[VariantResult]:
    """The three variants on one generated data set, in the order the table shows them."""
    from edge.data_profile import data_aware_settings, profile_folder
    from edge.learning_config import LearningConfig

    for stale in (out / spec.name, out / f"{spec.name}-work"):  # ultralytics appends to an old run's results.csv
        shutil.rmtree(stale, ignore_errors=True)
    folder = make_small_object_folder(out / spec.name, spec, seed)
    profile = profile_folder(folder)
    chosen = data_aware_settings(profile)
    say(f"{spec.name}: data-aware {chosen.describe(profile)}")
    old = LearningConfig()
    work = out / f"{spec.name}-work"
    fixed = train_and_score(folder, work, "imgsz-128-fixed", old.imgsz, old.batch, old.bootstrap.epochs,
                            seed=seed)
    recipe = {"seed": seed, "lr0": chosen.lr0, "nominal_batch": chosen.nominal_batch}
    aware = train_and_score(folder, work, "data-aware", chosen.imgsz, chosen.batch, chosen.epochs, **recipe)
    # the budget mode re-plans epochs after the first one; the planned count only seeds the first LR schedule
    same_time = train_and_score(folder, work, "imgsz-128-same-time", old.imgsz, chosen.batch, chosen.epochs,
                                time_s=aware.train_s, **recipe)
    return [fixed, same_time, aware]


def results_table(results: list[VariantResult]):
    from rich.table import Table

    table = Table(title="data-aware defaults vs imgsz 128 on small-object YOLO folders (mAP on the held-out split; "
                        "ratio = data-aware mAP50-95 / this row's)")
    for name in ("data set", "variant", "imgsz", "epochs", "batch", "train s", "mAP50", "mAP50-95", "ratio"):
        table.add_column(name, justify="left" if name in ("data set", "variant") else "right")
    for r in results:
        aware = next(a for a in results if a.data_set == r.data_set and a.variant == "data-aware")
        ratio = "-" if r is aware else f"{aware.map50_95 / r.map50_95:.1f}x" if r.map50_95 > 0 else "inf"
        table.add_row(r.data_set, r.variant, str(r.imgsz), str(r.epochs), str(r.batch), f"{r.train_s:.0f}",
                      f"{r.map50:.3f}", f"{r.map50_95:.3f}", ratio)
    return table


def run_bench_data_defaults(args) -> int:
    from rich.console import Console

    console = Console(width=150)
    out = Path(getattr(args, "out", "edgeloop-data/bench")) / "data-defaults"
    seed = getattr(args, "seed", 0)
    frames = getattr(args, "frames", 0)
    data_sets = [SmallObjectSet(**{**asdict(s), "train_images": frames}) if frames else s for s in DATA_SETS]
    results: list[VariantResult] = []
    for spec in data_sets:
        with console.status(f"{spec.name}: generating and training three variants"):
            results += bench_data_set(spec, out, seed, say=console.print)
        console.print(results_table(results))
    (out / "bench_data_defaults.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    console.print(f"wrote {out / 'bench_data_defaults.json'}")
    return 0


__all__ = ["DATA_SETS", "SmallObjectSet", "VariantResult", "bench_data_set", "make_small_object_folder",
           "results_table", "run_bench_data_defaults", "train_and_score"]
