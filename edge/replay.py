"""A bounded replay buffer of earlier labelled images, one reservoir per domain.

Mixing replay into each fine-tune set keeps the teacher from forgetting earlier domains;
per-domain reservoirs keep a long stretch of one domain from crowding out the others.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from edge.yolo_dataset import LabelledImage, write_yolo_dataset
from endpoint.wire.yolo_labels import read_yolo_labels

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".png")
ORDER_FILE = "order.txt"  # "<domain>\t<image stem>" per kept image, oldest first


class ReplayBuffer:
    """Reservoir sampling per domain (algorithm R): each image seen in a domain is kept with equal chance."""

    def __init__(self, capacity_per_domain: int, seed: int = 0):
        if capacity_per_domain < 0:
            raise ValueError("capacity_per_domain must be >= 0")
        self.capacity_per_domain = capacity_per_domain
        self._rng = np.random.default_rng(seed)
        self._items: dict[str, list[LabelledImage]] = {}
        self._seen: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(v) for v in self._items.values())

    def domains(self) -> list[str]:
        """Domains with at least one kept image, sorted."""
        return sorted(d for d, items in self._items.items() if items)

    def items(self, domain: str | None = None) -> list[LabelledImage]:
        """Kept images of one domain, or of all domains."""
        if domain is not None:
            return list(self._items.get(domain, []))
        return [item for d in sorted(self._items) for item in self._items[d]]

    def seen(self, domain: str) -> int:
        """How many images of ``domain`` were ever offered."""
        return self._seen.get(domain, 0)

    def add(self, items: Iterable[LabelledImage], domain: str) -> None:
        """Offer images of one domain; past capacity each replaces a kept one with falling probability."""
        kept = self._items.setdefault(domain, [])
        for item in items:
            self._seen[domain] = self._seen.get(domain, 0) + 1
            if len(kept) < self.capacity_per_domain:
                kept.append(item)
                continue
            slot = int(self._rng.integers(0, self._seen[domain]))
            if slot < self.capacity_per_domain:
                kept[slot] = item

    def sample(self, count: int, exclude: str | None = None) -> list[LabelledImage]:
        """Up to ``count`` images without repeats, split as evenly as the domains (but ``exclude``) allow."""
        domains = [d for d in self.domains() if d != exclude]
        if count <= 0 or not domains:
            return []
        pools = {d: list(self._rng.permutation(len(self._items[d]))) for d in domains}
        out: list[LabelledImage] = []
        while len(out) < count and any(pools.values()):
            for d in domains:  # round-robin, so a small domain still gets its share
                if pools[d] and len(out) < count:
                    out.append(self._items[d][pools[d].pop()])
        return out

    def calibration(self, domain: str, count: int, replay_fraction: float) -> list[LabelledImage]:
        """``count`` INT8 calibration images in the training set's proportions: ``domain``'s last kept images
        (its newest until the reservoir fills; after that, a slot's image is any replaced one), and
        ``replay_fraction`` of them spread evenly over the other domains' kept images.

        Calibrating on the new domain alone fits the activation ranges to it: on the lab's dusk frames, the
        student's INT8 copy lost 9-10 pts mAP50-95 on day that its FP32 weights kept (``edge.quantize``).
        Draws no random numbers, so the buffer's sampling (and with it the next fine-tune) stays as it was.
        """
        others = [d for d in self.domains() if d != domain]
        own = self._items.get(domain, [])
        want_other = min(int(round(count * replay_fraction)) if others else 0, sum(len(self._items[d]) for d in others))
        picked: list[LabelledImage] = []
        for i, d in enumerate(others):  # even shares, the first domains taking the remainder
            share = want_other // len(others) + (i < want_other % len(others))
            pool = self._items[d]
            take = min(share, len(pool))
            picked += [pool[j * len(pool) // take] for j in range(take)]
        newest = own[-(count - len(picked)):] if count > len(picked) else []
        return [*newest, *picked]

    def mix(self, new_items: Sequence[LabelledImage], replay_fraction: float,
            exclude: str | None = None) -> list[LabelledImage]:
        """``new_items`` plus replay so that replay makes up ``replay_fraction`` of the result (when it has enough).

        ``exclude`` names a domain not to replay (the one ``new_items`` already covers).
        """
        if not 0 <= replay_fraction < 1:
            raise ValueError("replay_fraction must be in [0, 1)")
        want = int(round(len(new_items) * replay_fraction / (1 - replay_fraction)))
        replay = self.sample(want, exclude)
        log.info("replay: %d new + %d replayed images from %s", len(new_items), len(replay), self.domains())
        return [*new_items, *replay]

    def save(self, root: str | Path) -> None:
        """Write the kept images as a YOLO folder, one split per domain."""
        root = Path(root)
        write_yolo_dataset(root, {d: self._items[d] for d in self.domains()}, class_names=())
        (root / "seen.txt").write_text("".join(f"{d} {n}\n" for d, n in sorted(self._seen.items())))
        # the kept order: ``calibration`` takes a domain's newest, which file names alone do not tell
        (root / ORDER_FILE).write_text("".join(f"{d}\t{Path(i.name).stem}\n" for d in self.domains()
                                               for i in self._items[d]))

    @classmethod
    def load(cls, root: str | Path, capacity_per_domain: int, seed: int = 0) -> "ReplayBuffer":
        """Read a buffer written by ``save``; an absent folder gives an empty buffer."""
        root = Path(root)
        buffer = cls(capacity_per_domain, seed)
        if not (root / "images").is_dir():
            return buffer
        order = {}  # (domain, stem) -> position; a folder saved before the order was written sorts by name
        if (root / ORDER_FILE).exists():
            lines = (root / ORDER_FILE).read_text().splitlines()
            order = {tuple(line.split("\t", 1)): n for n, line in enumerate(lines) if "\t" in line}
        for split in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
            items = []
            files = (p for p in split.iterdir() if p.suffix in _IMAGE_SUFFIXES)
            for path in sorted(files, key=lambda p: (order.get((split.name, p.stem), len(order)), p.name)):
                image = path.read_bytes() if path.suffix == ".jpg" else cv2.imread(str(path))
                boxes, classes = read_yolo_labels(root / "labels" / split.name / f"{path.stem}.txt")
                items.append(LabelledImage(path.name, image, boxes, classes))
            buffer.add(items, split.name)
        if (root / "seen.txt").exists():
            for line in (root / "seen.txt").read_text().splitlines():
                domain, count = line.rsplit(" ", 1)
                buffer._seen[domain] = max(int(count), buffer._seen.get(domain, 0))
        return buffer


__all__ = ["ReplayBuffer"]
