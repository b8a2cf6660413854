"""Shared test helper: a YOLO data set folder of one synthetic domain, as a user would bring it."""

from __future__ import annotations

from edge.yolo_dataset import scenario_items, write_yolo_dataset
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario


def make_domain_folder(root, domain: str, n_train: int, n_val: int):
    """A YOLO data set folder (images/, labels/, data.yaml) of one synthetic domain, as a user would bring it."""
    scenario = SyntheticScenario(seed=7)
    write_yolo_dataset(root, {"train": scenario_items(scenario, domain, 0, n_train),
                              "val": scenario_items(scenario, domain, 10_000, n_val)}, CLASS_NAMES)
    return root
