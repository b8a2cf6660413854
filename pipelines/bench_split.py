"""``edgeloop bench split``: device-only vs edge-only (JPEG) vs the chosen split, across uplink bandwidths.

Runs on a fresh clone: a small YOLO is trained from YAML on scenario frames (cached under
``edgeloop-data/cache/bench-split``), cut into a split set, and every option is measured on
held-out scenario frames (mAP, bytes per frame, ms on this CPU). Latency at each bandwidth is
then predicted with ``edge.split.selection`` for a device slower and an edge faster than this CPU.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger(__name__)

BANDWIDTHS_MBIT_S = (0.25, 1.0, 4.0, 16.0, 64.0)
CACHE_DIR = Path("edgeloop-data/cache/bench-split")


@dataclass(frozen=True)
class BenchSplitSettings:
    """What the bench trains, cuts and assumes; its hash names the cached model and split set."""

    scale: tuple[float, float, int] = (0.33, 0.25, 256)  # yolo11n depth, width, max channels
    imgsz: int = 160
    train_frames: int = 160
    epochs: int = 10
    batch: int = 16
    lr0: float = 0.02
    seed: int = 0
    cuts: tuple[int, ...] = (2, 4, 6, 8)
    bottlenecks: tuple[tuple[int, int], ...] = ((4, 4),)  # (split_after, channel reduction)
    bottleneck_steps: int = 150
    eval_frames: int = 48
    codecs: tuple[str, ...] = ("fp16-zlib", "q8c-zlib", "q6c-zlib", "q4c-zlib", "q2c-zlib")
    jpeg_quality: int = 85
    # a Raspberry-Pi-class device is ~5x slower than this CPU core; the edge box ~4x faster
    device_speed_factor: float = 0.2
    edge_speed_factor: float = 4.0
    rtt_ms: float = 5.0
    map_floor_drop: float = 0.02  # accuracy floor: device-only mAP50-95 minus this

    def key(self, data_digest: str | None = None) -> str:
        """The training settings, the training data's digest and the ultralytics version."""
        from edge.training import cache_key

        return cache_key({k: v for k, v in asdict(self).items() if k in _TRAINING_FIELDS}, data_digest)


_TRAINING_FIELDS = ("scale", "imgsz", "train_frames", "epochs", "batch", "lr0", "seed")


def bench_model(settings: BenchSplitSettings, cache_dir: Path = CACHE_DIR) -> Path:
    """The bench's detector .pt, trained from YAML on scenario 'day' frames once and cached."""
    from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
    from edge.training import cached_build, hash_items, train_from_spec
    from edge.yolo_dataset import scenario_items
    from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

    scenario = SyntheticScenario(seed=settings.seed)
    splits = {"train": scenario_items(scenario, "day", 0, settings.train_frames, "train-"),
              "val": scenario_items(scenario, "day", 200_000, 8, "val-")}

    def build(folder: Path, work: Path) -> dict[str, Path]:
        config = LearningConfig(imgsz=settings.imgsz, batch=settings.batch, seed=settings.seed,
                                cache_dir=Path(cache_dir))
        log.info("bench model: training yolo11n%s from YAML for %d epochs at %d px (once; cached)",
                 settings.scale, settings.epochs, settings.imgsz)
        last = train_from_spec(ModelSpec(yaml="yolo11n.yaml", scale=settings.scale),
                               TrainSpec(epochs=settings.epochs, lr0=settings.lr0), config, splits, CLASS_NAMES, work)
        return {"model.pt": last}

    folder = Path(cache_dir) / settings.key(hash_items([*splits["train"], *splits["val"]]))
    return cached_build(folder, ["model.pt"], build)["model.pt"]


def predict_rows(options, settings: BenchSplitSettings, bandwidths_mbit_s=BANDWIDTHS_MBIT_S) -> list[dict]:
    """Per bandwidth: device-only, edge-only and the chosen option with predicted latency and bytes."""
    from edge.split.selection import DEVICE_KEY, EDGE_KEY, choose_split, predict_latency

    device = next(o for o in options if o.split_key == DEVICE_KEY)
    edge = next(o for o in options if o.split_key == EDGE_KEY)
    floor = device.map50_95 - settings.map_floor_drop
    rows = []
    for mbit in bandwidths_mbit_s:
        bw = mbit * 1e6 / 8
        args = (settings.device_speed_factor, settings.edge_speed_factor, bw)
        d, e = predict_latency(device, *args, settings.rtt_ms), predict_latency(edge, *args, settings.rtt_ms)
        c = choose_split(options, *args, floor, settings.rtt_ms)
        splits = [o for o in options if o.split_key not in (DEVICE_KEY, EDGE_KEY)]
        best_split = choose_split(splits, *args, floor, settings.rtt_ms)
        rows.append({"bandwidth_mbit_s": mbit, "device_ms": d.total_ms, "edge_ms": e.total_ms,
                     "edge_bytes": edge.request_bytes, "best_split": best_split.option.name,
                     "best_split_ms": best_split.total_ms, "best_split_bytes": best_split.option.request_bytes,
                     "chosen": c.option.name, "chosen_ms": c.total_ms, "chosen_bytes": c.option.request_bytes,
                     "chosen_map50_95": c.option.map50_95, "floor": floor})
    return rows


