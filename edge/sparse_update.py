"""Sparse student updates (AMS-style): train only a chosen fraction of the student's coordinates.

AMS (Khani et al., ICCV 2021, ``modelstreaming/ams``) takes a first full step, keeps the coordinates that moved
most and trains only those. Here the same runs inside one ultralytics training through its callbacks:

* the first ``selection_batches`` batches train densely while |gradient| (or the movement) is summed;
* then the top ``fraction`` of the student's coordinates are selected, every other one is put back to the base
  value, and from then on gradients are masked;
* after every batch the unselected coordinates are put back in BOTH the model and the trainer's EMA (AdamW's
  weight decay and the EMA's lerp move every coordinate, and ultralytics saves the EMA);
* per-channel tensors (BN statistics, BN gamma and beta, biases) either train freely (``channels=True``): the
  fraction is then of the convolution weights, and a BN change folded into a convolution moves a whole channel
  by one factor, which the INT8 per-channel weight scale absorbs (``edge.sparse_quantize``); or stay frozen
  with the BN statistics (``channels=False``), the fraction then of every coordinate but BN gammas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

Selection = Literal["gradient", "movement"]


def student_of(model):
    """The student inside ultralytics' distillation wrapper (or the model itself when not distilling)."""
    return getattr(model, "student_model", model)


def _is_bn_param(module_by_name: dict, name: str) -> bool:
    import torch.nn as nn

    owner, _, leaf = name.rpartition(".")
    return isinstance(module_by_name.get(owner), nn.modules.batchnorm._BatchNorm) and leaf == "weight"


@dataclass
class SparseUpdate:
    """The callbacks' state: base values, scores, masks, and how many coordinates were selected."""

    fraction: float
    selection: Selection = "gradient"
    selection_batches: int = 4
    channels: bool = True  # per-channel tensors train freely; the fraction is of the convolution weights
    base: dict = field(default_factory=dict)  # name -> base tensor (parameters and BN buffers of the student)
    scores: dict = field(default_factory=dict)  # name -> summed |gradient| while selecting
    masks: dict | None = None  # name -> bool tensor of the selected coordinates; None until selected
    selectable: set = field(default_factory=set)
    total_coordinates: int = 0
    selected_coordinates: int = 0
    _batches: int = 0
    _hooks: list = field(default_factory=list)

    def __post_init__(self):
        if not 0 < self.fraction <= 1:
            raise ValueError(f"sparse fraction must be in (0, 1], got {self.fraction}")
        if self.selection not in ("gradient", "movement"):
            raise ValueError(f"sparse selection must be 'gradient' or 'movement', got {self.selection!r}")
        if self.selection_batches < 1:
            raise ValueError("sparse selection needs at least one batch")

    # --- ultralytics callbacks ------------------------------------------------------------------

    def attach(self, yolo) -> None:
        """Register the callbacks on an ultralytics ``YOLO`` before ``train``."""
        yolo.add_callback("on_pretrain_routine_end", self.on_pretrain_routine_end)
        yolo.add_callback("on_train_batch_start", self.on_train_batch_start)
        yolo.add_callback("on_train_batch_end", self.on_train_batch_end)
        yolo.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        yolo.add_callback("on_train_end", lambda trainer: self.detach())

    def on_pretrain_routine_end(self, trainer) -> None:
        import torch

        student = student_of(trainer.model)
        modules = dict(student.named_modules())
        if self.channels:
            self.selectable = {name for name, p in student.named_parameters()
                               if p.requires_grad and p.dtype.is_floating_point and p.ndim >= 2}
            self.total_coordinates = sum(p.numel() for name, p in student.named_parameters() if p.ndim >= 2)
            self.base = {name: t.detach().clone() for name, t in self._tensors(student) if name in self.selectable}
        else:
            self.selectable = {name for name, p in student.named_parameters()
                               if p.requires_grad and p.dtype.is_floating_point and not _is_bn_param(modules, name)}
            self.total_coordinates = sum(p.numel() for p in student.parameters())
            self.base = {name: t.detach().clone() for name, t in self._tensors(student)}
        for name, p in student.named_parameters():
            if name in self.selectable:
                self.scores[name] = torch.zeros_like(p, dtype=torch.float32)
                self._hooks.append(p.register_hook(self._gradient_hook(name)))
        self._restore(trainer)  # the EMA starts from the same base, bit for bit

    def on_train_batch_start(self, trainer) -> None:
        from torch import nn

        if self.channels:
            return
        # _model_train() puts every module back in train mode each epoch; eval keeps the running statistics
        for module in student_of(trainer.model).modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()

    def on_train_batch_end(self, trainer) -> None:
        self._batches += 1
        if self.masks is None and self._batches >= self.selection_batches:
            self._select(trainer)
        if self.masks is not None:
            self._restore(trainer)

    def on_train_epoch_end(self, trainer) -> None:
        if self.masks is None:  # fewer batches than selection_batches in the whole run
            self._select(trainer)
            self._restore(trainer)

    # --- the work -------------------------------------------------------------------------------

    def _gradient_hook(self, name: str):
        def hook(grad):
            if self.masks is None:
                self.scores[name].add_(grad.detach().abs().float())
                return grad
            return grad * self.masks[name]
        return hook

    def _tensors(self, module):
        """Parameters and BN running statistics of the student, by name."""
        yield from module.named_parameters()
        for name, buf in module.named_buffers():
            if buf.dtype.is_floating_point:
                yield name, buf

    def _select(self, trainer) -> None:
        import torch

        student = student_of(trainer.model)
        params = dict(student.named_parameters())
        names = sorted(self.selectable)
        if self.selection == "gradient":
            scores = [self.scores[n].flatten() for n in names]
        else:  # AMS: how far each coordinate moved in the dense first steps
            scores = [(params[n].detach().float() - self.base[n].float()).abs().flatten() for n in names]
        flat = torch.cat(scores)
        k = min(flat.numel(), max(1, round(self.fraction * self.total_coordinates)))
        chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        chosen[torch.topk(flat, k, sorted=False).indices] = True
        self.masks, start = {}, 0
        for n in names:
            size = params[n].numel()
            self.masks[n] = chosen[start:start + size].view_as(params[n])
            start += size
        self.selected_coordinates = k
        self.scores.clear()
        log.info("sparse update: %d of %d student coordinates selected (%.1f %%, by %s after %d batches)", k,
                 self.total_coordinates, 100.0 * k / self.total_coordinates, self.selection, self._batches)

    def _restore(self, trainer) -> None:
        """Put every unselected coordinate (and every BN statistic) back to its base value in model and EMA."""
        import torch

        targets = [student_of(trainer.model)]
        if getattr(trainer, "ema", None) is not None:
            targets.append(student_of(trainer.ema.ema))
        with torch.no_grad():
            for module in targets:
                for name, tensor in self._tensors(module):
                    if name not in self.base:
                        continue  # a per-channel tensor that trains freely
                    base = self.base[name].to(tensor.dtype)
                    mask = self.masks.get(name) if self.masks is not None else None
                    # in place: ModelEMA keeps references to these very tensors
                    tensor.copy_(base if mask is None else torch.where(mask, tensor, base))

    def detach(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()


def sparse_update_for(config) -> SparseUpdate | None:
    """The sparse update a ``LearningConfig`` asks for, or None for a dense one."""
    if config.sparse_fraction is None:
        return None
    return SparseUpdate(config.sparse_fraction, config.sparse_selection, config.sparse_selection_batches,
                        config.sparse_channels)


__all__ = ["Selection", "SparseUpdate", "sparse_update_for", "student_of"]
