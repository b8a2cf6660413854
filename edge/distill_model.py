"""ultralytics' ``DistillationModel`` with the teacher fed at its own input scale, plus head-output distillation.

ultralytics runs the teacher on the student's batch as is; our teacher trains at ``teacher_input_scale`` times the
student's input, so at the student's size it sees objects at half the size it learned and scores poorly. Here:

* the teacher sees the batch upsampled by ``teacher_scale``, and its neck features and head outputs are pooled
  back to the student's grid, level by level (average for features, max or average for class scores);
* the student's class logits learn the teacher's sigmoid scores per anchor (Bernoulli KL at a temperature),
  on top of the labels and of ultralytics' score-weighted feature loss (``dis``).

The wrapper adds no parameters, so a trainer callback can adopt ultralytics' own instance after the optimizer is
built (``attach``); ultralytics still saves only the student.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from ultralytics.nn.distill_model import DistillationModel

log = logging.getLogger(__name__)


POOLS = ("max", "avg")


@dataclass(frozen=True)
class HeadDistillation:
    """What the student learns from the teacher's head: weights (0: off), temperature and the teacher's scale."""

    teacher_scale: float = 1.0
    logit_weight: float = 0.0
    box_weight: float = 0.0
    temperature: float = 1.0
    logit_pool: str = "max"  # how the teacher's class logits reach the student's grid: "max" or "avg" of its cells
    # with no feature or box term, take the teacher's class logits from its ONNX cut on onnxruntime
    # (edge.teacher_scores), exported when training starts, instead of from the torch teacher
    onnx_teacher: bool = False
    every_batches: int = 1  # the teacher runs, and the distillation terms count, on every n-th training batch only
    # the onnxruntime teacher's pass for the next batch runs on a worker thread while torch trains on this one
    # (edge.teacher_prefetch): the same logits, on a core torch leaves partly idle
    overlap: bool = True
    # onnxruntime class logits computed once per training image and reused every epoch (edge.teacher_cache); the
    # training then keeps each image's geometry (no mosaic, affine or flips)
    cached_teacher: bool = False

    def __post_init__(self):
        if self.teacher_scale < 1 or self.temperature <= 0 or self.logit_weight < 0 or self.box_weight < 0 or \
                self.logit_pool not in POOLS or self.every_batches < 1:
            raise ValueError(f"bad head distillation settings: {self}")


def teacher_view(images: torch.Tensor, scale: float) -> torch.Tensor:
    """The student's batch at the teacher's input size (bilinear), rounded to 32 px like the teacher's training."""
    if scale == 1:
        return images
    size = [view_side(side, scale) for side in images.shape[-2:]]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False)


def view_side(side: int, scale: float) -> int:
    """One side of ``teacher_view``'s output, in pixels."""
    return side if scale == 1 else max(32, round(side * scale / 32) * 32)


def align_head(values: torch.Tensor, teacher_grids: list[tuple[int, int]],
               student_grids: list[tuple[int, int]], pool: str = "max") -> torch.Tensor:
    """Teacher head outputs (B, C, anchors) on the student's anchors: each level pooled (max/avg) to the student's grid.

    Levels pair by index: small objects sit on the finest level at either scale, so a 2x teacher's level k covers
    the student's level k on a grid twice as fine. "max": a student cell takes the strongest of the cells it covers,
    which spreads an object to cells whose anchor lies outside it; "avg" of a 2x2 block is the teacher bilinearly
    read at the student's anchor point, which sits where the four cells meet.
    """
    if pool not in POOLS:
        raise ValueError(f"pool is one of {POOLS}, not {pool!r}")
    pooled = F.adaptive_max_pool2d if pool == "max" else F.adaptive_avg_pool2d
    levels = torch.split(values, [h * w for h, w in teacher_grids], dim=-1)
    out = []
    for level, teacher_grid, grid in zip(levels, teacher_grids, student_grids):
        level = level.reshape(*values.shape[:2], *teacher_grid)
        out.append((level if tuple(teacher_grid) == tuple(grid) else pooled(level, grid)).flatten(2))
    return torch.cat(out, -1)


