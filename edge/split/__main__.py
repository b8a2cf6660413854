"""``python -m edge.split build``: cut a detector into a split set, measure every option, write options.json.

Example::

    python -m edge.split build --pt model.pt --out edgeloop-data/split-set --imgsz 160 \\
        --cuts 2,4,6 --bottleneck 4:4 --measure-frames 48
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

OPTIONS_NAME = "options.json"


def letterboxed_batch(images, imgsz: int) -> np.ndarray:
    """N x 3 x imgsz x imgsz float32 model inputs (as the endpoint letterboxes them) for bottleneck training."""
    from endpoint.model.letterbox import to_model_input

    return np.concatenate([to_model_input(im, imgsz)[0] for im in images])


def build_and_measure(pt: str | Path, out: str | Path, imgsz: int, cuts, bottlenecks=(), train_frames: int = 96,
                      measure_frames: int = 48, codecs=None, bottleneck_steps: int = 300, seed: int = 0,
                      domain: str = "day", timing_runs: int = 10):
    """Build a split set from scenario frames, measure it, and save ``options.json``; returns (manifest, measurement)."""
    from edge.split.bottleneck import BottleneckTraining
    from edge.split.measure import DEFAULT_CODECS, measure_options
    from edge.split.selection import save_options
    from edge.split.split_set import build_split_set
    from edge.yolo_dataset import scenario_items
    from endpoint.sources.scenario import SyntheticScenario

    scenario = SyntheticScenario(seed=seed)
    train_images = None
    if bottlenecks:
        train_images = letterboxed_batch([scenario.frame(domain, i).image for i in range(train_frames)], imgsz)
    manifest = build_split_set(pt, out, imgsz, cuts, bottlenecks, train_images,
                               BottleneckTraining(steps=bottleneck_steps, seed=seed))
    items = scenario_items(scenario, domain, 300_000, measure_frames, "split-eval-")
    measurement = measure_options(out, manifest, items, codecs or DEFAULT_CODECS, timing_runs=timing_runs)
    save_options(measurement.options, Path(out) / OPTIONS_NAME)
    return manifest, measurement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.split", description="co-inference split sets")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="cut a .pt detector at several layers, measure every option")
    p.add_argument("--pt", required=True, help="ultralytics detector weights")
    p.add_argument("--out", required=True, help="split set folder to write")
    p.add_argument("--imgsz", type=int, default=160)
    p.add_argument("--cuts", default="2,4,6", help="layers to cut after, comma separated")
    p.add_argument("--bottleneck", action="append", default=[], help="SPLIT_AFTER:REDUCTION, e.g. 4:4 (repeatable)")
    p.add_argument("--bottleneck-steps", type=int, default=300)
    p.add_argument("--measure-frames", type=int, default=48, help="labelled scenario frames for mAP")
    p.add_argument("--codecs", default="", help="comma separated codec names (default: fp32 .. q2c-zlib)")
    args = parser.parse_args(argv)
    from edge.split.measure import options_table
    from edge.split.profile import profile_table

    bottlenecks = [tuple(int(v) for v in spec.split(":")) for spec in args.bottleneck]
    _, measurement = build_and_measure(args.pt, args.out, args.imgsz, [int(c) for c in args.cuts.split(",")],
                                       bottlenecks, measure_frames=args.measure_frames,
                                       codecs=[c for c in args.codecs.split(",") if c] or None,
                                       bottleneck_steps=args.bottleneck_steps)
    print(profile_table(measurement.profiles))
    print(options_table(measurement.options))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