def run_bench_split(args) -> int:
    import torch
    from rich.console import Console
    from rich.table import Table

    from edge.split.__main__ import build_and_measure
    from edge.split.measure import options_table
    from edge.split.profile import profile_table

    torch.set_num_threads(1)  # the bench times single-core runs; training and bottlenecks stay polite too
    settings = BenchSplitSettings(seed=getattr(args, "seed", 0))
    out = Path(getattr(args, "out", "edgeloop-data/bench"))
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=150)  # the table stays whole in logs and pipes, not only in a wide terminal
    pt = bench_model(settings)
    with console.status("cutting, exporting and measuring the split set"):
        manifest, measurement = build_and_measure(
            pt, out / "split-set", settings.imgsz, settings.cuts, settings.bottlenecks,
            train_frames=96, measure_frames=settings.eval_frames, codecs=("fp32", *settings.codecs),
            bottleneck_steps=settings.bottleneck_steps, seed=settings.seed)
    console.print(f"[bold]cuts[/] (this CPU, 1 thread, {settings.imgsz} px; ampl. = fp32 crossing bytes / "
                  "uint8 input image bytes)")
    console.print(profile_table(measurement.profiles), highlight=False)
    console.print(f"[bold]options[/] (mAP on {settings.eval_frames} held-out scenario frames; up B = MQTT payload "
                  "per frame)")
    console.print(options_table(measurement.options), highlight=False)
    rows = predict_rows(measurement.options, settings)
    table = Table(title=f"split vs bandwidth (device {settings.device_speed_factor}x, edge "
                        f"{settings.edge_speed_factor}x this CPU, RTT {settings.rtt_ms:g} ms, "
                        f"mAP50-95 floor {rows[0]['floor']:.3f})")
    for name in ("Mbit/s", "device-only ms", "edge-only ms", "JPEG B", "best split", "split ms", "split B",
                 "chosen", "chosen ms", "chosen B"):
        table.add_column(name, justify="left" if name in ("best split", "chosen") else "right")
    for r in rows:
        table.add_row(f"{r['bandwidth_mbit_s']:g}", f"{r['device_ms']:.1f}", f"{r['edge_ms']:.1f}",
                      f"{r['edge_bytes']:.0f}", r["best_split"], f"{r['best_split_ms']:.1f}",
                      f"{r['best_split_bytes']:.0f}", r["chosen"], f"{r['chosen_ms']:.1f}", f"{r['chosen_bytes']:.0f}")
    console.print(table)
    report = {"settings": asdict(settings), "model": str(pt), "profiles": [asdict(p) for p in measurement.profiles],
              "options": [asdict(o) for o in measurement.options], "rows": rows}
    (out / "bench_split.json").write_text(json.dumps(report, indent=2, default=str))
    plot = _plot(measurement.options, rows, settings, out / "bench_split.png")
    console.print(f"wrote {out / 'bench_split.json'} and {plot}")
    return 0


def _plot(options, rows, settings: BenchSplitSettings, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from edge.split.selection import predict_latency

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    grid = np.geomspace(min(BANDWIDTHS_MBIT_S) / 2, max(BANDWIDTHS_MBIT_S) * 2, 60)
    for name, style in (("device", "k-"), ("edge/jpeg", "b-")):
        option = next(o for o in options if o.name == name)
        left.plot(grid, [predict_latency(option, settings.device_speed_factor, settings.edge_speed_factor,
                                         m * 1e6 / 8, settings.rtt_ms).total_ms for m in grid], style, label=name)
    left.plot([r["bandwidth_mbit_s"] for r in rows], [r["chosen_ms"] for r in rows], "ro--", label="chosen")
    for r in rows:
        left.annotate(r["chosen"], (r["bandwidth_mbit_s"], r["chosen_ms"]), fontsize=7, rotation=20)
    left.set(xscale="log", yscale="log", xlabel="uplink Mbit/s", ylabel="predicted latency per frame (ms)",
             title="end-to-end latency")
    left.legend()
    sent = sorted((o for o in options if o.request_bytes > 0), key=lambda o: o.request_bytes)
    right.scatter([o.request_bytes for o in sent], [o.map50 for o in sent], s=14, color="grey", alpha=0.6,
                  label="every split / codec")
    best = -1.0
    for o in sent:  # name only the Pareto front: nothing cheaper is as accurate
        if o.map50 > best:
            best = o.map50
            right.scatter(o.request_bytes, o.map50, s=22, color="tab:red")
            right.annotate(o.name, (o.request_bytes, o.map50), fontsize=7, rotation=15)
    device = next(o for o in options if o.name == "device")
    right.axhline(device.map50, color="k", lw=0.8, ls=":", label="device-only mAP50")
    right.set(xscale="log", xlabel="uplink bytes per frame", ylabel="mAP50", title="accuracy vs bytes")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
