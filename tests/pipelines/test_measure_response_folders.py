"""Response surfaces measured on a YOLO-folder drift made here, beside the file's other scenarios, then replayed."""

from __future__ import annotations

from argparse import Namespace

import pytest

from edge.learning_config import LearningConfig, TrainSpec
from edge.scheduler.sparse_options import sparse_provenance
from edge.scheduler.surfaces import load_surfaces, save_surfaces
from pipelines.bench_scheduler import run_bench_scheduler
from pipelines.measure_response import MeasureSettings, measure_response_surfaces
from pipelines.measure_sources import folder_source
from tests.edge.scheduler.fakes import fake_surface_file
from tests.pipelines.domain_folders import make_domain_folder

pytestmark = [pytest.mark.slow, pytest.mark.integration]

TINY = TrainSpec(epochs=1, target_images=16)


def test_folder_drift_is_measured_beside_the_synthetic_one_and_replayed(tmp_path, capsys):
    day = make_domain_folder(tmp_path / "day", "day", 16, 4)
    dusk = make_domain_folder(tmp_path / "dusk", "dusk", 12, 6)
    out = save_surfaces(fake_surface_file(), tmp_path / "surfaces.json")
    learning = LearningConfig(imgsz=64, batch=8, bootstrap=TINY, finetune=TINY, distill=TINY, calibration_frames=4)
    settings = MeasureSettings(frames=(4,), eval_frames=6)
    measure_response_surfaces(out, settings, tmp_path / "work", folder_source(day, dusk, settings.eval_frames),
                              learning, keep_other_scenarios=True)

    surfaces = load_surfaces(out)
    assert [s.name for s in surfaces.scenarios] == ["day->dusk", "folders:day->dusk"]  # the other one kept
    assert set(surfaces.settings["by_scenario"]) == {"day->dusk", "folders:day->dusk"}
    folders = surfaces.scenarios[1]
    assert {o.name for o in folders.options} == {"skip", "delta-head", "delta-neck", "full-student", "full-teacher"}
    assert sorted({p.frames for p in folders.points}) == [0, 4]
    assert folders.eval_frames == 6 and folders.student_params > 0 and folders.push_overhead_bytes > 0
    head, neck = (next(o for o in folders.options if o.name == n) for n in ("delta-head", "delta-neck"))
    assert 0 < head.trained_fraction < neck.trained_fraction < 1  # the head is a part of what the neck retrains
    assert all(p.push_bytes > 0 for p in folders.points if p.frames and p.option != "skip")
    assert sparse_provenance(folders) == "derived"

    args = Namespace(out=str(tmp_path / "bench"), surfaces=str(out), rounds=2, seed=0)
    assert run_bench_scheduler(args) == 0
    assert "sparse push options of folders:day->dusk: DERIVED" in capsys.readouterr().out
