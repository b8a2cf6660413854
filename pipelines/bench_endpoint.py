"""``edgeloop bench endpoint``: what the endpoint's detector costs on this CPU, beside its bare model and ultralytics.

For the lab student (128 px) and yolo11n at 320 and 640 px, each as FP32 and INT8, on the same real frames:
bare ``session.run``, ``OnnxDetector.detect`` and their ratio, the full endpoint loop (``endpoint.loop.loop_bench``:
capture, detect, sample, JPEG, spool), ultralytics' own ``YOLO(onnx).predict``, and the file bytes. Every model is
built from ultralytics YAML with random weights (nothing is downloaded; latency does not depend on training),
unless ``--student-onnx`` names a trained student. Medians over ``--iterations``; FP32 and INT8 take turns in short
blocks, so that other load on the machine hits both alike.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MODELS = ("student", "yolo11n-320", "yolo11n-640")
MAX_FRAMES = 64  # frames held in memory and cycled through
CALIBRATION_FRAMES = 16
WARMUP_CALLS = 5
BLOCK_ITERATIONS = 5  # FP32 and INT8 take turns this often, so load on the machine hits both alike
BRACKET_CALLS = 10


@dataclass(frozen=True)
class ModelCase:
    """One model as FP32 and INT8 files of the same weights."""

    name: str
    imgsz: int
    fp32: Path
    int8: Path


@dataclass(frozen=True)
class Row:
    """The measurements of one file; times in milliseconds, medians."""

    model: str
    imgsz: int
    precision: str
    size_bytes: int
    run_ms: float
    detect_ms: float
    detect_over_run: float  # median of the ratios of adjacent pairs: robust to load that comes and goes
    run_over_fp32: float  # median over blocks of this file's run over the FP32 file's run in the adjacent block
    loop_ms_per_frame: float
    loop_frames_per_s: float
    loop_bracket_run_ms: float  # bare session.run timed just before and after the loop
    ultralytics_ms: float
    paired_detect_ms: float  # detect() timed in turns with ultralytics' predict

    @property
    def loop_over_model_fps(self) -> float:
        """The loop's frames/s as a share of 1 / session.run (1.0: the loop runs at the model's speed)."""
        return self.loop_frames_per_s * self.loop_bracket_run_ms / 1000.0

    @property
    def ultralytics_over_detect(self) -> float:
        return self.ultralytics_ms / self.paired_detect_ms


def read_frames(video: str | Path, limit: int = MAX_FRAMES) -> tuple[list[np.ndarray], str]:
    """Up to ``limit`` BGR frames of ``video``, or synthetic scenario frames when it cannot be read."""
    import cv2

    frames: list[np.ndarray] = []
    if Path(video).is_file():
        capture = cv2.VideoCapture(str(video))
        while len(frames) < limit:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
        capture.release()
    if frames:
        return frames, f"{video} ({frames[0].shape[1]}x{frames[0].shape[0]})"
    from endpoint.sources.scenario import SyntheticScenario

    scenario = SyntheticScenario()
    frames = [scenario.frame("day", i).image for i in range(limit)]
    return frames, f"synthetic scenario frames ({frames[0].shape[1]}x{frames[0].shape[0]}; {video} not readable)"


def _student_yaml(work: Path) -> Path:
    """The lab student's architecture (LearningConfig().student) with the scenario's classes."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    from edge.learning_config import LearningConfig
    from endpoint.sources.scenario import CLASS_NAMES

    spec = LearningConfig().student
    cfg = yaml_model_load(spec.yaml)
    cfg.pop("yaml_file", None)
    cfg.pop("scale", None)
    if spec.scale is not None:
        cfg["scales"] = {"n": list(spec.scale)}
    cfg["nc"] = len(CLASS_NAMES)
    path = work / "yolo11n-student.yaml"  # the 'n' in the name selects the one scale
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def build_cases(names: list[str], work: Path, calibration: list[np.ndarray],
                student_onnx: Path | None = None) -> list[ModelCase]:
    """Export each model to FP32 ONNX as the edge ships it (``export_onnx``) and quantize it (``quantize_int8``)."""
    from edge.export import export_onnx
    from edge.learning_config import LearningConfig
    from edge.quantize import quantize_int8
    from edge.training import ultralytics_yolo

    cases = []
    for name in names:
        if name == "student":
            imgsz = LearningConfig().imgsz
            if student_onnx is not None:
                fp32 = student_onnx
            else:
                pt = work / "student.pt"
                ultralytics_yolo()(str(_student_yaml(work))).save(str(pt))
                fp32 = export_onnx(pt, work / "student.onnx", imgsz)
        elif name.startswith("yolo11n-"):
            imgsz = int(name.split("-")[1])
            pt = work / "yolo11n.pt"
            if not pt.exists():
                ultralytics_yolo()("yolo11n.yaml").save(str(pt))
            fp32 = export_onnx(pt, work / f"{name}.onnx", imgsz)
        else:
            raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
        int8 = quantize_int8(fp32, work / f"{name}.int8.onnx", calibration, imgsz)
        cases.append(ModelCase(name, imgsz, Path(fp32), int8))
    return cases


