"""Measure response surfaces from real rounds: deployed mAP50-95 after N uploaded frames and each push.

For each upload size the real learning steps run on that many new-domain frames (teacher
fine-tune with replay, distillation, export, INT8), and each push option is evaluated on
held-out new-domain frames as the endpoint would run it:

* ``skip``: the bootstrapped student, unadapted;
* ``full-student``: the distilled student, full INT8 file;
* ``full-teacher``: the fine-tuned teacher itself as a larger student, full INT8 file;
* ``delta-*``: the deployed student with only its last layers fine-tuned, sent as a delta.

Push bytes are what ``ModelPublisher`` puts on the wire; upload bytes are frame payloads
(header and JPEG) as the endpoint encodes them.

    python -m pipelines.measure_response --out pipelines/data/response_surfaces.json
    python -m pipelines.measure_response --scenario OLD_DIR,NEW_DIR --add   # a YOLO-folder drift beside it
"""

from __future__ import annotations

import argparse
import copy
import datetime
import hashlib
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SURFACES_PATH = Path(__file__).parent / "data" / "response_surfaces.json"


@dataclass(frozen=True)
class MeasureSettings:
    """What is measured; the learning settings themselves are ``LearningConfig``'s defaults."""

    frames: tuple[int, ...] = (8, 16, 32, 64, 128, 256)
    seeds: tuple[int, ...] = (0,)
    eval_frames: int = 96
    old_domain: str = "day"
    new_domain: str = "dusk"
    scenario_seed: int = 0
    jpeg_quality: int = 85  # the endpoint's default
    # name -> ultralytics ``freeze``: the first N modules stay fixed (yolo11: 23 is the Detect head, 11 starts the neck)
    deltas: dict[str, int] = field(default_factory=lambda: {"delta-head": 23, "delta-neck": 11})


def _items(scenario, domain: str, start: int, count: int, prefix: str):
    from edge.yolo_dataset import scenario_items

    return scenario_items(scenario, domain, start, count, prefix)


def _int8(pt: Path, out_dir: Path, name: str, calibration, imgsz: int) -> Path:
    from edge.export import export_onnx, quantize_student

    fp32 = export_onnx(pt, out_dir / f"{name}.fp32.onnx", imgsz)
    return quantize_student(fp32, out_dir / f"{name}.int8.onnx", calibration, imgsz)


def _map(onnx_path: Path, eval_items) -> float:
    from edge.evaluate import evaluate_onnx

    return float(evaluate_onnx(onnx_path, eval_items).map50_95)


class _WireMeter:
    """Bytes a push puts on the wire, measured by running the real publisher into a counter."""

    def __init__(self, imgsz: int, class_names: list[str]):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = Ed25519PrivateKey.generate()
        self.imgsz = imgsz
        self.class_names = class_names

    def push_bytes(self, model_bytes: bytes, parent_bytes: bytes | None = None) -> int:
        from edge.publisher import ModelPublisher
        from edge.signing import sign
        from endpoint.wire.manifest import Manifest

        manifest = Manifest(name="student", version="v0002", target="measure", serial=2, parent_version="v0001",
                            format="onnx-int8",
                            sha256=hashlib.sha256(model_bytes).hexdigest(), size_bytes=len(model_bytes),
                            input_size=(self.imgsz, self.imgsz), class_names=list(self.class_names), created=time.time())
        sent: list[int] = []
        publisher = ModelPublisher(lambda topic, payload: sent.append(len(payload)))
        result = publisher.push("measure", manifest, sign(manifest, self._key), model_bytes,
                                encoding="delta" if parent_bytes is not None else "full", parent_bytes=parent_bytes,
                                parent_version="v0001")
        assert result.bytes_sent == sum(sent)
        return result.bytes_sent


