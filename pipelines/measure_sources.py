"""Where a response-surface measurement takes its frames: the synthetic scenario, or two YOLO domain folders.

Either way: labelled frames of the old domain (bootstrap and replay), a pool of new-domain frames
the endpoint would upload, and held-out new-domain frames every push is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edge.yolo_dataset import LabelledImage


@dataclass
class MeasureSource:
    """The frames of one drift (old domain -> new domain)."""

    name: str  # the scenario's name in the surface file
    description: str
    class_names: list[str]
    old_domain: str
    old_train: list[LabelledImage]  # bootstrap training frames, and the replay of the old domain
    old_val: list[LabelledImage]  # bootstrap validation frames
    eval_items: list[LabelledImage]  # held-out new-domain frames every push is scored on
    new_items: Callable[[int, int], list[LabelledImage]]  # (frames, seed) -> new-domain frames the edge trains on


def synthetic_source(old_domain: str, new_domain: str, scenario_seed: int, bootstrap_train_frames: int,
                     bootstrap_val_frames: int, eval_frames: int) -> MeasureSource:
    """The synthetic scenario; the bootstrap frames are ``bootstrap_from_scenario``'s, so its cache is shared."""
    from edge.yolo_dataset import scenario_items
    from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

    scenario = SyntheticScenario(seed=scenario_seed)
    return MeasureSource(
        name=f"{old_domain}->{new_domain}",
        description="synthetic scenario drift; student and teacher bootstrapped on the old domain",
        class_names=list(CLASS_NAMES), old_domain=old_domain,
        old_train=scenario_items(scenario, old_domain, 0, bootstrap_train_frames, "train-"),
        old_val=scenario_items(scenario, old_domain, 100_000, bootstrap_val_frames, "val-"),
        eval_items=scenario_items(scenario, new_domain, 100_000, eval_frames, "eval-"),
        new_items=lambda n, seed: scenario_items(scenario, new_domain, 10_000 * seed, n, f"s{seed}-"))


def folder_source(old_dir: str | Path, new_dir: str | Path, eval_frames: int) -> MeasureSource:
    """Two YOLO folders (images/, labels/, data.yaml): train on the old one's train split, upload from the new
    one's train split (a seed starts further in), score on the new one's val split."""
    from pipelines.scenarios import folder_scenario

    scenario = folder_scenario([old_dir, new_dir])
    from edge.yolo_dataset import folder_items

    old, new = (scenario.folders[d] for d in scenario.domains)
    pool = folder_items(new, "train")
    eval_items = folder_items(new, "val")[:eval_frames]
    if not pool or not eval_items:
        raise ValueError(f"{new} needs images in both images/train and images/val")

    def new_items(n: int, seed: int) -> list[LabelledImage]:
        if n > len(pool):
            raise ValueError(f"{new}/images/train holds {len(pool)} frames; {n} were asked for")
        start = (37 * seed) % len(pool)
        return (pool[start:] + pool[:start])[:n]

    return MeasureSource(
        name=f"folders:{scenario.domains[0]}->{scenario.domains[1]}",
        description=f"YOLO folders {old} -> {new}; student and teacher bootstrapped on the old folder",
        class_names=scenario.class_names, old_domain=scenario.domains[0],
        old_train=folder_items(old, "train"), old_val=folder_items(old, "val"), eval_items=eval_items,
        new_items=new_items)


__all__ = ["MeasureSource", "folder_source", "synthetic_source"]