def logit_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Bernoulli KL(teacher || student) per class and anchor at ``temperature``, over the teacher's score mass.

    Zero when the logits agree; normalized like ultralytics' class loss (by the summed target scores, at least 1).
    """
    t = teacher_logits.detach() / temperature
    s = student_logits / temperature
    p = t.sigmoid()
    # BCE(s, p) - BCE(t, p): the target's own entropy removed, so agreement costs nothing
    kl = F.binary_cross_entropy_with_logits(s, p, reduction="none") - \
        F.binary_cross_entropy_with_logits(t, p, reduction="none")
    return kl.sum() * temperature ** 2 / teacher_logits.detach().sigmoid().sum().clamp(min=1)


def pick_by_confidence(boxes: torch.Tensor, confidence: torch.Tensor, teacher_grids: list[tuple[int, int]],
                       student_grids: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per student cell, the box (B, 4, anchors) and confidence (B, 1, anchors) of the most confident teacher cell."""
    sizes = [h * w for h, w in teacher_grids]
    picked_boxes, picked_conf = [], []
    for level_boxes, level_conf, teacher_grid, grid in zip(torch.split(boxes, sizes, -1),
                                                          torch.split(confidence, sizes, -1), teacher_grids,
                                                          student_grids):
        pooled, index = F.adaptive_max_pool2d(level_conf.reshape(-1, 1, *teacher_grid), grid, return_indices=True)
        picked_conf.append(pooled.flatten(2))
        picked_boxes.append(level_boxes.gather(-1, index.flatten(2).expand(-1, 4, -1)))
    return torch.cat(picked_boxes, -1), torch.cat(picked_conf, -1)


