"""Lab scenarios: the synthetic drift generator, or an ordered list of YOLO-format data set folders."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from edge.yolo_dataset import LabelledImage, folder_class_names, folder_items, scenario_items
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario

log = logging.getLogger(__name__)

VAL_OFFSET = 1_000_000  # synthetic val frames never overlap streamed frames


@dataclass
class LabScenario:
    """Domains in order; each endpoint streams the current domain's frames and is scored on its val set."""

    name: str
    class_names: list[str]
    domains: list[str]
    folders: dict[str, Path] = field(default_factory=dict)  # empty for the synthetic scenario
    seed: int = 0

    def domain_for_round(self, round_index: int, rounds: int) -> str:
        """Round 0 is in the first domain; later rounds walk through the rest evenly."""
        if len(self.domains) == 1 or rounds <= 1:
            return self.domains[0]
        step = -(-round_index * (len(self.domains) - 1) // (rounds - 1))  # ceil
        return self.domains[min(len(self.domains) - 1, step)]

    def endpoint_source(self, endpoint_index: int) -> dict:
        """The endpoint's source config: it follows the plans' domains."""
        if not self.folders:
            return {"kind": "scenario", "follow_plan": True, "seed": self.seed + endpoint_index,
                    "domain": self.domains[0]}
        return {"kind": "images", "follow_plan": True, "domain": self.domains[0],
                "path": str(self.folders[self.domains[0]] / "images" / "train"),
                "start_index": 17 * endpoint_index,
                "domain_paths": {d: str(p / "images" / "train") for d, p in self.folders.items()}}

    def val_set(self, domain: str, endpoint_index: int, n: int) -> list[LabelledImage]:
        """Held-out labelled frames of a domain for one endpoint."""
        if not self.folders:
            return scenario_items(SyntheticScenario(seed=self.seed + endpoint_index), domain, VAL_OFFSET, n, "val-")
        return folder_items(self.folders[domain], "val")[:n]


def synthetic_scenario(seed: int = 0) -> LabScenario:
    sc = SyntheticScenario(seed=seed)
    return LabScenario("synthetic", list(CLASS_NAMES), [d.name for d in sc.domains], seed=seed)


def folder_scenario(paths: list[str | Path]) -> LabScenario:
    """Each folder holds images/{train,val}, labels/{train,val} and a data.yaml with class names."""
    folders: dict[str, Path] = {}
    names: list[str] | None = None
    for p in map(Path, paths):
        for need in ("images/train", "images/val", "labels/train", "labels/val", "data.yaml"):
            if not (p / need).exists():
                raise FileNotFoundError(f"domain folder {p} lacks {need} (YOLO layout expected)")
        these = folder_class_names(p)
        if names is not None and these != names:
            raise ValueError(f"{p}/data.yaml names {these} differ from the first domain's {names}")
        names = these
        name = p.name if p.name not in folders else f"{p.name}-{len(folders)}"
        folders[name] = p.resolve()
    if not folders:
        raise ValueError("a folder scenario needs at least one domain folder")
    return LabScenario("folders", names or [], list(folders), folders)


def open_scenario(spec: str, seed: int = 0) -> LabScenario:
    """``synthetic`` or ``DIR1,DIR2,...``."""
    if spec == "synthetic":
        return synthetic_scenario(seed)
    return folder_scenario([s for s in spec.split(",") if s.strip()])
