"""The teacher's class logits per training image, computed once and reused every epoch: distillation at one teacher
pass per image instead of one per image and epoch.

The logits of an image stay right only while the image reaches the loss in the same geometry each epoch, so a
cached teacher trains without geometric augmentation (``FIXED_GEOMETRY``: no mosaic, affine, flips or mixing;
colour jitter stays, and the teacher's logits are those of the colours it first saw). On a 2-core edge the
teacher's pass on every batch cost about 30 % of the student's epoch, more than the distillation gained at the
same wall time (``edgeloop bench distill``); cached, it costs one epoch's passes in the whole training.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

# ultralytics training arguments that leave each image's geometry the same every epoch
FIXED_GEOMETRY = {"mosaic": 0.0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0, "degrees": 0.0, "translate": 0.0,
                  "scale": 0.0, "shear": 0.0, "perspective": 0.0, "fliplr": 0.0, "flipud": 0.0, "multi_scale": 0.0}


def geometry_changes(args) -> list[str]:
    """The ultralytics arguments of ``args`` (a namespace) that move an image between epochs; [] when none do."""
    return [f"{name}={getattr(args, name)}" for name, fixed in FIXED_GEOMETRY.items()
            if getattr(args, name, fixed) not in (fixed, None, False)]


# the lab's logits take 16 kB an image (3 classes, 1,344 anchors); 80 classes on a 640 px student's 1,280 px view
# would take 11 MB, so a COCO-sized training set is bounded by bytes before it reaches its image count
MAX_CACHE_BYTES = 2 << 30


class TeacherLogitCache:
    """Class logits per (image file, image size): the teacher runs on the images of a batch it has not seen yet.

    ``teacher`` maps the teacher's view to (B, nc, anchors) logits, ``view`` makes that view from the student's
    images (B, 3, H, W floats in 0..1); at most ``limit`` images (the training set's size) and ``max_bytes`` of
    logits are kept, and an image beyond them is scored again each time it comes.
    """

    def __init__(self, teacher: Callable[[torch.Tensor], torch.Tensor],
                 view: Callable[[torch.Tensor], torch.Tensor], limit: int, max_bytes: int = MAX_CACHE_BYTES):
        if limit < 1 or max_bytes < 1:
            raise ValueError(f"the teacher cache needs room for at least one image, not {limit} images and "
                             f"{max_bytes} bytes")
        self.teacher, self.view, self.limit, self.max_bytes = teacher, view, limit, max_bytes
        self.logits: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        self.bytes = 0  # held in ``logits``
        self.passes = self.reused = 0  # images the teacher ran on, and images served from the cache

    def __call__(self, files: Sequence[str], images: torch.Tensor) -> torch.Tensor:
        """The logits of each image of the batch (``files`` names them, in order), on the images' device."""
        if len(files) != len(images):
            raise ValueError(f"{len(files)} file names for {len(images)} images")
        keys = [(str(name), tuple(images.shape[1:])) for name in files]
        missing = sorted({i for i, key in enumerate(keys) if key not in self.logits})
        fresh: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}
        if missing:
            scored = self.teacher(self.view(images[missing])).to("cpu")
            fresh = {keys[i]: scored[j] for j, i in enumerate(missing)}
            for key, logits in fresh.items():
                size = logits.numel() * logits.element_size()
                if len(self.logits) >= self.limit or self.bytes + size > self.max_bytes:
                    break
                self.logits[key] = logits.clone()  # its own storage: a view would keep the whole batch's alive
                self.bytes += size
        self.passes += len(fresh)
        self.reused += len(keys) - len(missing)
        return torch.stack([fresh.get(key, self.logits.get(key)) for key in keys]).to(images.device)


__all__ = ["FIXED_GEOMETRY", "MAX_CACHE_BYTES", "TeacherLogitCache", "geometry_changes"]