def box_kd_loss(student_dist: torch.Tensor, anchors: torch.Tensor, strides: torch.Tensor, teacher_xyxy: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
    """DFL of the student's box bins (B, 4*reg_max, anchors) against the teacher's boxes (B, 4, anchors, student px).

    Weighted per anchor by the teacher's confidence; anchors outside their teacher box do not count.
    """
    from ultralytics.utils.loss import DFLoss
    from ultralytics.utils.tal import bbox2dist

    b, _, a = student_dist.shape
    reg_max = student_dist.shape[1] // 4
    target = bbox2dist(anchors, teacher_xyxy.detach().permute(0, 2, 1) / strides)  # (B, anchors, 4) in strides
    weights = weights.detach() * (target.min(-1).values > 0)
    keep = weights > 0
    if not keep.any():
        return student_dist.sum() * 0
    pred = student_dist.view(b, 4, reg_max, a).permute(0, 3, 1, 2)[keep].reshape(-1, reg_max)
    dfl = DFLoss(reg_max)(pred, target[keep])[:, 0]  # mean over the four sides
    return (dfl * weights[keep]).sum() / weights.sum().clamp(min=1)


def decoded_boxes(head: dict, detect) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """xyxy boxes (B, 4, anchors) in input pixels from a Detect output, with its anchor points and strides."""
    from ultralytics.utils.tal import make_anchors

    anchors, strides = make_anchors(head["feats"], detect.stride, 0.5)
    b, _, a = head["boxes"].shape
    bins = torch.arange(detect.reg_max, device=anchors.device, dtype=head["boxes"].dtype)
    dist = (head["boxes"].view(b, 4, detect.reg_max, a).softmax(2) * bins.view(1, 1, -1, 1)).sum(2)  # (B, 4, A)
    centre = anchors.T.unsqueeze(0)  # (1, 2, A) in strides
    xyxy = torch.cat((centre - dist[:, :2], centre + dist[:, 2:]), 1) * strides.T.unsqueeze(0)
    return xyxy, anchors, strides


class EdgeDistillationModel(DistillationModel):
    """``DistillationModel`` whose teacher runs at its own scale, with class-score distillation."""

    head: HeadDistillation = HeadDistillation()
    teacher_onnx: str | None = None  # the teacher's class-logit graph, when the loss runs it instead of the teacher
    teacher_prefetch = None  # an ``edge.teacher_prefetch.TeacherPrefetch`` computing ``teacher_onnx`` a batch ahead
    teacher_cache = None  # an ``edge.teacher_cache.TeacherLogitCache`` of ``teacher_onnx``'s logits per image
    batches: int = 0  # training batches seen, for ``HeadDistillation.every_batches``

    @classmethod
    def adopt(cls, model: DistillationModel, head: HeadDistillation) -> "EdgeDistillationModel":
        """Turn ultralytics' instance into this class in place: same modules, so the optimizer and EMA still fit."""
        if not isinstance(model, DistillationModel):
            raise TypeError(f"expected ultralytics' DistillationModel, got {type(model).__name__}")
        model.__class__ = cls
        model.head = head
        if model.teacher_model is not None:
            # conv+BN folded: the frozen teacher's forward costs less; the trainer's EMA holds no teacher to match
            model.teacher_model.fuse(verbose=False)
        return model

    def loss(self, batch, preds=None):
        """Detection loss plus the feature and class-score distillation terms (training only)."""
        if not self.training:
            return super().loss(batch, preds)
        self._teacher_feats.clear()
        self._student_feats.clear()
        images = batch["img"]
        self.batches += 1
        if (self.batches - 1) % self.head.every_batches:  # the labels alone: no teacher pass to pay for
            regular_loss, loss_items = self.student_model.loss(batch, self.student_model(images))
            loss_items["dis_loss"] = torch.zeros(1, device=images.device)
            return torch.cat([regular_loss, loss_items["dis_loss"]]), loss_items
        onnx_teacher = self.teacher_onnx is not None and not self.dis and not self.head.box_weight
        if not onnx_teacher:  # its hooks take the features and head outputs
            with torch.no_grad():
                self.teacher_model(teacher_view(images, self.head.teacher_scale))
        preds = self.student_model(images)
        regular_loss, loss_items = self.student_model.loss(batch, preds)
        n = len(self.feats_idx) - 1  # neck levels; level n is the Detect head
        student_grids = [tuple(self._student_feats[i].shape[-2:]) for i in range(n)]
        student_head = self.decouple_outputs(self._student_feats[n], branch="one2many")
        if onnx_teacher:  # class logits are all the loss needs of the teacher; asked for last, as a prefetch may run
            teacher_scores, teacher_grids = self.onnx_teacher_logits(batch)
        else:
            teacher_grids = [tuple(self._teacher_feats[i].shape[-2:]) for i in range(n)]
            teacher_head = self.decouple_outputs(self._teacher_feats[n], branch="one2many")
            teacher_scores = teacher_head["scores"]
        teacher_logits = align_head(teacher_scores, teacher_grids, student_grids, self.head.logit_pool)
        confidence = teacher_logits.sigmoid().max(dim=1, keepdim=True).values  # (B, 1, anchors)

        loss_distill = torch.zeros(1, device=images.device)
        if self.dis:
            per_level = torch.split(confidence, [h * w for h, w in student_grids], dim=-1)
            for i in range(n):
                teacher_feat = F.adaptive_avg_pool2d(self.decouple_outputs(self._teacher_feats[i]), student_grids[i])
                student_feat = self.projector[i](self.decouple_outputs(self._student_feats[i]))
                loss_distill += self.dis * self.loss_sl2(student_feat, teacher_feat, feat_idx=i,
                                                         teacher_scores=per_level)
        if self.head.logit_weight:
            loss_distill += logit_kd_loss(student_head["scores"], teacher_logits, self.head.temperature) * \
                self.head.logit_weight
        if self.head.box_weight:
            teacher_xyxy, _, _ = decoded_boxes(teacher_head, self.teacher_model.model[-1])
            teacher_conf = teacher_head["scores"].sigmoid().max(dim=1, keepdim=True).values
            boxes, weights = pick_by_confidence(teacher_xyxy / self.head.teacher_scale, teacher_conf, teacher_grids,
                                                student_grids)
            _, anchors, strides = decoded_boxes(student_head, self.student_model.model[-1])
            loss_distill += box_kd_loss(student_head["boxes"], anchors, strides, boxes, weights[:, 0]) * \
                self.head.box_weight
        loss_items["dis_loss"] = loss_distill.detach()
        return torch.cat([regular_loss, loss_distill * images.shape[0]]), loss_items

    def onnx_teacher_logits(self, batch) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The onnxruntime teacher's class logits of ``batch`` (prefetched when they were) and its grids."""
        from edge.teacher_scores import teacher_logits

        teacher = teacher_logits(self.teacher_onnx)
        if self.teacher_cache is not None:
            return self.teacher_cache(batch["im_file"], batch["img"]), teacher.grids
        ready = self.teacher_prefetch.take(batch) if self.teacher_prefetch is not None else None
        if ready is None:
            ready = teacher(teacher_view(batch["img"], self.head.teacher_scale))
        return ready, teacher.grids


def attach(yolo, head: HeadDistillation) -> None:
    """Have ``yolo``'s next training adopt its distillation wrapper as ``EdgeDistillationModel`` with ``head``."""

    def adopt(trainer) -> None:
        model = getattr(trainer.model, "module", trainer.model)  # DDP keeps the model in .module
        EdgeDistillationModel.adopt(model, head)
        if head.onnx_teacher and not model.dis and not head.box_weight:
            from edge.teacher_scores import teacher_logits_onnx
            from edge.torch_threads import threads_kept

            # exported in the run's folder, so its CPU counts in the training that needs it; ultralytics' export
            # selects its device, which sets torch to its own cores - 1 threads: the training's count holds again
            # after it (measured: the distilled student trained on 1 of 2 cores, 1.78 s an epoch against 1.44)
            size = view_side(int(trainer.args.imgsz), head.teacher_scale)
            with threads_kept():
                model.teacher_onnx = str(teacher_logits_onnx(trainer.args.distill_model, size, trainer.save_dir))
            if head.cached_teacher:
                cache_teacher(trainer, model)
            elif head.overlap:
                prefetch_teacher(trainer, model)
        log.info("distilling at teacher scale %.2g: logit weight %g (%s-pooled), box weight %g, T %g, feature "
                 "weight %g", head.teacher_scale, head.logit_weight, head.logit_pool, head.box_weight,
                 head.temperature, model.dis)

    yolo.add_callback("on_pretrain_routine_end", adopt)


def cache_teacher(trainer, model: EdgeDistillationModel) -> None:
    """Give ``model`` a cache of the teacher's logits per training image; a training that moves its images between
    epochs (mosaic, affine, flips) is refused, as their cached logits would be another image's."""
    from edge.teacher_cache import TeacherLogitCache, geometry_changes
    from edge.teacher_scores import teacher_logits

    if moving := geometry_changes(trainer.args):
        raise ValueError(f"a cached teacher needs each image in the same geometry every epoch; the training has "
                         f"{', '.join(moving)} (edge.teacher_cache.FIXED_GEOMETRY turns them off)")
    head = model.head
    cache = model.teacher_cache = TeacherLogitCache(teacher_logits(model.teacher_onnx),
                                                    lambda images: teacher_view(images, head.teacher_scale),
                                                    limit=max(1, len(trainer.train_loader.dataset)))

    def report(_trainer) -> None:
        log.info("cached teacher: %d teacher passes, %d images served from the cache", cache.passes, cache.reused)

    trainer.add_callback("on_train_end", report)


def prefetch_teacher(trainer, model: EdgeDistillationModel) -> None:
    """Wrap ``trainer``'s loader so each batch's teacher logits are computed during the previous batch's training.

    Only where the prefetched view is the loss's own: on the CPU, without multi-scale (it resizes each batch at
    random when it is preprocessed). The trainer closes the loader, and with it the worker thread, when training ends.
    """
    from edge.teacher_prefetch import TeacherPrefetch
    from edge.teacher_scores import teacher_logits

    if trainer.device.type != "cpu" or trainer.args.multi_scale or trainer.args.compile:
        log.info("teacher prefetch off: it needs CPU training without multi-scale or compile")
        return
    head = model.head
    model.teacher_prefetch = trainer.train_loader = TeacherPrefetch(
        trainer.train_loader, teacher_logits(model.teacher_onnx),
        lambda images: teacher_view(images, head.teacher_scale), wanted=lambda n: n % head.every_batches == 0,
        start=model.batches)


__all__ = ["EdgeDistillationModel", "HeadDistillation", "align_head", "attach", "cache_teacher", "logit_kd_loss",
           "prefetch_teacher", "teacher_view", "view_side"]