def _frame_payload_bytes(items, detector, jpeg_quality: int) -> list[int]:
    """Bytes of each frame as the endpoint uploads it: header (with detections and scenario labels) plus JPEG."""
    from endpoint.wire import protocol

    sizes = []
    for i, item in enumerate(items):
        ok, jpeg = cv2.imencode(".jpg", item.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        assert ok
        h, w = item.image.shape[:2]
        labels = [protocol.Detection(cls=int(c), conf=1.0, box=tuple(float(v) for v in b))
                  for b, c in zip(item.boxes, item.classes)]
        header = protocol.make_frame_header(
            jpeg.tobytes(), endpoint_id="cam-1", frame_id=f"f{i:08d}", capture_time=time.time(), round=1,
            model_version="v0001", width=w, height=h, domain="new",
            detections=detector.detect(item.image).to_protocol(w, h), labels=labels)
        sizes.append(len(protocol.encode_frame(header, jpeg.tobytes())))
    return sizes


def measure_response_surfaces(out_path: str | Path = DEFAULT_SURFACES_PATH, settings: MeasureSettings = MeasureSettings(),
                              work_dir: str | Path = "edgeloop-data/measure-response", source=None, learning=None,
                              keep_other_scenarios: bool = False):
    """Run the measurement and write the surface file (rewritten after every upload size, so a stop keeps results).

    ``source``: a ``MeasureSource`` (default: the synthetic scenario); ``learning``: a ``LearningConfig`` (default:
    its defaults); ``keep_other_scenarios``: keep the file's other scenarios, replacing only this one."""
    from edge.bootstrap import bootstrap_models
    from edge.distill import distill_student
    from edge.learning_config import LearningConfig
    from edge.replay import ReplayBuffer
    from edge.training import train_yolo
    from edge.scheduler.surfaces import ScenarioSurface, SurfaceFile, SurfacePoint, load_surfaces, save_surfaces
    from edge.teacher import finetune_teacher
    from edge.yolo_dataset import write_yolo_dataset
    from endpoint.model.detector import OnnxDetector
    from pipelines.measure_sources import synthetic_source

    work = Path(work_dir).resolve()
    config = (learning or LearningConfig()).model_copy(update={"cache_dir": work / "cache", "work_dir": work / "work"})
    source = source or synthetic_source(settings.old_domain, settings.new_domain, settings.scenario_seed,
                                        config.bootstrap_train_frames, config.bootstrap_val_frames,
                                        settings.eval_frames)
    others, earlier_settings = [], {}
    if keep_other_scenarios and Path(out_path).exists():
        earlier = load_surfaces(out_path)
        others = [s for s in earlier.scenarios if s.name != source.name]
        earlier_settings = earlier.settings.get("by_scenario") or {s.name: earlier.settings for s in others}
    names = source.class_names
    boot = bootstrap_models(config, source.old_train, source.old_val, names)
    old_items, eval_items = source.old_train, source.eval_items
    base_dir = work / "base"
    base_calibration = [i.image for i in old_items[: config.calibration_frames]]
    base = _int8(boot.student, base_dir, "student", base_calibration, config.imgsz)
    base_teacher = _int8(boot.teacher, base_dir, "teacher", base_calibration, config.imgsz)
    base_bytes, meter = base.read_bytes(), _WireMeter(config.imgsz, names)
    student_params, fractions = _trained_fractions(boot.student, settings.deltas)
    base_map = _map(base, eval_items)
    points = [SurfacePoint(upload_bytes=0, frames=0, option=name, push_bytes=0, map50_95=base_map)
              for name in ("skip", *settings.deltas)]
    base_push_bytes = meter.push_bytes(base_bytes)
    points += [SurfacePoint(upload_bytes=0, frames=0, option="full-student", push_bytes=base_push_bytes,
                            map50_95=base_map),
               SurfacePoint(upload_bytes=0, frames=0, option="full-teacher",
                            push_bytes=meter.push_bytes(base_teacher.read_bytes()),
                            map50_95=_map(base_teacher, eval_items))]
    detector = OnnxDetector(base)
    payload_sizes: list[int] = []
    started = time.perf_counter()
    for n in settings.frames:
        for seed in settings.seeds:
            run = work / f"n{n:04d}-s{seed}"
            new_items = source.new_items(n, seed)
            sizes = _frame_payload_bytes(new_items, detector, settings.jpeg_quality)
            payload_sizes += sizes
            upload = sum(sizes)
            replay = ReplayBuffer(config.replay_capacity_per_domain, seed)
            replay.add(old_items, source.old_domain)
            cfg = config.model_copy(update={"seed": seed})
            kept = copy.deepcopy(replay)  # the learner's calibration: the round's frames and the replay share
            kept.add(new_items, source.name)  # the drift's name ("day->dusk"), never the old domain's
            calibration = [i.image for i in kept.calibration(source.name, cfg.calibration_frames,
                                                               cfg.replay_fraction)]
            teacher = finetune_teacher(boot.teacher, new_items, cfg, run, names, replay)
            student = distill_student(boot.student, teacher.weights, new_items, cfg, run, names, replay)
            for option, pt in (("full-student", student.weights), ("full-teacher", teacher.weights)):
                model = _int8(pt, run, option, calibration, cfg.imgsz)
                points.append(SurfacePoint(upload_bytes=upload, frames=n, option=option, seed=seed,
                                           push_bytes=meter.push_bytes(model.read_bytes()),
                                           map50_95=_map(model, eval_items)))
            data_yaml = write_yolo_dataset(run / "delta-data", {"train": replay.mix(new_items, cfg.replay_fraction),
                                                                "val": list(new_items[:8])}, names)
            for option, freeze in settings.deltas.items():
                pt = train_yolo(str(boot.student), data_yaml, cfg.finetune, cfg, run / "runs" / option, freeze=freeze)
                model = _int8(pt, run, option, calibration, cfg.imgsz)
                points.append(SurfacePoint(upload_bytes=upload, frames=n, option=option, seed=seed,
                                           push_bytes=meter.push_bytes(model.read_bytes(), base_bytes),
                                           map50_95=_map(model, eval_items)))
            log.info("measured %d frames (seed %d) after %.0f s", n, seed, time.perf_counter() - started)
        measured = ScenarioSurface(
            name=source.name, bytes_per_frame=float(np.mean(payload_sizes)), description=source.description,
            base_student="student", eval_frames=len(eval_items), options=_options(points, settings, fractions),
            points=points, student_params=student_params, push_overhead_bytes=base_push_bytes - len(base_bytes))
        these = {**asdict(settings), "learning": config.model_dump(mode="json", exclude={"cache_dir", "work_dir"}),
                 "elapsed_s": round(time.perf_counter() - started)}
        kept = {name: v for name, v in earlier_settings.items() if any(o.name == name for o in others)}
        surfaces = SurfaceFile(
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            source="python -m pipelines.measure_response",
            settings={"by_scenario": {**kept, source.name: these}} if others else these,
            scenarios=[*others, measured])
        save_surfaces(surfaces, out_path)
    return surfaces


def _trained_fractions(student_pt: Path, deltas: dict[str, int]) -> tuple[int, dict[str, float]]:
    """The student's parameter count, and the share of it each delta retrains (modules ``freeze`` and on)."""
    from ultralytics import YOLO

    per_module = [sum(p.numel() for p in module.parameters()) for module in YOLO(str(student_pt)).model.model]
    total = sum(per_module)
    return total, {name: sum(per_module[freeze:]) / total for name, freeze in deltas.items()}


def _options(points, settings: MeasureSettings, fractions: dict[str, float]):
    from edge.scheduler.surfaces import SurfaceOption

    def mean_bytes(name: str) -> int:
        sizes = [p.push_bytes for p in points if p.option == name and p.frames > 0]
        return int(np.mean(sizes)) if sizes else 1

    return [SurfaceOption(name="skip", kind="skip", bytes=0, description="keep the deployed student"),
            *(SurfaceOption(name=name, kind="delta", student="student", bytes=mean_bytes(name),
                            trained_fraction=fractions[name],
                            description=f"deployed student fine-tuned with modules 0..{freeze - 1} frozen, as a delta")
              for name, freeze in settings.deltas.items()),
            SurfaceOption(name="full-student", kind="full", student="student", bytes=mean_bytes("full-student"),
                          description="distilled student, full INT8 file"),
            SurfaceOption(name="full-teacher", kind="full", student="teacher", bytes=mean_bytes("full-teacher"),
                          description="fine-tuned teacher as a larger student, full INT8 file")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(DEFAULT_SURFACES_PATH), help="surface file to write")
    parser.add_argument("--scenario", default="synthetic",
                        help="'synthetic', or OLD_DIR,NEW_DIR: two YOLO folders (old domain, then the new one)")
    parser.add_argument("--add", action="store_true", help="keep the file's other scenarios (replace only this one)")
    parser.add_argument("--frames", default="8,16,32,64,128,256", help="upload sizes in frames, comma-separated")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--eval-frames", type=int, default=96, help="held-out new-domain frames per evaluation")
    parser.add_argument("--learning", default=None, help="YAML file of learning settings (default: the defaults)")
    parser.add_argument("--work", default="edgeloop-data/measure-response", help="training runs and models")
    args = parser.parse_args(argv)
    from edge.learning_config import LearningConfig
    from pipelines.logs import configure_logging
    from pipelines.measure_sources import folder_source

    configure_logging()
    settings = MeasureSettings(frames=tuple(int(x) for x in args.frames.split(",")),
                               seeds=tuple(int(x) for x in args.seeds.split(",")), eval_frames=args.eval_frames)
    source = None
    if args.scenario != "synthetic":
        dirs = [d for d in args.scenario.split(",") if d.strip()]
        if len(dirs) != 2:
            parser.error("--scenario takes 'synthetic' or two folders: OLD_DIR,NEW_DIR")
        source = folder_source(dirs[0], dirs[1], args.eval_frames)
    learning = None
    if args.learning:
        from endpoint.wire.config_base import load_config

        learning = load_config(LearningConfig, args.learning, section="learning")
    measure_response_surfaces(args.out, settings, args.work, source, learning, keep_other_scenarios=args.add)
    return 0


if __name__ == "__main__":
    sys.exit(main())