def _time_ms(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000.0


@dataclass(frozen=True)
class RunAndDetect:
    """Medians of one detector's bare runs and detect() calls, and the paired ratios."""

    run_ms: float
    detect_ms: float
    detect_over_run: float
    run_over_first: float  # against the first detector, block by block (1.0 for the first itself)


def time_run_and_detect(detectors: dict, frames: list[np.ndarray], iterations: int) -> dict[str, RunAndDetect]:
    """Bare session.run and detect() per detector; detectors take turns in blocks of ``BLOCK_ITERATIONS``."""
    from endpoint.model.letterbox import to_model_input

    times = {key: ([], []) for key in detectors}
    block_runs: dict[str, list[float]] = {key: [] for key in detectors}
    for det in detectors.values():
        for _ in range(WARMUP_CALLS):
            det.detect(frames[0])
    for start in range(0, iterations, BLOCK_ITERATIONS):
        for key, det in detectors.items():
            # untimed: this model's weights back in the caches, as on an endpoint that runs one model
            det.detect(frames[start % len(frames)])
            for i in range(start, min(start + BLOCK_ITERATIONS, iterations)):
                frame = frames[i % len(frames)]
                tensor, _ = to_model_input(frame, det.input_size)  # outside the timing: the bare run gets it ready
                output = [det.session.get_outputs()[0].name]
                run = lambda: det.session.run(output, {det.input_name: tensor})  # noqa: E731
                first, second = (run, lambda: det.detect(frame)) if i % 2 else (lambda: det.detect(frame), run)
                t_first, t_second = _time_ms(first), _time_ms(second)  # alternate the order: neither always first
                run_ms, detect_ms = (t_first, t_second) if i % 2 else (t_second, t_first)
                times[key][0].append(run_ms)
                times[key][1].append(detect_ms)
            block_runs[key].append(statistics.median(times[key][0][start:]))
    first = next(iter(detectors))
    return {key: RunAndDetect(statistics.median(r), statistics.median(d),
                              statistics.median(di / ri for ri, di in zip(r, d)),
                              statistics.median(b / f for b, f in zip(block_runs[key], block_runs[first])))
            for key, (r, d) in times.items()}


@contextmanager
def _ultralytics_threads(threads: int):
    """ultralytics opens its onnxruntime session with default options; cap its threads as ours are capped."""
    import onnxruntime as ort

    from endpoint.model.detector import session_options

    real = ort.InferenceSession

    def capped(path_or_bytes, sess_options=None, providers=None, **kwargs):
        return real(path_or_bytes, sess_options or session_options(threads), providers=providers, **kwargs)

    ort.InferenceSession = capped
    try:
        yield
    finally:
        ort.InferenceSession = real


def _bare_run_ms(det, frame: np.ndarray, calls: int) -> float:
    """Median ms of the detector's bare session.run on ``frame``, letterboxed once outside the timing."""
    from endpoint.model.letterbox import to_model_input

    tensor, _ = to_model_input(frame, det.input_size)
    output = [det.session.get_outputs()[0].name]
    return statistics.median(_time_ms(det.session.run, output, {det.input_name: tensor}) for _ in range(calls))


def time_ultralytics(det, frames: list[np.ndarray], iterations: int, threads: int) -> tuple[float, float]:
    """Medians (``YOLO(onnx).predict`` ms, ``det.detect`` ms), the two taking turns on the same frames."""
    from edge.training import ultralytics_yolo

    with _ultralytics_threads(threads):
        model = ultralytics_yolo()(str(det.path), task="detect")
        predict = lambda frame: model.predict(frame, imgsz=det.input_size[0], device="cpu", verbose=False)  # noqa: E731
        for _ in range(WARMUP_CALLS):
            predict(frames[0])
        theirs, ours = [], []
        for i in range(iterations):
            frame = frames[i % len(frames)]
            theirs.append(_time_ms(predict, frame))
            ours.append(_time_ms(det.detect, frame))
    return statistics.median(theirs), statistics.median(ours)


def time_loop(det, video: str, synthetic: bool, frames: list[np.ndarray], iterations: int, work: Path):
    """The endpoint's full loop (``endpoint.loop.loop_bench``), unpaced, and the bare run timed just before and after it.

    The bracket makes the loop's share of 1 / session.run a ratio of two numbers taken under the same load.
    """
    from endpoint.loop.loop_bench import bench_loop
    from endpoint.sources.streams import SourceConfig

    source = SourceConfig(kind="scenario") if synthetic else SourceConfig(kind="video", path=str(video))
    before = _bare_run_ms(det, frames[0], BRACKET_CALLS)
    loop = bench_loop(source, det, iterations, workdir=work)
    after = _bare_run_ms(det, frames[0], BRACKET_CALLS)
    return loop, (before + after) / 2


def measure(cases: list[ModelCase], frames: list[np.ndarray], video: str, synthetic: bool, iterations: int,
            threads: int, work: Path, progress=lambda text: None) -> list[Row]:
    """Every measurement of every case; FP32 and INT8 of one model side by side."""
    from endpoint.model.detector import OnnxDetector

    rows = []
    for case in cases:
        detectors = {"fp32": OnnxDetector(case.fp32, threads=threads), "int8": OnnxDetector(case.int8, threads=threads)}
        progress(f"{case.name}: session.run and detect()")
        medians = time_run_and_detect(detectors, frames, iterations)
        for precision, det in detectors.items():
            progress(f"{case.name} {precision}: full loop")
            loop, bracket_run_ms = time_loop(det, video, synthetic, frames, iterations, work)
            progress(f"{case.name} {precision}: ultralytics predict")
            ultra_ms, paired_detect_ms = time_ultralytics(det, frames, max(10, iterations // 2), threads)
            m = medians[precision]
            rows.append(Row(case.name, case.imgsz, precision, det.path.stat().st_size, m.run_ms, m.detect_ms,
                            m.detect_over_run, m.run_over_first, loop.ms_per_frame, loop.frames_per_s,
                            bracket_run_ms, ultra_ms, paired_detect_ms))
    return rows


def results_table(rows: list[Row], title: str):
    from rich.table import Table

    table = Table(title=title)
    for header in ("model", "px", "prec", "bytes", "run ms", "detect ms", "detect/run", "loop ms/frame",
                   "loop fps", "loop fps x run", "ultralytics ms", "ultra/detect", "int8/fp32 run"):
        table.add_column(header, justify="left" if header in ("model", "prec") else "right")
    for r in rows:
        versus = f"{r.run_over_fp32:.2f}" if r.precision == "int8" else ""
        table.add_row(r.model, str(r.imgsz), r.precision, f"{r.size_bytes:,}", f"{r.run_ms:.2f}",
                      f"{r.detect_ms:.2f}", f"{r.detect_over_run:.3f}", f"{r.loop_ms_per_frame:.2f}",
                      f"{r.loop_frames_per_s:.1f}", f"{r.loop_over_model_fps:.2f}", f"{r.ultralytics_ms:.2f}",
                      f"{r.ultralytics_over_detect:.2f}", versus)
    return table


def run_bench_endpoint(args) -> int:
    """The CLI entry: build, measure, print the table, write ``bench_endpoint.json`` under ``--out``."""
    from rich.console import Console

    os.environ.setdefault("YOLO_OFFLINE", "1")
    console = Console(width=180)  # the table stays whole in logs and pipes
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.iterations < 1 or args.threads < 1:
        console.print("[red]--iterations and --threads must be at least 1")
        return 2
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        console.print(f"[red]--models: unknown {unknown}; choose from {', '.join(MODELS)}")
        return 2
    frames, frames_text = read_frames(args.video)
    synthetic = not Path(args.video).is_file() or frames_text.startswith("synthetic")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".bench-endpoint-") as tmp, console.status("") as status:
        work = Path(tmp)
        status.update("exporting and quantizing")
        calibration = frames[:: max(1, len(frames) // CALIBRATION_FRAMES)][:CALIBRATION_FRAMES]
        student = Path(args.student_onnx) if args.student_onnx else None
        cases = build_cases(names, work, calibration, student)
        rows = measure(cases, frames, args.video, synthetic, args.iterations, args.threads, work, status.update)
    title = (f"endpoint on this CPU: onnxruntime {args.threads} thread(s), medians of {args.iterations} "
             f"iterations, frames: {frames_text}")
    console.print(results_table(rows, title), highlight=False)
    console.print("run = bare session.run on a ready tensor; detect = letterbox + run + NMS; detect/run = median "
                  "of adjacent pairs; loop = capture and letterbox resize, detect, sample, JPEG, spool "
                  "(endpoint.loop.loop_bench, overlapped threads as the endpoint runs them); loop fps x run = the "
                  "loop's frames/s as a share of 1 / run, run timed just around the loop; ultralytics = "
                  "YOLO(onnx).predict on the same file, ultra/detect = its time over detect(), the two in turns; "
                  "int8/fp32 run = median over adjacent blocks")
    report = {"threads": args.threads, "iterations": args.iterations, "frames": frames_text,
              "rows": [{**asdict(r), "loop_over_model_fps": r.loop_over_model_fps,
                        "ultralytics_over_detect": r.ultralytics_over_detect} for r in rows]}
    (out / "bench_endpoint.json").write_text(json.dumps(report, indent=2))
    console.print(f"wrote {out / 'bench_endpoint.json'}")
    return 0
