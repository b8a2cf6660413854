"""The models ``edgeloop bench fuzz`` runs its receivers with: the tests' tiny YOLO and a split set cut from it.

Both are cached: the tiny YOLO under ``.cache/test-models`` (shared with the test suite, trained once in
about a minute), the split set (an export, no training) under ``edgeloop-data/cache/bench-fuzz``.
"""

from __future__ import annotations

import fcntl
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)

CACHE_DIR = Path("edgeloop-data/cache/bench-fuzz")
SPLIT_AFTER = 4  # one cut is enough to exercise the feature decoder and a tail


def tiny_yolo():
    """The tests' tiny trained YOLO (``tests.model_fixtures``), from its cache."""
    repo = str(Path(__file__).resolve().parents[1])
    if repo not in sys.path:  # the ``edgeloop`` script does not run from the checkout, whose tests/ we reuse
        sys.path.append(repo)
    from tests.model_fixtures import build_tiny_yolo

    return build_tiny_yolo()


def split_set_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """A split set of the tiny YOLO, cut after layer ``SPLIT_AFTER``; exported once, then read from the cache."""
    tiny = tiny_yolo()
    folder = Path(cache_dir) / f"split-{tiny.settings.key()}-after{SPLIT_AFTER}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two bench runs at once export once
        if not (folder / "done").exists():
            from edge.split.split_set import build_split_set

            log.info("fuzz: cutting a split set from %s (once; cached in %s)", tiny.pt, folder)
            build_split_set(tiny.pt, folder, tiny.imgsz, (SPLIT_AFTER,))
            (folder / "done").write_text("")
    return folder
