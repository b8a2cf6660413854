"""One learning round after a domain shift, with the real ultralytics, onnxruntime and a local store.

Bootstrap on "day"; upload "dusk" frames; oracle labels, teacher fine-tune with replay,
distillation, ONNX export and INT8 quantization. The updated INT8 student must beat the
student that was never updated on held-out dusk frames.
"""

from __future__ import annotations

import time

import cv2
import pytest

from edge.bootstrap import bootstrap_from_scenario
from edge.distill import distill_student
from edge.evaluate import agreement, evaluate_onnx, evaluate_pt
from edge.export import compare_fp32_int8, export_onnx, quantize_student
from edge.frame_index import FrameRecord
from edge.labels import LabelContext, label_frames, stored_frames
from edge.learning_config import LearningConfig, ModelSpec, TrainSpec
from edge.replay import ReplayBuffer
from edge.store.local import LocalStore
from edge.teacher import finetune_teacher
from edge.yolo_dataset import scenario_items
from endpoint.sources.scenario import CLASS_NAMES, SyntheticScenario
from endpoint.wire.protocol import Detection, make_frame_header

pytestmark = [pytest.mark.slow, pytest.mark.integration]

UPLOADED_FRAMES = 160
HELDOUT_OFFSET = 100_000


def tiny_config(tmp_path, student_pt) -> LearningConfig:
    # The student is the shared day-trained tiny detector (user weights); the wider teacher is bootstrapped here.
    return LearningConfig(
        teacher=ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.25, 256)),
        student=ModelSpec(weights=student_pt),
        imgsz=128, batch=16, teacher_input_scale=1, distill_loss_weight=1.0,  # feature distillation on
        bootstrap=TrainSpec(epochs=10, lr0=0.02), finetune=TrainSpec(epochs=8, lr0=0.01),
        distill=TrainSpec(epochs=8, lr0=0.01),
        bootstrap_train_frames=160, bootstrap_val_frames=16, replay_fraction=0.3,
        cache_dir=tmp_path / "cache", work_dir=tmp_path / "work")


def upload(store, scenario, domain, count, endpoint_id="cam-1", round_index=1):
    """Store frames the way ingest does: JPEG first, then the FrameRecord JSON carrying the oracle labels."""
    for i in range(count):
        frame = scenario.frame(domain, i)
        jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
        labels = [Detection(cls=int(c), conf=1.0, box=tuple(float(v) for v in b))
                  for b, c in zip(frame.boxes, frame.classes)]
        header = make_frame_header(jpeg, endpoint_id=endpoint_id, frame_id=f"f{i:05d}", capture_time=1000.0 + i,
                                   round=round_index, model_version="v0", width=frame.image.shape[1],
                                   height=frame.image.shape[0], domain=domain, labels=labels)
        record = FrameRecord.from_header(header, received_time=2000.0 + i)
        store.put(record.jpeg_key, jpeg, "image/jpeg")
        store.put(record.meta_key, record.to_json_bytes(), "application/json")


def test_one_round_recovers_after_domain_shift(tmp_path, tiny_yolo_pt):
    config = tiny_config(tmp_path, tiny_yolo_pt)
    scenario = SyntheticScenario(seed=0)
    timings_s: dict[str, float] = {}

    def stage(name, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        timings_s[name] = time.perf_counter() - started
        return out

    boot = stage("bootstrap", bootstrap_from_scenario, config, scenario)
    assert not boot.cached and boot.teacher.exists() and boot.student == tiny_yolo_pt
    again = stage("bootstrap_cached", bootstrap_from_scenario, config, scenario)
    assert again.cached and again.teacher == boot.teacher  # reused from the cache, not trained again

    store = LocalStore(tmp_path / "store")
    upload(store, scenario, "dusk", UPLOADED_FRAMES)
    records = stored_frames(store, rounds=[1])
    assert len(records) == UPLOADED_FRAMES
    labelled = stage("labels", label_frames, store, records, ["oracle"])
    assert {f.source for f in labelled} == {"oracle"} and len(labelled) == UPLOADED_FRAMES

    replay = ReplayBuffer(config.replay_capacity_per_domain, seed=config.seed)
    replay.add(scenario_items(scenario, "day", 0, config.bootstrap_train_frames, "train-"), "day")
    day_val = scenario_items(scenario, "day", HELDOUT_OFFSET, 40, "val-")
    dusk_val = scenario_items(scenario, "dusk", HELDOUT_OFFSET, 40, "val-")
    round_dir = config.work_dir / "r00001"
    teacher = stage("teacher_finetune", finetune_teacher, boot.teacher, [f.item for f in labelled], config, round_dir,
                    CLASS_NAMES, replay=replay, val_sets={"day": day_val, "dusk": dusk_val})
    assert teacher.replayed_images > 0

    distill_items = label_frames(store, records, ["oracle", "teacher"],
                                 LabelContext(teacher.weights, config.teacher_label_conf, config.imgsz))
    student = stage("distill", distill_student, boot.student, teacher.weights, [f.item for f in distill_items],
                    config, round_dir, CLASS_NAMES)

    static_onnx = export_onnx(boot.student, round_dir / "static.onnx", config.imgsz)
    fp32 = stage("export", export_onnx, student.weights, round_dir / "student.onnx", config.imgsz)
    calibration = [f.item.image for f in labelled[: config.calibration_frames]]
    int8 = stage("quantize", quantize_student, fp32, round_dir / "student.int8.onnx", calibration, config.imgsz)

    static_map = stage("evaluate", evaluate_onnx, static_onnx, dusk_val)
    updated_map = evaluate_onnx(int8, dusk_val)
    boot_teacher_dusk = evaluate_pt(boot.teacher, dusk_val, config.imgsz)
    label_free = agreement(int8, teacher.weights, [i.image for i in dusk_val], config.imgsz)
    comparison = compare_fp32_int8(fp32, int8, dusk_val, runs=20)

    print("\nstage wall times (s):", {k: round(v, 1) for k, v in timings_s.items()})
    print(f"teacher dusk mAP50-95: bootstrap {boot_teacher_dusk.map50_95:.3f} -> fine-tuned "
          f"{teacher.map_by_domain['dusk'].map50_95:.3f}; day after fine-tune {teacher.map_by_domain['day'].map50_95:.3f}")
    print(f"student dusk mAP50-95: static fp32 {static_map.map50_95:.3f} -> updated int8 {updated_map.map50_95:.3f}"
          f" (agreement with teacher {label_free.map50_95:.3f})")
    print(comparison.table())
    print(f"teacher trained on {teacher.new_images} new + {teacher.replayed_images} replayed images")

    assert teacher.map_by_domain["dusk"].map50_95 > boot_teacher_dusk.map50_95
    assert updated_map.map50_95 > static_map.map50_95 + 0.02
    # the static student never saw a triangle; the updated one must find some
    assert static_map.ap50_95_per_class.get(2, 0.0) == 0.0 < updated_map.ap50_95_per_class[2]
    assert comparison.int8.size_bytes < comparison.fp32.size_bytes
