"""A learned bottleneck at the cut: 1x1 conv encoders on the device side, 1x1 conv decoders on the edge side.

Trained by distillation against the frozen full model: PCA gives the best linear start
(least squares on the crossing features), then a few hundred steps on the feature error
plus the error of the detect output make the reduction serve the task, not just the pixels.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from edge.split.split_model import SplitHead, SplitTail

log = logging.getLogger(__name__)


class ChannelBottleneck(nn.Module):
    """Per crossing tensor: encoder ``C -> ceil(C / reduction)`` and decoder back to ``C``, both 1x1 convs."""

    def __init__(self, channels: Sequence[int], reduction: int):
        super().__init__()
        if reduction < 1:
            raise ValueError(f"reduction must be >= 1, got {reduction}")
        self.reduction = reduction
        reduced = [max(1, -(-c // reduction)) for c in channels]
        self.encoders = nn.ModuleList(nn.Conv2d(c, r, 1) for c, r in zip(channels, reduced))
        self.decoders = nn.ModuleList(nn.Conv2d(r, c, 1) for c, r in zip(channels, reduced))

    def encode(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(enc(f) for enc, f in zip(self.encoders, feats))

    def decode(self, codes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(dec(c) for dec, c in zip(self.decoders, codes))

    def wrap_head(self, head: nn.Module) -> nn.Module:
        """The head followed by the encoders (what the endpoint runs)."""
        return _EncodedHead(head, self.encoders)

    def wrap_tail(self, tail: nn.Module) -> nn.Module:
        """The decoders followed by the tail (what the edge runs)."""
        return _DecodedTail(self.decoders, tail)

    def digest(self) -> str:
        """Hash of the weights: names the exported pair."""
        h = hashlib.sha256()
        for tensor in self.state_dict().values():
            h.update(tensor.detach().cpu().numpy().tobytes())
        return h.hexdigest()[:12]


class _EncodedHead(nn.Module):
    def __init__(self, head: nn.Module, encoders: nn.ModuleList):
        super().__init__()
        self.head, self.encoders = head, encoders

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(enc(f) for enc, f in zip(self.encoders, self.head(image)))


class _DecodedTail(nn.Module):
    def __init__(self, decoders: nn.ModuleList, tail: nn.Module):
        super().__init__()
        self.decoders, self.tail = decoders, tail

    def forward(self, *codes: torch.Tensor) -> torch.Tensor:
        return self.tail(*(dec(c) for dec, c in zip(self.decoders, codes)))


@dataclass(frozen=True)
class BottleneckTraining:
    """How long and how hard the bottleneck is distilled."""

    steps: int = 300
    batch: int = 16
    lr: float = 3e-3
    output_weight: float = 1.0  # weight of the detect-output error against the feature error
    seed: int = 0


def pca_init(bottleneck: ChannelBottleneck, feats: Sequence[torch.Tensor]) -> None:
    """Set each encoder/decoder pair to the top principal components of its crossing tensor's channels."""
    for enc, dec, f in zip(bottleneck.encoders, bottleneck.decoders, feats):
        x = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).double()
        mean = x.mean(0)
        cov = torch.cov((x - mean).T) if x.shape[1] > 1 else torch.ones(1, 1, dtype=torch.float64)
        _, vectors = torch.linalg.eigh(cov.reshape(x.shape[1], x.shape[1]))
        basis = vectors[:, -enc.out_channels :]  # eigh sorts ascending: the last columns carry most variance
        with torch.no_grad():
            enc.weight.copy_(basis.T.float()[:, :, None, None])
            enc.bias.copy_((-basis.T @ mean).float())
            dec.weight.copy_(basis.float()[:, :, None, None])
            dec.bias.copy_(mean.float())


def train_bottleneck(model: nn.Module, split_after: int, images: torch.Tensor, reduction: int,
                     training: BottleneckTraining = BottleneckTraining()) -> ChannelBottleneck:
    """Distill a bottleneck at the cut after ``split_after`` on letterboxed ``images`` (N x 3 x H x W, 0..1)."""
    torch.manual_seed(training.seed)
    head, tail = SplitHead(model.model, split_after).eval(), SplitTail(model.model, split_after).eval()
    with torch.no_grad():
        feats = [torch.cat(parts) for parts in zip(*(head(images[i : i + 32]) for i in range(0, len(images), 32)))]
        target = torch.cat([tail(*(f[i : i + 32] for f in feats)) for i in range(0, len(images), 32)])
    bottleneck = ChannelBottleneck([f.shape[1] for f in feats], reduction)
    pca_init(bottleneck, feats)
    feat_scale = [f.var().clamp_min(1e-8) for f in feats]
    out_scale = _output_scale(target, images.shape[-1])
    optimizer = torch.optim.Adam(bottleneck.parameters(), lr=training.lr)
    rng = np.random.default_rng(training.seed)
    first_loss = last_loss = float("nan")
    for step in range(training.steps):
        idx = torch.as_tensor(rng.choice(len(images), size=min(training.batch, len(images)), replace=False))
        batch = [f[idx] for f in feats]
        decoded = bottleneck.decode(bottleneck.encode(batch))
        feat_loss = sum(((d - f) ** 2).mean() / s for d, f, s in zip(decoded, batch, feat_scale)) / len(batch)
        out_loss = (((tail(*decoded) - target[idx]) * out_scale) ** 2).mean()
        loss = feat_loss + training.output_weight * out_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        last_loss = loss.item()
        if step == 0:
            first_loss = last_loss
    log.info("bottleneck after %d /%d: %d steps, loss %.4f -> %.4f", split_after, reduction, training.steps,
             first_loss, last_loss)
    return bottleneck.eval()


def _output_scale(target: torch.Tensor, imgsz: int) -> torch.Tensor:
    """Box rows are pixels, score rows 0..1: scale boxes by 1/imgsz and weight scores up so both count."""
    scale = torch.ones(1, target.shape[1], 1)
    scale[:, :4] = 1.0 / imgsz
    scale[:, 4:] = 4.0  # scores decide which boxes survive NMS; errors there cost the most mAP
    return scale


__all__ = ["BottleneckTraining", "ChannelBottleneck", "pca_init", "train_bottleneck"]
