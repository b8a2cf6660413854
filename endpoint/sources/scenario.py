"""A seeded synthetic drift scenario: shapes of a few classes on textured backgrounds.

Each domain changes light, noise, object scale and class mix, so a detector trained
on one domain loses accuracy on the next. Frames carry their ground-truth boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

CLASS_NAMES = ("square", "disc", "triangle")


@dataclass(frozen=True)
class Domain:
    """One stretch of the world an endpoint watches."""

    name: str
    brightness: float = 1.0  # multiplies the image
    noise_std: float = 6.0  # gaussian pixel noise
    scale: tuple[float, float] = (0.12, 0.28)  # object size as a fraction of the short side
    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    background_hue: int = 30  # 0..179, OpenCV hue
    haze: float = 0.0  # 0..1 blend towards grey, a stand-in for fog


DEFAULT_DOMAINS: tuple[Domain, ...] = (
    Domain("day", brightness=1.0, noise_std=4.0, class_weights=(1.0, 1.0, 0.0), background_hue=35),
    Domain("dusk", brightness=0.45, noise_std=14.0, scale=(0.08, 0.2), class_weights=(0.6, 0.6, 1.0),
           background_hue=110, haze=0.25),
)


@dataclass(frozen=True)
class SyntheticFrame:
    image: np.ndarray  # HxWx3 uint8 BGR
    boxes: np.ndarray  # Nx4 float32, x1 y1 x2 y2 normalized
    classes: np.ndarray  # N int64
    domain: str


@dataclass
class SyntheticScenario:
    """Deterministic frames: frame ``i`` of domain ``d`` is the same for the same seed."""

    width: int = 320
    height: int = 240
    seed: int = 0
    domains: tuple[Domain, ...] = DEFAULT_DOMAINS
    max_objects: int = 4
    _textures: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def domain(self, name: str) -> Domain:
        for d in self.domains:
            if d.name == name:
                return d
        raise KeyError(f"unknown domain {name!r}; known: {[d.name for d in self.domains]}")

    def frame(self, domain_name: str, index: int) -> SyntheticFrame:
        dom = self.domain(domain_name)
        dom_index = self.domains.index(dom)
        rng = np.random.default_rng([self.seed, dom_index, index])
        image = self._background(dom, rng)
        boxes, classes = self._draw_objects(image, dom, rng)
        image = self._apply_light(image, dom, rng)
        return SyntheticFrame(image=image, boxes=boxes, classes=classes, domain=dom.name)

    def _background(self, dom: Domain, rng: np.random.Generator) -> np.ndarray:
        base = self._texture(dom.background_hue)
        dy, dx = rng.integers(0, 64, size=2)
        return np.ascontiguousarray(base[dy : dy + self.height, dx : dx + self.width]).copy()

    def _texture(self, hue: int) -> np.ndarray:
        if hue not in self._textures:
            rng = np.random.default_rng([self.seed, 7919, hue])
            h, w = self.height + 64, self.width + 64
            low = rng.normal(0, 1, size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
            low = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
            fine = rng.normal(0, 0.35, size=(h, w)).astype(np.float32)
            value = np.clip(140 + 35 * (low + fine), 40, 230).astype(np.uint8)
            hsv = np.stack([np.full_like(value, hue), np.full_like(value, 90), value], axis=-1)
            self._textures[hue] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return self._textures[hue]

    def _draw_objects(self, image: np.ndarray, dom: Domain, rng: np.random.Generator):
        weights = np.asarray(dom.class_weights, dtype=np.float64)
        weights = weights / weights.sum()
        count = int(rng.integers(1, self.max_objects + 1))
        short = min(self.width, self.height)
        boxes, classes = [], []
        for _ in range(count):
            cls = int(rng.choice(len(CLASS_NAMES), p=weights))
            size = int(short * rng.uniform(*dom.scale))
            x1 = int(rng.integers(0, self.width - size))
            y1 = int(rng.integers(0, self.height - size))
            if any(_overlap((x1, y1, x1 + size, y1 + size), b) > 0.2 for b in boxes):
                continue
            color = tuple(int(c) for c in rng.integers(0, 256, size=3))
            _draw_shape(image, cls, x1, y1, size, color)
            boxes.append((x1, y1, x1 + size, y1 + size))
            classes.append(cls)
        norm = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / [self.width, self.height, self.width, self.height]
        return norm.astype(np.float32), np.asarray(classes, dtype=np.int64)

    def _apply_light(self, image: np.ndarray, dom: Domain, rng: np.random.Generator) -> np.ndarray:
        out = image.astype(np.float32) * dom.brightness
        if dom.haze:
            out = out * (1 - dom.haze) + 128 * dom.haze
        out += rng.normal(0, dom.noise_std, size=out.shape)
        return np.clip(out, 0, 255).astype(np.uint8)


def _draw_shape(image: np.ndarray, cls: int, x1: int, y1: int, size: int, color: tuple[int, int, int]) -> None:
    if cls == 0:
        cv2.rectangle(image, (x1, y1), (x1 + size - 1, y1 + size - 1), color, thickness=-1)
    elif cls == 1:
        r = size // 2
        cv2.circle(image, (x1 + r, y1 + r), r, color, thickness=-1, lineType=cv2.LINE_AA)
    else:
        pts = np.array([[x1 + size // 2, y1], [x1, y1 + size - 1], [x1 + size - 1, y1 + size - 1]], np.int32)
        cv2.fillPoly(image, [pts], color, lineType=cv2.LINE_AA)


def _overlap(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
