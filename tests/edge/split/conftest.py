"""A split set cut from the session's tiny trained YOLO (built once per test session, ~15 s)."""

from pathlib import Path

import pytest

CUTS = (2, 4, 6)  # after6 carries two tensors: layer 4 crosses the cut through a skip connection


@pytest.fixture(scope="session")
def split_set(tiny_yolo, tmp_path_factory) -> tuple[Path, object]:
    import torch

    from edge.split.__main__ import letterboxed_batch
    from edge.split.bottleneck import BottleneckTraining
    from edge.split.split_set import build_split_set
    from endpoint.sources.scenario import SyntheticScenario

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("split-set")
    scenario = SyntheticScenario()
    train = letterboxed_batch([scenario.frame("day", i).image for i in range(48)], tiny_yolo.imgsz)
    manifest = build_split_set(tiny_yolo.pt, folder, tiny_yolo.imgsz, CUTS, bottlenecks=[(4, 4)], train_images=train,
                               training=BottleneckTraining(steps=80, batch=16))
    return folder, manifest
