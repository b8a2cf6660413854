"""Configuration of the learning steps of a round: models, image size, epochs, replay, labels."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from endpoint.wire.config_base import StrictConfig


class ModelSpec(StrictConfig):
    """An ultralytics model built from YAML (optionally narrowed), or user weights when ``weights`` is set."""

    yaml: str = Field("yolo11n.yaml", description="ultralytics model YAML name, e.g. yolo11n.yaml or yolo11s.yaml")
    scale: tuple[float, float, int] | None = Field(
        None, description="override of (depth_multiple, width_multiple, max_channels) for a narrower custom model")
    weights: Path | None = Field(None, description="user .pt file; when set, no bootstrap training happens")


class TrainSpec(StrictConfig):
    """Optimizer settings of one training stage."""

    epochs: int = Field(10, ge=1, description="passes over the stage's data set")
    lr0: float = Field(0.01, gt=0, description="initial learning rate (AdamW)")
    warmup_epochs: float = Field(0.5, ge=0, description="linear warm-up; short because data sets are small")
    target_images: int | None = Field(
        None, ge=1, description="when set, epochs shrink so that about this many images are seen (at least 2 "
                                "epochs, at most 'epochs'): a round's training time stays bounded as data grows")

    def epochs_for(self, n_images: int) -> int:
        """Epochs to run on a data set of ``n_images``."""
        if self.target_images is None or n_images <= 0:
            return self.epochs
        return max(min(2, self.epochs), min(self.epochs, -(-self.target_images // n_images)))


class LearningConfig(StrictConfig):
    """Everything the teacher, student, replay and export steps need; read once by the entry point."""

    teacher: ModelSpec = Field(default_factory=lambda: ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.25, 256)),
                               description="the edge-side teacher; wider than the student")
    student: ModelSpec = Field(default_factory=lambda: ModelSpec(yaml="yolo11n.yaml", scale=(0.33, 0.125, 256)),
                               description="the endpoint student; exported to ONNX and quantized to INT8")
    imgsz: int = Field(128, ge=32, multiple_of=32, description="square training and export input size in pixels")
    teacher_input_scale: float = Field(
        2.0, ge=1, le=4, description="the teacher trains, scores and pseudo-labels at this times the student's "
                                     "imgsz (rounded to 32 px), so it follows --imgsz and data-aware sizes; "
                                     "distillation feeds it the student's batches upsampled to that size. "
                                     "Measured (bench distill, 128 px student): a 2x teacher reached 1.7x the "
                                     "label-only student after the drift, a 1x one 0.45x, in 2.7x the 1x "
                                     "fine-tune's CPU time; a 4x wider 1x one 0.57x")
    batch: int = Field(16, ge=1, description="training batch size")
    train_threads: int | None = Field(
        None, ge=1, le=256, description="torch threads of each training; None: every core, up to 8 "
                                        "(ultralytics' own min(8, cores - 1) is one thread on a 2-core edge). "
                                        "Measured there (bench distill's teacher fine-tune, quiet machine): 2 "
                                        "threads took 32-34 s against 52 s, at the same mAP50-95 (dusk .536 vs "
                                        ".535); the student 17.9 s against 22.0 s; make lab with its bootstrap "
                                        "trained 5 min 28 s against about 7 min 40 s")
    nominal_batch: int | None = Field(
        16, ge=1, description="ultralytics 'nbs': gradients accumulate over batches up to this many images per "
                              "optimizer step; None: ultralytics' 64. 16 (the default batch): a step per batch, as "
                              "YOLO folders set it; at 64 a round's ~250 images gave 4 steps an epoch, and "
                              "(measured, the lab's student over day then 3 dusk rounds) dusk reached 0.24 / 0.30 "
                              "mAP50-95 by round 2 against 0.11 / 0.14")
    bootstrap: TrainSpec = Field(default_factory=lambda: TrainSpec(epochs=12, lr0=0.02),
                                 description="from-scratch training on the first domain")
    finetune: TrainSpec = Field(default_factory=lambda: TrainSpec(epochs=10, lr0=0.01, target_images=1000),
                                description="teacher fine-tuning on new labelled frames plus replay")
    distill: TrainSpec = Field(default_factory=lambda: TrainSpec(epochs=20, lr0=0.01, target_images=4800),
                               description="student training: on labels, plus the teacher's distillation terms "
                                           "when a distill weight is above 0. The student was undertrained: "
                                           "measured (default lab, last round over static, cam-1 / cam-2, wall "
                                           "time with the bootstrap cached, one run each, side by side): "
                                           "target_images 1600 +25.1 / +26.7 pts in 190 s, 3200 +33.3 / +41.3 "
                                           "in about 215 s, 4800 +39.0 / +43.3 in 224 s, 6400 +43.0 / +42.6 in 249 s")
    distill_loss_weight: float = Field(
        0.0, ge=0, description="ultralytics 'dis': weight of the feature distillation loss; 0 trains the student on "
                               "labels alone (ground truth, or the teacher's pseudo-labels where there is none). "
                               "Measured (bench distill, 130 dusk frames): dis 0.1, 0.3, 1 and 3 all cost 4-8 pts "
                               "mAP50-95 against labels alone, with a 128 px and with a 256 px teacher; dis 1 with "
                               "the 256 px teacher fed at its scale (edge/distill_model.py) still cost 6 pts "
                               "(training seeds 0, 1): the fresh projector is not learnt in 9 epochs")
    distill_logit_weight: float = Field(
        1.0, ge=0, description="weight of the class-score distillation: the student's class logits learn the "
                               "teacher's sigmoid scores per anchor (Bernoulli KL), with the teacher fed at its own "
                               "input scale and its scores pooled to the student's grid (distill_logit_pool) "
                               "(edge/distill_model.py; the teacher's class logits on onnxruntime, "
                               "edge/teacher_scores.py); 0: labels alone. Measured (bench distill, six training "
                               "seeds, docs/distillation.md): with distill_cached_teacher, +6.6 pts mAP50-95 over "
                               "labels alone at the same epochs, +5.0 at the same wall time, +3.9 (std 1.6) over "
                               "labels alone in the same fixed geometry at the same wall time; with the teacher "
                               "on every batch, +4.1 and -2.5")
    distill_box_weight: float = Field(
        0.0, ge=0, description="weight of the box distillation: the student's box bins (DFL) learn the box of the "
                               "most confident teacher cell its anchor covers, weighted by that confidence; 0: off. "
                               "Measured (bench distill, training seeds 0-2): 1 gave -1.1 pts mAP50-95 against "
                               "labels alone")
    distill_temperature: float = Field(
        1.0, gt=0, le=20, description="temperature of the class-score distillation (softens both sides)")
    distill_logit_pool: Literal["max", "avg"] = Field(
        "max", description="how the teacher's class logits (on a grid teacher_input_scale times finer) reach the "
                           "student's grid for the class-score distillation: 'max' of the cells a student cell "
                           "covers, or their 'avg' (the teacher read at the student's anchor point). "
                           "Measured (bench distill's ablation, logit weight 1, mean over training seeds 0-5 against "
                           "labels alone): 'avg' +2.7 pts (std 1.8) vs 'max' +2.7 on the default frames, +0.2 "
                           "(std 1.8) vs -2.9 (seeds 0-2) with --seed 1, -5.9 vs -5.9 on scenario seed 2 (seeds 0-2)")
    distill_every_batches: int = Field(
        1, ge=1, le=100, description="the teacher runs, and the distillation terms count, on every n-th training "
                                     "batch only (1: every batch): the teacher's pass is most of what distillation "
                                     "adds to the student's training CPU. Measured (bench distill, logit weight "
                                     "1, class logits on onnxruntime, mean of training seeds 0-2): every batch for 7 "
                                     "epochs 0.191 mAP50-95 in 31 CPU s, every 2nd for 9 epochs 0.197 in 32 s; "
                                     "labels alone for 11-13 epochs 0.191 / 0.170 / 0.199 in 29-36 s: no gain at "
                                     "the same CPU")
    distill_overlap_teacher: bool = Field(
        True, description="class-score distillation on onnxruntime computes the teacher's logits for the next "
                          "batch on a worker thread while torch trains on this one (edge/teacher_prefetch.py): the "
                          "same logits, loss and weights; False runs the teacher in the loss; unused with "
                          "distill_cached_teacher. Measured (bench distill's frames, 7 epochs, training seeds "
                          "0-5): 0.70-0.76x the sequential wall time (31.9 s to 23.4 s), 0.99-1.08x its CPU, "
                          "while a fault, fixed since, left torch on one of the two cores after the teacher's "
                          "export (docs/distillation.md)")
    distill_cached_teacher: bool = Field(
        True, description="class-score distillation computes the teacher's logits once per training image and "
                          "reuses them every epoch (edge/teacher_cache.py), so the teacher costs one pass per "
                          "image, not one per image and epoch; the distilled student then trains without "
                          "geometric augmentation (no mosaic, affine or flips), which the logits need. Off when "
                          "the feature or box term is on: they need the teacher on every batch. Measured (bench "
                          "distill, six seeds): the distilled student trained in 31-36 s against 29-34 s on "
                          "labels, where the teacher on every batch took 1.9-2.1 s an epoch against 1.5-1.6 s "
                          "(then on one torch thread: docs/distillation.md)")
    bootstrap_train_frames: int = Field(160, ge=1, description="first-domain frames the bootstrap trains on")
    bootstrap_val_frames: int = Field(40, ge=1, description="first-domain frames held out for bootstrap validation")
    replay_fraction: float = Field(
        0.5, ge=0, lt=1, description="share of each fine-tune set, and of the INT8 calibration frames, drawn from "
                                     "replay. Measured (make lab, last round, cam-1 / cam-2, one training thread, "
                                     "calibration on new frames only): 0.5 kept `day` at +9.8 / +5.6 pts over its "
                                     "pre-drift mAP50-95 and reached dusk +30 / +34 pts over static; 0.3: +2.0 / "
                                     "-3.9 and +25 / +34")
    replay_capacity_per_domain: int = Field(200, ge=0, description="labelled images kept per domain for replay")
    teacher_label_conf: float = Field(0.4, gt=0, lt=1, description="teacher pseudo-labels below this are dropped")
    teacher_relabel_frames: int = Field(
        400, ge=0, description="in a round with frames that have no ground truth, the fine-tuned teacher labels "
                               "afresh the domain's newest stored frames, up to this many (ground truth stays where "
                               "a frame has it), and the student learns those labels; the teacher keeps its own. "
                               "0: off. Measured (make lab --labels teacher, last round over never-updated, "
                               "cam-1 / cam-2): seed 0 +14.8 / +16.1 pts mAP50-95 against +7.3 / +4.6 with 0, "
                               "over seeds 0-4 a mean +15.5 against +12.4 (per seed, -0.5 to +9.5)")
    eval_conf: float = Field(0.001, gt=0, lt=1, description="detector threshold when measuring mAP")
    calibration_frames: int = Field(32, ge=1, description="labelled frames that calibrate INT8 quantization: the "
                                                          "domain's last kept, and replay_fraction of them from "
                                                          "other domains (ReplayBuffer.calibration)")
    student_precision: Literal["int8", "fp32"] = Field(
        "int8", description="what endpoints get: 'int8' (QDQ; yolo11n at 320 px runs in about half the FP32 time "
                            "on an x86 VNNI CPU) or 'fp32' (the export as is). Measured: INT8 does not pay in "
                            "latency for the 128 px lab student (1.03-1.06x FP32), though it still halves the bytes "
                            "a push costs; choose 'fp32' for models that small when latency matters more")
    sparse_fraction: float | None = Field(
        None, gt=0, le=1, description="share of the student's coordinates a round trains (AMS-style sparse update "
                                      "from the deployed student, requantized on its INT8 grid so the push stays "
                                      "a small delta); None trains and quantizes the whole student, as before")
    sparse_selection: Literal["gradient", "movement"] = Field(
        "gradient", description="how sparse coordinates are chosen after the first batches: summed |gradient|, or "
                                "how far each moved in those dense first steps (AMS's rule). Measured (bench push, "
                                "seed 0, same data): gradient over the first epoch 5 % +0.9 pt / 10 % +1.3 pt vs "
                                "the full push at 6.6 / 8.6 % of its bytes; movement after 4 batches +0.6 / +0.3 pt "
                                "at 7.7 / 10.6 %")
    sparse_selection_batches: int = Field(
        16, ge=1, description="dense first batches that choose the coordinates; selection ends with the first epoch "
                              "if that comes sooner (11 batches in bench push)")
    sparse_lr_scale: float = Field(
        1.0, gt=0, le=100, description="sparse rounds train at the distill stage's lr0 times this: fewer coordinates "
                                       "move, so each may take a larger step. Measured (bench push, movement): 3x "
                                       "gave 5 % +1.7 pt, 10 % +0.5 pt vs full, but 10 % grew to 11.2 % of the bytes")
    sparse_activation_scales: Literal["parent", "fresh"] = Field(
        "parent", description="activation scales of a sparse student's INT8: the parent's, or a fresh calibration "
                              "on the round's frames (its weights keep the parent's INT8 values either way). "
                              "Measured (bench push): same mAP50-95 within noise; 'parent' changes ~3 kB fewer bytes")
    sparse_overflow: Literal["clip", "rescale"] = Field(
        "clip", description="a sparse student's changed weight past its channel's INT8 range: saturates ('clip'), or "
                            "gets the channel a new scale, rewriting the whole channel ('rescale'). Measured (bench "
                            "push, 10 %): clip 27 k changed INT8 weight bytes, rescale 40 k, mAP50-95 alike")
    sparse_channels: bool = Field(
        True, description="sparse rounds also train every per-channel tensor (BN statistics, gamma, beta, biases); "
                          "their INT8 cost is per-channel scales and biases only. Measured (bench push): with them "
                          "frozen, 1-20 % sparse students barely moved from the parent's mAP")
    seed: int = Field(0, description="seed of training, replay sampling and data order")
    device: str = Field("cpu", description="torch device that trains: 'cpu', or 'cuda:0' on an edge server with "
                                          "a GPU (evaluation and export stay on the CPU, as on the endpoint)")
    cache_dir: Path = Field(Path("edgeloop-data/cache"), description="bootstrapped weights and generated model YAMLs")
    work_dir: Path = Field(Path("edgeloop-data/work"), description="training runs and data sets of each round")

    def teacher_size(self) -> int:
        """The teacher's input size in pixels: a multiple of 32, at least the student's."""
        return max(self.imgsz, round(self.imgsz * self.teacher_input_scale / 32) * 32)
